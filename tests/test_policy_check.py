"""``check`` predicts what the webhook answers: one policy (webhook/policy.py) for both.

Each case is decided twice over the same snapshot: by the webhook app (flask test client,
real AdmissionReview v1 bodies, the server's own AdmissionHandler) and by the real
``check`` process. The namespace exclusions are the chart's (values.yaml), read from
the chart, not copied into the test.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from server_fixture import review
from webhook import policy
from webhook import synthetic as s
from webhook.state.holder import StateHolder
from webhook.state.snapshot import state_from_objects

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "charts" / "capacity-webhook" / "values.yaml"


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "webhook.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def cluster(*extra) -> dict:
    doc = s.two_t3_medium_cluster()          # 21 light pods fit (10 + 11 IP slots)
    doc["items"] += [s.namespace("default"), s.namespace("kube-system"), *extra]
    return doc


def annotated(obj: dict, **annotations) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("annotations", {}).update(annotations)
    return obj


def webhook_answer(snapshot: dict, obj: dict, mode: str = "enforce") -> dict:
    from webhook.server.app import create_app

    holder = StateHolder(state_from_objects(snapshot["items"]))
    holder.mark_ready("test")
    client = create_app(holder, mode=mode).test_client()
    return client.post("/validate", json=review(obj, dry_run=True)).get_json()["response"]


def check_answer(tmp_path: Path, snapshot: dict, obj: dict, *flags) -> tuple[int, dict]:
    snap, manifest = tmp_path / "snap.json", tmp_path / "m.yaml"
    snap.write_text(json.dumps(snapshot))
    manifest.write_text(yaml.safe_dump(obj))
    result = run("check", "--cluster", snap, "-f", manifest, "-o", "json", *flags)
    assert result.returncode in (0, 1), result.stderr
    (item,) = json.loads(result.stdout)["results"]
    return result.returncode, item


CASES = {
    # name: (cluster, object, webhook allowed?, webhook warns?, check verdict, check exit code)
    "plain deny": (cluster(), s.small_web("web", 30), False, False, "deny", 1),
    "skip annotation": (cluster(), annotated(s.small_web("web", 30), **{policy.SKIP_ANNOTATION: "load test"}),
                        True, True, "allow", 0),
    "ignore annotation": (cluster(), annotated(s.small_web("web", 30), **{policy.IGNORE_ANNOTATION:
                                                                           "POD_IP_EXHAUSTED"}),
                          True, False, "allow", 0),
    "namespace mode label warn": (cluster(s.namespace("team", {policy.MODE_LABEL: "warn"})),
                                  s.small_web("web", 30, namespace="team"), True, True, "warn", 0),
    "namespace mode label audit": (cluster(s.namespace("team", {policy.MODE_LABEL: "audit"})),
                                   s.small_web("web", 30, namespace="team"), True, False, "allow", 0),
    "bad mode label keeps the default": (cluster(s.namespace("team", {policy.MODE_LABEL: "strict"})),
                                         s.small_web("web", 30, namespace="team"), False, True, "deny", 1),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_check_and_the_webhook_agree(case, tmp_path):
    snapshot, obj, allowed, warns, verdict, code = CASES[case]
    answer = webhook_answer(snapshot, obj)
    assert answer["allowed"] is allowed, answer
    assert bool(answer.get("warnings")) is warns, answer
    exit_code, item = check_answer(tmp_path, snapshot, obj)
    assert (item["verdict"], exit_code) == (verdict, code), item
    assert (item["verdict"] != "deny") is answer["allowed"]


def test_skipped_objects_are_reported_and_still_take_their_room(tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(cluster()))
    manifest = tmp_path / "m.yaml"
    skipped = annotated(s.small_web("big", 15), **{policy.SKIP_ANNOTATION: "migration"})
    manifest.write_text(yaml.safe_dump_all([skipped, s.small_web("after", 7)]))
    result = run("check", "--cluster", snap, "-f", manifest)
    assert result.returncode == 1, result.stdout
    assert "SKIP     Deployment default/big" in result.stdout
    assert "not checked: annotation capacity-webhook/skip: migration" in result.stdout
    assert "DENY     Deployment default/after" in result.stdout    # 21 - 15 = 6 slots left for 7 pods
    assert "1 skipped" in result.stdout


def test_chart_excluded_namespaces_are_the_policy_defaults():
    values = yaml.safe_load(VALUES.read_text())
    assert tuple(values["webhook"]["excludedNamespaces"]) == policy.DEFAULT_EXCLUDED_NAMESPACES
    selector = (ROOT / "charts" / "capacity-webhook" / "templates" / "_helpers.tpl").read_text()
    assert f"key: {policy.NAMESPACE_IGNORE_LABEL}" in selector and "operator: DoesNotExist" in selector


def test_excluded_namespaces_are_not_checked(tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(cluster(s.namespace("quiet", {policy.NAMESPACE_IGNORE_LABEL: "true"}),
                                       s.namespace("capacity-webhook"))))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump_all([s.small_web("dns", 30, namespace="kube-system"),
                                            s.small_web("q", 30, namespace="quiet"),
                                            s.small_web("own", 30, namespace="capacity-webhook")]))
    result = run("check", "--cluster", snap, "-f", manifest, "-o", "json")
    items = {i["namespace"]: i for i in json.loads(result.stdout)["results"]}
    assert "webhook.excludedNamespaces" in items["kube-system"]["skipped"]
    assert "labelled capacity-webhook/ignore" in items["quiet"]["skipped"]
    assert items["capacity-webhook"]["verdict"] == "deny" and result.returncode == 1
    # The release namespace is excluded by the chart too: name it like the chart does.
    again = run("check", "--cluster", snap, "-f", manifest, "-o", "json",
                "--exclude-namespace", "kube-system", "--exclude-namespace", "capacity-webhook")
    assert again.returncode == 0, again.stdout
    # Replacing the list drops the default, as setting webhook.excludedNamespaces does.
    only = run("check", "--cluster", snap, "-f", manifest, "-o", "json", "--exclude-namespace", "capacity-webhook")
    verdicts = {i["namespace"]: i["verdict"] for i in json.loads(only.stdout)["results"] if "skipped" not in i}
    assert verdicts == {"kube-system": "deny"}


def test_headroom_nodes_matches_serve(tmp_path):
    snapshot, obj = cluster(), s.small_web("web", 30)
    from webhook.server.app import create_app

    holder = StateHolder(state_from_objects(snapshot["items"]))
    holder.mark_ready("test")
    answer = create_app(holder, headroom_nodes=1).test_client().post(
        "/validate", json=review(obj, dry_run=True)).get_json()["response"]
    assert answer["allowed"] is True and answer["warnings"]
    exit_code, item = check_answer(tmp_path, snapshot, obj, "--headroom-nodes", "1")
    assert (item["verdict"], exit_code) == ("warn", 0)
    assert check_answer(tmp_path, snapshot, obj)[1]["verdict"] == "deny"


def test_ignore_flag_and_annotation(tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(cluster()))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump(s.small_web("web", 30)))
    assert run("check", "--cluster", snap, "-f", manifest).returncode == 1
    result = run("check", "--cluster", snap, "-f", manifest, "-o", "json", "--ignore", "pod_ip_exhausted")
    assert result.returncode == 0, result.stdout
    (item,) = json.loads(result.stdout)["results"]
    assert item["verdict"] == "allow" and [r["code"] for r in item["ignored"]] == ["POD_IP_EXHAUSTED"]
    # Ignoring another code changes nothing.
    assert run("check", "--cluster", snap, "-f", manifest, "--ignore", "EBS_SIZE,ROLLOUT_STALL").returncode == 1
    sarif = json.loads(run("check", "--cluster", snap, "-f", manifest, "-o", "sarif", "--ignore",
                           "POD_IP_EXHAUSTED").stdout)
    (found,) = sarif["runs"][0]["results"]
    assert found["level"] == "note" and found["suppressions"] == [{"kind": "external",
                                                                   "justification": "check --ignore"}]
    manifest.write_text(yaml.safe_dump(annotated(s.small_web("web", 30),
                                                 **{policy.IGNORE_ANNOTATION: "POD_IP_EXHAUSTED"})))
    sarif = json.loads(run("check", "--cluster", snap, "-f", manifest, "-o", "sarif").stdout)
    assert sarif["runs"][0]["results"][0]["suppressions"][0]["kind"] == "inSource"


def test_parse_codes():
    assert policy.parse_codes(" pod_ip_exhausted, ROLLOUT_STALL;EBS_SIZE ") == {"POD_IP_EXHAUSTED", "ROLLOUT_STALL",
                                                                                 "EBS_SIZE"}
    assert policy.parse_codes("") == set()


def test_chart_values_set_mode_headroom_and_exclusions(tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(cluster(s.namespace("platform"))))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump_all([s.small_web("web", 30), s.small_web("tool", 30, namespace="platform")]))

    def verdicts(*flags):
        result = run("check", "--cluster", snap, "-f", manifest, "-o", "json", *flags)
        assert result.returncode in (0, 1), result.stderr
        return {i["name"]: i.get("skipped") and "skip" or i["verdict"] for i in json.loads(result.stdout)["results"]}

    # The chart's own defaults: mode warn, kube-system excluded, plus the release namespace.
    assert verdicts("--chart-values", VALUES, "--release-namespace", "platform") == {"web": "warn", "tool": "skip"}
    ours = tmp_path / "prod.yaml"
    ours.write_text("mode: enforce\nwebhook:\n  excludedNamespaces: [platform]\n")
    assert verdicts("--chart-values", VALUES, "--chart-values", ours) == {"web": "deny", "tool": "skip"}
    assert verdicts("--chart-values", VALUES, "--chart-values", ours, "--mode", "audit") == {"web": "allow",
                                                                                            "tool": "skip"}
    ours.write_text("headroomNodes: 1\n")
    assert verdicts("--chart-values", ours)["web"] == "warn"          # one more node absorbs the 9 pods
    ours.write_text("mode: strict\n")
    bad = run("check", "--cluster", snap, "-f", manifest, "--chart-values", ours)
    assert bad.returncode == 2 and "mode is 'strict'" in bad.stderr
