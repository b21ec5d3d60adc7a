"""preemption.py (DefaultPreemption played pod by pod): rules pinned with worked numbers.

pickOneNodeForPreemption (framework/preemption/preemption.go, v1.33) compares candidate nodes by
the highest victim priority, then by ``sum(priority + MaxInt32 + 1)`` over the victims, then by
the number of victims.
"""

from __future__ import annotations

from tests import synthetic as s
from tests.test_fidelity_scheduler import node, priority_class
from webhook.engine import preemption
from webhook.engine.evaluate import evaluate
from webhook.engine.placement import RoomMap
from webhook.engine.priority import Priority, victims
from webhook.engine.requests import Resources
from webhook.engine.scheduling import PodPlacementRules
from webhook.state.snapshot import state_from_objects


def _bound(name, where, cpu, prio):
    return s.pod(name, "default", where, spec=s.pod_spec([s.container(requests={"cpu": cpu})], priority=prio),
                 labels={"app": name})


def test_the_sum_of_victim_priorities_is_taken_with_max_int32_plus_one_added_to_each():
    # One pod of 4 CPU, priority 1000. Node a (4 CPU): two 2 CPU pods of priority 0, both must go.
    # Node b (4 CPU): 2 CPU of priority 0 and two 1 CPU of priority -1,500,000,000, all three must go.
    # Highest victim priority: 0 on both. Sums with 2^31 added to each:
    #   a: 2 x 2147483648 = 4294967296;  b: 3 x 2147483648 - 3000000000 = 3442450944  -> b is picked (3 victims).
    # (With 2^32 added instead, a would be: 8589934592 < 9884901888.)
    low = -1_500_000_000
    state = state_from_objects([node("a"), node("b"), priority_class("high", 1000),
                                _bound("a-1", "a", "2", 0), _bound("a-2", "a", "2", 0),
                                _bound("b-1", "b", "2", 0), _bound("b-2", "b", "1", low), _bound("b-3", "b", "1", low)])
    spec = s.pod_spec([s.container(requests={"cpu": "4"})], priorityClassName="high")
    verdict = evaluate(state, s.deployment("urgent", 1, spec=spec))
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"])
    assert "1 pods fit only by preemption: would preempt 3 lower-priority pods" in verdict.reasons[0].summary


def _play(state, rules, wanted):
    lower = victims(state, Priority(1000, True, "high"), rules)
    return preemption.play(state, RoomMap(state, priority=1000), rules, Resources(1000, 0), Resources(1000, 0),
                           False, (), wanted, lower)


def test_the_play_budget_counts_node_checks_and_victims():
    # Without pod-level constraints: eligible + 3 x victims + wanted x eligible node checks, at most 400,000.
    # One node, one victim: 1 + 3 + W <= 400,000 -> W = 399,996 is played, 399,997 is left to the bulk estimate.
    assert preemption.SEQUENTIAL_BUDGET == 400_000
    state = state_from_objects([node("a"), _bound("low", "a", "3", 0)])
    rules = PodPlacementRules()
    played = _play(state, rules, 399_996)
    assert (played.placed, played.evicted, played.per_node) == (4, 1, {"a": 4})   # 4 CPU: four 1 CPU pods
    assert _play(state, rules, 399_997) is None


def test_with_constraints_the_budget_is_a_quarter_and_every_pod_judges_every_node():
    # With a host port (a pod-level constraint): wanted x (eligible + 3 x victims) <= 100,000:
    # one node, one victim: W x 4 -> W = 25,000 is played, 25,001 is not.
    from webhook.engine.constraints import PodConstraints
    ported = s.pod_spec([dict(s.container(requests={"cpu": "1"}), ports=[{"containerPort": 80, "hostPort": 80}])])
    rules = PodPlacementRules.from_pod_spec(ported, {"app": "new"},
                                            constraints=PodConstraints.from_pod_spec(ported, "default", {"app": "new"}))
    state = state_from_objects([node("a"), _bound("low", "a", "4", 0)])
    played = _play(state, rules, 25_000)
    assert (played.placed, played.evicted) == (1, 1)     # low (4 CPU) is evicted; the port allows one pod per node
    assert _play(state, rules, 25_001) is None


def test_a_cordoned_node_takes_no_pod_in_the_play_either():
    # preemption_cluster: node a (4 CPU) runs three 1 CPU pods of priority 0; urgent pods ask 1500m. With every
    # victim gone a holds two (3000m <= 4000m), the third stays Pending. An empty cordoned node c does not help
    # (NodeUnschedulable filters it for the played pods as for the others).
    from tests.test_fidelity_scheduler import preemption_cluster, urgent
    state = preemption_cluster()
    state.apply(node("c", unschedulable=True))
    verdict = evaluate(state, urgent(3, "high"))
    assert (verdict.verdict, verdict.schedulable, verdict.pending) == ("deny", 2, 1)


def test_pods_that_fit_somewhere_bind_there_before_any_pod_is_preempted():
    # a: 3 CPU of priority 0 bound, 1 CPU free; b: empty, 4 CPU. Five 1 CPU pods: a takes 1, b takes 4,
    # nobody is preempted; a sixth evicts the 3 CPU pod on a (the only victim).
    state = state_from_objects([node("a"), node("b"), _bound("low", "a", "3", 0)])
    five = _play(state, PodPlacementRules(), 5)
    assert (five.placed, five.evicted, five.per_node) == (5, 0, {"a": 1, "b": 4})
    six = _play(state, PodPlacementRules(), 6)
    assert (six.placed, six.evicted) == (6, 1)


def test_a_per_node_cap_holds_in_the_play():
    # caps (branch ENIs for security groups for pods): at most 2 pods on a, whatever room or victims it has.
    state = state_from_objects([node("a"), _bound("low", "a", "4", 0)])
    rules = PodPlacementRules()
    lower = victims(state, Priority(1000, True, "high"), rules)
    played = preemption.play(state, RoomMap(state, priority=1000), rules, Resources(1000, 0), Resources(1000, 0),
                             False, (), 4, lower, caps={"a": (2, "POD_ENI_EXHAUSTED")})
    assert (played.placed, played.evicted, played.per_node) == (2, 1, {"a": 2})
