"""The default profile's resource scores, worked by hand from noderesources/{least,balanced}_allocated.go."""

from webhook import synthetic as s
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
