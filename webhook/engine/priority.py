"""Pod priority and preemption: a higher-priority workload evicts lower-priority pods.

The Priority admission plugin (``plugin/pkg/admission/priority``) resolves
``priorityClassName`` to a value and a ``preemptionPolicy``; without a name it takes the
``globalDefault`` class (the lowest value if several), else priority 0. The two system
classes always exist. The scheduler's DefaultPreemption
(``framework/plugins/defaultpreemption``, ``SelectVictimsOnNode``) removes every
lower-priority pod from a candidate node and runs *all* filters again: not only room, but
host ports, inter-pod (anti-)affinity (the victims' own anti-affinity included) and spread
held by lower-priority pods are cleared by preempting them. The engine therefore places the
pending pods again with every lower-priority bound pod given back; the pods that then fit
are the ones preemption lets run (a warning "would preempt N pods", not a deny). N is
counted per node as SelectVictimsOnNode does: all victims out, the new pods in, then the
victims reprieved highest priority first while they still fit. PodDisruptionBudgets are not modelled (the
scheduler may preempt past them when it must).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .verdict import WARN, Reason, clip

PREEMPTION = "PREEMPTION"
SYSTEM_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}


@dataclass(frozen=True)
class Priority:
    value: int
    preempts: bool
    class_name: str


def pod_priority(state, spec: Mapping) -> Priority:
    name = spec.get("priorityClassName") or ""
    classes = state.priority_classes
    if name:
        if name in classes:
            cls = classes[name]
            return Priority(cls["value"], cls["preemptionPolicy"] != "Never", name)
        if name in SYSTEM_CLASSES:
            return Priority(SYSTEM_CLASSES[name], True, name)
        return Priority(0, spec.get("preemptionPolicy") != "Never", name)   # unknown class: assume the default
    defaults = [(c["value"], n) for n, c in classes.items() if c["globalDefault"]]
    if defaults:
        value, default_name = min(defaults)
        return Priority(value, classes[default_name]["preemptionPolicy"] != "Never", default_name)
    return Priority(0, spec.get("preemptionPolicy") != "Never", "")


def victims(state, priority: Priority, rules=None, node_filter=None) -> list:
    """Bound pods the new pods may preempt (one scan of the pods, only when a lower priority is bound).

    Only pods on nodes the new pod may use at all (a cordoned or unmatched node is never a
    preemption candidate, so its pods stay, with their anti-affinity), and never the pods
    its required affinity needs, nor any pod beside them: SelectVictimsOnNode removes every
    lower-priority pod of the node first, then the affinity filter fails there, so that node
    is no candidate at all.
    """
    if not priority.preempts or not any(p < priority.value for p in state.bound_priorities):
        return []
    from .scheduling import ineligibility
    node_rules = rules.node_only if rules is not None else None
    constraints = getattr(rules, "constraints", None)
    affinity = constraints.affinity.affinity if constraints is not None and constraints.affinity else ()
    usable: dict = {}
    out = []
    for pod in state.pods.values():
        if not pod.node or pod.priority >= priority.value:
            continue
        if pod.node not in usable:
            node = state.nodes.get(pod.node)
            usable[pod.node] = node is not None and (node_rules is None or ineligibility(node, node_rules) is None) \
                and not (node_filter and node_filter(node))
        if not usable[pod.node]:
            continue
        out.append(pod)
    if affinity:   # a node holding a lower-priority pod the affinity needs is no candidate: its pods all stay
        held = {pod.node for pod in out
                if any(t.matches(pod.namespace, dict(pod.labels), state.namespace_labels(pod.namespace))
                       for t in affinity)}
        out = [pod for pod in out if pod.node not in held]
    return out


def local_victims(state, rules, candidates: list, given_back: list) -> list:
    """The victims on nodes that pass the pod-level filters once their own lower-priority pods are gone
    (every other pod of the cluster still in place), as SelectVictimsOnNode checks a candidate node."""
    from .constraint_state import ConstraintState
    by_node: dict = {}
    for pod in candidates:
        by_node.setdefault(pod.node, []).append(pod)
    kept = []
    for name, pods in by_node.items():
        node = state.nodes.get(name)
        if node is None:
            continue
        watcher = ConstraintState(state, rules.constraints, rules, state.nodes.values(), (), list(given_back) + pods)
        freed = dict(node.ports)
        for pod in pods:
            for port in pod.ports:
                freed[port] = freed.get(port, 0) - 1
        if watcher.refusal(node, [p for p, c in freed.items() if c > 0]) is None:
            kept.extend(pods)
    return kept


def victims_used(state, placement, after, candidates: list, requests, uses_ip: bool, extended: tuple,
                 constraints=None) -> int:
    """The victims SelectVictimsOnNode keeps evicted on the nodes that took more pods.

    On such a node every lower-priority pod goes, the new pods are added, then the victims
    are reprieved highest priority first while the node still holds everything; a victim
    whose host port or anti-affinity clashes with the new pods (or theirs with it) stays out.
    """
    from .constraints import ports_conflict
    from .placement import NodeRoom
    by_node: dict = {}
    for pod in candidates:
        by_node.setdefault(pod.node, []).append(pod)
    evicted = 0
    for name, outcome in after.per_node.items():
        before = placement.per_node.get(name)
        gained = outcome.placed - (before.placed if before is not None else 0)
        pods = by_node.get(name)
        if gained <= 0 or not pods or name not in state.nodes:
            continue
        room = NodeRoom.of(state, state.nodes[name])
        for pod in pods:
            _give_back(room, pod)
        room.take(outcome.placed, requests, uses_ip, extended=extended)
        for pod in sorted(pods, key=lambda p: (-p.priority, p.key)):
            if _clashes(pod, constraints, state.nodes[name], ports_conflict, state.namespace_labels):
                evicted += 1
                continue
            room.take(1, pod.requests, pod.uses_ip, extended=pod.extended)
            if _overfull(room, pod):
                _give_back(room, pod)
                evicted += 1
    return evicted


def _give_back(room, pod) -> None:
    room.take(-1, pod.requests, pod.uses_ip)
    if pod.extended:
        room.extended_taken = dict(room.extended_taken or {})
        for resource, amount in pod.extended:
            room.extended_taken[resource] = room.extended_taken.get(resource, 0) - amount


def _overfull(room, pod) -> bool:
    free = room.free
    return (free.cpu < 0 or free.memory < 0 or free.ephemeral < 0 or room.pods < 0
            or (room.ips is not None and room.ips < 0)
            or any(room.extended_free(resource) < 0 for resource, _ in pod.extended))


def _clashes(victim, constraints, node, ports_conflict, namespace_labels) -> bool:
    if constraints is None:
        return False
    if constraints.ports and victim.ports and ports_conflict(constraints.ports, victim.ports):
        return True
    labels = constraints.label_map
    for term in victim.anti:      # the victim repels the new pods from its domain (the node is in it)
        if term.topology_key in node.labels and term.matches(constraints.namespace, labels,
                                                             namespace_labels(constraints.namespace)):
            return True
    affinity = constraints.affinity
    for term in (affinity.anti_affinity if affinity else ()):
        if term.topology_key in node.labels and term.matches(victim.namespace, dict(victim.labels),
                                                             namespace_labels(victim.namespace)):
            return True
    return False


def preemption_reason(placement, priority: Priority, covered: int, count: int, label: str) -> Reason:
    return Reason(PREEMPTION, clip(
        f"{label}: {covered} pods fit only by preemption: would preempt {count} lower-priority pods")
        + f"\nIts priority {priority.value}"
        + (f" (PriorityClass {priority.class_name})" if priority.class_name else "")
        + " lets the scheduler evict lower-priority pods to make room; those pods go Pending instead."
        + "\nAdd capacity if they matter, or set preemptionPolicy: Never on the PriorityClass.", WARN)
