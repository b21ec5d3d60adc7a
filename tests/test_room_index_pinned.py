"""room_index.py behaviours the random comparisons left unpinned, with worked numbers.

Free room is what NodeResourcesFit computes (noderesources/fit.go, v1.33): node allocatable minus
the requests of the pods bound there, minus (ours) what admitted workloads' reservations hold. The
pod IP slots follow the AWS VPC CNI: t3.medium has 3 ENIs x 6 IPv4 addresses, one of each ENI is
the ENI's own, so 3 x (6 - 1) = 15 pod IPs (shared/data/eni-max-pods.txt: 3 x 5 + 2 = 17 pods).
"""

from __future__ import annotations

import dataclasses

from tests import synthetic as s
from webhook.engine.instance_types import load_default_table
from webhook.engine.placement import NodeRoom, current_reserved_sums
from webhook.engine.requests import Resources
from webhook.engine.room_index import RoomIndex
from webhook.state.snapshot import state_from_objects

MI = 2**20
T3_MEDIUM_MEMORY = 3388360 * 1024            # allocatable "3388360Ki"
OWNER = ("Deployment", "default", "held")
PLAIN = {"cpu": "4", "memory": "8Gi", "pods": "17"}     # no instance type: no IP rule


def _state():
    """Two t3.medium nodes; n-00 runs one pod of 500m / 256Mi, n-01 is held for 3 pods of 100m / 64Mi."""
    spec = s.pod_spec([s.container(requests={"cpu": "500m", "memory": "256Mi"})])
    state = state_from_objects([s.node("n-00"), s.node("n-01"), s.aws_node(), s.pod("p", "default", "n-00", spec=spec)],
                               load_default_table())
    state.reserve(OWNER, {"n-01": 3}, Resources(100, 64 * MI), True)
    return state


def _fields(room):
    return (room.node, room.capacity, room.free, room.pods, room.ips, room.volumes, room.score_used)


def test_a_kept_room_is_the_node_allocatable_minus_its_pods():
    state = _state()
    index = RoomIndex(state).current()
    room = index.room_of(state.nodes["n-00"], None)
    # 1930m - 500m = 1430m; 3388360Ki - 256Mi; 17 - 1 = 16 pods; 15 - 1 = 14 pod IPs.
    assert (room.free, room.pods, room.ips) == (Resources(1430, T3_MEDIUM_MEMORY - 256 * MI, 18242267924), 16, 14)
    assert _fields(room) == _fields(NodeRoom.of(state, state.nodes["n-00"], None))
    assert room is not index.rooms[index.pos["n-00"]]          # a copy: taking pods from it leaves the kept one


def test_a_kept_room_takes_off_what_a_reservation_holds():
    state = _state()
    reserved = state.reserved_by_node()
    assert reserved == {"n-01": (Resources(300, 192 * MI), 3, 3)}
    room = RoomIndex(state).current().room_of(state.nodes["n-01"], reserved)
    # 1930m - 3 x 100m = 1630m; 3388360Ki - 3 x 64Mi; 17 - 3 = 14 pods; 15 - 3 = 12 pod IPs.
    assert (room.free.cpu, room.free.memory, room.pods, room.ips) == (1630, T3_MEDIUM_MEMORY - 192 * MI, 14, 12)
    assert room.score_used == Resources(300, 192 * MI)
    assert _fields(room) == _fields(NodeRoom.of(state, state.nodes["n-01"], reserved))
    # The node the reservation does not touch keeps its own room: 1430m, 16 pods, 14 IPs as above.
    other = RoomIndex(state).current().room_of(state.nodes["n-00"], reserved)
    assert (other.pods, other.ips, other.free.cpu) == (16, 14, 1430)


def test_a_reservation_on_a_node_of_unknown_ip_slots_leaves_them_unknown():
    # No instance type: no IP rule (ips None), pods 17 - 2 = 15 after a reservation of 2.
    state = state_from_objects([s.node("x", instance_type=None, allocatable=PLAIN)])
    state.reserve(OWNER, {"x": 2}, Resources(250, 0), True)
    room = RoomIndex(state).current().room_of(state.nodes["x"], state.reserved_by_node())
    assert (room.free.cpu, room.pods, room.ips) == (4000 - 500, 15, None)


def test_no_room_is_kept_for_a_node_the_index_does_not_hold():
    state = _state()
    index = RoomIndex(state).current()
    stranger = dataclasses.replace(state.nodes["n-00"], name="n-99")
    assert index.room_of(stranger, None) is None                      # not in the index
    stale = dataclasses.replace(state.nodes["n-00"])                  # same name, another object
    assert index.room_of(stale, None) is None


def test_values_of_2_to_the_62_or_more_leave_the_decision_to_the_reference_loop():
    # The arrays hold |v| < 2**62 so that a room minus a reservation never leaves int64. 2**62 bytes is 4Ei.
    for memory, usable in ((str(2**62 - 1), True), ("4Ei", False)):
        state = state_from_objects([s.node("big", instance_type=None,
                                           allocatable={"cpu": "4", "memory": memory, "pods": "17"})])
        assert (RoomIndex(state).current() is not None) is usable, memory
    for held, usable in ((2**62 - 1, True), (2**62, False)):
        state = state_from_objects([s.node("n", instance_type=None, allocatable=PLAIN)])
        state.reserve(OWNER, {"n": 1}, Resources(0, held), False)
        current_reserved_sums(state)                  # the sums decisions keep, which the index reads
        assert (RoomIndex(state).current() is not None) is usable, held
