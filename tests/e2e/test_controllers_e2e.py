"""Deployment -> ReplicaSet -> Pod for real: the webhook admits, Kubernetes does the rest.

A separate control plane runs the real kube-controller-manager (Deployment and
ReplicaSet controllers) and the real kube-scheduler. Two t3.medium nodes under the
VPC CNI with 5 and 4 IP-consuming kube-system pods leave 10 + 11 = 21 pod IP slots
(AWS's eni-max-pods figure 17 = 3 ENIs x 5 IPs + 2; minus the 2 host-network pods
and the IP pods on each node). What the webhook admits must then be created by the
controllers and placed by the scheduler, and the pods they create are what the
webhook's next verdict counts.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests import synthetic as s
from tests.synthetic import as_manifest


pytestmark = pytest.mark.e2e
TTL = 2.0
CHART = Path(__file__).resolve().parents[2] / "charts" / "capacity-webhook"
NODES = (("ip-10-0-1-17.ec2.internal", "us-east-1a", 5), ("ip-10-0-2-23.ec2.internal", "us-east-1b", 4))


@pytest.fixture(scope="module")
def cluster(control_plane_with_controllers, tmp_path_factory):
    cp = control_plane_with_controllers
    cp.create_motivating_cluster(NODES)
    with cp.enforcing_webhook(tmp_path_factory.mktemp("webhook"), CHART, TTL) as server:
        yield cp, server


def apply(cp, obj, *flags):
    return cp.kubectl("apply", *flags, "-f", "-", input=yaml.safe_dump(obj), check=False)


def wait_for(what: str, probe, timeout: float = 60.0):
    """Poll ``probe()`` until it returns something truthy (controllers and scheduler work asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.2)


def scheduled_pods(cp, selector: str, count: int):
    """The ``count`` pods matching ``selector`` once every one has a node and PodScheduled=True."""
    def probe():
        pods = cp.kubectl_json("get", "pods", "-n", "default", "-l", selector)["items"]
        bound = [p for p in pods if p["spec"].get("nodeName") and any(
            c["type"] == "PodScheduled" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        return pods if len(pods) == count and len(bound) == count else None
    return wait_for(f"{count} pods {selector} placed by kube-scheduler", probe)


def test_an_admitted_deployment_gets_its_replicaset_and_pods_from_the_controller_manager_and_scheduler(cluster):
    cp, server = cluster
    created = apply(cp, as_manifest(s.small_web("web", 5)))
    assert created.returncode == 0, created.stderr

    def replicaset():
        items = cp.kubectl_json("get", "replicasets", "-n", "default", "-l", "app=web")["items"]
        return items[0] if items else None
    rs = wait_for("the Deployment controller to create a ReplicaSet", replicaset)
    owner = rs["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Deployment", "web", True)
    assert rs["spec"]["replicas"] == 5

    pods = scheduled_pods(cp, "app=web", 5)
    names = {name for name, _zone, _ip in NODES}
    for pod in pods:
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"]) == ("ReplicaSet", rs["metadata"]["name"])
        assert pod["spec"]["nodeName"] in names
        assert pod["status"]["phase"] == "Pending"          # no kubelet: bound, never started

    # The pods the controllers created and the scheduler bound are what the webhook counts now:
    # 21 slots - 5 web pods = 16, once the admission's own reservation has expired.
    server.wait_reservations_gone(timeout=TTL + 5)
    refused = apply(cp, as_manifest(s.small_web("more", 17)), "--dry-run=server")
    assert refused.returncode != 0 and "1 of 17 pods would stay Pending" in refused.stderr, refused.stderr
    fits = apply(cp, as_manifest(s.small_web("more", 16)), "--dry-run=server")
    assert fits.returncode == 0, fits.stderr


def test_kubectl_scale_through_the_webhook_is_carried_out_by_the_replicaset_controller(cluster):
    cp, server = cluster
    server.wait_reservations_gone(timeout=TTL + 5)
    too_many = cp.kubectl("scale", "deployment/web", "--replicas=22", check=False)
    assert too_many.returncode != 0 and "1 of 22 pods would stay Pending" in too_many.stderr, too_many.stderr
    scaled = cp.kubectl("scale", "deployment/web", "--replicas=21", check=False)
    assert scaled.returncode == 0, scaled.stderr
    pods = scheduled_pods(cp, "app=web", 21)
    per_node: dict[str, int] = {}
    for pod in pods:
        per_node[pod["spec"]["nodeName"]] = per_node.get(pod["spec"]["nodeName"], 0) + 1
    # The scheduler sees no IP slots, only kubelet maxPods (17 on t3.medium, as EKS sets it):
    # 17 - 7 and 17 - 6 pods already there leave exactly 10 and 11, the IP slots the webhook counted.
    assert per_node == {name: 17 - 2 - ip for name, _zone, ip in NODES}
