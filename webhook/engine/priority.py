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

from .verdict import WARN, Reason, clip, counted

PREEMPTION = "PREEMPTION"
PRIORITY_CLASS_NOT_FOUND = "PRIORITY_CLASS_NOT_FOUND"
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


def unknown_class(state, spec: Mapping) -> tuple[str, bool] | None:
    """A ``priorityClassName`` the state does not hold, and whether the class list was read.

    Every API server creates the two system classes at start, so their presence means the
    cluster's classes were read. Read: ``plugin/pkg/admission/priority`` refuses the pods
    ("no PriorityClass with name X was found"), none is created. Not read (no ``list
    priorityclasses`` permission, an old or hand-written snapshot): the class may be a high one
    the scheduler preempts for, so a shortfall can only be a warning.
    """
    name = spec.get("priorityClassName")
    if not name or name in SYSTEM_CLASSES or name in state.priority_classes:
        return None
    return name, all(system in state.priority_classes for system in SYSTEM_CLASSES)


def victims(state, priority: Priority, rules=None, node_filter=None) -> list:
    """Bound pods the new pods may preempt (one scan of the pods, only when a lower priority is bound).

    Only pods on nodes the new pod may use at all (a cordoned or unmatched node is never a
    preemption candidate, so its pods stay, with their anti-affinity). Whether the pod-level
    filters pass on a node once its lower-priority pods are gone is ``local_victims``' job.
    """
    if not priority.preempts or not any(p < priority.value for p in state.bound_priorities):
        return []
    from .scheduling import ineligibility
    node_rules = rules.node_only if rules is not None else None
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
    return out


def local_victims(state, rules, candidates: list, given_back: list, placed: Mapping[str, int] | None = None) -> list:
    """The victims on nodes that pass the pod-level filters once their own lower-priority pods are gone.

    SelectVictimsOnNode removes every lower-priority pod of ONE node, then runs all filters
    against the cluster as it is when the pod fails: every other pod still in place, and the
    workload's pods that did bind (``placed``: node -> pods, the first placement) counted.
    So a required affinity that only lower-priority pods of the node satisfy makes the node
    no candidate at all (its pods all stay), unless the workload's own bound pods satisfy it
    there (differential seed 108); a zone held by pods of other nodes stays held (seed 36).
    """
    from .constraint_state import ConstraintState
    by_node: dict = {}
    for pod in candidates:
        by_node.setdefault(pod.node, []).append(pod)
    own_ports = rules.constraints.ports if rules.constraints is not None else ()
    kept = []
    for name, pods in by_node.items():
        node = state.nodes.get(name)
        if node is None:
            continue
        watcher = ConstraintState(state, rules.constraints, rules, state.nodes.values(), (), list(given_back) + pods)
        for where, count in (placed or {}).items():
            if where in watcher.nodes:
                for _ in range(count):
                    watcher.observe_self(watcher.nodes[where])
        freed = dict(node.ports)
        for pod in pods:
            for port in pod.ports:
                freed[port] = freed.get(port, 0) - 1
        used = [p for p, c in freed.items() if c > 0] + list(own_ports if (placed or {}).get(name) else ())
        if watcher.refusal(node, used) is None:
            kept.append(pods)
    return [pod for pods in kept for pod in pods]


def victims_used(state, placement, after, candidates: list, requests, uses_ip: bool, extended: tuple,
                 constraints=None, cumulative: bool = True) -> int:
    """The victims SelectVictimsOnNode keeps evicted on the nodes that took more pods.

    ``after``: the placement with the victims gone, of all the pods (``cumulative``) or of
    the pods the first ``placement`` left pending only (placed next to its pods).

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
        had = before.placed if before is not None else 0
        gained = outcome.placed - had if cumulative else outcome.placed
        pods = by_node.get(name)
        if gained <= 0 or not pods or name not in state.nodes:
            continue
        room = NodeRoom.of(state, state.nodes[name])
        for pod in pods:
            _give_back(room, pod)
        room.take(outcome.placed if cumulative else had + outcome.placed, requests, uses_ip, extended=extended)
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
        f"{label}: {counted(covered, 'pod')} {'fits' if covered == 1 else 'fit'} only by preemption: would preempt "
        f"{counted(count, 'lower-priority pod')}")
        + f"\nIts priority {priority.value}"
        + (f" (PriorityClass {priority.class_name})" if priority.class_name else "")
        + " lets the scheduler evict lower-priority pods to make room; those pods go Pending instead."
        + "\nAdd capacity if they matter, or set preemptionPolicy: Never on the PriorityClass.", WARN)
