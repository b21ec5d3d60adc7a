"""preemption.py (DefaultPreemption played pod by pod): rules pinned with worked numbers.

pickOneNodeForPreemption (framework/preemption/preemption.go, v1.33) compares candidate nodes by
the highest victim priority, then by ``sum(priority + MaxInt32 + 1)`` over the victims, then by
the number of victims.
"""

from __future__ import annotations

import pytest

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
    assert "1 pod fits only by preemption: would preempt 3 lower-priority pods" in verdict.reasons[0].summary


def _play(state, rules, wanted, lower=None, caps=None):
    lower = victims(state, Priority(1000, True, "high"), rules) if lower is None else lower
    return preemption.play(state, RoomMap(state, priority=1000), rules, Resources(1000, 0), Resources(1000, 0),
                           False, (), wanted, lower, caps=caps)


def _constrained(spec) -> PodPlacementRules:
    from webhook.engine.constraints import PodConstraints
    return PodPlacementRules.from_pod_spec(spec, {"app": "new"},
                                           constraints=PodConstraints.from_pod_spec(spec, "default", {"app": "new"}))


PORTED = s.pod_spec([dict(s.container(requests={"cpu": "1"}), ports=[{"containerPort": 80, "hostPort": 80}])])


@pytest.mark.parametrize(("nodes", "lower", "wanted", "constrained", "played"), [
    # Without pod-level constraints: nodes + 3 x lower pods + wanted x nodes checks, at most 400,000.
    (1, 1, 399_996, False, True),         # 1 + 3 + 399,996 = 400,000
    (1, 1, 399_997, False, False),        # 400,001
    (2, 133_332, 1, False, True),         # 2 + 399,996 + 2 = 400,000
    (2, 133_333, 1, False, False),        # 400,003
    (2, 1, 199_998, False, False),        # 2 + 3 + 399,996 = 400,001
    # With them (every pod judges every node and its victims again): wanted x (nodes + 3 x lower) <= 100,000.
    (1, 1, 25_000, True, True),           # 25,000 x 4 = 100,000
    (1, 1, 25_001, True, False),          # 100,004
    (1, 33_333, 1, True, True),           # 1 x (1 + 99,999) = 100,000
    (1, 33_334, 1, True, False),          # 100,003
])
def test_the_play_budget_counts_node_checks_and_victims(nodes, lower, wanted, constrained, played):
    # Past the budget play() returns None and the caller estimates in bulk. The lower-priority pods here run
    # on a node the pod may not use (they count for the cost only).
    assert preemption.SEQUENTIAL_BUDGET == 400_000
    state = state_from_objects([node(f"n{i}") for i in range(nodes)] + [_bound("low", "elsewhere", "1", 0)])
    rules = _constrained(PORTED) if constrained else PodPlacementRules()
    result = _play(state, rules, wanted, lower=list(state.pods.values()) * lower)
    assert (result is not None) == played
    if played:      # 4 CPU nodes: four 1 CPU pods each (one with the host port)
        assert result.placed == min(wanted, nodes if constrained else 4 * nodes) and result.evicted == 0


def test_a_played_pod_preempts_for_real():
    # One node, a 3 CPU pod of priority 0 on it: a 1 CPU pod binds next to it, the second evicts it, then
    # two more bind: 4 placed, 1 evicted.
    state = state_from_objects([node("a"), _bound("low", "a", "3", 0)])
    played = _play(state, PodPlacementRules(), 6)
    assert (played.placed, played.evicted, played.per_node) == (4, 1, {"a": 4})
    # With a host port: the first pod evicts low (4 CPU), the second finds the port taken by the first.
    full = state_from_objects([node("a"), _bound("low", "a", "4", 0)])
    played = _play(full, _constrained(PORTED), 3)
    assert (played.placed, played.evicted) == (1, 1)


def test_fewer_victims_win_when_the_highest_priorities_are_equal():
    # One 4 CPU pod: node a holds one 4 CPU pod of priority 0, node b two 2 CPU pods of priority 0. Highest
    # victim priority 0 on both; sums 2^31 (a) < 2 x 2^31 (b): a is picked, 1 victim.
    state = state_from_objects([node("a"), node("b"), priority_class("high", 1000), _bound("a-1", "a", "4", 0),
                                _bound("b-1", "b", "2", 0), _bound("b-2", "b", "2", 0)])
    spec = s.pod_spec([s.container(requests={"cpu": "4"})], priorityClassName="high")
    verdict = evaluate(state, s.deployment("urgent", 1, spec=spec))
    assert "1 pod fits only by preemption: would preempt 1 lower-priority pod" in verdict.reasons[0].summary


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
    played = _play(state, rules, 4, caps={"a": (2, "POD_ENI_EXHAUSTED")})
    assert (played.placed, played.evicted, played.per_node) == (2, 1, {"a": 2})
    # The same with a pod-level constraint (a zone spread, one zone: it never stops a pod by itself).
    spread = s.pod_spec([s.container(requests={"cpu": "1"})], topologySpreadConstraints=[
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "new"}}}])
    empty = state_from_objects([node("a")])
    played = _play(empty, _constrained(spread), 4, caps={"a": (2, "POD_ENI_EXHAUSTED")})
    assert (played.placed, played.per_node) == (2, {"a": 2})


def test_a_cap_of_one_allows_exactly_one_pod_before_the_first_bind_too():
    state = state_from_objects([node("a")])
    assert _play(state, PodPlacementRules(), 3, caps={"a": (1, "POD_ENI_EXHAUSTED")}).per_node == {"a": 1}
    assert _play(state, _constrained(PORTED), 3, caps={"a": (1, "POD_ENI_EXHAUSTED")}).per_node == {"a": 1}
