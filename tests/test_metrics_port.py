"""``serve --metrics-port``: plain-HTTP ``/metrics`` on its own listener, against the real server
process (gunicorn + TLS on the webhook port, ``server_fixture.WebhookProcess``).

What the chart's ServiceMonitor/PodMonitor and NetworkPolicy rely on: the port speaks plain
HTTP, serves the same figures as the HTTPS ``/metrics``, and never the admission endpoint.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests
from server_fixture import REPO, WebhookProcess, metric, parse_metrics, server_cluster

from tests import synthetic as s


def metrics_port_of(proc: WebhookProcess, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        match = re.search(r"Metrics listening at: http://127\.0\.0\.1:(\d+)/metrics", proc.log_text())
        if match:
            return int(match.group(1))
        if time.monotonic() > deadline:
            raise AssertionError(f"no metrics listener in the log:\n{proc.log_text()[-3000:]}")
        time.sleep(0.05)


def plain(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = WebhookProcess(tmp_path_factory.mktemp("metrics-port"), server_cluster(),
                          "--mode", "enforce", "--metrics-port", "0", "--threads", "2")
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log_text()[-3000:]


def test_plain_http_metrics_match_the_https_endpoint(server: WebhookProcess) -> None:
    port = metrics_port_of(server)
    assert port != server.port
    denied = server.admit(s.small_web("too-big", 30), dry_run=True)
    assert denied["allowed"] is False

    status, headers, body = plain(port, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    over_http = parse_metrics(body.decode())
    over_https = server.metrics()
    deny = {"kind": "Deployment", "operation": "CREATE", "verdict": "deny"}
    assert metric(over_http, "capacity_webhook_admission_requests_total", **deny) == 1
    assert metric(over_https, "capacity_webhook_admission_requests_total", **deny) == 1
    # Same process, same state: the per-node gauges agree between the two ports.
    for name in ("capacity_webhook_node_free_ip_slots", "capacity_webhook_node_free_pod_slots"):
        http_nodes = {k: v for k, v in over_http.items() if k[0] == name}
        https_nodes = {k: v for k, v in over_https.items() if k[0] == name}
        assert http_nodes and http_nodes == https_nodes, name
    assert plain(port, "HEAD", "/metrics")[0] == 200


def test_metrics_port_never_serves_the_webhook(server: WebhookProcess) -> None:
    port = metrics_port_of(server)
    for method, path in (("POST", "/validate"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/")):
        status, _, body = plain(port, method, path, b"{}" if method == "POST" else None)
        assert status == 404, (method, path, status, body)
    status, headers, _ = plain(port, "POST", "/metrics", b"{}")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    # And it is not TLS: a TLS client handshake on it fails.
    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, pytest.raises(ssl.SSLError):
        context.wrap_socket(sock, server_hostname="localhost")
    # The webhook port stays HTTPS-only.
    assert server.session.get(server.url("/healthz"), timeout=5).status_code == 200


@pytest.mark.parametrize("extra, message", [
    (["--workers", "2", "--metrics-port", "9090"], "--metrics-port needs --workers 1"),
    (["--port", "9443", "--metrics-port", "9443"], "is the HTTPS --port"),
    (["--metrics-port", "70000"], "--metrics-port"),
])
def test_bad_metrics_port_combinations_are_usage_errors(tmp_path, extra: list[str], message: str) -> None:
    proc = WebhookProcess(tmp_path, server_cluster())  # only for its certificate and snapshot files
    command = [sys.executable, "-m", "webhook.server", "--cluster", str(proc.snapshot),
               "--tls-cert-file", str(proc.bundle.tls_cert), "--tls-private-key-file", str(proc.bundle.tls_key),
               "--bind", "127.0.0.1", *extra]
    done = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_taken_metrics_port_stops_the_server(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = WebhookProcess(tmp_path, server_cluster(), "--metrics-port", str(port))
        try:
            # The worker cannot boot, so /readyz never answers (refused or timed out) ...
            with pytest.raises((RuntimeError, requests.RequestException)):
                proc.start(timeout=20)
            # ... and gunicorn's master gives up instead of serving without metrics.
            assert proc.proc.wait(timeout=30) != 0
        finally:
            proc.stop()
    log = proc.log_text()
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1: Address already in use" in log
    assert log.count("Booting worker") == 1, "the worker must not be re-spawned in a loop"
