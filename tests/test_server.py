"""The admission webhook server, end to end: the real ``serve`` command (gunicorn, gthread,
TLS with certificates from ``certs/``) serving a ``tests.synthetic`` snapshot, and real
AdmissionReview v1 bodies posted over HTTPS with ``requests``, verified against the CA.

Cluster (``server_fixture.server_cluster``): two t3.medium nodes with 10 and 11 free pod
IP slots, so 21 light pods fit; a cordoned third node runs the 4 pods of ``default/api``.
One enforce-mode server serves the module (reservation TTL 1 s); a second one in warn
mode covers the server-wide warn mode and, last, a SIGTERM with a review in flight.
A few in-process tests (flask test client) cover the states a snapshot never has:
not loaded yet, and stale.
"""

from __future__ import annotations

import copy
import json
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509

from certs.authority import renew_serving_cert
from server_fixture import (CORDONED, DNS, HPA_USER, IPS, NODES, WebhookProcess, families, metric, review, scale,
                            server_cluster)
from tests import synthetic as s
from webhook.server.review import MAX_BODY_BYTES, sanitize_warning, sanitize_warnings
from webhook.state.holder import StateHolder
from webhook.state.snapshot import state_from_objects

TTL = 1.0
PENDING_30 = "9 of 30 pods would stay Pending"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = WebhookProcess(tmp_path_factory.mktemp("enforce"), server_cluster(),
                          "--mode", "enforce", "--reservation-ttl", str(TTL), "--threads", "8")
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log_text()[-3000:]


@pytest.fixture
def srv(server):
    """The module server with no reservation left over from the previous test."""
    server.wait_reservations_gone()
    yield server
    assert server.proc.poll() is None, server.log_text()[-3000:]


def deny_status(response: dict) -> dict:
    assert response["allowed"] is False, response
    assert response["status"]["code"] == 403 and response["status"]["reason"] == "Forbidden"
    return response["status"]


# ---- verdicts ------------------------------------------------------------------------------
def test_deny_30_replicas_with_the_full_explanation(srv):
    response = srv.admit(s.small_web("web", 30))
    message = deny_status(response)["message"]
    assert message.startswith(f"Deployment default/web: {PENDING_30}: no pod IP slots left")
    assert "21 fit" in message and len(message.splitlines()) >= 3       # summary, per-node detail, fix
    assert "prefix delegation" in message
    assert "warnings" not in response


def test_allow_21_replicas_and_log_line(srv):
    body = review(s.small_web("fits", 21))
    answer = srv.post(body)
    response = answer.json()["response"]
    assert answer.status_code == 200 and response == {"uid": body["request"]["uid"], "allowed": True}
    line = srv.review_log(body["request"]["uid"])
    assert line["level"] == "info"
    assert {k: line[k] for k in ("kind", "namespace", "name", "operation", "user", "verdict", "pending", "dryRun")} \
        == {"kind": "Deployment", "namespace": "default", "name": "fits", "operation": "CREATE",
            "user": "alice@example.com", "verdict": "allow", "pending": 0, "dryRun": False}
    assert line["reasons"] == [] and line["reserved"] == 21 and 0 < line["latency_ms"] < 1000


def test_deny_is_logged_with_reason_codes(srv):
    body = review(s.small_web("web", 30), user="bob")
    srv.post(body)
    line = srv.review_log(body["request"]["uid"])
    assert line["level"] == "warning" and line["verdict"] == "deny" and line["allowed"] is False
    assert line["pending"] == 9 and line["reasons"] == ["POD_IP_EXHAUSTED"] and line["user"] == "bob"


def test_namespace_label_warn_overrides_enforce(srv):
    response = srv.admit(s.small_web("web", 30, namespace="relaxed"), dry_run=True)
    assert response["allowed"] is True and "status" not in response
    assert response["warnings"] == [f"Deployment relaxed/web: {PENDING_30}: no pod IP slots left"]


def test_namespace_label_audit_allows_silently_with_audit_annotations(srv):
    body = review(s.small_web("web", 30, namespace="observe"), dry_run=True)
    response = srv.post(body).json()["response"]
    assert response["allowed"] is True and "warnings" not in response
    assert response["auditAnnotations"] == {"verdict": "would-deny", "pending": "9", "reasons": "POD_IP_EXHAUSTED"}
    line = srv.review_log(body["request"]["uid"])
    assert (line["mode"], line["modeFrom"], line["pending"]) == ("audit", "namespace", 9)


def test_invalid_namespace_label_keeps_the_server_mode_and_says_so(srv):
    response = srv.admit(s.small_web("web", 30, namespace="typo"), dry_run=True)
    assert response["allowed"] is False
    assert any("capacity-webhook/mode='maybe'" in w for w in response["warnings"])


def test_skip_annotation_allows_warns_and_logs_user_and_reason(srv):
    obj = s.deployment("big", 500, spec=s.pod_spec([s.container(requests={"cpu": "10m"})]),
                       annotations={"capacity-webhook/skip": "INC-4711 emergency scale-out"})
    body = review(obj, user="oncall@example.com")
    response = srv.post(body).json()["response"]
    assert response["allowed"] is True
    (warning,) = response["warnings"]
    assert "capacity check skipped" in warning and "INC-4711 emergency scale-out" in warning
    line = srv.review_log(body["request"]["uid"])
    assert (line["user"], line["skipReason"], line["skipped"]) == ("oncall@example.com", "INC-4711 emergency scale-out",
                                                                  True)


def test_dry_run_same_verdict_and_no_reservation(srv):
    deny = srv.admit(s.small_web("web", 30), dry_run=True)
    assert PENDING_30 in deny_status(deny)["message"]
    dry = srv.admit(s.small_web("dry", 21), dry_run=True)
    assert dry["allowed"] is True
    assert metric(srv.metrics(), "capacity_webhook_reservations") == 0
    # Had the dry run reserved its 21 pods, this would be denied.
    real = srv.admit(s.small_web("real", 21))
    assert real == {"uid": real["uid"], "allowed": True}


def test_reservation_holds_slots_until_the_ttl_expires(srv):
    first = srv.admit(s.small_web("first", 11))
    assert first["allowed"] is True
    values = srv.metrics()
    assert metric(values, "capacity_webhook_reservations") == 1
    free = {labels["node"]: v for labels, v in families(values, "capacity_webhook_node_free_ip_slots")}
    assert free[NODES[0]] + free[NODES[1]] == 21 - 11
    second = srv.admit(s.small_web("second", 11))
    assert "Deployment default/second: 1 of 11 pods would stay Pending" in deny_status(second)["message"]
    waited = srv.wait_reservations_gone()
    assert waited <= TTL + 1.0
    again = srv.admit(s.small_web("second", 11), dry_run=True)
    assert again["allowed"] is True


def test_repeated_updates_of_one_deployment_hold_one_reservation(srv):
    old, new = s.small_web("stack", 2), s.small_web("stack", 6)
    assert srv.admit(old)["allowed"] is True
    for _ in range(4):                 # four 2->6 updates: one promise of 6, not 4 x 6
        assert srv.admit(new, operation="UPDATE", old=old)["allowed"] is True
    values = srv.metrics()
    assert metric(values, "capacity_webhook_reservations") == 1
    free = {labels["node"]: v for labels, v in families(values, "capacity_webhook_node_free_ip_slots")}
    assert free[NODES[0]] + free[NODES[1]] == 21 - 6
    assert srv.admit(s.small_web("next", 15))["allowed"] is True
    message = deny_status(srv.admit(s.small_web("last", 11)))["message"]
    assert "11 of 11 pods would stay Pending" in message and "0 IP slots left of 15" in message


# ---- scale subresource, HPA, updates --------------------------------------------------------
def test_scale_subresource_takes_the_template_from_the_snapshot(srv):
    response = srv.admit(scale("api", 30), operation="UPDATE", old=scale("api", 4), sub_resource="scale",
                         resource=("apps", "deployments"), dry_run=True)
    # 4 pods run (on the cordoned node), 26 more are needed, 21 fit.
    assert deny_status(response)["message"].startswith("Deployment default/api: 5 of 30 pods would stay Pending")


def test_scale_down_is_allowed_fast(srv):
    body = review(scale("api", 2), operation="UPDATE", old=scale("api", 4), sub_resource="scale",
                  resource=("apps", "deployments"))
    response = srv.post(body).json()["response"]
    assert response == {"uid": body["request"]["uid"], "allowed": True}
    line = srv.review_log(body["request"]["uid"])
    # A scale-down places nothing and reserves nothing (no wall-clock bound: it would measure the machine).
    assert line["reasons"] == [] and line["verdict"] == "allow" and not line.get("reserved")


def test_scale_of_an_unknown_deployment_is_allowed_with_a_warning(srv):
    response = srv.admit(scale("ghost", 50), operation="UPDATE", old=scale("ghost", 1), sub_resource="scale",
                         resource=("apps", "deployments"))
    assert response["allowed"] is True and "not in capacity-webhook's cluster state" in response["warnings"][0]


def test_hpa_scale_is_never_denied(srv):
    body = review(scale("api", 30), operation="UPDATE", old=scale("api", 4), sub_resource="scale",
                  resource=("apps", "deployments"), user=HPA_USER, dry_run=True)
    response = srv.post(body).json()["response"]
    assert response["allowed"] is True
    assert response["warnings"] == ["Deployment default/api: 5 of 30 pods would stay Pending: no pod IP slots left"]
    assert srv.review_log(body["request"]["uid"])["downgraded"] == "hpa"


def test_update_counts_only_the_added_replicas(srv):
    cluster = {(o["kind"], o["metadata"]["name"]): o for o in server_cluster()["items"]}
    old = cluster[("Deployment", "api")]
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 25                       # 4 running + 21 new: exactly what fits
    assert srv.admit(new, operation="UPDATE", old=old, dry_run=True)["allowed"] is True
    # The same 25 replicas as a new Deployment: all 25 need room.
    created = srv.admit(s.small_web("api2", 25), dry_run=True)
    assert "4 of 25 pods would stay Pending" in deny_status(created)["message"]
    new["spec"]["replicas"] = 26
    assert "1 of 26 pods would stay Pending" in deny_status(
        srv.admit(new, operation="UPDATE", old=old, dry_run=True))["message"]


def test_label_only_update_is_allowed_fast(srv):
    old = s.small_web("web", 30)
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["team"] = "payments"
    new["status"] = {"replicas": 30, "readyReplicas": 12}
    body = review(new, operation="UPDATE", old=old)
    response = srv.post(body).json()["response"]
    assert response == {"uid": body["request"]["uid"], "allowed": True}
    line = srv.review_log(body["request"]["uid"])
    assert line["reasons"] == [] and line.get("reserved", 0) == 0


def test_pods_created_by_a_controller_are_not_checked_twice(srv):
    pod = s.pod("fits-7d9-abcde", "default", spec=s.pod_spec(), owner=("apps/v1", "ReplicaSet", "fits-7d9"))
    body = review(pod)
    assert srv.post(body).json()["response"]["allowed"] is True
    assert srv.review_log(body["request"]["uid"])["note"] == "created by ReplicaSet fits-7d9"


def test_pvc_read_write_many_on_gp3_is_denied(srv):
    response = srv.admit(s.pvc("shared", modes=["ReadWriteMany"]))
    message = deny_status(response)["message"]
    assert "ReadWriteMany on EBS class 'gp3' never binds" in message and "EFS" in message


def test_other_kinds_and_operations_are_allowed(srv):
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}
    assert srv.admit(configmap)["allowed"] is True
    assert srv.admit(None, operation="DELETE", old=s.small_web("web", 30))["allowed"] is True


def test_invalid_quantity_is_allowed_with_a_warning_naming_the_field(srv):
    obj = s.deployment("odd", 3, spec=s.pod_spec([s.container(requests={"cpu": "1.5 cores"})]))
    response = srv.admit(obj)
    assert response["allowed"] is True
    assert "spec.template.spec.containers[0].resources.requests.cpu" in response["warnings"][0]


# ---- bad bodies --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"{not json", 400, "not JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "an AdmissionReview object"),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}
            ).encode(),
            400,
            "apiVersion must be admission.k8s.io/v1",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "ConfigMap"}).encode(),
            400,
            "kind must be AdmissionReview",
        ),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), 400, "has no request"),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"operation": "CREATE", "object": {}},
                }
            ).encode(),
            400,
            "request.uid is missing",
        ),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "u", "operation": "CREATE", "object": "x"},
                }
            ).encode(),
            400,
            "must be a JSON object",
        ),
    ],
)
def test_bad_bodies_get_a_clear_4xx(server, body, status, words):
    pids = server.worker_pids()
    answer = server.post(body)
    assert answer.status_code == status and words in answer.json()["message"], answer.text
    assert server.worker_pids() == pids and server.proc.poll() is None


def test_oversized_body_gets_413_and_the_server_keeps_serving(server):
    pids = server.worker_pids()
    padding = "x" * (MAX_BODY_BYTES + 1024)
    body = review(s.small_web("web", 1))
    body["request"]["object"]["metadata"]["annotations"] = {"padding": padding}
    answer = server.post(body)
    assert answer.status_code == 413 and "3 MiB" in answer.json()["message"]
    assert server.session.get(server.url("/healthz"), timeout=5).status_code == 200
    assert server.admit(s.small_web("web", 30), dry_run=True)["allowed"] is False
    assert server.worker_pids() == pids and server.proc.poll() is None


def test_get_on_validate_is_405(server):
    assert server.session.get(server.url("/validate"), timeout=5).status_code == 405


# ---- health, metrics ---------------------------------------------------------------------
def test_healthz_and_readyz(server):
    assert server.session.get(server.url("/healthz"), timeout=5).text == "ok\n"
    ready = server.session.get(server.url("/readyz"), timeout=5)
    assert ready.status_code == 200 and "snapshot" in ready.text


def test_metrics_counters_histogram_and_node_gauges(srv):
    before = srv.metrics()
    srv.admit(s.small_web("web", 30), dry_run=True)
    srv.admit(s.pvc("shared", modes=["ReadWriteMany"]), dry_run=True)
    srv.post(b"nope")
    after = srv.metrics()
    deny = dict(kind="Deployment", operation="CREATE", verdict="deny")
    name = "capacity_webhook_admission_requests_total"
    assert metric(after, name, **deny) == metric(before, name, **deny) + 1
    pvc = dict(kind="PersistentVolumeClaim", operation="CREATE", verdict="deny")
    assert metric(after, name, **pvc) == metric(before, name, **pvc) + 1
    count = "capacity_webhook_admission_duration_seconds_count"
    assert metric(after, count) == metric(before, count) + 2
    assert metric(after, "capacity_webhook_admission_duration_seconds_bucket", le="+Inf") == metric(after, count)
    invalid = "capacity_webhook_invalid_requests_total"
    assert metric(after, invalid, code="400") == metric(before, invalid, code="400") + 1
    ips = {labels["node"]: v for labels, v in families(after, "capacity_webhook_node_free_ip_slots")}
    pods = {labels["node"]: v for labels, v in families(after, "capacity_webhook_node_free_pod_slots")}
    assert ips == {NODES[0]: 10, NODES[1]: 11, CORDONED: 11}
    assert pods == {NODES[0]: 10, NODES[1]: 11, CORDONED: 13}     # no aws-node/kube-proxy pods there
    assert metric(after, "capacity_webhook_state_ready") == 1


# ---- certificate rotation under load -----------------------------------------------------
def presented_serial(port: int, cafile) -> int:
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_2_is_the_minimum(server):
    def handshake(maximum: ssl.TLSVersion) -> str:
        context = ssl.create_default_context(cafile=str(server.bundle.ca_cert))
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.version()

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_1)


def test_certificate_rotation_under_load(srv):
    pids = srv.worker_pids()
    stop = threading.Event()
    results = {"ok": 0, "failures": []}

    def client(keep_alive: bool):
        session = srv.new_session()
        headers = {"Content-Type": "application/json"} | ({} if keep_alive else {"Connection": "close"})
        while not stop.is_set():
            body = review(s.small_web("load", 30), dry_run=True)
            try:
                answer = session.post(srv.url("/validate"), data=json.dumps(body), headers=headers, timeout=10)
                document = answer.json()
                assert answer.status_code == 200 and document["response"]["uid"] == body["request"]["uid"]
                assert document["response"]["allowed"] is False
                results["ok"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                results["failures"].append(repr(exc))
        session.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in (True, False)]
    for t in threads:
        t.start()
    try:
        serials = [presented_serial(srv.port, srv.bundle.ca_cert)]
        for _ in range(2):
            renewed = renew_serving_cert(srv.tls_dir, DNS, IPS, days=3)
            deadline = time.monotonic() + 10
            while presented_serial(srv.port, srv.bundle.ca_cert) != renewed.serial:
                assert time.monotonic() < deadline, "the rotated certificate was not picked up"
                time.sleep(0.1)
            serials.append(renewed.serial)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert results["failures"] == [] and results["ok"] > 20, results
    assert len(set(serials)) == 3
    assert srv.worker_pids() == pids and srv.proc.poll() is None


# ---- warn-mode server, then SIGTERM with a review in flight --------------------------------
@pytest.fixture(scope="module")
def warn_server(tmp_path_factory):
    proc = WebhookProcess(tmp_path_factory.mktemp("warn"), server_cluster(), "--mode", "warn", "--threads", "4")
    proc.start()
    yield proc
    proc.stop()


def test_warn_mode_allows_with_warnings_reserves_and_namespace_enforce_overrides(warn_server):
    body = review(s.small_web("web", 30))
    response = warn_server.post(body).json()["response"]
    assert response["allowed"] is True and "status" not in response
    assert response["warnings"] == [f"Deployment default/web: {PENDING_30}: no pod IP slots left"]
    assert all(len(w) <= 120 and not w.lower().startswith("warning") for w in response["warnings"])
    # Admitted with a warning: the 21 pods that fit hold their slots (default TTL, 30 s) ...
    assert warn_server.review_log(body["request"]["uid"])["reserved"] == 21
    # ... so a namespace labelled capacity-webhook/mode=enforce gets a deny for every pod.
    strict = warn_server.admit(s.small_web("web", 5, namespace="strict"), dry_run=True)
    assert deny_status(strict)["message"].startswith("Deployment strict/web: 5 of 5 pods would stay Pending")


def test_sigterm_finishes_the_review_in_flight(warn_server):
    body = json.dumps(review(s.small_web("inflight", 30), dry_run=True)).encode()
    uid = json.loads(body)["request"]["uid"]
    head = (f"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    context = ssl.create_default_context(cafile=str(warn_server.bundle.ca_cert))
    with socket.create_connection(("127.0.0.1", warn_server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(head + body[:100])           # the worker is now inside the handler, reading the body
            time.sleep(0.3)
            warn_server.proc.terminate()             # SIGTERM to the gunicorn master
            time.sleep(0.5)
            assert warn_server.proc.poll() is None   # still finishing the review in flight
            tls.sendall(body[100:])
            reply = b""
            while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _length(reply):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                reply += chunk
    status_line, rest = reply.split(b"\r\n", 1)
    assert status_line == b"HTTP/1.1 200 OK", reply[:300]
    document = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert document["response"]["uid"] == uid and document["response"]["allowed"] is True
    assert warn_server.proc.wait(20) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", warn_server.port), timeout=2).close()


def _length(reply: bytes) -> int:
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30


# ---- in-process: the states a snapshot never has -----------------------------------------
def _client(holder, **kwargs):
    from webhook.server.app import create_app

    return create_app(holder, **kwargs).test_client()


def test_not_ready_reviews_are_allowed_with_a_warning_and_readyz_is_503():
    holder = StateHolder()
    client = _client(holder)
    assert client.get("/readyz").status_code == 503
    body = review(s.small_web("web", 30))
    response = client.post("/validate", json=body).get_json()["response"]
    assert response["allowed"] is True and "no cluster state yet" in response["warnings"][0]


def test_stale_state_turns_a_deny_into_a_warning():
    now = [100.0]
    holder = StateHolder(state_from_objects(server_cluster()["items"]), clock=lambda: now[0])
    holder.mark_ready("test")
    client = _client(holder, stale_after=60.0, clock=lambda: now[0])
    body = review(s.small_web("web", 30), dry_run=True)
    holder.mark_broken()
    now[0] += 30
    assert client.post("/validate", json=body).get_json()["response"]["allowed"] is False
    now[0] += 31
    response = client.post("/validate", json=review(s.small_web("web", 30))).get_json()["response"]
    assert response["allowed"] is True
    assert response["warnings"][0].startswith("capacity data is stale")
    assert response["warnings"][1].startswith(f"Deployment default/web: {PENDING_30}")


def test_headroom_nodes_flag_reaches_the_state():
    holder = StateHolder(state_from_objects(server_cluster()["items"]))
    holder.mark_ready("test")
    client = _client(holder, headroom_nodes=1)
    response = client.post("/validate", json=review(s.small_web("web", 30), dry_run=True)).get_json()["response"]
    assert holder.state.headroom_nodes == 1
    assert response["allowed"] is True and response["warnings"]     # one more node absorbs the 9 pods


def test_warning_sanitizing():
    assert sanitize_warning("Warning: warning: caf\u00e9 \u2014 10\u202fpods\u2026\n\tnext") == "cafe - 10 pods... next"
    assert len(sanitize_warning("x" * 500)) == 120
    assert sanitize_warning("bell\x07 and \u4e2d") == "bell? and ?"
    many = sanitize_warnings(f"{i:03d} " + "y" * 116 for i in range(100))
    assert sum(len(w) for w in many) <= 4096 and many[-1].endswith("more warnings not shown")
    assert all(len(w) <= 120 and w.isascii() and w.isprintable() for w in many)
    assert sanitize_warnings(["a", "a", "", "b"]) == ["a", "b"]


# ---- the serve command's own errors (before gunicorn starts) ------------------------------
def test_serve_command_errors_are_one_clear_line(tmp_path, monkeypatch):
    import sys

    from click.testing import CliRunner

    from certs.authority import write_bundle
    from webhook.server.cli import serve_command

    bundle = write_bundle(tmp_path / "tls", DNS, IPS, days=3)
    tls = ["--tls-cert-file", str(bundle.tls_cert), "--tls-private-key-file", str(bundle.tls_key)]
    runner = CliRunner()
    monkeypatch.setitem(sys.modules, "webhook.state.live", None)      # as if the live source were absent
    monkeypatch.setattr("webhook.server.cli.logs.configure", lambda level: None)   # keep pytest's logging
    result = runner.invoke(serve_command, tls)
    assert result.exit_code == 1 and "live cluster source is not available" in result.output
    assert "--cluster SNAPSHOT" in result.output
    result = runner.invoke(serve_command, ["--cluster", str(tmp_path / "missing.json"), *tls])
    assert result.exit_code == 1 and "missing.json" in result.output
    result = runner.invoke(serve_command, ["--cluster", "x.json", "--kubeconfig", "k", *tls])
    assert result.exit_code == 2 and "cannot be combined" in result.output
    mismatched = ["--tls-cert-file", str(bundle.tls_cert), "--tls-private-key-file", str(bundle.ca_key)]
    result = runner.invoke(serve_command, ["--cluster", "x.json", *mismatched])
    assert result.exit_code == 1 and "cannot use --tls-cert-file" in result.output
    result = runner.invoke(serve_command, ["--cluster", "x.json"])
    assert result.exit_code == 2 and "--tls-cert-file" in result.output


def test_an_object_the_engine_trips_over_is_allowed_with_a_warning_not_a_500():
    holder = StateHolder(state_from_objects(server_cluster()["items"]))
    holder.mark_ready("test")
    client = _client(holder)
    body = review(s.small_web("web", 3))
    body["request"]["object"]["spec"]["template"]["spec"]["containers"] = "not a list"
    answer = client.post("/validate", json=body)
    assert answer.status_code == 200
    response = answer.get_json()["response"]
    assert response["allowed"] is True
    assert "cannot read spec.template.spec.containers: must be an array, got a string" in response["warnings"][0]


def test_a_body_of_exactly_3_mib_is_read_and_answered():
    # The kube-apiserver's own request limit (MaxRequestBodyBytes, 3 * 1024 * 1024): a review of
    # exactly 3,145,728 bytes is read and answered, one byte more is a 413 before any decoding.
    # (No state loaded: the answer is the quick "no cluster state yet" allow, the body is still read.)
    client = _client(StateHolder())
    raw = json.dumps(review({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})).encode()
    assert MAX_BODY_BYTES == 3 * 1024 * 1024 == 3_145_728
    exact = raw + b" " * (3_145_728 - len(raw))          # trailing whitespace is still one JSON document
    answer = client.post("/validate", data=exact, content_type="application/json")
    assert answer.status_code == 200 and answer.get_json()["response"]["allowed"] is True


def test_one_byte_over_3_mib_is_a_413_that_names_both_sizes():
    client = _client(StateHolder())
    answer = client.post("/validate", data=b" " * 3_145_729, content_type="application/json")
    assert answer.status_code == 413
    assert answer.get_json()["message"] == "request body is 3145729 bytes, over the 3145728 byte (3 MiB) limit"
