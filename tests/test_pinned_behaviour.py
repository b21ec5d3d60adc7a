"""Behaviours a mutation run showed no test pinned: each number here is a Kubernetes or AWS fact.

Every expected value is worked out from the API's rules (resource.Quantity suffixes, the
Deployment controller's rounding of maxSurge/maxUnavailable, the Job controller's suspend,
taint effects, the node-affinity Gt/Lt operators) or from the motivating cluster's
hand-counted room (two t3.medium nodes, 10 + 11 = 21 free pod IP slots), never read back
from the code under test.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.engine.ipslots import CniConfig
from webhook.engine.quantity import format_bytes, format_cpu, milli, parse_quantity, units
from webhook.engine.workloads import demand_of
from webhook.state.snapshot import state_from_objects

N1, N2 = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"


def cluster(*extra):
    return state_from_objects(s.two_t3_medium_cluster()["items"] + list(extra))


def web(replicas: int, **deployment_kw) -> dict:
    return s.small_web("web", replicas) if not deployment_kw else s.deployment(
        "web", replicas, spec=s.pod_spec([s.container("web", requests={"cpu": "10m", "memory": "32Mi"})]),
        **deployment_kw)


# ---- quantities: the suffix table of k8s.io/apimachinery/pkg/api/resource --------------------

@pytest.mark.parametrize("text, exact", [
    ("1n", Fraction(1, 10**9)), ("1u", Fraction(1, 10**6)), ("1m", Fraction(1, 1000)),
    ("1k", 10**3), ("1M", 10**6), ("1G", 10**9), ("1T", 10**12), ("1P", 10**15), ("1E", 10**18),
    ("1Ki", 1024), ("1Mi", 1024**2), ("1Gi", 1024**3), ("1Ti", 1024**4), ("1Pi", 1024**5), ("1Ei", 1024**6),
    ("1e3", 1000), ("1E3", 1000), ("1.5", Fraction(3, 2)), (".5", Fraction(1, 2)), ("2.", 2),
    ("+3", 3), ("12e-1", Fraction(6, 5)),
])
def test_quantity_suffixes_are_exact(text, exact):
    assert parse_quantity(text) == exact


def test_float_and_int_quantities_as_yaml_gives_them():
    assert parse_quantity(0.5) == Fraction(1, 2) and parse_quantity(2) == 2
    assert milli(0.25) == 250 and units(1.5) == 2


@pytest.mark.parametrize("text, millicores", [("100m", 100), ("0.1", 100), ("1", 1000), ("1.0001", 1001),
                                              ("100u", 1), ("1n", 1), ("2500000n", 3)])
def test_cpu_rounds_up_to_whole_millicores_like_milli_value(text, millicores):
    assert milli(text) == millicores


@pytest.mark.parametrize("text, whole", [("1.5", 2), ("1k", 1000), ("1.2Ki", 1229), ("100m", 1), ("3", 3)])
def test_units_round_up_like_value(text, whole):
    assert units(text) == whole


@pytest.mark.parametrize("bad", ["1ki", "1KB", "1.2.3", "", "1 Gi", "--1", "1e", True, None, [1]])
def test_quantities_the_api_rejects_are_errors(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)


# ---- workloads: how many pods each controller asks for ------------------------------------------

def test_replicas_zero_asks_for_nothing_and_is_allowed():
    verdict = evaluate(cluster(), web(0))
    assert verdict.verdict == "allow" and (verdict.requested, verdict.pending) == (0, 0)


@pytest.mark.parametrize("replicas, surge, unavailable, want_surge, want_unavailable", [
    (3, "50%", "50%", 2, 1),          # surge rounds up (1.5 -> 2), unavailable down (1.5 -> 1)
    (10, "25%", "25%", 3, 2),         # the defaults: 2.5 -> 3 and 2.5 -> 2
    (4, "0%", "0%", 0, 1),            # both zero: the controller forces maxUnavailable to 1
    (4, 2, 0, 2, 0),
])
def test_percentage_max_surge_and_max_unavailable_round_as_the_deployment_controller(
        replicas, surge, unavailable, want_surge, want_unavailable):
    demand = demand_of(web(replicas, strategy={"type": "RollingUpdate",
                                               "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}))
    assert (demand.max_surge, demand.max_unavailable, demand.rolling) == (want_surge, want_unavailable, True)


def test_recreate_strategy_has_no_surge_and_no_rolling_overlap():
    demand = demand_of(web(4, strategy={"type": "Recreate"}))
    assert (demand.rolling, demand.max_surge) == (False, 0)


def test_recreate_rollout_of_a_full_cluster_gets_its_own_room_back():
    # 21 pods run; a Recreate rollout stops them all before starting the new ones: 21 fit again.
    old = web(21, strategy={"type": "Recreate"})
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata("web-1", "default", {"app": "web"}, owner=("apps/v1", "Deployment", "web")),
          "spec": {"replicas": 21, "template": old["spec"]["template"]}}
    pods = [s.pod(f"web-1-{i}", node_name=N1 if i < 10 else N2, spec=old["spec"]["template"]["spec"],
                  labels={"app": "web"}, owner=("apps/v1", "ReplicaSet", "web-1")) for i in range(21)]
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    verdict = evaluate(cluster(rs, *pods), new, old)
    assert verdict.pending == 0 and verdict.verdict == "allow"
    assert not any(r.code == "ROLLOUT_STALL" for r in verdict.reasons)


def test_suspended_job_and_cronjob_ask_for_no_pods():
    job = s.job("batch", parallelism=40)
    assert evaluate(cluster(), job).pending == 19      # 40 wanted, 21 IP slots
    job["spec"]["suspend"] = True
    assert (evaluate(cluster(), job).requested, evaluate(cluster(), job).pending) == (0, 0)
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": s.metadata("nightly", "default"),
            "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": copy.deepcopy(s.job("x", 40)["spec"])}}}
    assert evaluate(cluster(), cron).pending == 19
    cron["spec"]["suspend"] = True
    assert evaluate(cluster(), cron).pending == 0
    cron["spec"]["suspend"] = False
    cron["spec"]["jobTemplate"]["spec"]["suspend"] = True
    assert evaluate(cluster(), cron).pending == 0


def test_job_parallelism_is_capped_by_completions():
    assert demand_of(s.job("j", parallelism=40, completions=5)).replicas == 5
    assert demand_of(s.job("j", parallelism=3, completions=5)).replicas == 3
    assert demand_of(s.job("j", parallelism=None)).replicas == 1      # the API's default parallelism


def _scaled(obj: dict, replicas: int) -> dict:
    new = copy.deepcopy(obj)
    new["spec"]["replicas"] = replicas
    return new


@pytest.mark.parametrize("kind", ["StatefulSet", "ReplicaSet"])
def test_statefulset_and_replicaset_scale_up_counts_only_the_new_pods(kind):
    if kind == "StatefulSet":
        base = s.statefulset("db", 5, spec=s.pod_spec([s.container("db", requests={"cpu": "10m"})]))
    else:
        base = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": s.metadata("db", "default", {"app": "db"}),
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": {"app": "db"}},
                "template": s.template({"app": "db"}, s.pod_spec([s.container("db", requests={"cpu": "10m"})])),
            },
        }
    pods = [s.pod(f"db-{i}", node_name=N1 if i < 3 else N2, spec=base["spec"]["template"]["spec"], labels={"app": "db"},
                  owner=("apps/v1", kind, "db")) for i in range(5)]
    state = cluster(base, *pods)          # 5 running: 21 - 5 = 16 slots left
    assert evaluate(state, _scaled(base, 21), base).pending == 0
    over = evaluate(state, _scaled(base, 22), base)
    assert (over.requested, over.schedulable, over.pending) == (22, 21, 1) and over.verdict == "deny"
    to_zero = evaluate(state, _scaled(base, 0), base)
    assert to_zero.verdict == "allow" and to_zero.pending == 0


# ---- eligibility: taints and node-affinity operators ---------------------------------------------

def _tainted(effect: str) -> list:
    return [s.node(N1, taints=[{"key": "dedicated", "value": "db", "effect": effect}]),
            s.node(N2, taints=[{"key": "dedicated", "value": "db", "effect": effect}])]


def _only_nodes(*nodes) -> object:
    items = [o for o in s.two_t3_medium_cluster()["items"] if o["kind"] != "Node"]
    return state_from_objects(items + list(nodes))


@pytest.mark.parametrize("effect, blocks", [("NoSchedule", True), ("NoExecute", True), ("PreferNoSchedule", False)])
def test_taint_effects_that_keep_pods_off(effect, blocks):
    verdict = evaluate(_only_nodes(*_tainted(effect)), web(5))
    assert (verdict.pending == 5) is blocks
    assert (verdict.verdict == "deny") is blocks


def test_a_toleration_for_another_effect_does_not_tolerate_no_execute():
    spec = s.pod_spec([s.container("web", requests={"cpu": "10m"})],
                      tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}])
    assert evaluate(_only_nodes(*_tainted("NoExecute")), s.deployment("web", 5, spec=spec)).pending == 5
    spec["tolerations"][0]["effect"] = "NoExecute"
    assert evaluate(_only_nodes(*_tainted("NoExecute")), s.deployment("web", 5, spec=spec)).pending == 0
    spec["tolerations"][0].pop("effect")          # an empty effect tolerates every effect
    assert evaluate(_only_nodes(*_tainted("NoExecute")), s.deployment("web", 5, spec=spec)).pending == 0


def test_daemonset_pods_tolerate_cordons_but_not_custom_taints():
    ds = s.daemonset("agent", namespace="default", spec=s.pod_spec([s.container("agent", requests={"cpu": "10m"})]))
    cordoned = _only_nodes(s.node(N1, unschedulable=True), s.node(N2))
    verdict = evaluate(cordoned, ds)
    assert (verdict.requested, verdict.pending) == (2, 0)
    tainted = _only_nodes(s.node(N1, taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]), s.node(N2))
    assert evaluate(tainted, ds).requested == 1       # the tainted node is not one of its nodes


@pytest.mark.parametrize("operator, bound, eligible", [("Gt", "4", True), ("Gt", "5", False),
                                                       ("Lt", "6", True), ("Lt", "5", False)])
def test_node_affinity_gt_and_lt_are_strict(operator, bound, eligible):
    nodes = [s.node(N1, labels={"cores": "5"}), s.node(N2, labels={"cores": "5"})]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "cores", "operator": operator, "values": [bound]}]}]}}}
    spec = s.pod_spec([s.container("web", requests={"cpu": "10m"})], affinity=affinity)
    verdict = evaluate(_only_nodes(*nodes), s.deployment("web", 3, spec=spec))
    assert (verdict.pending == 0) is eligible


# ---- resources: ephemeral storage ------------------------------------------------------------------

def test_ephemeral_storage_requests_stop_pods_with_their_own_code():
    # t3.medium allocatable ephemeral-storage 18242267924 bytes: floor(18242267924 / 5Gi) = 3 pods a node.
    spec = s.pod_spec([s.container("web", requests={"cpu": "10m", "ephemeral-storage": "5Gi"})])
    verdict = evaluate(cluster(), s.deployment("cache", 8, spec=spec))
    assert (verdict.schedulable, verdict.pending) == (6, 2)
    assert [r.code for r in verdict.reasons if r.severity == "deny"] == ["INSUFFICIENT_EPHEMERAL_STORAGE"]


# ---- the aws-node DaemonSet: which container the CNI settings come from ---------------------------

def test_cni_settings_come_from_the_aws_node_container_not_its_neighbours():
    ds = s.aws_node(prefix_delegation=True)
    containers = ds["spec"]["template"]["spec"]["containers"]
    containers[0]["name"] = "aws-node"
    nodeagent = {"name": "aws-eks-nodeagent", "image": "agent",
                 "env": [{"name": "ENABLE_PREFIX_DELEGATION", "value": "false"}]}
    containers.append(nodeagent)                       # after aws-node: must not override it
    assert CniConfig.from_daemonset(ds).prefix_delegation is True
    containers.reverse()                               # before aws-node: aws-node still wins
    assert CniConfig.from_daemonset(ds).prefix_delegation is True


# ---- demand already waiting ---------------------------------------------------------------------

def test_pending_pods_owned_through_a_replicaset_are_demand_for_others_not_for_their_own_workload():
    other = s.small_web("other", 5)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata("other-1", "default", {"app": "other"}, owner=("apps/v1", "Deployment", "other")),
          "spec": {"replicas": 5, "template": other["spec"]["template"]}}
    waiting = [s.pod(f"other-1-{i}", spec=other["spec"]["template"]["spec"], labels={"app": "other"},
                     owner=("apps/v1", "ReplicaSet", "other-1")) for i in range(5)]
    state = cluster(other, rs, *waiting)
    # 21 slots, 5 of them wanted by the waiting pods: a new 17-replica workload leaves 1 pending.
    verdict = evaluate(state, s.small_web("web", 17))
    assert (verdict.schedulable, verdict.pending) == (16, 1)


# ---- how quantities are written back in messages (kubectl's conventions) -------------------------

@pytest.mark.parametrize("millicores, text", [(1500, "1500m"), (2000, "2"), (0, "0"), (999, "999m"), (1001, "1001m")])
def test_cpu_is_written_as_kubectl_shows_it(millicores, text):
    assert format_cpu(millicores) == text


@pytest.mark.parametrize("amount, text", [(1024, "1Ki"), (1536, "1.5Ki"), (1023, "1023"), (2**20, "1Mi"),
                                          (3 * 2**29, "1.5Gi"), (2**30, "1Gi"), (2**40, "1Ti"), (5 * 2**40, "5Ti"),
                                          (2**40 - 2**30, "1023Gi"), (-(2**30), "-1Gi")])
def test_bytes_are_written_in_the_largest_binary_unit(amount, text):
    assert format_bytes(amount) == text
