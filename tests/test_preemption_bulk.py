"""Preemption for workloads too big to play pod by pod: every candidate node's victims out at once.

``evaluate`` plays DefaultPreemption one pod at a time (``engine/preemption.py``) while that
fits its budget; past it (and for DaemonSets, whose pod count is the nodes) it removes the
victims of every candidate node at once (``priority.local_victims``) and counts the evicted
pods as SelectVictimsOnNode does (``priority.victims_used``: all lower-priority pods out, the
new pods in, the victims reprieved highest priority first while they still fit). The
scenarios of test_fidelity_scheduler (each checked against a real kube-scheduler, the
differential seeds they name) must come out the same on that path: run here with the
pod-by-pod budget at zero.
"""

import pytest

from tests import synthetic as s
from tests import test_fidelity_scheduler as fidelity
from webhook.engine import preemption
from webhook.engine.priority import Priority, preemption_reason, victims
from webhook.state.snapshot import state_from_objects


@pytest.fixture(params=[True, False], ids=["bulk", "played"])
def evaluate(request, monkeypatch):
    """``evaluate``, on the bulk path (no budget for the pod-by-pod play) or played pod by pod:
    both must give the scheduler's answer."""
    from webhook.engine.evaluate import evaluate as evaluate_workload
    if request.param:
        monkeypatch.setattr(preemption, "SEQUENTIAL_BUDGET", 0)
    return evaluate_workload

SCENARIOS = [
    fidelity.test_a_higher_priority_workload_warns_that_it_would_preempt,
    fidelity.test_preemption_that_cannot_make_room_for_all_still_denies,
    fidelity.test_preemption_policy_never_preempts_nothing,
    fidelity.test_a_global_default_class_gives_pods_without_a_class_their_priority,
    fidelity.test_preemption_also_clears_a_host_port_held_by_a_lower_priority_pod,
    fidelity.test_preemption_clears_a_lower_priority_pods_anti_affinity,
    fidelity.test_a_repelling_pod_on_a_cordoned_node_still_blocks_its_zone_and_cannot_be_preempted,
    fidelity.test_preemption_never_evicts_the_pods_a_required_affinity_needs,
    fidelity.test_preemption_clears_pods_the_new_pods_anti_affinity_rejects,
    fidelity.test_preemption_cannot_clear_a_zone_held_by_pods_on_other_nodes,
    fidelity.test_preemption_keeps_a_node_whose_affinity_the_workloads_own_bound_pods_satisfy,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__[5:])
def test_the_bulk_path_agrees_with_the_scheduler(scenario, monkeypatch):
    monkeypatch.setattr(preemption, "SEQUENTIAL_BUDGET", 0)
    scenario()


# ---- which bound pods are victims at all (priority.victims) ----------------------------------------------
def _low(name, node, priority, cpu="100m"):
    return s.pod(name, "default", node, spec=s.pod_spec([s.container(requests={"cpu": cpu})], priority=priority))


def _victim_state():
    return state_from_objects([
        s.node("a", instance_type=None), s.node("cordoned", instance_type=None, unschedulable=True),
        _low("pending", None, 0),            # not bound: never a victim
        _low("higher", "a", 20),             # higher priority: never a victim
        _low("equal", "a", 10),              # equal priority: never (DefaultPreemption evicts lower only)
        _low("on-cordoned", "cordoned", 0),
        _low("on-ghost", "ghost", 0),        # bound to a node the state does not hold
        _low("low-1", "a", 0),
        _low("low-2", "a", -5),
    ])


def _names(pods):
    return sorted(p.name for p in pods)


def test_only_lower_priority_bound_pods_on_usable_nodes_are_victims():
    from webhook.engine.scheduling import PodPlacementRules
    state = _victim_state()
    assert _names(victims(state, Priority(10, True, "x"), PodPlacementRules())) == ["low-1", "low-2"]
    # without node rules every node the state holds is a candidate, the cordoned one included
    assert _names(victims(state, Priority(10, True, "x"))) == ["low-1", "low-2", "on-cordoned"]
    # a node the volumes rule out (node_filter True) is no candidate either
    assert _names(victims(state, Priority(10, True, "x"), None, lambda node: node.name == "a")) == ["on-cordoned"]


def test_no_victims_for_a_pod_that_never_preempts_or_is_not_higher():
    state = _victim_state()
    assert victims(state, Priority(10, False, "polite")) == []
    assert victims(state, Priority(-5, True, "x")) == []          # nothing bound below -5
    assert _names(victims(state, Priority(-4, True, "x"))) == ["low-2"]


def test_a_priority_is_a_value_object():
    import dataclasses

    from webhook.engine.priority import pod_priority
    p = pod_priority(state_from_objects([]), {"priority": 10})
    assert p == Priority(0, True, "") and hash(p) == hash(Priority(0, True, ""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.value = 11          # type: ignore[misc]


def test_the_preemption_warning_names_the_numbers_and_the_class():
    reason = preemption_reason(None, Priority(1000, True, "high"), 2, 3, "Deployment default/web")
    assert reason.code == "PREEMPTION" and reason.severity == "warn"
    assert ("Deployment default/web: 2 pods fit only by preemption: would preempt 3 lower-priority pods"
            in reason.message)
    assert "Its priority 1000 (PriorityClass high) lets" in reason.message
    plain = preemption_reason(None, Priority(5, True, ""), 1, 1, "x")
    assert "Its priority 5 lets" in plain.message and "(PriorityClass" not in plain.message


# ---- the reprieve, resource by resource ---------------------------------------------------------------------
# SelectVictimsOnNode (defaultpreemption, v1.33.13): remove every lower-priority pod, then add them back highest
# priority first while the preemptor still fits. NodeResourcesFit refuses only requested > allocatable, so a
# victim that fills the node EXACTLY is reprieved. Node: 4 units of the resource, two victims of 2 (priority -1,
# -2) fill it; the new pod asks 2: victim -1 comes back (free exactly 0), victim -2 stays out: one victim.
FULL = {"cpu": "4", "memory": "4Gi", "ephemeral-storage": "4Gi", "pods": "110", "example.com/dongle": "4"}
RESOURCE_CASES = {
    "cpu": ({"cpu": "2"}, {}),
    "memory": ({"memory": "2Gi"}, {}),
    "ephemeral-storage": ({"ephemeral-storage": "2Gi"}, {}),
    "extended": ({"example.com/dongle": "2"}, {}),
    # pods: 2 allowed; both slots held by victims, the new pod takes one, victim -1 the other.
    "pods": ({"cpu": "10m"}, {"pods": "2"}),
}


def _reprieve_state(requests, allocatable):
    spec = lambda priority: s.pod_spec([s.container(requests=requests, limits=dict(requests))],  # noqa: E731
                                       priority=priority)
    return state_from_objects([
        s.node("a", instance_type=None, allocatable={**FULL, **allocatable}),
        s.pod("victim-1", "default", "a", spec=spec(-1)), s.pod("victim-2", "default", "a", spec=spec(-2)),
    ])


@pytest.mark.parametrize("case", sorted(RESOURCE_CASES))
def test_a_victim_that_fills_the_node_exactly_is_reprieved(case, evaluate):
    requests, allocatable = RESOURCE_CASES[case]
    new = s.deployment("new", 1, spec=s.pod_spec([s.container(requests=requests, limits=dict(requests))]))
    verdict = evaluate(_reprieve_state(requests, allocatable), new)
    assert (verdict.verdict, verdict.pending, verdict.codes) == ("warn", 0, ["PREEMPTION"]), verdict.reasons
    assert "would preempt 1 lower-priority pod" in verdict.reasons[0].summary


def _two_nodes_a_full(victim_spec_a, extra=()):
    return state_from_objects([
        s.node("a", instance_type=None, allocatable=FULL), s.node("b", instance_type=None, allocatable=FULL),
        s.pod("victim-1", "default", "a", spec=victim_spec_a(-1)),
        s.pod("victim-2", "default", "a", spec=victim_spec_a(-2)),
        *extra,
    ])


def _cpu_spec(priority, cpu="2", **extra):
    return s.pod_spec([s.container(requests={"cpu": cpu})], priority=priority, **extra)


def test_a_daemonset_preempts_only_on_the_node_it_does_not_fit(evaluate):
    # A DaemonSet pod per node: b has room (its own low pod stays), a is full of two 2-CPU victims. The pod
    # for a (2 CPU) preempts: victim -1 is reprieved (exact fit), victim -2 is evicted: one victim in all.
    state = _two_nodes_a_full(_cpu_spec, [s.pod("low-b", "default", "b", spec=_cpu_spec(-5, "1"))])
    ds = s.daemonset("agent", spec=s.pod_spec([s.container(requests={"cpu": "2"})]))
    verdict = evaluate(state, ds)
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"]), verdict.reasons
    assert "would preempt 1 lower-priority pod" in verdict.reasons[0].summary


RACK = "example.com/rack"        # a topology key no node carries: such a term never repels (interpodaffinity)


def test_anti_affinity_over_a_key_the_node_lacks_does_not_keep_a_victim_out(evaluate):
    # 4 CPU full: victim -1 (1 CPU) and -2 (3 CPU); the new pod asks 3: -1 is reprieved, -2 is the one victim.
    repel_new = fidelity.anti({"matchLabels": {"app": "new"}}, key=RACK)
    state = state_from_objects([
        s.node("a", instance_type=None, allocatable=FULL),
        s.pod("victim-1", "default", "a", spec=_cpu_spec(-1, "1", affinity=repel_new), labels={"app": "old"}),
        s.pod("victim-2", "default", "a", spec=_cpu_spec(-2, "3"), labels={"app": "old"}),
    ])
    # (the new pod wants a host port of its own, so that it carries pod-level constraints)
    ported = _cpu_spec(0, "3")
    ported["containers"][0]["ports"] = [{"containerPort": 9200, "hostPort": 9200, "protocol": "TCP"}]
    verdict = evaluate(state, s.deployment("new", 1, spec=ported, labels={"app": "new"}))
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"]), verdict.reasons
    assert "would preempt 1 lower-priority pod" in verdict.reasons[0].summary
    # the new pods' own anti-affinity to app=old over the missing key: likewise no clash
    repel_old = fidelity.anti({"matchLabels": {"app": "old"}}, key=RACK)
    own = s.deployment("new", 1, spec=_cpu_spec(0, "3", affinity=repel_old), labels={"app": "new"})
    plain = state_from_objects([
        s.node("a", instance_type=None, allocatable=FULL),
        s.pod("victim-1", "default", "a", spec=_cpu_spec(-1, "1"), labels={"app": "old"}),
        s.pod("victim-2", "default", "a", spec=_cpu_spec(-2, "3"), labels={"app": "old"}),
    ])
    verdict = evaluate(plain, own)
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"]), verdict.reasons
    assert "would preempt 1 lower-priority pod" in verdict.reasons[0].summary


def test_the_workloads_own_bound_pods_keep_a_node_a_candidate_when_a_match_lives_elsewhere(evaluate):
    # differential seed 108 again, with one more app=web pod on a full node b: now the "first pod" exception of
    # InterPodAffinity (no matching pod anywhere, the pod matches its own term) cannot carry node a. After
    # buddy is removed only the two web pods bound on a satisfy the affinity there: buddy is still the victim.
    buddy = s.pod_spec([s.container(requests={"cpu": "500m"})], priority=-10)
    big = s.pod_spec([s.container(requests={"cpu": "2400m"})], priority=0)
    elsewhere = s.pod_spec([s.container(requests={"cpu": "1"})], priority=0)
    state = state_from_objects([
        fidelity.node("a"), fidelity.node("b", allocatable={**fidelity.BIG, "cpu": "1"}),
        s.pod("buddy", "default", "a", spec=buddy, labels={"app": "web"}),
        s.pod("big", "default", "a", spec=big, labels={"app": "big"}),
        s.pod("web-old", "default", "b", spec=elsewhere, labels={"app": "web"}),
    ])
    spec = s.pod_spec([s.container(requests={"cpu": "375m"})],
                      affinity=fidelity.affinity({"matchLabels": {"app": "web"}}, key=fidelity.HOST))
    verdict = evaluate(state, s.deployment("web", 3, spec=spec))
    assert (verdict.verdict, verdict.schedulable, verdict.pending, verdict.codes) == ("warn", 3, 0, ["PREEMPTION"])
    assert "1 pod fits only by preemption: would preempt 1 lower-priority pod" in verdict.reasons[0].summary


PORT = [{"containerPort": 9100, "hostPort": 9100, "protocol": "TCP"}]


def _ported(priority, cpu, ports=True, **extra):
    container = s.container(requests={"cpu": cpu}) | ({"ports": PORT} if ports else {})
    return s.pod_spec([container], priority=priority, **extra)


def test_a_victim_holding_the_new_pods_host_port_stays_out_and_the_others_are_still_weighed(evaluate):
    # 5 CPU full: victim -1 (2 CPU, hostPort 9100), -2 (2 CPU), -3 (1 CPU). The new pod: 3 CPU and hostPort 9100.
    # All out, the new pod in (3); -1 clashes on the port (NodePorts): victim; -2 fits (5): reprieved; -3 would
    # make 6 > 5: victim. Two victims.
    state = state_from_objects([
        s.node("a", instance_type=None, allocatable={**FULL, "cpu": "5"}),
        s.pod("victim-1", "default", "a", spec=_ported(-1, "2")),
        s.pod("victim-2", "default", "a", spec=_ported(-2, "2", ports=False)),
        s.pod("victim-3", "default", "a", spec=_ported(-3, "1", ports=False)),
    ])
    verdict = evaluate(state, s.deployment("new", 1, spec=_ported(0, "3")))
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"]), verdict.reasons
    assert "would preempt 2 lower-priority pods" in verdict.reasons[0].summary
    # A victim's host port the new pod does not want is no clash: 4 CPU full with -1 (1 CPU, hostPort 9100) and
    # -2 (3 CPU); the new pod, 3 CPU, no port: -1 is reprieved (4), -2 is the one victim.
    state = state_from_objects([
        s.node("a", instance_type=None, allocatable=FULL),
        s.pod("victim-1", "default", "a", spec=_ported(-1, "1")),
        s.pod("victim-2", "default", "a", spec=_ported(-2, "3", ports=False)),
    ])
    verdict = evaluate(state, s.deployment("new", 1, spec=_ported(0, "3", ports=False)))
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"]), verdict.reasons
    assert "would preempt 1 lower-priority pod" in verdict.reasons[0].summary


def test_a_daemonset_preempts_on_every_full_node_whatever_their_order(evaluate):
    spec = lambda priority: _cpu_spec(priority)  # noqa: E731
    state = state_from_objects([
        s.node("a", instance_type=None, allocatable=FULL), s.node("b", instance_type=None, allocatable=FULL),
        s.node("c", instance_type=None, allocatable=FULL),
        s.pod("low-a", "default", "a", spec=_cpu_spec(-5, "1")),
        s.pod("b-1", "default", "b", spec=spec(-1)), s.pod("b-2", "default", "b", spec=spec(-2)),
        s.pod("c-1", "default", "c", spec=spec(-1)), s.pod("c-2", "default", "c", spec=spec(-2)),
    ])
    verdict = evaluate(state, s.daemonset("agent", spec=s.pod_spec([s.container(requests={"cpu": "2"})])))
    assert (verdict.pending, verdict.codes) == (0, ["PREEMPTION"]), verdict.reasons
    assert "2 pods fit only by preemption: would preempt 2 lower-priority pods" in verdict.reasons[0].summary


def test_a_node_where_the_workloads_own_pod_holds_the_port_is_no_candidate():
    # SelectVictimsOnNode on a: the workload's pod bound there first holds hostPort 9100; the next pod wants it
    # too, NodePorts fails whatever is removed: a is no candidate, its low pod is no victim.
    from webhook.engine.constraints import PodConstraints
    from webhook.engine.priority import local_victims
    from webhook.engine.scheduling import PodPlacementRules
    state = state_from_objects([s.node("a", instance_type=None, allocatable=FULL),
                                s.pod("low", "default", "a", spec=_ported(-1, "1", ports=False))])
    spec = _ported(0, "1")
    rules = PodPlacementRules.from_pod_spec(spec, {"app": "new"},
                                            constraints=PodConstraints.from_pod_spec(spec, "default", {"app": "new"}))
    candidates = victims(state, Priority(0, True, ""), rules)
    assert _names(candidates) == ["low"]
    assert local_victims(state, rules, candidates, [], {"a": 1}) == []
    assert _names(local_victims(state, rules, candidates, [], {})) == ["low"]


def test_a_host_port_held_by_a_pod_that_stays_keeps_the_node_no_candidate():
    # NodePorts after SelectVictimsOnNode removed the lower-priority pods: a port held by a pod of equal or
    # higher priority is still held; a port only the victims held is free again.
    from webhook.engine.constraints import PodConstraints
    from webhook.engine.priority import local_victims
    from webhook.engine.scheduling import PodPlacementRules
    spec = _ported(0, "1")
    rules = PodPlacementRules.from_pod_spec(spec, {"app": "new"},
                                            constraints=PodConstraints.from_pod_spec(spec, "default", {"app": "new"}))
    held = state_from_objects([s.node("a", instance_type=None, allocatable=FULL),
                               s.pod("keeper", "default", "a", spec=_ported(5, "1")),
                               s.pod("low", "default", "a", spec=_ported(-1, "1", ports=False))])
    candidates = victims(held, Priority(0, True, ""), rules)
    assert _names(candidates) == ["low"]
    assert local_victims(held, rules, candidates, []) == []
    freed = state_from_objects([s.node("a", instance_type=None, allocatable=FULL),
                                s.pod("holder", "default", "a", spec=_ported(-1, "1"))])
    assert _names(local_victims(freed, rules, victims(freed, Priority(0, True, ""), rules), [])) == ["holder"]
    # Two pods bound to the port (nodeName set by hand bypasses NodePorts): removing the lower one leaves the
    # keeper's claim on it, so the node is still no candidate.
    twice = state_from_objects([s.node("a", instance_type=None, allocatable=FULL),
                                s.pod("keeper", "default", "a", spec=_ported(5, "1")),
                                s.pod("holder", "default", "a", spec=_ported(-1, "1"))])
    candidates = victims(twice, Priority(0, True, ""), rules)
    assert _names(candidates) == ["holder"] and local_victims(twice, rules, candidates, []) == []


def test_a_daemonset_counts_only_the_nodes_preemption_really_frees():
    # a: a 1-CPU victim beside a 3-CPU pod of HIGHER priority: with the victim gone 1 CPU is free, the 2-CPU
    # daemon pod still does not fit (a is no candidate at all). b has room. c: two 2-CPU victims, -2 goes,
    # -1 is reprieved (exact fit). So 1 pod runs by preemption, a's stays Pending: a deny, not a warning.
    from webhook.engine.evaluate import evaluate
    state = state_from_objects([
        s.node("a", instance_type=None, allocatable=FULL), s.node("b", instance_type=None, allocatable=FULL),
        s.node("c", instance_type=None, allocatable=FULL),
        s.pod("low-a", "default", "a", spec=_cpu_spec(-5, "1")),
        s.pod("high-a", "default", "a", spec=_cpu_spec(10, "3")),
        s.pod("c-1", "default", "c", spec=_cpu_spec(-1)), s.pod("c-2", "default", "c", spec=_cpu_spec(-2)),
    ])
    verdict = evaluate(state, s.daemonset("agent", spec=s.pod_spec([s.container(requests={"cpu": "2"})])))
    assert (verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending) == ("deny", 3, 2, 1)
    assert verdict.codes == ["PREEMPTION", "INSUFFICIENT_CPU"]
    assert verdict.reasons[0].summary.endswith("1 pod fits only by preemption: would preempt 1 lower-priority pod")


def test_a_victim_that_fills_the_last_pod_slot_exactly_is_reprieved(evaluate):
    # maxPods 2, both slots held by victims -1 and -2. SelectVictimsOnNode: all out, the new pod in (1 slot),
    # -1 back (2 of 2: still fits, reprieved), -2 back would make 3: evicted. One victim.
    state = state_from_objects([s.node("a", instance_type=None, allocatable={**FULL, "pods": "2"}),
                                s.pod("v-1", "default", "a", spec=_cpu_spec(-1, "1")),
                                s.pod("v-2", "default", "a", spec=_cpu_spec(-2, "1"))])
    verdict = evaluate(state, s.deployment("new", 1, spec=_cpu_spec(0, "1")))
    assert (verdict.verdict, verdict.pending, verdict.codes) == ("warn", 0, ["PREEMPTION"])
    assert verdict.reasons[0].summary.endswith("1 pod fits only by preemption: would preempt 1 lower-priority pod")
