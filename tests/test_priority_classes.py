"""Which priority a pod gets: the Priority admission plugin's rules (plugin/pkg/admission/priority).

A named class gives its value and preemptionPolicy; the two system classes always exist
(pkg/apis/scheduling: system-node-critical 2000001000, system-cluster-critical 2000000000,
both PreemptLowerPriority); without a name the globalDefault class applies (the lowest
value when several claim it), else priority 0.
"""

from tests import synthetic as s
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
