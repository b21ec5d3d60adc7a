"""The capacity engine on whole clusters: the numbers a person could work out by hand.

The motivating cluster: two t3.medium nodes (15 IP slots each under secondary IPs, 17
kubelet pods), with 5 and 4 IP-consuming kube-system pods plus aws-node and kube-proxy on
host network: 10 + 11 = 21 IP slots left.
"""

import copy

import pytest

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.state.snapshot import state_from_objects

N1, N2 = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"


def cluster(*extra, prefix_delegation=False, max_pods=17):
    items = s.two_t3_medium_cluster(prefix_delegation, max_pods)["items"]
    return state_from_objects(items + list(extra))


def light(name="web", replicas=30, **kw):
    return s.small_web(name, replicas, **kw)


def running(deploy: dict, on_n1: int, on_n2: int, rs_name: str = "web-1") -> list:
    """A Deployment as the cluster holds it: its ReplicaSet and its pods bound to the two nodes."""
    name, total = deploy["metadata"]["name"], on_n1 + on_n2
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": s.metadata(
            rs_name, "default", deploy["metadata"].get("labels"), owner=("apps/v1", "Deployment", name)
        ),
        "spec": {"replicas": total, "template": deploy["spec"]["template"]},
    }
    pods = [s.pod(f"{rs_name}-{i}", node_name=N1 if i < on_n1 else N2, spec=deploy["spec"]["template"]["spec"],
                  labels=deploy["spec"]["template"]["metadata"]["labels"], owner=("apps/v1", "ReplicaSet", rs_name))
            for i in range(total)]
    return [deploy, rs, *pods]


def test_motivating_scenario_21_fit_30_leaves_9_pending():
    state = cluster()
    ok = evaluate(state, light(replicas=21))
    assert (ok.verdict, ok.requested, ok.schedulable, ok.pending) == ("allow", 21, 21, 0)
    bad = evaluate(state, light(replicas=30))
    assert (bad.verdict, bad.requested, bad.schedulable, bad.pending) == ("deny", 30, 21, 9)
    assert bad.codes == ["POD_IP_EXHAUSTED"]
    first, detail, fix = bad.message.splitlines()
    assert len(first) <= 120 and "9 of 30 pods would stay Pending" in first
    assert f"node {N1}: 10 IP slots left of 15 on t3.medium" in detail and f"node {N2}: 11 of 15" in detail
    assert "Enable prefix delegation on aws-node (110 pods per t3.medium)" in fix


def test_prefix_delegation_with_max_pods_50_admits_50():
    state = cluster(prefix_delegation=True, max_pods=50)
    verdict = evaluate(state, light(replicas=50))
    assert (verdict.verdict, verdict.pending) == ("allow", 0)
    # Kubelet slots: 50 - 7 and 50 - 6 pods already there = 87; IPs (240 each) no longer bind.
    over = evaluate(state, light(replicas=90))
    assert (over.schedulable, over.pending, over.codes) == (87, 3, ["POD_LIMIT_REACHED"])
    assert "Raise kubelet maxPods (the VPC CNI allows 110 on t3.medium)" in over.message


def test_host_network_pods_need_a_kubelet_slot_but_no_ip():
    state = cluster()
    spec = s.pod_spec([s.container(requests={"cpu": "10m"})], host_network=True)
    # Kubelet slots left: 17-7 + 17-6 = 21 as well, but IPs do not limit: limit is maxPods.
    verdict = evaluate(state, s.deployment("agent", 22, spec=spec))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (21, 1, ["POD_LIMIT_REACHED"])


def test_cpu_and_memory_requests_bind_before_ip_slots():
    state = cluster()
    # 1930m allocatable; node 1 runs 25+100+5*100 = 625m, node 2 runs 525m: 1305m and 1405m free.
    cpu = evaluate(state, s.deployment("cpu", 6, spec=s.pod_spec([s.container(requests={"cpu": "500m"})])))
    assert (cpu.schedulable, cpu.pending, cpu.codes) == (4, 2, ["INSUFFICIENT_CPU"])
    mem = evaluate(state, s.deployment("mem", 3, spec=s.pod_spec([s.container(requests={"memory": "1500Mi"})])))
    # 3388360Ki = 3308.9Mi; minus 5 x 70Mi = 2958.9Mi (one 1500Mi pod), minus 4 x 70Mi = 3028.9Mi (two).
    assert (mem.schedulable, mem.pending) == (3, 0)
    mem = evaluate(state, s.deployment("mem", 4, spec=s.pod_spec([s.container(requests={"memory": "1500Mi"})])))
    assert (mem.pending, mem.codes) == (1, ["INSUFFICIENT_MEMORY"])


def test_limit_range_default_cpu_request_applies_to_pods_without_requests():
    bare = s.pod_spec([s.container(requests=None)])
    assert evaluate(cluster(), s.deployment("bare", 21, spec=bare)).verdict == "allow"
    # With a 100m default request, 1305m + 1405m free fit 13 + 14 = 27 pods... IPs still bind at 21;
    # with 250m, 5 + 5 = 10 pods fit and CPU binds.
    state = cluster(s.limit_range("default", default_request={"cpu": "250m"}))
    verdict = evaluate(state, s.deployment("bare", 21, spec=bare))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (10, 11, ["INSUFFICIENT_CPU"])


def test_pending_pods_are_demand_already_waiting():
    waiting = [s.pod(f"old-{i}", spec=s.pod_spec([s.container(requests={"cpu": "10m"})])) for i in range(5)]
    verdict = evaluate(cluster(*waiting), light(replicas=21))
    assert (verdict.schedulable, verdict.pending) == (16, 5)


def test_update_counts_only_the_change():
    base = light(replicas=15)
    state = cluster(*running(base, 8, 7))   # 15 running: 2 + 4 IP slots left
    scaled = copy.deepcopy(base)
    scaled["spec"]["replicas"] = 21
    assert evaluate(state, scaled, base).verdict == "allow"
    scaled["spec"]["replicas"] = 22
    verdict = evaluate(state, scaled, base)
    assert (verdict.requested, verdict.schedulable, verdict.pending) == (22, 21, 1)
    relabeled = copy.deepcopy(base)
    relabeled["metadata"]["labels"]["team"] = "shop"
    assert evaluate(state, relabeled, base).verdict == "allow"
    down = copy.deepcopy(base)
    down["spec"]["replicas"] = 3
    assert evaluate(state, down, base).verdict == "allow"
    # A new template replaces all 15 pods: their room comes back, 21 fit again.
    new_image = copy.deepcopy(scaled)
    new_image["spec"]["replicas"] = 21
    new_image["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    assert evaluate(state, new_image, base).pending == 0


def test_rollout_with_no_room_to_surge_and_max_unavailable_zero_warns():
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    base = s.deployment("web", 21, spec=s.pod_spec([s.container(requests={"cpu": "10m"})]), strategy=strategy)
    state = cluster(*running(base, 10, 11))
    changed = copy.deepcopy(base)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    verdict = evaluate(state, changed, base)
    assert verdict.codes == ["ROLLOUT_STALL"] and verdict.verdict == "warn" and verdict.pending == 0
    changed["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1
    assert evaluate(state, changed, base).verdict == "allow"


def test_daemonset_needs_one_pod_per_eligible_node():
    state = cluster(s.node("ip-10-0-3-9.ec2.internal", unschedulable=True))
    ds = s.daemonset("log-agent", "default", spec=s.pod_spec([s.container(requests={"cpu": "100m"})]))
    verdict = evaluate(state, ds)
    assert (verdict.requested, verdict.pending) == (3, 0)      # daemons tolerate the cordon
    big = s.daemonset("hog", "default", spec=s.pod_spec([s.container(requests={"cpu": "1400m"})]))
    verdict = evaluate(state, big)
    assert (verdict.requested, verdict.schedulable, verdict.pending) == (3, 2, 1)  # N1 has only 1305m


def test_jobs_and_cronjobs_count_parallelism():
    state = cluster()
    spec = s.pod_spec([s.container(requests={"cpu": "10m"})])
    assert evaluate(state, s.job("batch", parallelism=30, spec=spec)).pending == 9
    assert evaluate(state, s.job("batch", parallelism=30, completions=5, spec=spec)).pending == 0
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": s.metadata("nightly", "default"),
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": s.job("x", parallelism=25, spec=spec)["spec"]}}}
    assert evaluate(state, cron).pending == 4
    assert evaluate(state, s.pod("single", spec=spec)).verdict == "allow"


def test_no_eligible_node_explains_why():
    state = cluster()
    spec = s.pod_spec([s.container(requests={"cpu": "10m"})], nodeSelector={"gpu": "a100"})
    verdict = evaluate(state, s.deployment("train", 2, spec=spec))
    assert verdict.codes == ["NO_ELIGIBLE_NODE"] and verdict.pending == 2
    assert "2 nodeSelector gpu=a100 not matched" in verdict.message


def test_unknown_instance_type_warns_and_falls_back_to_the_kubelet_limit():
    state = cluster(s.node("ip-10-0-9-9.ec2.internal", instance_type="z9.mega"))
    # 21 IP slots on the t3s + the new node's kubelet limit: it runs no pods yet, so 17 of maxPods,
    # less the aws-node and kube-proxy pods its DaemonSets still owe it: 15.
    verdict = evaluate(state, light(replicas=36))
    assert verdict.pending == 0 and verdict.verdict == "warn" and verdict.codes == ["UNKNOWN_INSTANCE_TYPE"]
    over = evaluate(state, light(replicas=37))
    assert (over.schedulable, over.pending) == (36, 1) and "UNKNOWN_INSTANCE_TYPE" in over.codes


def test_custom_networking_and_ipv6():
    items = s.two_t3_medium_cluster()["items"]
    items = [i for i in items if i["metadata"]["name"] != "aws-node"] + [s.aws_node(custom_networking=True)]
    # One ENI fewer: 2 x 5 = 10 IP slots per node, 10 - 5 + 10 - 4 = 11 left.
    assert evaluate(state_from_objects(items), light(replicas=12)).pending == 1
    items[-1] = s.aws_node(ipv6=True)
    verdict = evaluate(state_from_objects(items), light(replicas=22))
    assert verdict.codes == ["POD_LIMIT_REACHED"] and verdict.pending == 1


@pytest.mark.parametrize("mode, expected", [("enforce", "deny"), ("warn", "warn"), ("audit", "allow")])
def test_modes(mode, expected):
    verdict = evaluate(cluster(), light(replicas=30), mode=mode)
    assert verdict.verdict == expected and verdict.pending == 9


def test_unreadable_object_is_allowed_with_a_warning_naming_the_field():
    bad = s.deployment("web", 2, spec=s.pod_spec([s.container(requests={"cpu": "two"})]))
    verdict = evaluate(cluster(), bad)
    assert verdict.verdict == "warn" and verdict.codes == ["INVALID_OBJECT"]
    assert "spec.template.spec.containers[0].resources.requests.cpu" in verdict.message
    bad = s.deployment("web", -1)
    assert evaluate(cluster(), bad).codes == ["INVALID_OBJECT"]


def test_summary_lines_stay_within_120_characters():
    long = "x" * 200
    verdict = evaluate(cluster(), light(name=long[:63], replicas=30, namespace=long[:63]))
    assert verdict.reasons and all(len(r.summary) <= 120 for r in verdict.reasons)
    assert len(verdict.message.splitlines()[0]) <= 120


def test_headroom_nodes_turn_an_absorbable_shortfall_into_a_warning():
    state = cluster()
    state.headroom_nodes = 1
    # A fresh t3.medium keeps aws-node + kube-proxy (host network): 15 IP slots, 15 kubelet slots.
    verdict = evaluate(state, light(replicas=36))
    assert (verdict.verdict, verdict.pending) == ("warn", 15)
    assert "about 1 new t3.medium node of 15 pods each" in verdict.message
    assert evaluate(state, light(replicas=37)).verdict == "deny"


def test_karpenter_node_pool_with_room_under_its_cpu_limit():
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": s.metadata("default"),
            "spec": {"limits": {"cpu": "8"}, "template": {"spec": {"requirements": []}}},
            "status": {"resources": {"cpu": "4", "memory": "8Gi", "nodes": "2", "pods": "34"}}}
    # 4 CPUs left / 1930m per t3.medium = 2 more nodes of 15 pods: up to 30 pending pods absorbed.
    state = cluster(pool)
    assert evaluate(state, light(replicas=51)).verdict == "warn"
    assert evaluate(state, light(replicas=52)).verdict == "deny"


@pytest.mark.parametrize("obj", [
    {"kind": "Deployment", "metadata": "web", "spec": {}},
    {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": "nginx"}}}},
    {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": "pod"}},
    {"kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {"accessModes": 5}},
])
def test_malformed_shapes_are_allowed_with_a_warning_never_raised(obj):
    verdict = evaluate(cluster(), obj)
    assert verdict.verdict == "warn" and verdict.codes == ["INVALID_OBJECT"]


def test_a_rollout_reserves_only_pods_beyond_the_ones_it_replaces():
    base = light(replicas=10)
    state = cluster(*running(base, 5, 5))
    changed = copy.deepcopy(base)
    changed["spec"]["replicas"] = 12
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    verdict = evaluate(state, changed, base)
    assert verdict.pending == 0 and sum(verdict.reservation().values()) == 2
    assert sum(evaluate(state, light("other", 3)).reservation().values()) == 3


def test_a_workload_evaluated_again_does_not_compete_with_its_own_reservation():
    state = cluster()
    first = evaluate(state, light(replicas=15))
    state.reserve(("Deployment", "default", "web"), first.reservation(), first.pod_requests, first.uses_ip)
    assert evaluate(state, light("other", 7)).pending == 1          # 21 - 15 held = 6 left for others
    scaled = evaluate(state, light(replicas=21), light(replicas=15))
    assert scaled.pending == 0                                       # its own 15 are not counted twice


def test_required_anti_affinity_to_itself_places_one_pod_per_node():
    spec = s.pod_spec([s.container(requests={"cpu": "10m"})], affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "zk"}}, "topologyKey": "kubernetes.io/hostname"}]}})
    verdict = evaluate(cluster(), s.deployment("zk", 3, spec=spec, labels={"app": "zk"}))
    assert (verdict.schedulable, verdict.pending) == (2, 1)


def test_a_pod_with_node_name_only_fits_on_that_node():
    state = cluster(*[s.pod(f"fill-{i}", node_name=N1, spec=s.pod_spec([s.container(requests={"cpu": "10m"})]))
                      for i in range(10)])   # node 1: no IP slot left, node 2: 11
    spec = s.pod_spec([s.container(requests={"cpu": "10m"})], nodeName=N1)
    verdict = evaluate(state, s.pod("pinned", spec=spec))
    assert (verdict.pending, verdict.codes) == (1, ["POD_IP_EXHAUSTED"])


def test_waiting_pods_of_several_kinds_take_room_where_the_scheduler_scores_them():
    small = s.pod_spec([s.container(requests={"cpu": "10m"})])
    big = s.pod_spec([s.container(requests={"cpu": "1200m"})])
    waiting = [s.pod(f"a-{i:02d}", spec=small) for i in range(12)] + [s.pod(f"b-{i}", spec=big) for i in range(2)]
    state = cluster(*waiting)
    # One at a time by LeastAllocated + BalancedAllocation (tests/test_scoring.py works the first bind by hand):
    # the a-pods alternate from node 2 (a-00, a-01 on node 2, then turns): 5 on node 1, 7 on node 2; b-0
    # scores 77 on node 1 vs 75 on node 2, b-1 then only fits node 2. Left: node 1 4 IP slots (10 - 6) and
    # 55m CPU, node 2 3 IP slots (11 - 8) and 135m: a new 10m pod fits 4 + 3 = 7 times (first fit said 8).
    assert evaluate(state, light(replicas=7)).pending == 0
    verdict = evaluate(state, light(replicas=8))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (7, 1, ["POD_IP_EXHAUSTED"])
