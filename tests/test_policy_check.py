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
from tests import synthetic as s
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


# --------------------------------------------------------------------------- custom selectors
# The API server applies the chart's namespaceSelector/objectSelector before calling the
# webhook; `check` must predict it. The selector semantics are Kubernetes' own
# (k8s.io/apimachinery/pkg/labels Requirement.Matches); tests/e2e/test_admission_e2e.py
# compares check with a real kube-apiserver, tests/test_chart.py with the rendered chart.

def selector_cluster() -> dict:
    return cluster(s.namespace("team-a", {"capacity": "checked"}), s.namespace("team-b"),
                   s.namespace("team-c", {"capacity": "checked", policy.NAMESPACE_IGNORE_LABEL: "x"}))


def labelled(obj: dict, **labels) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("labels", {}).update(labels)
    return obj


def check_verdicts(tmp_path: Path, snapshot: dict, objs: list[dict], *flags) -> dict[str, str]:
    snap, manifest = tmp_path / "snap.json", tmp_path / "m.yaml"
    snap.write_text(json.dumps(snapshot))
    manifest.write_text(yaml.safe_dump_all(objs))
    result = run("check", "--cluster", snap, "-f", manifest, "-o", "json", *flags)
    assert result.returncode in (0, 1), result.stderr
    return {f"{i['namespace']}/{i['name']}": f"skip: {i['skipped']}" if i.get("skipped") else i["verdict"]
            for i in json.loads(result.stdout)["results"]}


def test_a_custom_namespace_selector_from_the_chart_values_replaces_the_exclusions(tmp_path):
    # Each 30-pod Deployment alone is denied where the webhook sees it (21 slots).
    objs = [s.small_web("web", 30, namespace=ns) for ns in ("team-a", "team-b", "team-c", "kube-system")]
    values = tmp_path / "values.yaml"
    values.write_text("webhook:\n  namespaceSelector:\n    matchLabels: {capacity: checked}\n")
    got = check_verdicts(tmp_path, selector_cluster(), objs, "--chart-values", VALUES, "--chart-values", values,
                         "--release-namespace", "team-a", "--mode", "enforce")
    # The custom selector replaces the generated one entirely: the release namespace and the
    # capacity-webhook/ignore label no longer exclude anything (as helm renders it).
    assert got == {"team-a/web": "deny",
                   "team-b/web": "skip: namespace team-b does not match webhook.namespaceSelector "
                                 "(capacity In (checked))",
                   "team-c/web": "deny",
                   "kube-system/web": "skip: namespace kube-system does not match webhook.namespaceSelector "
                                      "(capacity In (checked))"}
    # The same selector as a flag, in kubectl's -l syntax; a NotIn on the name label, which
    # the API server sets on every namespace (also on one the snapshot does not have).
    flag = check_verdicts(tmp_path, selector_cluster(), objs, "--namespace-selector", "capacity=checked")
    assert flag == got
    by_name = check_verdicts(tmp_path, selector_cluster(), [*objs, s.small_web("web", 30, namespace="new")],
                             "--namespace-selector", "kubernetes.io/metadata.name notin (team-b, kube-system)")
    assert {k: v[:4] for k, v in by_name.items()} == {"team-a/web": "deny", "team-b/web": "skip", "team-c/web": "deny",
                                                      "kube-system/web": "skip", "new/web": "deny"}


def test_an_object_selector_leaves_out_objects_whose_labels_do_not_match(tmp_path):
    objs = [labelled(s.small_web("batch", 30), **{"capacity-webhook/opt-out": "yes"}),
            s.small_web("web", 30), labelled(s.small_web("api", 30), tier="api")]
    values = tmp_path / "values.yaml"
    values.write_text("webhook:\n  objectSelector:\n    matchExpressions:\n"
                      "      - {key: capacity-webhook/opt-out, operator: DoesNotExist}\n")
    got = check_verdicts(tmp_path, cluster(), objs, "--chart-values", values)
    assert got == {"default/batch": "skip: its labels do not match webhook.objectSelector "
                                    "(capacity-webhook/opt-out DoesNotExist)",
                   # batch's 30 pods take 21 slots unchecked: nothing is left for web and api.
                   "default/web": "deny", "default/api": "deny"}
    assert check_verdicts(tmp_path, cluster(), objs, "--object-selector", "!capacity-webhook/opt-out") == got
    both = check_verdicts(tmp_path, cluster(), objs, "--object-selector", "tier in (api)",
                          "--namespace-selector", "kubernetes.io/metadata.name=default")
    assert {k: v[:4] for k, v in both.items()} == {"default/batch": "skip", "default/web": "skip",
                                                   "default/api": "deny"}


def test_an_update_is_sent_when_the_old_object_matches_the_object_selector(tmp_path):
    # The API server calls the webhook when the new object's labels match or the old one's.
    running = labelled(s.small_web("web", 2), checked="yes")
    snapshot = cluster(running)
    relabelled = s.small_web("web", 30)
    got = check_verdicts(tmp_path, snapshot, [relabelled], "--object-selector", "checked=yes")
    assert got == {"default/web": "deny"}
    fresh = s.small_web("other", 30)
    assert check_verdicts(tmp_path, snapshot, [fresh], "--object-selector", "checked=yes")["default/other"].startswith(
        "skip: its labels do not match")


@pytest.mark.parametrize("flags, message", [
    (("--namespace-selector", "team in ()"), "not a label value"),
    (("--object-selector", "a=b=c"), "cannot read 'a=b=c'"),
    (("--namespace-selector", "a=b", "--exclude-namespace", "x"), "not both"),
])
def test_bad_selector_flags_exit_2_with_one_line(tmp_path, flags, message):
    snap, manifest = tmp_path / "snap.json", tmp_path / "m.yaml"
    snap.write_text(json.dumps(cluster()))
    manifest.write_text(yaml.safe_dump(s.small_web("web", 3)))
    result = run("check", "--cluster", snap, "-f", manifest, *flags)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("selector, message", [
    ("[a]", "webhook.namespaceSelector must be a mapping"),
    ("{matchExpressions: [{key: a, operator: in, values: [x]}]}", "operator is 'in', not one of In, NotIn"),
    ("{matchExpressions: [{key: a, operator: Exists, values: [x]}]}", "Exists takes no values"),
    ("{matchExpressions: [{key: a, operator: NotIn}]}", "NotIn needs at least one value"),
    ("{matchLabel: {a: b}}", "unknown field 'matchLabel'"),
])
def test_a_selector_the_api_server_would_reject_is_an_input_error(tmp_path, selector, message):
    snap, manifest, values = tmp_path / "snap.json", tmp_path / "m.yaml", tmp_path / "values.yaml"
    snap.write_text(json.dumps(cluster()))
    manifest.write_text(yaml.safe_dump(s.small_web("web", 3)))
    values.write_text(f"webhook:\n  namespaceSelector: {selector}\n")
    result = run("check", "--cluster", snap, "-f", manifest, "--chart-values", values)
    assert result.returncode == 2 and message in result.stderr, result.stderr


# Requirement.Matches in k8s.io/apimachinery/pkg/labels/selector.go: In/Equals need the key;
# NotIn/NotEquals hold when it is absent; an empty selector matches everything.
@pytest.mark.parametrize("text, labels, matches", [
    ("a=1", {"a": "1"}, True), ("a=1", {"a": "2"}, False), ("a=1", {}, False),
    ("a!=1", {}, True), ("a!=1", {"a": "1"}, False), ("a!=1", {"a": "2"}, True),
    ("a in (1,2)", {"a": "2"}, True), ("a notin (1,2)", {"b": "1"}, True), ("a notin (1,2)", {"a": "1"}, False),
    ("a", {"a": ""}, True), ("!a", {"a": ""}, False), ("!a", {}, True), ("a=", {"a": ""}, True),
    ("a=1,b", {"a": "1"}, False), ("a=1, b", {"a": "1", "b": "x"}, True),
])
def test_selector_semantics_are_kubernetes(text, labels, matches):
    assert policy.selector_matches(policy.parse_selector(text), labels) is matches
    assert policy.selector_matches({}, labels) and policy.selector_matches(None, labels)
