"""Both state sources feed ClusterState.apply_or_skip: one unreadable object is counted out, never fatal."""

import json
import subprocess
import sys
from pathlib import Path

from webhook import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.server.app import create_app
from webhook.state.holder import StateHolder
from webhook.state.snapshot import state_from_objects

ROOT = Path(__file__).resolve().parents[1]
MALFORMED = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad-pod", "namespace": "default"},
     "spec": {"containers": "oops", "nodeName": "ip-10-0-1-17.ec2.internal"}},
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bad-node"}, "spec": {"taints": "x"}, "status": {}},
]


def test_malformed_objects_are_skipped_and_named_and_the_rest_still_counts():
    state = state_from_objects(s.two_t3_medium_cluster()["items"] + MALFORMED)
    assert [note.split(":")[0] for note in state.skipped] == ["Pod default/bad-pod", "Node bad-node"]
    assert "bad-node" not in state.nodes
    # The good objects still give the motivating numbers: 21 fit, 9 of 30 pending.
    verdict = evaluate(state, s.small_web("web", 30))
    assert (verdict.schedulable, verdict.pending) == (21, 9)


def test_the_same_unreadable_object_is_noted_once():
    state = state_from_objects([])
    assert state.apply_or_skip(MALFORMED[0]) is not None
    assert state.apply_or_skip(MALFORMED[0]) is None and len(state.skipped) == 1


def test_check_warns_about_a_malformed_snapshot_object_instead_of_crashing(tmp_path):
    snapshot = tmp_path / "snap.json"
    snapshot.write_text(json.dumps(s.as_list(s.two_t3_medium_cluster()["items"] + MALFORMED)))
    manifest = tmp_path / "web.yaml"
    manifest.write_text(json.dumps(s.small_web("web", 21)))
    result = subprocess.run([sys.executable, "-m", "webhook.cli", "check", "--cluster", str(snapshot), "-f",
                             str(manifest)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "warning: snapshot object skipped: Pod default/bad-pod" in result.stderr


def test_pods_a_controller_creates_are_answered_without_cluster_state():
    holder = StateHolder()           # never marked ready: a review needing state would get a warning
    client = create_app(holder).test_client()
    pod = s.pod("web-5d8f-abcde", owner=("apps/v1", "ReplicaSet", "web-5d8f"))
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": "default",
                        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                        "object": pod}}
    response = client.post("/validate", json=body).get_json()["response"]
    assert response == {"uid": "u-1", "allowed": True}


def test_ownership_walks_replicaset_to_deployment_without_reading_stored_objects():
    from webhook.engine.model import ClusterState
    from webhook.state.live_store import CompactObjects

    class Unreadable(CompactObjects):
        def get(self, key, default=None):
            raise AssertionError("the ownership walk decoded a stored object")

    state = ClusterState()
    state.workloads = Unreadable()
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"replicas": 1},
          "metadata": s.metadata("web-5d8f", "default", owner=("apps/v1", "Deployment", "web"))}
    state.apply(s.deployment("web", 1))
    state.apply(rs)
    state.apply(s.pod("web-5d8f-a", owner=("apps/v1", "ReplicaSet", "web-5d8f")))
    assert state.top_owner(("ReplicaSet", "default", "web-5d8f")) == ("Deployment", "default", "web")
    assert [p.name for p in state.pods_of(("Deployment", "default", "web"))] == ["web-5d8f-a"]
    state.remove("ReplicaSet", "default", "web-5d8f")
    assert state.top_owner(("ReplicaSet", "default", "web-5d8f")) == ("ReplicaSet", "default", "web-5d8f")
    assert state.pods_of(("Deployment", "default", "web")) == []
