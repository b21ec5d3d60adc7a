"""`capacity-webhook selftest` against a real HTTPS server on 127.0.0.1.

The server is the standard library's http.server wrapped in TLS with a
certificate from a throwaway CA made by certs.authority, so the client's
certificate and hostname verification are exercised for real; the review the
command sends is also read by the server's own parser (webhook.server.review).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from certs.authority import renew_serving_cert, write_bundle
from webhook.selftest import build_review, run_selftest, selftest_command
from webhook.server.review import parse_review


def make_pki(directory: Path) -> dict[str, Path]:
    """With certs.authority: a CA; serving certs signed by it for 127.0.0.1/localhost and
    for another name; and an unrelated CA."""
    main = write_bundle(directory / "main", ["localhost"], ["127.0.0.1"], days=1)
    wrong = directory / "wrong-name"
    wrong.mkdir()
    for name in ("ca.crt", "ca.key"):  # same CA, another serving cert
        (wrong / name).write_bytes((main.out_dir / name).read_bytes())
    wrong_name = renew_serving_cert(wrong, ["capacity-webhook.elsewhere.svc"], days=1)
    other = write_bundle(directory / "other", ["someone-else.example"], days=1)
    return {
        "ca.crt": main.ca_cert, "tls.crt": main.tls_cert, "tls.key": main.tls_key,
        "wrong-name.crt": wrong_name.tls_cert, "wrong-name.key": wrong_name.tls_key,
        "other-ca.crt": other.ca_cert,
    }


Responder = Callable[[dict[str, Any]], tuple[int, bytes]]


def well_formed(allowed: bool, message: str | None = None, warnings: list[str] | None = None) -> Responder:
    """Answer as the Kubernetes docs define an AdmissionReview v1 response, written out literally.

    Not built with the server's own ``review_response``: selftest must accept what the API
    server accepts, not merely what our server happens to produce.
    """
    def respond(review: dict[str, Any]) -> tuple[int, bytes]:
        response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 403, "message": message or "denied"}
        if warnings:
            response["warnings"] = warnings
        return 200, json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                "response": response}).encode()
    return respond


class StubServer:
    def __init__(self, cert: Path, key: Path) -> None:
        self.responder: Responder = well_formed(True)
        self.received: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                review = json.loads(body)
                stub.received.append({"path": self.path, "headers": dict(self.headers), "review": review})
                status, payload = stub.responder(review)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}/validate"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(pki: dict[str, Path]) -> Iterator[StubServer]:
    srv = StubServer(pki["tls.crt"], pki["tls.key"])
    try:
        yield srv
    finally:
        srv.close()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(selftest_command, list(args))


def test_command_is_named_selftest() -> None:
    assert selftest_command.name == "selftest"
    opts = {o for p in selftest_command.params for o in p.opts}
    assert {"--url", "--ca-file"} <= opts
    assert "--insecure" not in opts


def test_allowed_answer_exits_0_and_sends_a_dry_run_review(server: StubServer, pki: dict[str, Path]) -> None:
    result = invoke("--url", server.url(), "--ca-file", str(pki["ca.crt"]))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "OK" in lines[0] and "allowed" in lines[0]

    (got,) = server.received
    assert got["path"] == "/validate"
    assert got["headers"]["Content-Type"] == "application/json"
    review = got["review"]
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    req = review["request"]
    assert req["dryRun"] is True and req["operation"] == "CREATE"
    assert req["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    obj = req["object"]
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "10m"


def test_uid_is_random_per_run(server: StubServer, pki: dict[str, Path]) -> None:
    invoke("--url", server.url(), "--ca-file", str(pki["ca.crt"]))
    invoke("--url", server.url("localhost"), "--ca-file", str(pki["ca.crt"]))
    uids = {r["review"]["request"]["uid"] for r in server.received}
    assert len(uids) == 2


def test_denied_answer_is_still_healthy(server: StubServer, pki: dict[str, Path]) -> None:
    server.responder = well_formed(False, message="no pod IP slots\nleft", warnings=["would be Pending"])
    result = invoke("--url", server.url(), "--ca-file", str(pki["ca.crt"]))
    assert result.exit_code == 0, result.output
    assert "denied (no pod IP slots left)" in result.output
    assert "1 warning(s)" in result.output


@pytest.mark.parametrize(
    "responder, fragment",
    [
        (lambda r: (200, json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                     "response": {"uid": "not-the-uid", "allowed": True}}).encode()), "does not echo"),
        (lambda r: (200, json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                     "response": {"uid": r["request"]["uid"], "allowed": "yes"}}).encode()), "boolean"),
        (lambda r: (200, json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode()),
         "missing"),
        (lambda r: (200, json.dumps({"kind": "Status"}).encode()), "kind"),
        (lambda r: (200, b"[]"), "not a JSON object"),
        (lambda r: (200, b"<html>"), "not JSON"),
        (lambda r: (500, b"{}"), "HTTP 500"),
    ],
    ids=["uid", "allowed-type", "no-response", "wrong-kind", "not-an-object", "not-json", "http-500"],
)
def test_malformed_answers_exit_1(
    server: StubServer, pki: dict[str, Path], responder: Responder, fragment: str
) -> None:
    server.responder = responder
    result = invoke("--url", server.url(), "--ca-file", str(pki["ca.crt"]))
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and fragment in result.output


def test_untrusted_ca_exits_1(server: StubServer, pki: dict[str, Path]) -> None:
    result = invoke("--url", server.url(), "--ca-file", str(pki["other-ca.crt"]))
    assert result.exit_code == 1
    assert "FAIL" in result.output and "CERTIFICATE_VERIFY_FAILED" in result.output
    assert server.received == []


def test_hostname_is_verified(pki: dict[str, Path]) -> None:
    # Signed by the trusted CA, but for another name than the one in the URL.
    srv = StubServer(pki["wrong-name.crt"], pki["wrong-name.key"])
    try:
        code, line = run_selftest(srv.url(), str(pki["ca.crt"]), timeout=3)
    finally:
        srv.close()
    assert code == 1 and "FAIL" in line and "mismatch" in line.lower(), line
    assert srv.received == []


def test_connection_refused_exits_1(pki: dict[str, Path]) -> None:
    srv = StubServer(pki["tls.crt"], pki["tls.key"])
    url = srv.url()
    srv.close()
    result = invoke("--url", url, "--ca-file", str(pki["ca.crt"]), "--timeout", "2")
    assert result.exit_code == 1 and "FAIL" in result.output


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--url", "https://127.0.0.1:1/validate"],
        ["--url", "http://127.0.0.1:1/validate", "--ca-file", "CA"],
        ["--url", "https://127.0.0.1:1/validate", "--ca-file", "/nonexistent/ca.crt"],
        ["--url", "https://127.0.0.1:1/validate", "--ca-file", "CA", "--insecure"],
    ],
    ids=["nothing", "no-ca", "http-url", "missing-ca-file", "insecure"],
)
def test_usage_errors_exit_2(pki: dict[str, Path], args: list[str]) -> None:
    args = [str(pki["ca.crt"]) if a == "CA" else a for a in args]
    assert invoke(*args).exit_code == 2


def test_ca_file_that_is_not_a_certificate_exits_2(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.crt"
    bogus.write_text("not a certificate\n")
    assert invoke("--url", "https://127.0.0.1:1/validate", "--ca-file", str(bogus)).exit_code == 2


def test_review_is_one_the_server_parses() -> None:
    review = parse_review(json.dumps(build_review("u-1", "team-a")).encode())
    assert (review.uid, review.operation, review.kind, review.resource) == (
        "u-1",
        "CREATE",
        "Deployment",
        "deployments",
    )
    assert review.namespace == "team-a" and review.dry_run is True
    assert review.obj["metadata"]["namespace"] == "team-a"
