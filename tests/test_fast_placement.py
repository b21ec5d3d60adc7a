"""The indexed placement (room_index.py) against the reference loop, on random clusters.

Every decision is taken twice on the same state: with ``placement.FAST_PLACEMENT`` (the
RoomIndex kept current across decisions and changes) and without it (the straightforward
loop over every node's NodeRoom). Verdicts, messages, reservations and every node's
outcome must be identical, also after pods, nodes, reservations and other objects
change between decisions (the index is updated, not rebuilt, for most of them).
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from tests import synthetic as s
from webhook.engine import placement
from webhook.engine.evaluate import evaluate
from webhook.engine.model import ClusterState
from webhook.engine.placement import RoomMap, place
from webhook.engine.requests import Resources
from webhook.engine.scheduling import PodPlacementRules
from webhook.state.snapshot import state_from_objects

TYPES = {"m5.large": ("1930m", "7220184Ki", "29"), "m5.xlarge": ("3920m", "15147204Ki", "58"),
         "c5.2xlarge": ("7910m", "14636096Ki", "58"), "t3.medium": ("1930m", "3388360Ki", "17"),
         "x9.unknown": ("3920m", "15147204Ki", "110")}
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


def random_node(rng: random.Random, name: str) -> dict:
    itype = rng.choice(list(TYPES))
    cpu, memory, pods = TYPES[itype]
    taints = (
        [
            {
                "key": "dedicated",
                "value": rng.choice(["gpu", "batch"]),
                "effect": rng.choice(["NoSchedule", "PreferNoSchedule"]),
            }
        ]
        if rng.random() < 0.15
        else []
    )
    labels = {"pool": rng.choice(["a", "b", "c"])} if rng.random() < 0.7 else {}
    return s.node(name, itype, rng.choice(ZONES),
                  allocatable={"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "18242267924"},
                  labels=labels, taints=taints, unschedulable=rng.random() < 0.05, ready=rng.random() > 0.05)


def random_spec(rng: random.Random, host_network: bool = False) -> dict:
    requests = {"cpu": rng.choice(["0", "10m", "100m", "250m", "500m", "1"]),
                "memory": rng.choice(["0", "32Mi", "128Mi", "512Mi", "1Gi"])}
    if rng.random() < 0.2:
        requests["ephemeral-storage"] = rng.choice(["1Gi", "4Gi"])
    extra = {}
    if rng.random() < 0.3:
        extra["nodeSelector"] = {"pool": rng.choice(["a", "b", "c"])}
    if rng.random() < 0.3:
        extra["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    if rng.random() < 0.2:
        extra["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In",
                                   "values": rng.sample(ZONES, 2)}]}]}}}
    return s.pod_spec([s.container(requests=requests)], host_network=host_network, **extra)


def random_cluster(rng: random.Random, nodes: int) -> tuple[ClusterState, list[str]]:
    state = ClusterState()
    state.apply(s.aws_node())
    names = [f"ip-10-0-{i // 200}-{i % 200}.ec2.internal" for i in range(nodes)]
    rng.shuffle(names)                       # the state's order is not name order
    for name in names:
        state.apply(random_node(rng, name))
        if rng.random() < 0.6:               # aws-node runs here; elsewhere its pod is still owed
            state.apply(s.pod(f"aws-node-{name}", "kube-system", name,
                              spec=s.pod_spec([s.container("aws-node", requests={"cpu": "25m"})], host_network=True),
                              owner=("apps/v1", "DaemonSet", "aws-node")))
    for i in range(nodes * rng.randint(2, 12)):
        node = rng.choice(names)
        spec = random_spec(rng, host_network=rng.random() < 0.1)
        spec.pop("nodeSelector", None)
        spec.pop("affinity", None)
        state.apply(s.pod(f"p-{i}", rng.choice(["default", "team"]), node, spec=spec,
                          owner=("apps/v1", "ReplicaSet", f"rs-{i % 7}")))
    return state, names


def verdict_view(verdict) -> tuple:
    placement_view = None
    if verdict.placement is not None:
        p = verdict.placement
        placement_view = (
            p.wanted,
            p.placed,
            list(p.excluded.items()),
            [
                (
                    name,
                    o.placed,
                    o.limit,
                    o.free_pods_before,
                    o.free_ips_before,
                    o.free_before,
                    o.free_volumes_before,
                    o.room.pods,
                    o.room.ips,
                    o.room.free,
                )
                for name, o in p.per_node.items()
            ],
            p.limits(),
            p.instance_types_unknown(),
        )
    return (verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending, verdict.message,
            verdict.reservation(), placement_view)


def both_ways(state: ClusterState, obj: dict, old: dict | None = None):
    placement.FAST_PLACEMENT = True
    try:
        fast = evaluate(state, obj, old)
        fast_view = verdict_view(fast)
    finally:
        placement.FAST_PLACEMENT = False
    try:
        reference = evaluate(state, obj, old)
        reference_view = verdict_view(reference)
    finally:
        placement.FAST_PLACEMENT = True
    return fast, fast_view, reference_view


def random_workload(rng: random.Random, i: int) -> dict:
    replicas = rng.choice([1, 3, 10, 50, 200, 2000])
    if rng.random() < 0.15:
        return s.statefulset(f"db-{i}", replicas, "default", random_spec(rng))
    return s.deployment(f"app-{i}", replicas, rng.choice(["default", "team"]), random_spec(rng, rng.random() < 0.1))


@pytest.fixture(autouse=True)
def index_every_cluster(monkeypatch):
    """Small clusters normally take the loop (cheaper there): here every size takes the index."""
    monkeypatch.setattr(placement, "FAST_PLACEMENT_MIN_NODES", 0)


@pytest.mark.parametrize("seed", range(24))
def test_fast_and_reference_placements_are_identical(seed):
    rng = random.Random(seed)
    state, names = random_cluster(rng, rng.choice([1, 7, 40, 150]))
    counter = indexed = 0
    for step in range(8):
        obj = random_workload(rng, step)
        fast, fast_view, reference_view = both_ways(state, obj)
        assert fast_view == reference_view, f"seed {seed} step {step}"
        indexed += isinstance(getattr(fast.placement, "per_node", None), placement.LazyOutcomes)
        if fast.reservation() and rng.random() < 0.6:     # admitted: it holds its room, as the server does
            state.reserve(fast.key if hasattr(fast, "key") else (fast.kind, fast.namespace, fast.name),
                          fast.reservation(), fast.pod_requests, fast.uses_ip)
        for _ in range(rng.randint(0, 25)):                # the cluster moves between decisions
            roll = rng.random()
            counter += 1
            if roll < 0.5:
                state.apply(s.pod(f"new-{counter}", "default", rng.choice(names), spec=random_spec(rng),
                                  owner=("apps/v1", "ReplicaSet", "moving")))
            elif roll < 0.7 and state.pods:
                namespace, name = rng.choice(sorted(state.pods))
                state.remove("Pod", namespace, name)
            elif roll < 0.8:
                state.apply(random_node(rng, rng.choice(names)))       # labels, taints, cordon may change
            elif roll < 0.85:
                name = f"late-{counter}.ec2.internal"
                names.append(name)
                state.apply(random_node(rng, name))
            elif roll < 0.9 and len(names) > 1:
                gone = names.pop(rng.randrange(len(names)))
                state.remove("Node", None, gone)
            elif roll < 0.95:
                state.apply(s.csinode(rng.choice(names), rng.randint(1, 30)))
            elif step > 5:                  # waiting pods: the loop places them first (late, to test both)
                state.apply(s.pod(f"waiting-{counter}", "default", None, spec=random_spec(rng),
                                  owner=("apps/v1", "ReplicaSet", "stuck")))
    assert indexed >= 4, "the indexed placement was used for most decisions"


def test_updates_and_scale_ups_agree_too():
    rng = random.Random(99)
    state, names = random_cluster(rng, 60)
    old = s.deployment("web", 20, "default", random_spec(rng))
    for i in range(20):
        state.apply(s.pod(f"web-{i}", "default", rng.choice(names), spec=old["spec"]["template"]["spec"],
                          owner=("apps/v1", "ReplicaSet", "web-1")))
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata("web-1", "default", owner=("apps/v1", "Deployment", "web")),
          "spec": {"replicas": 20, "template": old["spec"]["template"]}}
    state.apply(old)
    state.apply(rs)
    scaled = s.deployment("web", 90, "default", old["spec"]["template"]["spec"])
    changed = s.deployment("web", 40, "default", random_spec(rng))
    for new in (scaled, changed):
        _fast, fast_view, reference_view = both_ways(state, new, old)
        assert fast_view == reference_view


def test_a_room_map_placed_twice_matches_the_loop():
    """Rooms are spent by a placement: a second placement on the same RoomMap sees what is left."""
    rng = random.Random(5)
    state, _names = random_cluster(rng, 30)
    rules = PodPlacementRules()
    views = []
    for fast in (True, False):
        placement.FAST_PLACEMENT = fast
        try:
            rooms = RoomMap(state)
            first = place(rooms, rules, Resources(250, 256 * 2**20, 0), True, 40)
            second = place(rooms, rules, Resources(100, 64 * 2**20, 0), True, 500)
            views.append([(p.placed, [(n, o.placed, o.limit, o.free_before, o.free_pods_before)
                                      for n, o in p.per_node.items()]) for p in (first, second)])
        finally:
            placement.FAST_PLACEMENT = True
    assert views[0] == views[1]
    assert views[0][0][0] == 40 and views[0][1][0] > 0


def test_the_index_follows_pod_changes_without_a_rebuild():
    rng = random.Random(3)
    state, names = random_cluster(rng, 20)
    evaluate(state, s.small_web("warm", 5))
    index = state.room_index
    built = index.cpu                          # the arrays of the first build
    state.apply(s.pod("extra", "default", names[0], spec=s.pod_spec([s.container(requests={"cpu": "1"})])))
    assert state.rooms_dirty == {names[0]}
    _fast, fast_view, reference_view = both_ways(state, s.small_web("after", 500))
    assert fast_view == reference_view
    assert index.cpu is built and not state.rooms_dirty      # updated in place, one node


def _sums_agree(state: ClusterState) -> None:
    """The sums kept across decisions equal the reference's walk of every reservation."""
    for exclude in [None, *state.reservations, ("Deployment", "default", "nobody")]:
        assert placement.reserved_by_node(state, exclude) == state.reserved_by_node(exclude)


@pytest.mark.parametrize("seed", range(16))
def test_reservations_kept_across_decisions_match_the_reference(seed):
    """Reservations as the webhook's ledger and ``check`` make them, with the reference's semantics:
    the latest decision per workload wins, a promise shrinks as its pods appear (directly, through
    a ReplicaSet, or waiting), a scale-down trims it, expiry and fulfilment drop it, and the
    cluster ledger replaces the whole store. Each decision is taken both ways in between."""
    rng = random.Random(1000 + seed)
    state, names = random_cluster(rng, rng.choice([12, 40, 90]))
    now, counter = 1000.0, 0
    apps = [f"app-{j}" for j in range(6)]
    for step in range(14):
        app = rng.choice(apps)
        replicas = rng.choice([1, 3, 10, 40, 400])
        obj = s.deployment(app, replicas, "default", random_spec(rng))
        old = s.deployment(app, 1, "default", obj["spec"]["template"]["spec"]) if rng.random() < 0.3 else None
        fast, fast_view, reference_view = both_ways(state, obj, old)
        assert fast_view == reference_view, f"seed {seed} step {step}"
        _sums_agree(state)
        key = ("Deployment", "default", app)
        if fast.reservation():          # admitted: the latest decision about ``app`` replaces its promise
            state.reserve(key, fast.reservation(), fast.pod_requests, fast.uses_ip,
                          expires_at=now + rng.choice([5, 30, None or 1e9]), uid=f"u-{step}")
        for _ in range(rng.randint(0, 12)):
            roll = rng.random()
            counter += 1
            held_keys = sorted(state.reservations)
            target = rng.choice(held_keys) if held_keys else key
            rs = f"{target[2]}-rs"
            if roll < 0.3:              # a promised pod appears, on a promised node or elsewhere
                promised = list(state.reservations[target].per_node) if target in state.reservations else names
                node = rng.choice(promised if rng.random() < 0.7 else names)
                state.apply(s.pod(f"{rs}-{counter}", "default", node if rng.random() < 0.85 else None,
                                  spec=random_spec(rng), owner=("apps/v1", "ReplicaSet", rs)))
            elif roll < 0.4:            # its ReplicaSet links those pods to the Deployment (or unlinks)
                if rng.random() < 0.8:
                    state.apply({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "metadata": s.metadata(rs, "default", owner=("apps/v1", "Deployment", target[2])),
                                 "spec": {"replicas": 0}})
                else:
                    state.remove("ReplicaSet", "default", rs)
            elif roll < 0.5:
                gone = [k for k in sorted(state.pods) if k[1].startswith(rs)]
                if gone:
                    state.remove("Pod", *rng.choice(gone))
            elif roll < 0.6 and target in state.reservations:      # a scale-down trims the promise
                trimmed = state.trimmed(state.reservations[target], rng.randint(0, 5))
                if trimmed is None:
                    del state.reservations[target]
                else:
                    state.reservations[target] = trimmed
            elif roll < 0.7:
                now += rng.choice([1, 10, 40])
                state.expire_reservations(now)
            elif roll < 0.75:           # the cluster ledger installs a fresh copy of every promise
                state.reservations = {k: replace(r) for k, r in state.reservations.items()}
            elif roll < 0.8 and state.reservations:
                state.reservations.pop(rng.choice(sorted(state.reservations)))
            elif roll < 0.9:
                state.apply(s.pod(f"other-{counter}", "team", rng.choice(names), spec=random_spec(rng),
                                  owner=("apps/v1", "ReplicaSet", "other")))
            else:
                state.apply(random_node(rng, rng.choice(names)))
            _sums_agree(state)


# ---- values beyond 64 bits: the index steps aside and the loop answers exactly ----------------------
def _alike(count: int, **overrides) -> list[dict]:
    nodes = []
    for i in range(count):
        alloc = overrides.get(f"n-{i:02d}", {"cpu": "4", "memory": "8Gi", "pods": "17"})
        nodes.append(s.node(f"n-{i:02d}", instance_type=None, allocatable=alloc))
    return nodes


def _plain(state, replicas: int):
    return evaluate(state, s.deployment("web", replicas, "default",
                                        s.pod_spec([s.container(requests={"cpu": "10m", "memory": "64Mi"})])))


def test_a_node_whose_pods_ask_more_than_64_bits_hold_is_placed_exactly():
    # A quantity is at most 2^63 - 1 (resource.Quantity is an int64), so 10Ei of memory reads as 2^63 - 1, and
    # n-05's two pods of 5Ei each ask 2 x 5 x 2^60 bytes, more than 2^63: its free memory, 8Gi - 10Ei, is below
    # -2^63. The index cannot hold it; the loop answers: n-05 takes no pod, the others 17 each.
    big = state_from_objects(_alike(50, **{"n-05": {"cpu": "4", "memory": "10Ei", "pods": "110"}}))
    assert big.nodes["n-05"].allocatable.memory == 2**63 - 1
    huge = s.pod_spec([s.container(requests={"cpu": "10m", "memory": "5Ei"})])
    state = state_from_objects(_alike(50) + [s.pod(f"huge-{i}", "default", "n-05", spec=huge) for i in range(2)])
    _fast, fast_view, reference_view = both_ways(state, s.deployment(
        "web", 120, "default", s.pod_spec([s.container(requests={"cpu": "10m", "memory": "64Mi"})])))
    assert fast_view == reference_view
    placed = _plain(state, 120).placement.placed_per_node()
    assert "n-05" not in placed and sum(placed.values()) == 120 and max(placed.values()) == 17


def test_values_past_2_to_the_62_leave_room_for_the_reservations_subtracted_from_them():
    # n-00 runs a pod asking 5Ei of memory (5 x 2^60 = 5.76 x 10^18, past 2^62): its free memory is 8Gi - 5Ei,
    # and a reservation holds 4 x 10^18 bytes more there (below 2^62 = 4.61 x 10^18). Free minus held,
    # -9.76 x 10^18, would pass -2^63 in 64-bit arithmetic and wrap to a large positive number; exactly, it
    # is negative: n-00 takes no pod of the 900, the other 49 nodes 17 each (833).
    state = state_from_objects(_alike(50) + [s.pod("huge", "default", "n-00", spec=s.pod_spec(
        [s.container(requests={"cpu": "10m", "memory": "5Ei"})]))])
    state.reserve(("Deployment", "default", "other"), {"n-00": 1}, Resources(0, 4 * 10**18), False)
    placed = _plain(state, 900).placement.placed_per_node()
    assert "n-00" not in placed and sum(placed.values()) == 833


def test_a_reservation_too_big_for_64_bits_is_subtracted_exactly():
    # Two promised pods of 5Ei each hold 2 x 5 x 2^60 bytes on n-00, past 2^63: n-00 has no memory left for
    # the 900 pods; the other 49 nodes take 17 each (833).
    state = state_from_objects(_alike(50))
    state.reserve(("Deployment", "default", "huge"), {"n-00": 2}, Resources(10, 5 * 2**60), False)
    placed = _plain(state, 900).placement.placed_per_node()
    assert "n-00" not in placed and sum(placed.values()) == 833


def test_a_node_with_no_pod_ip_left_takes_no_pod_that_needs_one():
    # t3.medium with the VPC CNI: 3 ENIs x (6 - 1) = 15 pod IPs (eni-max-pods.txt: 3 x 5 + 2 = 17 with the two
    # host-network pods), here with maxPods raised to 110. n-00 already runs 15 pods with IPs: 0 left, while
    # 95 pod slots are free. 900 pods: 47 other nodes x 15 IPs = 705 placed, n-00 stopped by POD_IP_EXHAUSTED.
    nodes = [s.node(f"n-{i:02d}", allocatable={"cpu": "1930m", "memory": "3388360Ki", "pods": "110"})
             for i in range(48)]
    running = [s.pod(f"r-{i}", "default", "n-00", spec=s.pod_spec([s.container(requests={"cpu": "1m"})]))
               for i in range(15)]
    agents = [s.pod(f"aws-node-{i:02d}", "kube-system", f"n-{i:02d}", owner=("apps/v1", "DaemonSet", "aws-node"),
                    spec=s.pod_spec([s.container("aws-node", requests={"cpu": "25m"})], host_network=True))
              for i in range(48)]      # aws-node runs everywhere: nothing is owed, no room is built ahead
    state = state_from_objects([s.aws_node(), *nodes, *agents, *running])
    placement_ = _plain(state, 900).placement
    assert placement_.placed == 705 and "n-00" not in placement_.placed_per_node()
    assert placement_.per_node["n-00"].limit == "POD_IP_EXHAUSTED"


def test_a_request_of_one_unit_still_counts():
    # Nodes with 5m of CPU and 17 pods: pods of 1m CPU fit 5 per node (INSUFFICIENT_CPU), 48 x 5 = 240.
    nodes = [s.node(f"n-{i:02d}", instance_type=None, allocatable={"cpu": "5m", "memory": "8Gi", "pods": "17"})
             for i in range(48)]
    state = state_from_objects(nodes)
    verdict = evaluate(state, s.deployment("tiny", 300, "default", s.pod_spec([s.container(requests={"cpu": "1m"})])))
    assert verdict.placement.placed == 240 and verdict.placement.limits() == {"INSUFFICIENT_CPU": 48}


def test_a_dropped_reservation_gives_its_node_back_whole():
    # 50 nodes of 17 pods: "held" promises all 17 of n-00, a decision sees it; the promise is dropped, and
    # the next decision finds n-00 whole again: 17 pods go to n-00 (first by name among the roomiest).
    state = state_from_objects(_alike(50))
    state.reserve(("Deployment", "default", "held"), {"n-00": 17}, Resources(10, 0), True)
    assert "n-00" not in _plain(state, 17).placement.placed_per_node()
    del state.reservations[("Deployment", "default", "held")]
    assert _plain(state, 17).placement.placed_per_node() == {"n-00": 17}


def test_a_dropped_reservation_gives_its_pod_ips_back_too():
    # As above, on t3.mediums with the VPC CNI (15 pod IPs each, maxPods raised to 110): the promise held
    # all 15 IPs of n-00; once dropped, 15 pods that need IPs go to n-00 again.
    nodes = [s.node(f"n-{i:02d}", allocatable={"cpu": "1930m", "memory": "3388360Ki", "pods": "110"})
             for i in range(48)]
    agents = [s.pod(f"aws-node-{i:02d}", "kube-system", f"n-{i:02d}", owner=("apps/v1", "DaemonSet", "aws-node"),
                    spec=s.pod_spec([s.container("aws-node", requests={"cpu": "25m"})], host_network=True))
              for i in range(48)]
    state = state_from_objects([s.aws_node(), *nodes, *agents])
    state.reserve(("Deployment", "default", "held"), {"n-00": 15}, Resources(10, 0), True)
    assert "n-00" not in _plain(state, 15).placement.placed_per_node()
    del state.reservations[("Deployment", "default", "held")]
    assert _plain(state, 15).placement.placed_per_node() == {"n-00": 15}
