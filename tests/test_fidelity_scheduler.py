"""Scheduler filters the engine models, each with the numbers the kube-scheduler's source gives.

Nodes here have no instance type (so no VPC IP-slot rule: the scheduler cannot see it),
4 CPU, 8Gi, 110 pods, unless a test says otherwise. References are to
pkg/scheduler/framework/plugins/ in Kubernetes v1.33.
"""

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.state.snapshot import state_from_objects

BIG = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def node(name, zone="us-east-1a", **kw):
    kw.setdefault("allocatable", BIG)
    return s.node(name, instance_type=None, zone=zone, **kw)


def web(replicas, labels=None, **spec_extra):
    spec = s.pod_spec([s.container(requests={"cpu": "100m", "memory": "64Mi"})], **spec_extra)
    return s.deployment("web", replicas, spec=spec, labels=labels or {"app": "web"})


def bound(name, node_name, labels, namespace="default", **spec_extra):
    spec = s.pod_spec([s.container(requests={"cpu": "100m"})], **spec_extra)
    return s.pod(name, namespace, node_name, spec=spec, labels=labels)


def anti(selector=None, key=HOST, **term):
    body = {"topologyKey": key, **term}
    if selector is not None:
        body["labelSelector"] = selector
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [body]}}


def affinity(selector, key=ZONE, **term):
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": key, "labelSelector": selector, **term}]}}


# ---- 1. cordons (nodeunschedulable/node_unschedulable.go) ------------------------------------

def test_a_cordoned_node_takes_pods_that_tolerate_the_unschedulable_taint():
    state = state_from_objects([node("a", unschedulable=True)])
    assert evaluate(state, web(3)).pending == 3
    toleration = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert evaluate(state, web(3, tolerations=toleration)).pending == 0
    assert evaluate(state, web(3, tolerations=[{"operator": "Exists"}])).pending == 0   # the wildcard


def test_a_toleration_for_another_effect_does_not_pass_a_cordon():
    state = state_from_objects([node("a", unschedulable=True)])
    toleration = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute"}]
    assert evaluate(state, web(1, tolerations=toleration)).pending == 1


def test_notready_nodes_stay_excluded_even_for_tolerating_pods():
    # Deliberate difference (README "Fidelity"): the scheduler binds there, the pods never start.
    state = state_from_objects([node("a", ready=False)])
    verdict = evaluate(state, web(1, tolerations=[{"operator": "Exists"}]))
    assert verdict.pending == 1 and verdict.codes == ["NO_ELIGIBLE_NODE"]


# ---- 2. inter-pod affinity (interpodaffinity/filtering.go) ------------------------------------

def test_anti_affinity_to_itself_on_the_hostname_allows_one_pod_per_node_and_says_so():
    state = state_from_objects([node("a"), node("b")])
    verdict = evaluate(state, web(3, affinity=anti({"matchLabels": {"app": "web"}})))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (2, 1, ["POD_ANTI_AFFINITY"])
    assert "anti-affinity" in verdict.reasons[0].summary
    assert "maxPods" not in verdict.message and "one matching pod per kubernetes.io/hostname" in verdict.message


def test_an_anti_affinity_term_without_label_selector_matches_no_pod():
    state = state_from_objects([node("a"), bound("db", "a", {"app": "db"})])
    assert evaluate(state, web(5, affinity=anti())).pending == 0


def test_an_empty_label_selector_matches_every_pod_in_the_namespace():
    state = state_from_objects([node("a"), node("b"), bound("db", "a", {"app": "db"})])
    verdict = evaluate(state, web(2, affinity=anti({})))
    # node a holds a pod; the first web pod then repels the second from node b.
    assert (verdict.schedulable, verdict.pending) == (1, 1)


def test_existing_matching_pods_keep_the_new_pods_out_of_their_domain():
    state = state_from_objects([node("a"), node("b"), bound("db-0", "a", {"app": "db"})])
    verdict = evaluate(state, web(20, affinity=anti({"matchLabels": {"app": "db"}})))
    assert verdict.pending == 0
    assert verdict.placement.per_node["a"].placed == 0 and verdict.placement.per_node["b"].placed == 20


def test_anti_affinity_looks_only_in_the_namespaces_of_the_term():
    objects = [node("a"), node("b"), bound("db-0", "a", {"app": "db"}, namespace="data")]
    state = state_from_objects(objects + [s.namespace("data", {"team": "data"})])
    same_ns = evaluate(state, web(2, affinity=anti({"matchLabels": {"app": "db"}})))
    assert same_ns.placement.per_node["a"].placed == 2 or same_ns.placement.per_node["b"].placed == 2
    listed = evaluate(state, web(2, affinity=anti({"matchLabels": {"app": "db"}}, namespaces=["data"])))
    assert listed.placement.per_node["a"].placed == 0
    selected = evaluate(state, web(2, affinity=anti({"matchLabels": {"app": "db"}},
                                                    namespaceSelector={"matchLabels": {"team": "data"}})))
    assert selected.placement.per_node["a"].placed == 0
    everywhere = evaluate(state, web(2, affinity=anti({"matchLabels": {"app": "db"}}, namespaceSelector={})))
    assert everywhere.placement.per_node["a"].placed == 0


def test_an_existing_pods_anti_affinity_repels_the_new_pods_symmetric_rule():
    repel = anti({"matchLabels": {"app": "web"}})
    state = state_from_objects([node("a"), node("b"), bound("loner", "a", {"app": "loner"}, affinity=repel)])
    verdict = evaluate(state, web(4))
    assert verdict.pending == 0 and verdict.placement.per_node["a"].placed == 0


def test_zone_anti_affinity_allows_one_pod_per_zone():
    state = state_from_objects([node("a1"), node("a2"), node("b1", zone="us-east-1b")])
    verdict = evaluate(state, web(3, affinity=anti({"matchLabels": {"app": "web"}}, key=ZONE)))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (2, 1, ["POD_ANTI_AFFINITY"])


def test_required_affinity_goes_only_to_domains_with_a_matching_pod():
    state = state_from_objects([node("a1"), node("b1", zone="us-east-1b"), bound("cache", "b1", {"app": "cache"})])
    verdict = evaluate(state, web(3, affinity=affinity({"matchLabels": {"app": "cache"}})))
    assert verdict.pending == 0 and verdict.placement.per_node["b1"].placed == 3


def test_required_affinity_with_no_matching_pod_anywhere_leaves_all_pending():
    state = state_from_objects([node("a1")])
    verdict = evaluate(state, web(2, affinity=affinity({"matchLabels": {"app": "cache"}})))
    assert (verdict.pending, verdict.codes) == (2, ["POD_AFFINITY"])


def test_the_first_pod_of_a_self_affine_group_may_go_anywhere_the_rest_follow_it():
    # Zone a: one node with room for 2 pods; zone b: room for 3. The first pod goes by score, the
    # others must share its zone: the scheduler binds no more than that zone holds.
    small = {"cpu": "250m", "memory": "8Gi", "pods": "110"}
    state = state_from_objects([node("a1", allocatable=small),
                                node("b1", zone="us-east-1b", allocatable={**small, "cpu": "350m"})])
    verdict = evaluate(state, web(3, affinity=affinity({"matchLabels": {"app": "web"}})))
    # b1 (350m free) scores higher for the first pod; b1 then holds 3 x 100m.
    assert (verdict.schedulable, verdict.pending) == (3, 0) and verdict.placement.per_node["b1"].placed == 3
    verdict = evaluate(state, web(4, affinity=affinity({"matchLabels": {"app": "web"}})))
    assert (verdict.schedulable, verdict.pending, verdict.placement.per_node["a1"].placed) == (3, 1, 0)


# ---- 4. topology spread (podtopologyspread/filtering.go) --------------------------------------

def spread(max_skew=1, key=ZONE, **extra):
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


def test_spread_stops_at_max_skew_when_a_zone_is_full():
    # Zone a has room for 1 pod (150m), zone b for 20: with maxSkew 1 the counts go a=1, b=2, then b would
    # be 3 - min 1 = 2 > 1: 3 pods bind, the rest wait.
    state = state_from_objects([node("a1", allocatable={**BIG, "cpu": "150m"}), node("b1", zone="us-east-1b")])
    verdict = evaluate(state, web(5, topologySpreadConstraints=spread()))
    assert (verdict.schedulable, verdict.pending) == (3, 2)
    assert verdict.codes == ["INSUFFICIENT_CPU", "TOPOLOGY_SPREAD"]      # a1 is full, b1 is held by the skew
    assert evaluate(state, web(5, topologySpreadConstraints=spread(max_skew=3))).pending == 0


def test_spread_counts_existing_matching_pods():
    existing = [bound(f"web-{i}", "b1", {"app": "web"}) for i in range(3)]
    state = state_from_objects([node("a1"), node("b1", zone="us-east-1b"), *existing])
    # b=3, a=0: only a passes (0 + 1 - 0 <= 1; b: 3 + 1 - 0 > 1) until a=3. The 4th pod may go either way;
    # the scores pick a1: LeastAllocated (90 + 96) // 2 = 93 vs b1 (90 + 91) // 2 = 90 (b1's pods set no
    # memory request: 200Mi each for the score), BalancedAllocation 96 vs 95.
    verdict = evaluate(state, web(4, topologySpreadConstraints=spread()))
    assert verdict.pending == 0 and verdict.placement.per_node["a1"].placed == 4


def test_min_domains_counts_the_missing_domains_as_zero():
    # One zone only, minDomains 2: the global minimum is 0, so a zone holds at most maxSkew pods.
    state = state_from_objects([node("a1"), node("a2")])
    verdict = evaluate(state, web(3, topologySpreadConstraints=spread(minDomains=2)))
    assert (verdict.schedulable, verdict.pending) == (1, 2)


def test_node_taints_policy_honor_leaves_tainted_zones_out_of_the_skew():
    taint = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    state = state_from_objects([node("a1"), node("b1", zone="us-east-1b", taints=taint)])
    # Ignore (default): zone b is a domain with 0 pods and nobody can go there: 1 pod binds.
    assert evaluate(state, web(3, topologySpreadConstraints=spread())).schedulable == 1
    honored = evaluate(state, web(3, topologySpreadConstraints=spread(nodeTaintsPolicy="Honor")))
    assert honored.pending == 0


def test_match_label_keys_count_only_pods_of_the_new_revision():
    old = [bound(f"web-old-{i}", "b1", {"app": "web", "pod-template-hash": "old"}) for i in range(3)]
    state = state_from_objects([node("a1", allocatable={**BIG, "cpu": "250m"}), node("b1", zone="us-east-1b"), *old])
    plain = evaluate(state, web(4, topologySpreadConstraints=spread()))
    keyed = evaluate(state, web(4, topologySpreadConstraints=spread(matchLabelKeys=["pod-template-hash"])))
    # a1 holds 2 pods at most (250m). Counting the old pods b=3: only a passes, a reaches 2 and is full;
    # b then needs 3 + 1 - 2 = 2 > 1: 2 fit.
    assert plain.schedulable == 2
    # Counting only the new revision (b starts at 0): a, b, a, b: 4 fit.
    assert keyed.pending == 0


# ---- 4. host ports, extended resources, gates, pods allocatable ------------------------------

def test_a_host_port_allows_one_pod_per_node_and_clashes_with_a_bound_pod():
    ports = [{"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"}]
    spec = s.pod_spec([s.container(requests={"cpu": "100m"}) | {"ports": ports}])
    state = state_from_objects([node("a"), node("b"), node("c"),
                                s.pod("other", "default", "c", spec=spec, labels={"app": "other"})])
    verdict = evaluate(state, s.deployment("web", 3, spec=spec))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (2, 1, ["HOST_PORT_CONFLICT"])


def test_extended_resources_are_counted_per_node():
    gpu_node = node("g", allocatable={**BIG, "nvidia.com/gpu": "4"})
    busy = s.pod("train", "default", "g", spec=s.pod_spec([s.container(requests={"cpu": "100m"}) | {
        "resources": {"limits": {"nvidia.com/gpu": "1"}}}]))
    state = state_from_objects([gpu_node, node("cpu-only"), busy])
    spec = s.pod_spec([s.container() | {"resources": {"limits": {"nvidia.com/gpu": "1"}}}])
    verdict = evaluate(state, s.deployment("infer", 4, spec=spec))
    assert (verdict.schedulable, verdict.pending) == (3, 1)
    assert verdict.codes == ["INSUFFICIENT_EXTENDED_RESOURCE"] and "nvidia.com/gpu" in verdict.message


def test_gated_pods_are_not_demand():
    spec = s.pod_spec([s.container(requests={"cpu": "3"})], schedulingGates=[{"name": "wait"}])
    state = state_from_objects([node("a"), s.pod("gated", spec=spec)])
    assert evaluate(state, web(30)).pending == 0          # the gated pod does not take 3 CPU
    assert evaluate(state, s.deployment("gated", 5, spec=spec)).pending == 0


def test_a_node_without_allocatable_pods_takes_no_pod():
    alloc = {k: v for k, v in BIG.items() if k != "pods"}
    state = state_from_objects([node("a", allocatable=alloc)])
    assert evaluate(state, web(1)).pending == 1


# ---- 4. priority and preemption (defaultpreemption, admission/priority) -----------------------

def priority_class(name, value, never=False, default=False):
    obj = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": s.metadata(name),
           "value": value, "globalDefault": default}
    if never:
        obj["preemptionPolicy"] = "Never"
    return obj


def preemption_cluster():
    low = [s.pod(f"batch-{i}", "default", "a", spec=s.pod_spec([s.container(requests={"cpu": "1"})], priority=0))
           for i in range(3)]
    return state_from_objects([node("a"), *low, priority_class("high", 1000),
                               priority_class("polite", 1000, never=True)])


def urgent(replicas, class_name):
    spec = s.pod_spec([s.container(requests={"cpu": "1500m"})], priorityClassName=class_name)
    return s.deployment("urgent", replicas, spec=spec)


def test_a_higher_priority_workload_warns_that_it_would_preempt():
    # 4 CPU, 3 x 1 CPU of priority 0 bound: 1 CPU free, no 1.5 CPU pod fits. Evicting one frees 2 CPU (1 pod),
    # two free 3 CPU (2 pods): 2 replicas fit by preempting 2 pods.
    verdict = evaluate(preemption_cluster(), urgent(2, "high"))
    assert (verdict.verdict, verdict.pending, verdict.codes) == ("warn", 0, ["PREEMPTION"])
    assert "would preempt 2 lower-priority pods" in verdict.reasons[0].summary


def test_preemption_that_cannot_make_room_for_all_still_denies():
    # Even with all 3 evicted, 4 CPU hold 2 pods of 1.5 CPU: the third stays Pending.
    verdict = evaluate(preemption_cluster(), urgent(3, "high"))
    assert (verdict.verdict, verdict.schedulable, verdict.pending) == ("deny", 2, 1)
    assert verdict.codes == ["PREEMPTION", "INSUFFICIENT_CPU"]


def test_preemption_policy_never_preempts_nothing():
    verdict = evaluate(preemption_cluster(), urgent(2, "polite"))
    assert (verdict.verdict, verdict.codes) == ("deny", ["INSUFFICIENT_CPU"])


def test_a_global_default_class_gives_pods_without_a_class_their_priority():
    state = preemption_cluster()
    state.apply(priority_class("everyone", 500, default=True))
    assert evaluate(state, urgent(2, None)).codes == ["PREEMPTION"]


def test_preemption_also_clears_a_host_port_held_by_a_lower_priority_pod():
    # differential seed 46: DefaultPreemption removes the lower-priority pods and runs every filter again,
    # NodePorts included: the port holder (priority 0) is preempted and the pod binds.
    ports = [{"containerPort": 9100, "hostPort": 9100, "protocol": "TCP"}]
    holder = s.pod(
        "holder", "default", "a", spec=s.pod_spec([s.container(requests={"cpu": "100m"}) | {"ports": ports}])
    )
    state = state_from_objects([node("a"), holder, priority_class("high", 1000)])
    spec = s.pod_spec([s.container(requests={"cpu": "100m"}) | {"ports": ports}], priorityClassName="high")
    verdict = evaluate(state, s.deployment("exporter", 1, spec=spec))
    assert (verdict.verdict, verdict.pending, verdict.codes) == ("warn", 0, ["PREEMPTION"])
    assert "would preempt 1 lower-priority pod" in verdict.reasons[0].summary
    same = s.pod_spec([s.container(requests={"cpu": "100m"}) | {"ports": ports}])
    assert evaluate(state, s.deployment("exporter", 1, spec=same)).codes == ["HOST_PORT_CONFLICT"]


def test_preemption_clears_a_lower_priority_pods_anti_affinity():
    # differential seed 2: an existing pod of priority -10 repels app=web from its zone; web pods (priority 0)
    # preempt it and use the zone. Only that pod is a victim (the other low pod is reprieved: room is plenty).
    repel = anti({"matchLabels": {"app": "web"}}, key=ZONE)
    low = s.pod_spec([s.container(requests={"cpu": "100m"})], priority=-10, affinity=repel)
    other = s.pod_spec([s.container(requests={"cpu": "100m"})], priority=-10)
    state = state_from_objects([node("a"), s.pod("loner", "default", "a", spec=low, labels={"app": "loner"}),
                                s.pod("filler", "default", "a", spec=other, labels={"app": "filler"})])
    verdict = evaluate(state, web(2))
    assert (verdict.verdict, verdict.pending, verdict.codes) == ("warn", 0, ["PREEMPTION"])
    assert "would preempt 1 lower-priority pod" in verdict.reasons[0].summary


def test_a_repelling_pod_on_a_cordoned_node_still_blocks_its_zone_and_cannot_be_preempted():
    # differential F2 (seed 295): InterPodAffinity walks every node for pods with required anti-affinity,
    # cordoned ones included; the cordoned node is no preemption candidate, so its pod stays.
    repel = anti({"matchLabels": {"app": "web"}}, key=ZONE, namespaceSelector={})
    db = s.pod_spec([s.container(requests={"cpu": "100m"})], affinity=repel, priority=-10)
    state = state_from_objects([node("cordoned", unschedulable=True), node("free"),
                                s.pod("db-0", "default", "cordoned", spec=db, labels={"app": "db"})])
    verdict = evaluate(state, web(1))
    assert (verdict.pending, verdict.codes) == (1, ["POD_ANTI_AFFINITY"])


def test_preemption_never_evicts_the_pods_a_required_affinity_needs():
    # differential F3 (seed 68): the only app=batch pod has priority -10; evicting it would break the
    # affinity, so SelectVictimsOnNode finds no candidate: one pod binds next to it, the rest wait.
    batch = s.pod_spec([s.container(requests={"cpu": "100m"})], priority=-10)
    small = {**BIG, "cpu": "300m"}
    state = state_from_objects([node("a", allocatable=small), s.pod("batch-0", "default", "a", spec=batch,
                                                                  labels={"app": "batch"}),
                                priority_class("high", 1000)])
    spec = s.pod_spec([s.container(requests={"cpu": "150m"})], priorityClassName="high",
                      affinity=affinity({"matchLabels": {"app": "batch"}}, key=HOST))
    verdict = evaluate(state, s.deployment("web", 3, spec=spec))
    assert (verdict.schedulable, verdict.pending) == (1, 2) and "PREEMPTION" not in verdict.codes


def test_preemption_clears_pods_the_new_pods_anti_affinity_rejects():
    # differential seed 754: the incoming pod's own anti-affinity to app=batch is satisfied by preempting the
    # priority-0 batch pod on the only node.
    state = state_from_objects([node("a"), bound("batch-0", "a", {"app": "batch"}), priority_class("high", 1000)])
    spec = s.pod_spec([s.container(requests={"cpu": "100m"})], priorityClassName="high",
                      affinity=anti({"matchExpressions": [{"key": "app", "operator": "In", "values": ["batch"]}]},
                                    namespaceSelector={}))
    verdict = evaluate(state, s.deployment("web", 1, spec=spec))
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"])
    assert "would preempt 1 lower-priority pod" in verdict.reasons[0].summary


def test_preemption_cannot_clear_a_zone_held_by_pods_on_other_nodes():
    # differential seed 36: SelectVictimsOnNode removes only the candidate node's pods. Two low-priority
    # app=batch pods hold zone a from two nodes: on either node the other one still repels the pod.
    low = s.pod_spec([s.container(requests={"cpu": "100m"})], priority=-10)
    state = state_from_objects([node("a1"), node("a2"), priority_class("high", 1000),
                                s.pod("batch-1", "default", "a1", spec=low, labels={"app": "batch"}),
                                s.pod("batch-2", "default", "a2", spec=low, labels={"app": "batch"})])
    spec = s.pod_spec([s.container(requests={"cpu": "100m"})], priorityClassName="high",
                      affinity=anti({"matchLabels": {"app": "batch"}}, key=ZONE))
    verdict = evaluate(state, s.deployment("web", 2, spec=spec))
    assert (verdict.pending, verdict.codes) == (2, ["POD_ANTI_AFFINITY"])
    # One holder only: its node is a candidate; once it is preempted the whole zone is free.
    single = state_from_objects([node("a1"), node("a2"), priority_class("high", 1000),
                                 s.pod("batch-1", "default", "a1", spec=low, labels={"app": "batch"})])
    assert evaluate(single, s.deployment("web", 2, spec=spec)).codes == ["PREEMPTION"]


def test_preemption_keeps_a_node_whose_affinity_the_workloads_own_bound_pods_satisfy():
    # differential seed 108 (shrunk; kube-scheduler bound all 3): node a, 4 CPU, runs "buddy" (app=web,
    # priority -10, 500m) and "big" (priority 0, 2400m): 1100m free. web (priority 0) 3 x 375m with required
    # podAffinity app=web on the hostname. Two bind next to buddy; the third fails on CPU. SelectVictimsOnNode
    # removes buddy (the only lower-priority pod) and re-runs the filters: the affinity still holds through
    # the two web pods already bound there, so buddy is preempted and the third binds (1100 + 500 >= 1125).
    buddy = s.pod_spec([s.container(requests={"cpu": "500m"})], priority=-10)
    big = s.pod_spec([s.container(requests={"cpu": "2400m"})], priority=0)
    state = state_from_objects([node("a"), s.pod("buddy", "default", "a", spec=buddy, labels={"app": "web"}),
                                s.pod("big", "default", "a", spec=big, labels={"app": "big"})])
    spec = s.pod_spec([s.container(requests={"cpu": "375m"})],
                      affinity=affinity({"matchLabels": {"app": "web"}}, key=HOST))
    verdict = evaluate(state, s.deployment("web", 3, spec=spec))
    assert (verdict.verdict, verdict.schedulable, verdict.pending, verdict.codes) == ("warn", 3, 0, ["PREEMPTION"])
    assert "1 pod fits only by preemption: would preempt 1 lower-priority pod" in verdict.reasons[0].summary
    # Pods that do not match their own term need buddy itself: its node is no candidate (differential F3).
    other = s.pod_spec([s.container(requests={"cpu": "375m"})],
                       affinity=affinity({"matchLabels": {"app": "web"}}, key=HOST))
    lone = evaluate(state, s.deployment("api", 3, spec=other, labels={"app": "api"}))
    assert (lone.schedulable, lone.pending) == (2, 1) and "PREEMPTION" not in lone.codes


def test_pods_that_need_preemption_are_placed_after_the_ones_that_fit_and_lean_on_them():
    # differential seed 108 (unshrunk; kube-scheduler bound all 10 on one node): the same node, web now of
    # priority 1000, 10 x 375m. Two bind at once next to buddy; the other 8 each preempt: with every
    # lower-priority pod of the node gone (buddy AND big, priority 0), the two web pods already bound keep
    # the affinity, and 4000m hold 10 x 375m. Neither victim can be reprieved (3750 + 500 or + 2400 > 4000).
    buddy = s.pod_spec([s.container(requests={"cpu": "500m"})], priority=-10)
    big = s.pod_spec([s.container(requests={"cpu": "2400m"})], priority=0)
    state = state_from_objects([node("a"), s.pod("buddy", "default", "a", spec=buddy, labels={"app": "web"}),
                                s.pod("big", "default", "a", spec=big, labels={"app": "big"}),
                                priority_class("high", 1000)])
    spec = s.pod_spec([s.container(requests={"cpu": "375m"})], priorityClassName="high",
                      affinity=affinity({"matchLabels": {"app": "web"}}, key=HOST))
    verdict = evaluate(state, s.deployment("web", 10, spec=spec))
    assert (verdict.verdict, verdict.schedulable, verdict.pending, verdict.codes) == ("warn", 10, 0, ["PREEMPTION"])
    assert "8 pods fit only by preemption: would preempt 2 lower-priority pods" in verdict.reasons[0].summary
    # 11 do not fit even with both gone: 10 bind, 1 stays Pending.
    eleven = evaluate(state, s.deployment("web", 11, spec=spec))
    assert (eleven.schedulable, eleven.pending) == (10, 1)



def test_preemption_is_played_pod_by_pod_so_spread_sees_the_pods_bound_before():
    # differential seed 1159 (shrunk; kube-scheduler bound all 4): web 4 x 1500m, priority 1000, zone spread
    # maxSkew 1. Zone b (node b1, 8 CPU) is repelled by "guard" (priority 0, anti-affinity app=web on the zone);
    # zone c: c0 (2 CPU, empty) and c3 (2 CPU, "filler" of priority -10 takes 600m: 1400m free).
    # Pod 1 binds to c0. Pod 2 fits nowhere: on c3 (filler gone) the spread would be c=2, b=0, so only b1 is
    # a candidate: guard is preempted. Pod 3 binds to b1 (b=2, c=1). Pod 4: b1 would skew 3-1; preempting
    # filler on c3 now keeps the skew at 0. All 4 bind; 2 pods are preempted.
    guard = s.pod_spec([s.container(requests={"cpu": "100m"})], priority=0,
                       affinity=anti({"matchLabels": {"app": "web"}}, key=ZONE))
    filler = s.pod_spec([s.container(requests={"cpu": "600m"})], priority=-10)
    two = {**BIG, "cpu": "2"}
    state = state_from_objects([node("c0", zone="c", allocatable=two), node("c3", zone="c", allocatable=two),
                                node("b1", zone="b", allocatable={**BIG, "cpu": "8"}), priority_class("high", 1000),
                                s.pod("guard", "default", "b1", spec=guard, labels={"app": "guard"}),
                                s.pod("filler", "default", "c3", spec=filler, labels={"app": "filler"})])
    spec = s.pod_spec([s.container(requests={"cpu": "1500m"})], priorityClassName="high",
                      topologySpreadConstraints=spread())
    verdict = evaluate(state, s.deployment("web", 4, spec=spec))
    assert (verdict.verdict, verdict.schedulable, verdict.pending) == ("warn", 4, 0)
    assert "3 pods fit only by preemption: would preempt 2 lower-priority pods" in verdict.reasons[0].summary


def test_preemption_picks_the_node_whose_highest_victim_has_the_lowest_priority():
    # pickOneNodeForPreemption (preemption.go): after PDB violations, the node whose most important victim has
    # the lowest priority wins, before the number of victims. One pod of 3 CPU: node a (4 CPU) runs two
    # 1.5 CPU pods of priority -10, both must go (1 CPU free, 2.5 with one gone); node b (4 CPU) one 3.5 CPU
    # pod of priority -5. kube-scheduler evicts the two on a rather than the one on b.
    state = state_from_objects([node("a"), node("b"), priority_class("high", 1000)] + [
        s.pod(name, "default", where, spec=s.pod_spec([s.container(requests={"cpu": cpu})], priority=prio),
              labels={"app": name})
        for name, where, cpu, prio in (("a-1", "a", "1500m", -10), ("a-2", "a", "1500m", -10),
                                       ("b-1", "b", "3500m", -5))])
    spec = s.pod_spec([s.container(requests={"cpu": "3"})], priorityClassName="high")
    verdict = evaluate(state, s.deployment("urgent", 1, spec=spec))
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"])
    assert "1 pod fits only by preemption: would preempt 2 lower-priority pods" in verdict.reasons[0].summary
    # A second pod then preempts b-1 on b: 3 victims for 2 pods.
    both = evaluate(state, s.deployment("urgent", 2, spec=spec))
    assert (both.pending, "would preempt 3 lower-priority pods" in both.reasons[0].summary) == (0, True)
