"""placement.py behaviours that the end-to-end tests left unpinned, with worked numbers.

The spread figures follow PodTopologySpread's filter (podtopologyspread/filtering.go, v1.33):
a node passes when ``count(its zone) + 1 - min(count over zones) <= maxSkew``. The volume
figures follow the CSI volume limit filter (nodevolumelimits/csi.go): a pod that attaches
no new volume passes whatever the node's attachment count.
"""

from __future__ import annotations

import pytest

from tests import synthetic as s
from webhook.engine import placement
from webhook.engine.constraints import PodConstraints
from webhook.engine.evaluate import evaluate
from webhook.engine.placement import LazyOutcomes, RoomMap, current_reserved_sums, place
from webhook.engine.requests import Resources
from webhook.engine.scheduling import PodPlacementRules
from webhook.state.snapshot import state_from_objects

SEVENTEEN = {"cpu": "4", "memory": "8Gi", "pods": "17"}     # kubelet maxPods 17: 17 small pods per node
SMALL = Resources(10, 16 * 2**20)
WEB = {"app": "web"}


def _spread_rules() -> PodPlacementRules:
    spec = s.pod_spec([s.container(requests={"cpu": "10m", "memory": "16Mi"})],
                      topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                                  "whenUnsatisfiable": "DoNotSchedule",
                                                  "labelSelector": {"matchLabels": WEB}}])
    return PodPlacementRules.from_pod_spec(spec, WEB, constraints=PodConstraints.from_pod_spec(spec, "default", WEB))


def _one_small_zone(zone_b_nodes: int):
    """One node in zone a, ``zone_b_nodes`` in zone b, 17 pods of room each, nothing running."""
    nodes = [s.node("a-0", instance_type=None, zone="us-east-1a", allocatable=SEVENTEEN)]
    nodes += [s.node(f"b-{i}", instance_type=None, zone="us-east-1b", allocatable=SEVENTEEN)
              for i in range(zone_b_nodes)]
    return state_from_objects(nodes)


def test_spread_pods_are_placed_one_at_a_time_up_to_the_budget():
    # 5 nodes x 80,000 pods = 400,000 node checks: exactly SEQUENTIAL_BUDGET, still played pod by pod.
    # Zone a (17 pods of room) fills to 17 while zone b keeps pace; then b may reach 17 + 1 = 18 (skew 1):
    # 17 + 18 = 35 pods, not the 17 + 4 x 17 = 85 the nodes hold.
    assert placement.SEQUENTIAL_BUDGET == 400_000
    state = _one_small_zone(4)
    result = place(RoomMap(state), _spread_rules(), SMALL, False, 80_000)
    assert result.placed == 35
    per_zone = {"a": 0, "b": 0}
    for name, count in result.placed_per_node().items():
        per_zone[name[0]] += count
    assert per_zone == {"a": 17, "b": 18}


def test_past_the_budget_each_node_is_judged_once_optimistically():
    # 7 nodes x 57,143 pods = 400,001 node checks: one more than the budget. Each node is judged once against
    # the pods already there (none): every node takes its 17, 7 x 17 = 119; never a false deny from the budget.
    state = _one_small_zone(6)
    result = place(RoomMap(state), _spread_rules(), SMALL, False, 57_143)
    assert result.placed == 119


def test_the_one_at_a_time_loop_places_no_more_than_wanted():
    # Three spread pods over zones a and b: a, b, then either (skew 1): 3 placed, 3 on the nodes.
    state = _one_small_zone(4)
    result = place(RoomMap(state), _spread_rules(), SMALL, False, 3)
    assert (result.wanted, result.placed, result.pending) == (3, 3, 0)
    assert sum(result.placed_per_node().values()) == 3


def test_pods_without_volumes_ignore_a_node_whose_attachments_are_all_taken():
    # CSINode allocatable count 0: no EBS volume can attach to a, but a pod that attaches none passes
    # NodeVolumeLimits. ``place`` without new_volumes means pods without volumes.
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN), s.csinode("a", 0)])
    result = place(RoomMap(state), PodPlacementRules(), SMALL, False, 2)
    assert result.placed_per_node() == {"a": 2}


def test_a_waiting_pod_with_constraints_binds_where_attachments_are_all_taken():
    # A Pending pod with a host port (a pod-level constraint: placed by the scan, not the heaps) and no volume.
    ported = s.pod_spec([dict(s.container(requests={"cpu": "10m"}), ports=[{"containerPort": 80, "hostPort": 8080}])])
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN), s.csinode("a", 0),
                                s.pod("w", spec=ported)])
    assert [(pod.name, node) for pod, node in RoomMap(state).placed] == [("w", "a")]


def _fleet(count: int):
    return state_from_objects([s.node(f"n-{i:02d}", instance_type=None, allocatable=SEVENTEEN) for i in range(count)])


def test_plain_decisions_on_48_nodes_or_more_read_the_room_index():
    # The index is the accelerator for large clusters (bench/): from 48 nodes a plain placement builds a
    # NodeRoom only for the nodes that take pods; below that, the loop over every node is cheaper.
    assert placement.FAST_PLACEMENT is True and placement.FAST_PLACEMENT_MIN_NODES == 48
    big = RoomMap(_fleet(48))
    result = place(big, PodPlacementRules(), SMALL, False, 20)
    assert isinstance(result.per_node, LazyOutcomes) and sorted(big.touched) == ["n-00", "n-01"]
    assert result.placed_per_node() == {"n-00": 17, "n-01": 3}
    small = RoomMap(_fleet(47))
    result = place(small, PodPlacementRules(), SMALL, False, 20)
    assert not isinstance(result.per_node, LazyOutcomes) and len(small.rooms) == 47
    assert result.placed_per_node() == {"n-00": 17, "n-01": 3}


@pytest.mark.parametrize("rules", [
    PodPlacementRules.from_pod_spec({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n-30"]}]}]}}}}),
    PodPlacementRules.from_pod_spec({"nodeName": "n-30"}),
], ids=["matchFields", "nodeName"])
def test_rules_on_the_node_name_are_judged_per_node_on_a_large_cluster(rules):
    # 60 alike nodes form one group for the index; a rule on metadata.name must still pick out n-30 alone.
    result = place(RoomMap(_fleet(60)), rules, SMALL, False, 20)
    assert result.placed == 17 and result.placed_per_node() == {"n-30": 17}
    assert result.excluded == {next(iter(result.excluded)): 59}


def test_lazy_outcomes_read_like_the_dict_of_every_eligible_node():
    # Nodes that took pods are known at once; the rest are built on first read, in the loop's order
    # (most room first, then name): 18 pods fill n-00 (17) and put 1 on n-01.
    state = _fleet(50)
    result = place(RoomMap(state), PodPlacementRules(), SMALL, False, 18)
    per_node = result.per_node
    assert isinstance(per_node, LazyOutcomes)
    assert per_node["n-00"].placed == 17 and per_node._all is None     # a node that took pods: nothing else built
    assert len(per_node) == 50 and per_node.placed_items() == [("n-00", 17), ("n-01", 1)]
    assert per_node["n-07"].placed == 0 and per_node["n-07"].free_pods_before == 17
    assert per_node.get("n-09").limit == "POD_LIMIT_REACHED" and per_node.get("missing", "none") == "none"
    assert "n-49" in per_node and "missing" not in per_node
    names = [f"n-{i:02d}" for i in range(50)]
    assert list(per_node) == names and list(per_node.keys()) == names
    assert [o.placed for o in per_node.values()][:3] == [17, 1, 0]
    assert per_node["n-01"].free_pods_before == 17 and per_node["n-01"].room.pods == 16
    del per_node["n-49"]
    per_node["extra"] = per_node["n-48"]
    assert len(per_node) == 50 and "n-49" not in per_node and per_node["extra"] is per_node["n-48"]


def test_the_reserved_sums_are_brought_up_to_the_reservations_before_use():
    # Two admitted workloads hold 3 and 2 pods of n-00: the sums a decision reads are those of the store now.
    state = _fleet(2)
    assert current_reserved_sums(state) is None           # nothing ever reserved: nothing kept
    state.reserve(("Deployment", "default", "a"), {"n-00": 3}, Resources(100, 0), True)
    state.reserve(("Deployment", "default", "b"), {"n-00": 2, "n-01": 1}, Resources(50, 0), False)
    sums = current_reserved_sums(state)
    assert sums.sums == {"n-00": (Resources(400, 0), 5, 3), "n-01": (Resources(50, 0), 1, 0)}
    del state.reservations[("Deployment", "default", "a")]
    assert current_reserved_sums(state).sums == {"n-00": (Resources(100, 0), 2, 0), "n-01": (Resources(50, 0), 1, 0)}
    # A decision about a third workload sees 17 - 2 = 15 pods of room left on n-00.
    verdict = evaluate(state, s.small_web("c", 40))
    assert verdict.placement.placed_per_node() == {"n-00": 15, "n-01": 16}


def test_a_waiting_pod_without_volumes_leaves_the_attachments_to_the_new_pods():
    # CSINode count 2 on a; a Pending pod with no volume binds there first. Pods that each attach one new
    # EBS volume still find 2 attachments: 2 fit (the 17-pod limit is far).
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN), s.csinode("a", 2),
                                s.pod("w", spec=s.pod_spec([s.container(requests={"cpu": "10m"})]))])
    rooms = RoomMap(state)
    assert [(pod.name, node) for pod, node in rooms.placed] == [("w", "a")]
    result = place(rooms, PodPlacementRules(), SMALL, False, 5, new_volumes=1)
    assert result.placed == 2 and result.per_node["a"].limit == "EBS_ATTACH_LIMIT"
    assert result.per_node["a"].room.volumes == 0          # both attachments are spent by the placed pods


def test_pods_with_volumes_on_a_node_without_a_csinode_limit():
    # No CSINode for a: no attachment limit is known, so only the 17 pods stop volume-attaching pods there.
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN)])
    result = place(RoomMap(state), PodPlacementRules(), SMALL, False, 20, new_volumes=1)
    assert (result.placed, result.per_node["a"].limit, result.per_node["a"].room.volumes) == (17, "POD_LIMIT_REACHED",
                                                                                            None)


def test_a_nodes_room_is_one_object_before_and_after_every_room_is_built():
    state = _fleet(3)
    rooms = RoomMap(state)
    early = rooms.room("n-01")                 # built alone, on first use
    assert rooms.rooms["n-01"] is early and rooms.room("n-01") is early
    assert rooms.room("n-02") is rooms.rooms["n-02"]      # asked for after every room was built


def test_a_waiting_pod_with_constraints_avoids_a_prefer_no_schedule_taint_by_score():
    # As test_scoring's PreferNoSchedule case, for a pod placed by the scan (it has a host port): a (tainted,
    # empty) scores 97 + 98 = 195 on resources, b (1 CPU busy) (72 + 95) // 2 + 86 = 169; TaintToleration x 3
    # adds 0 to a and 300 to b: the pod binds on b.
    big = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    ported = s.pod_spec([dict(s.container(requests={"cpu": "100m"}), ports=[{"containerPort": 80, "hostPort": 80}])])
    state = state_from_objects([
        s.node("a", instance_type=None, allocatable=big,
               taints=[{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]),
        s.node("b", instance_type=None, allocatable=big),
        s.pod("busy", node_name="b", spec=s.pod_spec([s.container(requests={"cpu": "1"})])),
        s.pod("w", spec=ported)])
    assert [(pod.name, node) for pod, node in RoomMap(state).placed] == [("w", "b")]


def test_pods_placed_one_at_a_time_are_scored_with_the_default_requests():
    # BestEffort pods with a zone spread (placed one at a time): LeastAllocated counts each as 100m / 200Mi
    # (scored), so after the first pod on a, b scores higher: (3900 * 100 // 4000 = 97) < 100 on cpu. They
    # alternate a, b, a, b rather than piling onto a.
    spec = s.pod_spec([s.container()], topologySpreadConstraints=[
        {"maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": WEB}}])
    rules = PodPlacementRules.from_pod_spec(spec, WEB, constraints=PodConstraints.from_pod_spec(spec, "default", WEB))
    state = state_from_objects([s.node(n, instance_type=None, allocatable=SEVENTEEN) for n in ("a", "b")])
    result = place(RoomMap(state), rules, Resources(0, 0), False, 4, scored=Resources(100, 200 * 2**20))
    assert result.placed_per_node() == {"a": 2, "b": 2}


def test_pod_level_constraints_are_obeyed_on_a_large_cluster():
    # A host port allows one pod per node (NodePorts): 100 replicas on 60 nodes place 60, even where the
    # index would otherwise serve the plain case.
    ported = s.pod_spec([dict(s.container(requests={"cpu": "10m"}), ports=[{"containerPort": 80, "hostPort": 80}])])
    rules = PodPlacementRules.from_pod_spec(ported, WEB,
                                            constraints=PodConstraints.from_pod_spec(ported, "default", WEB))
    result = place(RoomMap(_fleet(60)), rules, SMALL, False, 100)
    assert result.placed == 60 and set(result.placed_per_node().values()) == {1}


def test_pods_attaching_two_volumes_each_spend_two_attachments():
    # CSINode count 4: pods with two new EBS volumes each fit 4 // 2 = 2, and leave 0 attachments.
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN), s.csinode("a", 4)])
    result = place(RoomMap(state), PodPlacementRules(), SMALL, False, 5, new_volumes=2)
    assert (result.placed, result.per_node["a"].room.volumes) == (2, 0)


@pytest.mark.parametrize(("allocatable", "extended", "new_volumes", "csinode"), [
    ({"cpu": "170m", "memory": "8Gi", "pods": "17"}, (), 0, None),                     # 170m // 10m = 17
    ({"cpu": "4", "memory": "272Mi", "pods": "17"}, (), 0, None),                      # 272Mi // 16Mi = 17
    ({"cpu": "4", "memory": "8Gi", "pods": "17", "example.com/dongle": "34"}, (("example.com/dongle", 2),), 0, None),
    ({"cpu": "4", "memory": "8Gi", "pods": "17"}, (), 1, 17),                          # 17 attachments, 1 each
])
def test_on_a_tie_the_pod_limit_is_named_before_the_resource(allocatable, extended, new_volumes, csinode):
    # Every limit stops the node at exactly 17 pods: LIMIT_ORDER names the kubelet's maxPods first.
    objects = [s.node("a", instance_type=None, allocatable=allocatable)]
    objects += [s.csinode("a", csinode)] if csinode else []
    result = place(RoomMap(state_from_objects(objects)), PodPlacementRules(), SMALL, False, 20,
                   new_volumes=new_volumes, extended=extended)
    assert (result.placed, result.per_node["a"].limit) == (17, "POD_LIMIT_REACHED")


def test_extended_resources_divide_by_the_amount_each_pod_asks():
    # 5 dongles, 2 per pod: 5 // 2 = 2 pods, stopped by INSUFFICIENT_EXTENDED_RESOURCE naming the resource.
    node = s.node("a", instance_type=None, allocatable={**SEVENTEEN, "example.com/dongle": "5"})
    result = place(RoomMap(state_from_objects([node])), PodPlacementRules(), SMALL, False, 20,
                   extended=(("example.com/dongle", 2),))
    outcome = result.per_node["a"]
    assert (result.placed, outcome.limit) == (2, "INSUFFICIENT_EXTENDED_RESOURCE")
    assert outcome.short_of == "example.com/dongle"


@pytest.mark.parametrize(("resource", "request_"), [("cpu", Resources(1, 0, 0)), ("memory", Resources(0, 1, 0)),
                                                   ("ephemeral-storage", Resources(0, 0, 1))])
def test_a_request_of_one_unit_counts_on_the_loop_path_too(resource, request_):
    # 5 units free (5m of CPU, 5 bytes): pods asking 1 unit fit 5 of the 17 pod slots.
    alloc = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "20Gi", "pods": "17", resource: "5m" if resource == "cpu"
             else "5"}
    result = place(RoomMap(state_from_objects([s.node("a", instance_type=None, allocatable=alloc)])),
                   PodPlacementRules(), request_, False, 20)
    assert result.placed == 5


def test_ten_attachments_hold_five_pods_of_two_volumes():
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN), s.csinode("a", 10)])
    result = place(RoomMap(state), PodPlacementRules(), SMALL, False, 20, new_volumes=2)
    assert (result.placed, result.per_node["a"].limit) == (5, "EBS_ATTACH_LIMIT")


def test_an_extended_resource_taken_by_a_waiting_pod_leaves_the_others_whole():
    # A Pending pod takes 1 of 5 dongles; the new pods ask widgets (3 of them): all 3 fit.
    alloc = {**SEVENTEEN, "example.com/dongle": "5", "example.com/widget": "3"}
    node = s.node("a", instance_type=None, allocatable=alloc)
    waiting = s.pod("w", spec=s.pod_spec([s.container(requests={"cpu": "10m", "example.com/dongle": "1"})]))
    rooms = RoomMap(state_from_objects([node, waiting]))
    assert [n for _, n in rooms.placed] == ["a"]
    result = place(rooms, PodPlacementRules(), SMALL, False, 5, extended=(("example.com/widget", 1),))
    assert result.placed == 3


def test_a_workloads_own_promise_does_not_block_its_next_decision_on_a_large_cluster():
    # 50 nodes of 17 pods; web's earlier decision holds all 17 of n-00. Deciding about web again, its own
    # promise is room for it: the 17 pods go to n-00 again (first by name among the roomiest).
    state = _fleet(50)
    state.reserve(("Deployment", "default", "web"), {"n-00": 17}, SMALL, False)
    verdict = evaluate(state, s.deployment("web", 17, "default",
                                           s.pod_spec([s.container(requests={"cpu": "10m", "memory": "16Mi"})])))
    assert verdict.placement.placed_per_node() == {"n-00": 17}


def test_waiting_pods_of_lower_priority_are_skipped_not_the_ones_after_them():
    # The scheduling queue pops higher priority first: with new pods of priority 5, a waiting pod of priority 0
    # queues behind them, one of priority 10 still binds first (whatever order the state lists them in).
    low = s.pod("low", spec=s.pod_spec([s.container(requests={"cpu": "100m"})], priority=0))
    high = s.pod("high", spec=s.pod_spec([s.container(requests={"cpu": "100m"})], priority=10))
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN), low, high])
    assert [pod.name for pod, _ in RoomMap(state, priority=5).placed] == ["high"]


def test_the_workloads_own_waiting_pods_are_skipped_not_the_others():
    own = s.pod("web-1", spec=s.pod_spec([s.container(requests={"cpu": "100m"})]),
                owner=("apps/v1", "ReplicaSet", "web-rs"))
    other = s.pod("zz-other", spec=s.pod_spec([s.container(requests={"cpu": "100m"})]))
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata("web-rs", "default", owner=("apps/v1", "Deployment", "web")), "spec": {"replicas": 1}}
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN), rs, own, other])
    assert [pod.name for pod, _ in RoomMap(state, ignore_owner=("Deployment", "default", "web")).placed] == ["zz-other"]


def test_a_waiting_pod_repelled_by_a_running_pods_anti_affinity_binds_elsewhere():
    # Symmetric InterPodAffinity: "guard" on a repels app=w on the hostname. w (no rules of its own) would score
    # higher on a (b runs a 1 CPU pod) but binds on b.
    repel = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "w"}}}]}}
    state = state_from_objects([
        s.node("a", instance_type=None, allocatable=SEVENTEEN), s.node("b", instance_type=None, allocatable=SEVENTEEN),
        s.pod("guard", node_name="a", labels={"app": "guard"},
              spec=s.pod_spec([s.container(requests={"cpu": "10m"})], affinity=repel)),
        s.pod("busy", node_name="b", spec=s.pod_spec([s.container(requests={"cpu": "1"})])),
        s.pod("w", labels={"app": "w"}, spec=s.pod_spec([s.container(requests={"cpu": "10m"})]))])
    assert [(pod.name, node) for pod, node in RoomMap(state).placed] == [("w", "b")]


def test_a_scanned_waiting_pod_passes_a_full_node_and_ties_go_to_the_first_name():
    # Pods with a host port are placed by the scan: a is full (no pod slot), b and c are alike: b (first name).
    full = {"cpu": "4", "memory": "8Gi", "pods": "1"}
    ported = s.pod_spec([dict(s.container(requests={"cpu": "100m"}), ports=[{"containerPort": 80, "hostPort": 80}])])
    state = state_from_objects([
        s.node("a", instance_type=None, allocatable=full), s.node("b", instance_type=None, allocatable=SEVENTEEN),
        s.node("c", instance_type=None, allocatable=SEVENTEEN),
        s.pod("filler", node_name="a", spec=s.pod_spec([s.container(requests={"cpu": "10m"})])),
        s.pod("w", spec=ported)])
    assert [(pod.name, node) for pod, node in RoomMap(state).placed] == [("w", "b")]


def test_a_per_node_cap_above_the_nodes_own_fit_changes_nothing():
    # caps (branch ENIs): 30 allowed on a, but its 17 pod slots stop it first.
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN)])
    result = place(RoomMap(state), PodPlacementRules(), SMALL, False, 20, caps={"a": (30, "POD_ENI_EXHAUSTED")})
    assert (result.placed, result.per_node["a"].limit) == (17, "POD_LIMIT_REACHED")


def test_room_held_for_admitted_pods_counts_in_the_scores_too():
    # LeastAllocated scores a node's requests including what reservations hold (their pods will run there):
    # a holds 2 x 1 CPU promised, b nothing; a waiting 100m pod binds on b.
    state = state_from_objects([s.node("a", instance_type=None, allocatable=SEVENTEEN),
                                s.node("b", instance_type=None, allocatable=SEVENTEEN),
                                s.pod("w", spec=s.pod_spec([s.container(requests={"cpu": "100m"})]))])
    state.reserve(("Deployment", "default", "held"), {"a": 2}, Resources(1000, 0), False)
    assert [node for _, node in RoomMap(state).placed] == ["b"]


def test_extended_resources_taken_by_several_pods_at_once_are_all_spent():
    # 10 dongles, 2 per pod: three pods take 6, so a second placement on the same rooms finds 4: two pods.
    node = s.node("a", instance_type=None, allocatable={**SEVENTEEN, "example.com/dongle": "10"})
    rooms = RoomMap(state_from_objects([node]))
    dongles = (("example.com/dongle", 2),)
    assert place(rooms, PodPlacementRules(), SMALL, False, 3, extended=dongles).placed == 3
    assert rooms.room("a").extended_free("example.com/dongle") == 4
    assert place(rooms, PodPlacementRules(), SMALL, False, 5, extended=dongles).placed == 2
