"""The default profile's resource scores, worked by hand from noderesources/{least,balanced}_allocated.go."""

from tests import synthetic as s
from webhook.engine.placement import RoomMap
from webhook.engine.requests import Resources
from webhook.engine.scoring import balanced_allocation, least_allocated, node_score
from webhook.state.snapshot import state_from_objects

ALLOC = Resources(1930, 3469680640)          # t3.medium allocatable: 1930m, 3388360Ki


def test_least_allocated_counts_missing_requests_as_100m_and_200mi():
    # Node 1 of the motivating cluster: scored usage 625m / 750Mi; the pod asks 10m and no memory (200Mi).
    # cpu (1930 - 635) * 100 // 1930 = 67; memory (3469680640 - 996147200) * 100 // 3469680640 = 71.
    assert least_allocated(ALLOC, Resources(625, 786432000), Resources(10, 209715200)) == (67 + 71) // 2


def test_balanced_allocation_uses_real_requests():
    # cpu 635 / 1930 = 0.32902, memory 367001600 / 3469680640 = 0.10577: std 0.11162 -> int(88.84) = 88.
    assert balanced_allocation(ALLOC, Resources(625, 367001600), Resources(10, 0)) == 88
    assert balanced_allocation(ALLOC, Resources(625, 367001600), Resources(0, 0)) == 0    # BestEffort


def test_the_first_waiting_pod_goes_to_the_higher_score():
    # Node 2 (525m / 680Mi scored, 280Mi real): LeastAllocated (72 + 73) // 2 = 72, Balanced 90: 162.
    # Node 1: 69 + 88 = 157. The scheduler binds the pod to node 2.
    assert node_score(ALLOC, Resources(625, 367001600), Resources(625, 786432000),
                      Resources(10, 0), Resources(10, 209715200)) == 157
    assert node_score(ALLOC, Resources(525, 293601280), Resources(525, 713031680),
                      Resources(10, 0), Resources(10, 209715200)) == 162
    state = state_from_objects(s.two_t3_medium_cluster()["items"]
                               + [s.pod("a-00", spec=s.pod_spec([s.container(requests={"cpu": "10m"})]))])
    assert [node for _, node in RoomMap(state).placed] == ["ip-10-0-2-23.ec2.internal"]


def test_lower_priority_waiting_pods_queue_behind_the_new_pods():
    spec = s.pod_spec([s.container(requests={"cpu": "10m"})], priority=5)
    state = state_from_objects(s.two_t3_medium_cluster()["items"] + [s.pod("w", spec=spec)])
    assert len(RoomMap(state, priority=10).placed) == 0
    assert len(RoomMap(state, priority=5).placed) == 1


def _brute_force(state, priority=None):
    """One pod at a time over every node: the scheduler's loop written plainly, as the oracle for the heaps."""
    from webhook.engine.placement import NodeRoom
    from webhook.engine.scheduling import PodPlacementRules, ineligibility
    rooms = {name: NodeRoom.of(state, node) for name, node in sorted(state.nodes.items())}
    placed = []
    for pod in sorted(state.pending.values(), key=lambda p: (-p.priority, p.key)):
        if priority is not None and pod.priority < priority:
            continue
        rules = (pod.rules or PodPlacementRules()).node_only
        best = None
        for name, room in rooms.items():
            if ineligibility(room.node, rules) or room.fit(pod.requests, pod.uses_ip, 0, pod.extended)[0] < 1:
                continue
            score = room.score(pod.requests, pod.score_requests)
            if best is None or score > best[0]:
                best = (score, name)
        if best:
            rooms[best[1]].take(1, pod.requests, pod.uses_ip, scored=pod.score_requests, extended=pod.extended)
            placed.append((pod.name, best[1]))
    return placed


def test_the_waiting_pod_heaps_bind_exactly_where_a_full_scan_would():
    import random
    for seed in range(12):
        rng = random.Random(seed)
        objects = []
        for i in range(rng.randint(2, 7)):
            alloc = {"cpu": f"{rng.choice([1, 2, 4])}", "memory": f"{rng.choice([2, 4, 8])}Gi", "pods": "20"}
            taints = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}] if rng.random() < 0.2 else []
            objects.append(s.node(f"n{i}", instance_type=None, allocatable=alloc, taints=taints))
        shapes = [({"cpu": "100m"}), ({"cpu": "250m", "memory": "512Mi"}), ({"memory": "1Gi"}), ({})]
        for j in range(rng.randint(5, 60)):
            requests = rng.choice(shapes)
            spec = s.pod_spec([s.container(requests=requests or None)], priority=rng.choice([0, 0, 10]))
            if rng.random() < 0.2:
                spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
            bound_to = f"n{rng.randrange(len(objects))}" if rng.random() < 0.3 else None
            objects.append(s.pod(f"p{j:03d}", node_name=bound_to, spec=spec))
        state = state_from_objects(objects)
        heaps = [(pod.name, node) for pod, node in RoomMap(state).placed]
        assert heaps == _brute_force(state), seed


def test_prefer_no_schedule_taints_and_preferred_affinity_weigh_in_as_the_default_profile():
    big = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    soft = [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]
    busy = s.pod("busy", node_name="b", spec=s.pod_spec([s.container(requests={"cpu": "1"})]))
    nodes = [
        s.node("a", instance_type=None, allocatable=big, taints=soft),
        s.node("b", instance_type=None, allocatable=big),
    ]
    pod = s.pod("w", spec=s.pod_spec([s.container(requests={"cpu": "100m"})]))
    # Resources alone: a 97 + 98 = 195 beats b (72 + 95) // 2 + 86 = 169. TaintToleration x3: a has the one
    # intolerable PreferNoSchedule taint (normalized 100 - 100 = 0), b 100: b scores 169 + 300, a 195.
    assert [n for _, n in RoomMap(state_from_objects(nodes + [busy, pod])).placed] == ["b"]
    tolerant = s.pod("w", spec=s.pod_spec([s.container(requests={"cpu": "100m"})],
                                          tolerations=[{"key": "spot", "operator": "Exists"}]))
    assert [n for _, n in RoomMap(state_from_objects(nodes + [busy, tolerant])).placed] == ["a"]
    # NodeAffinity x2, preferred weight 1 on b: normalized a 0, b 100: b 169 + 300 + 200 vs a 195 + 300.
    prefers_b = s.pod(
        "w",
        spec=s.pod_spec(
            [s.container(requests={"cpu": "100m"})],
            tolerations=[{"key": "spot", "operator": "Exists"}],
            affinity={
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 1,
                            "preference": {
                                "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]
                            },
                        }
                    ]
                }
            },
        ),
    )
    assert [n for _, n in RoomMap(state_from_objects(nodes + [busy, prefers_b])).placed] == ["b"]


# ---- the score formulas at their edges (noderesources/least_allocated.go, balanced_allocation.go, --------
# ---- helper/normalize_score.go in v1.33.13), each number worked by hand from the Go source ------------------
from webhook.engine.scheduling import PodPlacementRules  # noqa: E402
from webhook.engine.scoring import Preferences, default_normalize, least_requested  # noqa: E402


def test_least_requested_score_follows_least_requested_score_in_go():
    assert least_requested(0, 0) == 0                  # capacity 0: 0
    assert least_requested(11, 10) == 0                # requested > capacity: 0
    assert least_requested(10, 10) == 0                # full: (10 - 10) * 100 / 10
    assert least_requested(0, 10) == 100
    assert least_requested(3, 10) == 70
    assert least_requested(1, 3) == 66                 # int64 division truncates: 200 / 3
    assert least_requested(9, 10) == 10


def test_least_allocated_adds_node_and_pod_requests_and_skips_a_resource_of_zero_capacity():
    # cpu (1000 - (200 + 300)) * 100 / 1000 = 50; memory (1000 - (100 + 0)) * 100 / 1000 = 90: (50 + 90) / 2 = 70.
    assert least_allocated(Resources(1000, 1000), Resources(200, 100), Resources(300, 0)) == 70
    # memory allocatable 0: "if allocable[i] == 0 { continue }", weightSum 1: cpu alone, 75 (not (75 + 0) / 2).
    assert least_allocated(Resources(1000, 0), Resources(250, 0), Resources(0, 0)) == 75
    assert least_allocated(Resources(0, 1000), Resources(0, 250), Resources(0, 0)) == 75
    assert least_allocated(Resources(0, 0), Resources(5, 5), Resources(5, 5)) == 0    # weightSum 0: 0
    # the average truncates: (100 + 33) / 2 = 66 (33 = (3 - 2) * 100 / 3).
    assert least_allocated(Resources(10, 3), Resources(0, 2), Resources(0, 0)) == 66


def test_balanced_allocation_caps_each_fraction_at_one_and_scores_a_pod_with_one_request():
    alloc = Resources(1000, 1000)
    # cpu only requested: still scored (only cpu == 0 and memory == 0 is BestEffort). f 0.5 / 0: std 0.25 -> 75.
    assert balanced_allocation(alloc, Resources(0, 0), Resources(500, 0)) == 75
    assert balanced_allocation(alloc, Resources(0, 0), Resources(0, 500)) == 75
    # node used + pod: cpu (200 + 200) / 1000 = 0.4, memory (600 + 200) / 1000 = 0.8: std 0.2 -> 80.
    assert balanced_allocation(alloc, Resources(200, 600), Resources(200, 200)) == 80
    # cpu 3000 / 1000 capped at 1, memory 0: std 0.5 -> 50 (uncapped it would be 3 / 2 = 1.5 -> -50).
    assert balanced_allocation(alloc, Resources(2900, 0), Resources(100, 0)) == 50
    # one resource of zero allocatable: one fraction, std 0 -> 100.
    assert balanced_allocation(Resources(1000, 0), Resources(100, 0), Resources(100, 0)) == 100
    # int() truncates toward zero: f 0.333 / 0: std 0.16667 -> 83.33 -> 83.
    assert balanced_allocation(Resources(3, 1000), Resources(0, 0), Resources(1, 0)) == 83


def test_node_score_is_the_sum_of_both_plugins():
    alloc = Resources(1000, 1000)
    # LeastAllocated over the scored requests: cpu 50, memory 90 -> 70. Balanced over the real: 0.4 / 0.8 -> 80.
    assert node_score(alloc, Resources(200, 600), Resources(200, 100), Resources(200, 200), Resources(300, 0)) == 150


def test_default_normalize_score_as_helper_default_normalize_score():
    assert default_normalize({"a": 3, "b": 1, "c": 0}, False) == {"a": 100, "b": 33, "c": 0}
    assert default_normalize({"a": 3, "b": 1, "c": 0}, True) == {"a": 0, "b": 67, "c": 100}
    assert default_normalize({"a": 0, "b": 0}, True) == {"a": 100, "b": 100}     # maxCount 0, reverse
    assert default_normalize({"a": 0, "b": 0}, False) == {"a": 0, "b": 0}
    assert default_normalize({}, True) == {}


def _rules(**spec):
    return PodPlacementRules.from_pod_spec(s.pod_spec(**spec))


def _nodes(*objects):
    state = state_from_objects(list(objects))
    return [state.nodes[o["metadata"]["name"]] for o in objects]


SOFT = [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]


def test_preferences_weigh_taint_toleration_3_and_node_affinity_2():
    nodes = _nodes(s.node("a", instance_type=None, taints=SOFT), s.node("b", instance_type=None),
                   s.node("c", instance_type=None, taints=SOFT + [{"key": "x", "effect": "PreferNoSchedule"}]))
    prefs = Preferences(_rules(), nodes)
    assert prefs.active
    # raw intolerable counts a 1, b 0, c 2; reversed normalize: a 100 - 50 = 50, b 100, c 0; weight 3.
    assert prefs.bonus(["a", "b", "c"]) == {"a": 150, "b": 300, "c": 0}
    # only the feasible nodes are normalized: a's 1 is the maximum among a and b.
    assert prefs.bonus(["a", "b"]) == {"a": 0, "b": 300}
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 4, "preference": {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}},
        {"weight": 1, "preference": {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}},
    ]}}
    tolerant = _rules(tolerations=[{"operator": "Exists"}], affinity=preferred)
    prefs = Preferences(tolerant, nodes)
    # taints all tolerated: 0 everywhere, reversed -> 100 x 3; affinity a 4 -> 100, b 1 -> 25, c 0; weight 2.
    assert prefs.bonus(["a", "b", "c"]) == {"a": 300 + 200, "b": 300 + 50, "c": 300}


def test_preferences_are_inactive_when_equal_everywhere():
    nodes = _nodes(s.node("a", instance_type=None), s.node("b", instance_type=None))
    prefs = Preferences(_rules(), nodes)
    assert not prefs.active
    assert prefs.bonus(["a", "b"]) == {"a": 300, "b": 300}
    assert not Preferences(_rules(tolerations=[{"operator": "Exists"}]), _nodes(
        s.node("a", instance_type=None, taints=SOFT))).active
