"""Both state sources feed ClusterState.apply_or_skip: one unreadable object is counted out, never fatal."""

import json
import subprocess
import sys
from pathlib import Path

from tests import synthetic as s
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


def _recorded(items) -> str:
    """A snapshot in ``record_snapshot``'s layout (one compact item per line)."""
    body = ",\n    ".join(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) for obj in items)
    return ('{\n  "apiVersion": "v1",\n  "kind": "List",\n  "metadata": {"resourceVersion": ""},\n'
            '  "items": [\n    ' + body + "\n  ]\n}\n")


def _view(state):
    return (state.nodes, state.pods, dict(state.workloads), state.namespaces, state.skipped, state.cni,
            [(v.verdict, v.message) for v in (evaluate(state, s.small_web("web", n)) for n in (5, 21, 30))])


def _items():
    items = s.two_t3_medium_cluster()["items"] + s.fleet_cluster(12, seed=3)["items"] + MALFORMED
    items.append(s.pod("ünïcode-\u2028-pod", "default", "ip-10-0-1-17.ec2.internal",
                       labels={"note": "a \"quoted\" value,\nwith a newline"}))
    return items


def test_a_recorded_snapshot_is_read_line_by_line_into_the_same_state(tmp_path, monkeypatch):
    from webhook.state import snapshot

    path = tmp_path / "recorded.json"
    path.write_text(_recorded(_items()), encoding="utf-8")
    expected = _view(state_from_objects(json.loads(path.read_text(encoding="utf-8"))["items"]))

    def whole_document(raw):
        raise AssertionError("the recorded layout is read line by line")

    monkeypatch.setattr(snapshot, "_document_items", whole_document)
    assert _view(snapshot.load_snapshot(str(path))) == expected


def test_a_file_that_only_looks_recorded_is_read_as_one_document(tmp_path):
    """Same head and tail, but lines that are not one item each: the whole-document reader
    takes over (and the state is the same), or says what is wrong as before."""
    from webhook.state import snapshot

    items = _items()
    expected = _view(state_from_objects(json.loads(_recorded(items))["items"]))
    text = _recorded(items)
    first_comma = text.index(",\n    ")
    variants = [
        text[:first_comma] + ",    " + text[first_comma + 6:],                              # two items on a line
        text.replace('"kind":"Node"', '"kind":\n"Node"', 1),                                 # an item over two lines
        text[:first_comma] + "\n    ," + text[first_comma + 6:],                              # comma moved
    ]
    for i, variant in enumerate(variants):
        path = tmp_path / f"variant-{i}.json"
        path.write_text(variant, encoding="utf-8")
        assert json.loads(variant)["items"]            # still valid JSON: same objects
        assert _view(snapshot.load_snapshot(str(path))) == expected, i
    broken = tmp_path / "broken.json"
    broken.write_text(text.replace('"kind":"Node"', '"kind":"Node",,', 1), encoding="utf-8")
    try:
        snapshot.load_snapshot(str(broken))
    except snapshot.InputError as exc:
        assert "broken.json" in str(exc)
    else:
        raise AssertionError("invalid JSON must be refused")


def test_surrogate_escapes_in_a_recorded_snapshot_read_as_json_reads_them(tmp_path):
    """A valid pair is the character it encodes; a lone one is refused with the usual sentence."""
    from webhook.state import snapshot

    items = s.two_t3_medium_cluster()["items"]
    good = _recorded(items + [s.namespace("smile", labels={"face": "PLACEHOLDER"})])
    path = tmp_path / "pair.json"
    path.write_text(good.replace("PLACEHOLDER", "\\ud83d\\ude00"), encoding="utf-8")
    assert snapshot.load_snapshot(str(path)).namespaces["smile"]["face"] == "\U0001F600"
    path.write_text(good.replace("PLACEHOLDER", "\\ud800"), encoding="utf-8")
    try:
        snapshot.load_snapshot(str(path))
    except snapshot.InputError as exc:
        assert "surrogate" in str(exc)
    else:
        raise AssertionError("a lone surrogate escape must be refused")
