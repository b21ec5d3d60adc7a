"""Smoke test of the e2e fixture: the control plane, kubectl, RBAC, helm."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


def test_kubectl_talks_to_server(control_plane):
    out = control_plane.kubectl("version", "-o", "json").stdout
    version = json.loads(out)
    assert version["clientVersion"]["gitVersion"].startswith("v1.")
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    nodes = control_plane.kubectl_json("get", "nodes")
    assert nodes["kind"] == "List"


def test_node_and_pod_round_trip(control_plane):
    cp = control_plane
    cp.create_node("smoke-node-a", instance_type="t3.medium", zone="us-east-1a")
    cp.create_pod("smoke", "smoke-pod", "smoke-node-a",
                  requests={"cpu": "100m", "memory": "64Mi"})
    try:
        node = json.loads(cp.kubectl("get", "node", "smoke-node-a", "-o", "json").stdout)
        assert node["status"]["allocatable"]["pods"] == "17"
        assert node["status"]["capacity"]["cpu"] == "1930m"
        labels = node["metadata"]["labels"]
        assert labels["node.kubernetes.io/instance-type"] == "t3.medium"
        assert labels["topology.kubernetes.io/zone"] == "us-east-1a"
        assert labels["kubernetes.io/hostname"] == "smoke-node-a"
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
        assert not node["spec"].get("taints"), "admission-added not-ready taint must be gone"

        pod = json.loads(cp.kubectl("get", "pod", "smoke-pod", "-n", "smoke", "-o", "json").stdout)
        assert pod["spec"]["nodeName"] == "smoke-node-a"
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
    finally:
        cp.delete_all_test_objects()
    left = cp.kubectl_json("get", "pods", "-n", "smoke")
    assert left["items"] == [] or all(
        i["metadata"].get("deletionTimestamp") for i in left["items"]
    )


def test_node_taints_and_host_network_pod(control_plane):
    cp = control_plane
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    cp.create_node("smoke-node-b", instance_type="m5.large", zone="us-east-1b",
                   allocatable={"cpu": "1930m", "memory": "7600Mi", "pods": "29"},
                   labels={"team": "x"}, taints=[taint])
    pod = cp.create_pod("smoke", "smoke-hostnet", "smoke-node-b", host_network=True,
                        labels={"app": "agent"}, phase="Running")
    try:
        node = cp.kubectl_json("get", "node", "smoke-node-b")
        assert node["spec"]["taints"] == [taint]
        assert node["metadata"]["labels"]["team"] == "x"
        assert node["status"]["allocatable"]["pods"] == "29"
        assert pod["spec"]["hostNetwork"] is True
        assert pod["metadata"]["labels"]["app"] == "agent"
    finally:
        cp.delete_all_test_objects()


def test_webhook_identity_is_read_only(control_plane):
    cp = control_plane
    wk = cp.webhook_kubeconfig
    # Listing nodes with the webhook identity works...
    nodes = cp.kubectl("get", "nodes", "-o", "name", kubeconfig=wk)
    assert nodes.returncode == 0
    for verb, res in [("list", "nodes"), ("watch", "pods"), ("list", "namespaces"),
                      ("list", "limitranges"), ("list", "persistentvolumes"),
                      ("list", "persistentvolumeclaims"), ("list", "daemonsets.apps"),
                      ("list", "replicasets.apps"), ("list", "deployments.apps"),
                      ("list", "statefulsets.apps"), ("list", "storageclasses.storage.k8s.io"),
                      ("list", "csinodes.storage.k8s.io"),
                      ("list", "volumeattachments.storage.k8s.io")]:
        assert cp.can_i(verb, res), f"webhook identity should {verb} {res}"
    # ...but it cannot read secrets nor write anything.
    assert not cp.can_i("get", "secrets", namespace="default")
    assert not cp.can_i("list", "secrets")
    assert not cp.can_i("create", "pods", namespace="default")
    assert not cp.can_i("patch", "nodes")
    denied = cp.kubectl("get", "secrets", "-n", "default", kubeconfig=wk, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    # The admin identity is not restricted.
    assert cp.can_i("get", "secrets", kubeconfig=cp.admin_kubeconfig, namespace="default")


def test_helm_runs(control_plane):
    out = control_plane.helm("version", "--short").stdout
    assert out.startswith("v3.")
    # helm can reach the cluster with the admin kubeconfig.
    listed = control_plane.helm("list", "--all-namespaces", "-o", "json").stdout
    assert isinstance(json.loads(listed), list)
