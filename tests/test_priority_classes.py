"""Which priority a pod gets: the Priority admission plugin's rules (plugin/pkg/admission/priority).

A named class gives its value and preemptionPolicy; the two system classes always exist
(pkg/apis/scheduling: system-node-critical 2000001000, system-cluster-critical 2000000000,
both PreemptLowerPriority); without a name the globalDefault class applies (the lowest
value when several claim it), else priority 0.
"""

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.engine.priority import pod_priority
from webhook.state.snapshot import state_from_objects


def priority_class(name, value, global_default=False, policy=None):
    obj = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
           "value": value, "globalDefault": global_default}
    if policy:
        obj["preemptionPolicy"] = policy
    return obj


def priority(*classes, **spec):
    return pod_priority(state_from_objects(list(classes)), s.pod_spec(**spec))


def test_the_system_classes_exist_without_objects():
    node = priority(priorityClassName="system-node-critical")
    cluster = priority(priorityClassName="system-cluster-critical")
    assert (node.value, node.preempts, node.class_name) == (2000001000, True, "system-node-critical")
    assert (cluster.value, cluster.preempts) == (2000000000, True)


def test_a_named_class_gives_its_value_and_policy():
    high = priority(priority_class("high", 1000, policy="Never"), priorityClassName="high")
    assert (high.value, high.preempts, high.class_name) == (1000, False, "high")
    low = priority(priority_class("low", -5), priorityClassName="low")
    assert (low.value, low.preempts) == (-5, True)


def test_without_a_name_the_lowest_global_default_applies_else_zero():
    classes = [priority_class("a", 300, True), priority_class("b", 100, True, policy="Never"),
               priority_class("c", 50)]
    default = priority(*classes)
    assert (default.value, default.preempts, default.class_name) == (100, False, "b")
    assert priority(priority_class("c", 50)).value == 0
    plain = priority(preemptionPolicy="Never")
    assert (plain.value, plain.preempts, plain.class_name) == (0, False, "")


# ---- a class that does not exist: the Priority admission plugin refuses the pods --------------
# plugin/pkg/admission/priority/admission.go, on Create: a name the lister cannot find (and that
# is not one of the two system classes) is "no PriorityClass with name X was found", Forbidden.
SYSTEM = [priority_class("system-node-critical", 2000001000), priority_class("system-cluster-critical", 2000000000)]


def web_with_class(name, replicas=3):
    workload = s.small_web("web", replicas)
    workload["spec"]["template"]["spec"]["priorityClassName"] = name
    return workload


def codes(*classes, workload):
    cluster = s.two_t3_medium_cluster()
    return [r.code for r in evaluate(state_from_objects(cluster["items"] + list(classes)), workload).reasons]


def test_a_class_missing_from_a_recorded_list_refuses_every_pod():
    verdict = evaluate(state_from_objects(s.two_t3_medium_cluster()["items"] + SYSTEM), web_with_class("gold"))
    assert [r.code for r in verdict.reasons] == ["PRIORITY_CLASS_NOT_FOUND"]
    assert verdict.verdict == "deny"
    assert "no PriorityClass with name gold was found" in verdict.reasons[0].message
    assert verdict.pending == 0            # never created, so never Pending
    assert (verdict.requested, verdict.schedulable) == (3, 0)
    agent = s.daemonset("agent", spec=s.pod_spec([s.container("agent")], priorityClassName="gold"))
    daemon = evaluate(state_from_objects(s.two_t3_medium_cluster()["items"] + SYSTEM), agent)
    assert (daemon.codes, daemon.verdict, daemon.pending) == (["PRIORITY_CLASS_NOT_FOUND"], "deny", 0)


def test_an_existing_or_system_class_is_not_reported():
    assert codes(*SYSTEM, priority_class("gold", 1000), workload=web_with_class("gold")) == []
    assert codes(*SYSTEM, workload=web_with_class("system-cluster-critical")) == []


def test_without_the_recorded_classes_nothing_is_claimed():
    # Every API server creates the system classes; their absence means the list was not
    # recorded (old snapshot, no RBAC), so the missing name may well exist.
    assert codes(workload=web_with_class("gold")) == []
    assert codes(SYSTEM[0], workload=web_with_class("gold")) == []


def test_zero_replicas_create_no_pod_to_refuse():
    assert codes(*SYSTEM, workload=web_with_class("gold", replicas=0)) == []


def test_an_unknown_class_without_a_recorded_list_is_assumed_priority_0():
    # Nothing claims the class is missing (see above); the engine assumes the default priority 0 and keeps
    # the pod's own preemptionPolicy (default PreemptLowerPriority).
    unknown = priority(priorityClassName="gold")
    assert (unknown.value, unknown.preempts, unknown.class_name) == (0, True, "gold")
    polite = priority(priorityClassName="gold", preemptionPolicy="Never")
    assert (polite.value, polite.preempts) == (0, False)


def test_a_shortfall_of_a_class_that_was_never_read_is_only_a_warning():
    # No PriorityClass objects at all: "gold" may be a class the scheduler preempts for, so the
    # 9 pods without IP slots (README's example) must not be a deny; the same pods without a class are.
    cluster = s.two_t3_medium_cluster()["items"]
    unread = evaluate(state_from_objects(cluster), web_with_class("gold", replicas=30))
    assert unread.verdict == "warn" and unread.pending == 9
    assert "PriorityClass gold was not read" in unread.reasons[0].message
    plain = evaluate(state_from_objects(cluster), s.small_web("web", 30))
    assert plain.verdict == "deny" and plain.pending == 9
    # With the classes read, a known low class keeps the deny.
    known = evaluate(state_from_objects(cluster + SYSTEM + [priority_class("gold", -5)]),
                     web_with_class("gold", replicas=30))
    assert known.verdict == "deny"
