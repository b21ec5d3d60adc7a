"""Pod priority and preemption: a higher-priority workload evicts lower-priority pods.

The Priority admission plugin (``plugin/pkg/admission/priority``) resolves
``priorityClassName`` to a value and a ``preemptionPolicy``; without a name it takes the
``globalDefault`` class (the lowest value if several), else priority 0. The two system
classes always exist. The scheduler's DefaultPreemption then evicts pods of lower
priority from a node when that lets the pod fit. The engine counts, node by node, how many
lower-priority pods (lowest priority first) would have to go for the pending pods to
fit; when they all would, the shortfall is a warning "would preempt N pods", not a deny.
PodDisruptionBudgets are not modelled (the scheduler may still preempt past them).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
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


def _victims_by_node(state, priority: int, nodes) -> dict:
    victims: dict = {}
    for pod in state.pods.values():
        if pod.node in nodes and pod.priority < priority:
            victims.setdefault(pod.node, []).append(pod)
    for pods in victims.values():
        pods.sort(key=lambda p: (p.priority, p.key))
    return victims


def preemption_plan(state, placement, priority: Priority, requests, uses_ip: bool, extended: tuple,
                    new_volumes: int = 0) -> tuple[int, int]:
    """(pending pods that fit by preemption, lower-priority pods evicted for them).

    Per node, victims leave lowest priority first; each extra pod that then fits costs
    the victims it needed. The cheapest extra pods are taken first across nodes.
    """
    if not priority.preempts or placement.pending <= 0:
        return 0, 0
    if not any(p < priority.value for p in state.bound_priorities):
        return 0, 0          # no bound pod of lower priority: nothing to preempt (no scan of the pods)
    candidates = {name: o for name, o in placement.per_node.items()
                  if o.limit not in ("POD_ANTI_AFFINITY", "POD_AFFINITY", "TOPOLOGY_SPREAD", "HOST_PORT_CONFLICT")}
    victims = _victims_by_node(state, priority.value, candidates)
    steps = []            # per node: victims needed for the 1st, 2nd, ... extra pod (cumulative)
    for name, pods in victims.items():
        room = replace(candidates[name].room)
        base = room.fit(requests, uses_ip, new_volumes, extended)[0]
        costs, gained = [], base
        for count, pod in enumerate(pods, 1):
            room.take(-1, pod.requests, pod.uses_ip)
            if pod.extended:
                room.extended_taken = dict(room.extended_taken or {})
                for resource, amount in pod.extended:
                    room.extended_taken[resource] = room.extended_taken.get(resource, 0) - amount
            fit = room.fit(requests, uses_ip, new_volumes, extended)[0]
            while gained < fit:
                gained += 1
                costs.append(count)
        if costs:
            steps.append(costs)
    heap = [(costs[0], i, 0) for i, costs in enumerate(steps)]
    heapq.heapify(heap)
    needed, evicted = placement.pending, {}
    while needed and heap:
        _, i, k = heapq.heappop(heap)
        evicted[i] = steps[i][k]            # cumulative: the victims this node has given so far
        needed -= 1
        if k + 1 < len(steps[i]):
            heapq.heappush(heap, (steps[i][k + 1] - steps[i][k], i, k + 1))
    return placement.pending - needed, sum(evicted.values())


def preemption_reason(placement, priority: Priority, covered: int, count: int, label: str) -> Reason:
    return Reason(PREEMPTION, clip(
        f"{label}: {covered} pods fit only by preemption: would preempt {count} lower-priority pods")
        + f"\nIts priority {priority.value}" + (f" (PriorityClass {priority.class_name})" if priority.class_name else "")
        + " lets the scheduler evict lower-priority pods to make room; those pods go Pending instead."
        + "\nAdd capacity if they matter, or set preemptionPolicy: Never on the PriorityClass.", WARN)
