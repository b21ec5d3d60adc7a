"""The webhook proven by a real kube-apiserver: real kubectl, real chart, live watch.

Registers the webhook with ``helm install`` of charts/capacity-webhook in url mode (the
server runs on loopback, outside the "cluster"), runs ``capacity-webhook serve`` in live
mode with the webhook's own read-only identity, models two t3.medium nodes with
kube-system pods (5 and 4 IP-consuming, plus host-network aws-node and kube-proxy:
10 + 11 = 21 free pod IP slots), then applies manifests with kubectl.

Tests run in file order and share one server; admitted workloads hold their slots for
--reservation-ttl seconds, so tests that admit something wait that long afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import synthetic as s
from tests.synthetic import as_manifest


pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "capacity-webhook"
TTL = 2.0
N1, N2 = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"


def web(name="web", replicas=30, namespace="default") -> dict:
    return as_manifest(s.small_web(name, replicas, namespace))


@pytest.fixture(scope="module")
def cluster(control_plane, tmp_path_factory):
    cp = control_plane
    cp.apply([as_manifest(s.storage_class("gp3", parameters={"type": "gp3"}, default=True))])
    cp.create_motivating_cluster(((N1, "us-east-1a", 5), (N2, "us-east-1b", 4)))
    with cp.enforcing_webhook(tmp_path_factory.mktemp("webhook"), CHART, TTL) as server:
        yield cp, server


def apply(cp, obj, *flags, namespace=None):
    args = ["apply", *flags, "-f", "-"]
    return cp.kubectl(*args, input=yaml.safe_dump(obj), check=False)


def exists(cp, kind, name, namespace="default") -> bool:
    return cp.kubectl("get", kind, name, "-n", namespace, check=False).returncode == 0


def test_the_chart_registered_a_webhook_that_cannot_take_the_cluster_down(cluster):
    cp, server = cluster
    (config,) = cp.kubectl_json("get", "validatingwebhookconfigurations", "-l", "app.kubernetes.io/instance=cw")[
        "items"
    ]
    hook = config["webhooks"][0]
    assert hook["clientConfig"]["url"] == server.url("/validate")
    assert (hook["failurePolicy"], hook["timeoutSeconds"], hook["sideEffects"]) == ("Ignore", 3, "NoneOnDryRun")
    assert hook["admissionReviewVersions"] == ["v1"] and hook["matchPolicy"] == "Equivalent"


def test_dry_run_returns_the_verdict_and_persists_nothing(cluster):
    cp, _ = cluster
    refused = apply(cp, web(replicas=30), "--dry-run=server")
    assert refused.returncode != 0 and "9 of 30 pods would stay Pending" in refused.stderr
    fits = apply(cp, web(replicas=21), "--dry-run=server")
    assert fits.returncode == 0, fits.stderr
    assert not exists(cp, "deployment", "web")


def test_a_deployment_that_would_leave_pods_pending_is_refused_with_the_reason(cluster):
    cp, _ = cluster
    result = apply(cp, web(replicas=30))
    assert result.returncode != 0
    assert "denied the request" in result.stderr
    assert "Deployment default/web: 9 of 30 pods would stay Pending: no pod IP slots left" in result.stderr
    assert "Enable prefix delegation on aws-node" in result.stderr
    assert not exists(cp, "deployment", "web")


def test_a_deployment_that_fits_is_created_and_kubectl_scale_past_capacity_is_refused(cluster):
    cp, server = cluster
    created = apply(cp, web(replicas=5))
    assert created.returncode == 0, created.stderr
    scaled = cp.kubectl("scale", "deployment/web", "--replicas=30", check=False)
    assert scaled.returncode != 0 and "9 of 30 pods would stay Pending" in scaled.stderr
    assert cp.kubectl_json("get", "deployment", "web")["spec"]["replicas"] == 5
    down = cp.kubectl("scale", "deployment/web", "--replicas=2", check=False)
    assert down.returncode == 0, down.stderr
    cp.kubectl("delete", "deployment", "web")
    server.wait_reservations_gone(timeout=TTL + 5)


def test_warn_mode_namespace_creates_and_kubectl_prints_the_warning(cluster):
    cp, server = cluster
    cp.ensure_namespace("team-warn")
    cp.kubectl("label", "namespace", "team-warn", "capacity-webhook/mode=warn", "--overwrite")
    # The label reaches the webhook through its Namespace watch: poll with dry runs until it is seen.
    deadline = time.monotonic() + 10
    while apply(cp, web(replicas=30, namespace="team-warn"), "--dry-run=server").returncode != 0:
        assert time.monotonic() < deadline, "the webhook never saw the capacity-webhook/mode=warn label"
        time.sleep(0.1)
    result = apply(cp, web(replicas=30, namespace="team-warn"))
    assert result.returncode == 0, result.stderr
    assert re.search(r"Warning: Deployment team-warn/web: 9 of 30 pods would stay Pending", result.stderr)
    assert exists(cp, "deployment", "web", "team-warn")
    cp.kubectl("delete", "deployment", "web", "-n", "team-warn")
    server.wait_reservations_gone(timeout=TTL + 5)


def with_class(workload: dict, priority_class: str) -> dict:
    workload["spec"]["template"]["spec"]["priorityClassName"] = priority_class
    return workload


def dry_run_until(cp, obj, refused: bool, timeout: float = 15.0):
    """Dry-run ``obj`` until the answer is a refusal (or an admission) as asked: the objects
    it depends on reach the webhook through its watches, a moment after kubectl created them."""
    deadline = time.monotonic() + timeout
    while True:
        result = apply(cp, obj, "--dry-run=server")
        if (result.returncode != 0) == refused or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_a_high_priority_workload_that_fits_by_preemption_is_admitted_with_a_warning(cluster):
    # The motivating cluster leaves 21 IP slots; 9 coredns-like pods of priority 0 hold the rest.
    # The real scheduler would preempt them for a higher-priority workload, so refusing it would be
    # a false deny: the webhook must read PriorityClasses from the API server to know.
    cp, _ = cluster
    cp.apply({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "e2e-high"},
              "value": 1000000, "description": "capacity-webhook e2e"})
    try:
        result = dry_run_until(cp, with_class(web(replicas=30), "e2e-high"), refused=False)
        assert result.returncode == 0, result.stderr
        assert "would preempt" in result.stderr and "PREEMPTION" not in result.stdout
        plain = apply(cp, web(replicas=30), "--dry-run=server")      # the same without the class: refused
        assert plain.returncode != 0 and "9 of 30 pods would stay Pending" in plain.stderr
    finally:
        cp.kubectl("delete", "priorityclass", "e2e-high", check=False)


def test_a_priority_class_that_does_not_exist_is_refused_as_the_api_server_would_refuse_its_pods(cluster):
    cp, _ = cluster
    result = apply(cp, with_class(web("ghost", replicas=3), "e2e-no-such-class"), "--dry-run=server")
    assert result.returncode != 0
    assert "no PriorityClass with name e2e-no-such-class was found" in result.stderr
    # What the API server itself says when a pod names it (the oracle for the message).
    pod = as_manifest(s.pod("ghost-pod", "default", None, s.pod_spec(priorityClassName="e2e-no-such-class")))
    direct = cp.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert "no PriorityClass with name e2e-no-such-class was found" in direct.stderr


def test_a_resource_quota_that_refuses_pods_is_read_from_the_api_server(cluster):
    cp, _ = cluster
    cp.ensure_namespace("quota-e2e")
    cp.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods", "namespace": "quota-e2e"},
              "spec": {"hard": {"pods": "2"}}})
    # What the quota controller writes (no kube-controller-manager in this tier): the API server,
    # like the engine, enforces status.hard only, so an unsynced quota refuses nothing.
    cp.kubectl("patch", "resourcequota", "pods", "-n", "quota-e2e", "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": {"hard": {"pods": "2"}, "used": {"pods": "0"}}}))
    result = dry_run_until(cp, web("q", replicas=5, namespace="quota-e2e"), refused=True)
    assert result.returncode != 0
    assert "QUOTA_EXCEEDED" in result.stderr or "ResourceQuota pods" in result.stderr, result.stderr
    assert apply(cp, web("q", replicas=2, namespace="quota-e2e"), "--dry-run=server").returncode == 0


def test_a_read_write_many_claim_on_ebs_is_refused(cluster):
    cp, _ = cluster
    claim = as_manifest(s.pvc("shared", modes=("ReadWriteMany",), storage_class_name="gp3"))
    result = apply(cp, claim)
    assert result.returncode != 0 and "ReadWriteMany on EBS class 'gp3' never binds" in result.stderr
    ok = apply(cp, as_manifest(s.pvc("own", modes=("ReadWriteOnce",), storage_class_name="gp3")))
    assert ok.returncode == 0, ok.stderr


def test_new_pods_bound_to_a_node_change_the_next_verdict_within_a_second(cluster):
    cp, _ = cluster
    assert apply(cp, web(replicas=21), "--dry-run=server").returncode == 0
    cp.create_pod("kube-system", "late-addon", N1, {"cpu": "10m"})
    start = time.monotonic()       # the pod exists (bound to N1) from here: what remains is watch + one dry run
    while True:
        result = apply(cp, web(replicas=21), "--dry-run=server")
        if result.returncode != 0:
            break
        assert time.monotonic() - start < 5, "the webhook never saw the new pod"
    seen = time.monotonic() - start
    print(f"new pod seen by the next verdict after {seen:.2f} s (including kubectl round trips)")
    assert "1 of 21 pods would stay Pending" in result.stderr
    assert seen < 1.0 + 0.5   # one second for the watch, plus one kubectl dry-run round trip
    cp.kubectl("delete", "pod", "late-addon", "-n", "kube-system", "--force", "--grace-period=0")


def cli(cp, *args):
    return subprocess.run([sys.executable, "-m", "webhook.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**os.environ, "KUBECONFIG": str(cp.webhook_kubeconfig)})


def test_snapshot_of_the_live_cluster_gives_check_the_same_verdict(cluster, tmp_path):
    cp, _ = cluster
    snap = tmp_path / "last-night.json"
    recorded = cli(cp, "snapshot", "--kubeconfig", cp.webhook_kubeconfig, "--out", snap)
    assert recorded.returncode == 0, recorded.stderr
    manifests = tmp_path / "web.yaml"
    manifests.write_text(yaml.safe_dump(web(replicas=30)))
    offline = cli(cp, "check", "--cluster", snap, "-f", manifests, "-o", "json")
    live = cli(cp, "check", "--kubeconfig", cp.webhook_kubeconfig, "-f", manifests, "-o", "json")
    for result in (offline, live):
        assert result.returncode == 1, result.stderr
        (verdict,) = yaml.safe_load(result.stdout)["results"]
        assert (verdict["verdict"], verdict["schedulable"], verdict["pending"]) == ("deny", 21, 9)
    report = cli(cp, "report", "--kubeconfig", cp.webhook_kubeconfig)
    assert report.returncode == 0, report.stderr
    row = next(line for line in report.stdout.splitlines() if line.startswith(N1))
    assert row.split()[1:5] == ["t3.medium", "secondary-ip", "5/15", "10"]


def test_check_predicts_what_a_custom_namespace_and_object_selector_send_to_the_webhook(cluster, tmp_path):
    """The chart's webhook.namespaceSelector/objectSelector are applied by the API server; `check`
    with the same values file must deny exactly what kube-apiserver denies."""
    cp, _ = cluster
    selectors = {"webhook": {
        "namespaceSelector": {"matchExpressions": [{"key": "capacity", "operator": "In", "values": ["checked"]}]},
        "objectSelector": {"matchExpressions": [{"key": "capacity-webhook/opt-out", "operator": "DoesNotExist"}]}}}
    values = tmp_path / "selectors.yaml"
    values.write_text(yaml.safe_dump(selectors))
    labels = {"sel-in": {"capacity": "checked"}, "sel-other": {"capacity": "other"}, "sel-none": {}}
    cp.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": ns_labels}}
              for ns, ns_labels in labels.items()])
    objects = []
    for ns in labels:
        objects.append(web(replicas=30, namespace=ns))
        opted_out = web(name="batch", replicas=30, namespace=ns)
        opted_out["metadata"]["labels"] = {"capacity-webhook/opt-out": "yes"}
        objects.append(opted_out)
    cp.helm("upgrade", "cw", str(CHART), "-n", "capacity-webhook", "--reuse-values", "-f", str(values))
    try:
        # The API server picks the new configuration up through its informer: poll until
        # the default namespace (no capacity label) is no longer sent to the webhook.
        deadline = time.monotonic() + 20
        while apply(cp, web(replicas=30), "--dry-run=server").returncode != 0:
            assert time.monotonic() < deadline, "kube-apiserver never applied the new namespaceSelector"
            time.sleep(0.2)
        denied_by_cluster = set()
        for obj in objects:
            result = apply(cp, obj, "--dry-run=server")
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            if result.returncode != 0:
                assert "denied the request" in result.stderr, result.stderr
                denied_by_cluster.add(key)
        manifests = tmp_path / "objects.yaml"
        manifests.write_text(yaml.safe_dump_all(objects))
        predicted = cli(cp, "check", "--kubeconfig", cp.webhook_kubeconfig, "-f", manifests, "--chart-values", values,
                        "--release-namespace", "capacity-webhook", "-o", "json", "--fail-on", "never")
        assert predicted.returncode == 0, predicted.stderr
        results = json.loads(predicted.stdout)["results"]
        # kubectl dry-runs each object alone; check spends the room of each admitted or skipped
        # object for the next. Comparable here: the first object is the only one the webhook
        # sees, every later one is opted out or in a namespace the selector leaves out.
        denied_by_check = {(r["namespace"], r["name"]) for r in results if r["verdict"] == "deny"}
        assert denied_by_cluster == {("sel-in", "web")}
        assert denied_by_check == denied_by_cluster, results
    finally:
        cp.helm("rollback", "cw", "-n", "capacity-webhook", check=False)
        deadline = time.monotonic() + 20
        while apply(cp, web(replicas=30), "--dry-run=server").returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.mark.parametrize("how, limit", [("hung", 3.0 + 2.0), ("stopped", 3.0)])
def test_with_the_webhook_down_kubectl_apply_still_succeeds_within_the_timeout(cluster, how, limit):
    cp, server = cluster
    if how == "hung":
        server.signal_all(signal.SIGSTOP)   # the socket accepts connections, nobody answers
    else:
        server.stop()
    name = f"down-{how}"
    start = time.monotonic()
    result = apply(cp, web(name, replicas=30))
    took = time.monotonic() - start
    print(f"webhook {how}: kubectl apply took {took:.2f} s (timeoutSeconds 3, failurePolicy Ignore)")
    assert result.returncode == 0, result.stderr
    assert exists(cp, "deployment", name)
    assert took < limit
    cp.kubectl("delete", "deployment", name)
