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
