"""The pods a higher-priority workload binds by preempting, played one pod at a time as the scheduler does.

The scheduling queue hands the workload's pods to the scheduler one by one. A pod that
fits somewhere binds there (the default profile's scores choose the node). A pod that
fits nowhere runs DefaultPreemption's PostFilter
(``pkg/scheduler/framework/preemption/preemption.go``, ``plugins/defaultpreemption``):

* candidate nodes are those whose filter failure may be fixed by removing pods
  (``Unschedulable``, not ``UnschedulableAndUnresolvable``: a required pod affinity that
  fails on a node makes it no candidate, like a node selector or a taint does);
* ``SelectVictimsOnNode``: every lower-priority pod of THAT node is removed, then every
  filter runs again against the cluster as it is now (the pods bound before, the victims of
  earlier preemptions gone); if the pod still fails, the node is no candidate. Otherwise
  the removed pods are reprieved highest priority first while the pod still passes; the
  rest are the node's victims;
* ``pickOneNodeForPreemption``: the candidate whose highest victim priority is lowest,
  then the smallest sum of victim priorities, then the fewest victims (PodDisruptionBudgets
  and start times are not modelled; the first node by name breaks the last tie);
* the victims are deleted and the pod binds to that node (its nomination); the next pod
  starts from the cluster as it is then.

So a spread or zone-wide rule is judged against the pods that are really there at the
time, and victims are only ever pods of the node the pod then runs on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from . import budget
from .constraint_state import ConstraintState
from .placement import SEQUENTIAL_BUDGET, NodeRoom, RoomMap, _best_room
from .scheduling import ineligibility
from .scoring import Preferences

INT32_OFFSET = 2**31      # pickOneNodeForPreemption adds MaxInt32+1 to each priority before summing


@dataclass
class PreemptionPlay:
    placed: int = 0                                        # pods bound, with or without preempting
    evicted: int = 0                                       # victims deleted on the way
    per_node: dict[str, int] = field(default_factory=dict)


def _release(room: NodeRoom, pod) -> None:
    room.take(-1, pod.requests, pod.uses_ip, scored=pod.score_requests, extended=pod.extended)
    if pod.ports:
        room.freed_ports = (room.freed_ports or []) + list(pod.ports)


def _restore(room: NodeRoom, pod) -> None:
    room.take(1, pod.requests, pod.uses_ip, scored=pod.score_requests, extended=pod.extended)
    if pod.ports:
        freed = list(room.freed_ports or [])
        for port in pod.ports:
            freed.remove(port)
        room.freed_ports = freed


def play(state, rooms: RoomMap, rules, requests, scored, uses_ip: bool, extended: tuple, wanted: int,
         lower: list, node_filter=None, new_volumes: int = 0, caps: Mapping | None = None) -> PreemptionPlay | None:
    """Bind ``wanted`` pods one at a time, preempting ``lower`` (bound lower-priority pods on nodes the
    pod may use) when a pod fits nowhere. ``None`` when the play would cost more than
    SEQUENTIAL_BUDGET node checks, a quarter of that with pod-level constraints (a victim's
    release and return cost about three checks); the caller then estimates in bulk.

    Without pod-level constraints a node's verdict (fits, or its victims) changes only when
    that node changes, so both are kept per node and only the node a pod went to is judged
    again: the play costs one pass over the nodes and their victims, then a pass over the
    nodes that still fit per pod. With constraints every bind may move every node's verdict
    (spread, zone anti-affinity): each pod judges every node again.
    """
    rooms.flush()
    node_rules = rules.node_only
    eligible = [room for _, room in sorted(rooms.rooms.items())
                if ineligibility(room.node, node_rules) is None and not (node_filter and node_filter(room.node))]
    victims_of: dict[str, list] = {}
    for pod in lower:
        victims_of.setdefault(pod.node, []).append(pod)
    if rules.constraints is not None:     # every pod judges every node and its victims again
        if max(wanted, 1) * (len(eligible) + 3 * len(lower)) > SEQUENTIAL_BUDGET // 4:
            return None
    elif len(eligible) + 3 * len(lower) + max(wanted, 1) * len(eligible) > SEQUENTIAL_BUDGET:
        return None
    watcher = None
    if rules.constraints is not None:
        watcher = ConstraintState(state, rules.constraints, rules, state.nodes.values(), rooms.placed,
                                  rooms.given_back)
    own_ports = rules.constraints.ports if rules.constraints is not None else ()
    prefs = Preferences(node_rules, [r.node for r in eligible])
    capped = dict(caps or {})
    outcome = PreemptionPlay()

    def fits(room: NodeRoom) -> bool:
        if room.fit(requests, uses_ip, new_volumes, extended)[0] < 1:
            return False
        cap = capped.get(room.node.name)
        if cap is not None and outcome.per_node.get(room.node.name, 0) >= cap[0]:
            return False
        return watcher is None or watcher.refusal(room.node, room.used_ports() if own_ports else None) is None

    def candidate(room: NodeRoom) -> tuple | None:
        """(pickOneNodeForPreemption's key, victims) for ``room``, or None: no candidate."""
        pods = victims_of.get(room.node.name)
        if not pods or (watcher is not None and room.fit(requests, uses_ip, new_volumes, extended)[0] >= 1
                        and not (own_ports and _ports_refuse(watcher, room))
                        and watcher.affinity_refuses(room.node)):
            return None       # no victims here, or the affinity fails here: UnschedulableAndUnresolvable
        chosen = _select_victims(room, pods, watcher, fits)
        if chosen is None:
            return None
        return (max(p.priority for p in chosen) if chosen else -INT32_OFFSET,
                sum(p.priority + INT32_OFFSET for p in chosen), len(chosen), room.node.name), chosen

    # Without constraints: the nodes that fit one more pod, and each node's candidacy, kept per node.
    fitting = {r.node.name: r for r in eligible if fits(r)} if watcher is None else {}
    candidates = {r.node.name: candidate(r) for r in eligible} if watcher is None else {}

    def bind(room: NodeRoom) -> None:
        name = room.node.name
        room.take(1, requests, uses_ip, new_volumes, scored=scored, extended=extended, ports=own_ports)
        if watcher is not None:
            watcher.observe_self(room.node)
        outcome.per_node[name] = outcome.per_node.get(name, 0) + 1
        outcome.placed += 1
        if watcher is None:       # only this node changed
            if fits(room):
                fitting[name] = room
            else:
                fitting.pop(name, None)
            candidates[name] = candidate(room)

    for _ in range(wanted):
        budget.check()
        if watcher is None:
            room = _best_room(list(fitting.values()), requests, scored, uses_ip, extended, None, new_volumes, prefs)
        else:
            usable = [r for r in eligible if capped.get(r.node.name) is None
                      or outcome.per_node.get(r.node.name, 0) < capped[r.node.name][0]]
            room = _best_room(usable, requests, scored, uses_ip, extended, watcher, new_volumes, prefs)
        if room is not None:
            bind(room)
            continue
        best: tuple | None = None
        for room in eligible:
            found = candidates.get(room.node.name) if watcher is None else candidate(room)
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], room, found[1])
        if best is None:
            break             # nothing changes for the next pod (they are alike): the rest stay Pending
        _, room, chosen = best
        for pod in chosen:
            _release(room, pod)
            if watcher is not None:
                watcher.forget_pod(pod)
            victims_of[room.node.name].remove(pod)
        outcome.evicted += len(chosen)
        bind(room)
    return outcome


def _ports_refuse(watcher: ConstraintState, room: NodeRoom) -> bool:
    from .constraints import ports_conflict
    return ports_conflict(watcher.constraints.ports, room.used_ports())


def _select_victims(room: NodeRoom, pods: list, watcher: ConstraintState | None, fits) -> list | None:
    """SelectVictimsOnNode: ``None`` when the pod does not pass even with every lower-priority pod of
    the node gone; else the pods that must go after reprieving the others, highest priority first.
    The room and the watcher are left as they were."""
    for pod in pods:
        _release(room, pod)
        if watcher is not None:
            watcher.forget_pod(pod)
    chosen: list | None = None
    if fits(room):
        chosen = []
        for pod in sorted(pods, key=lambda p: (-p.priority, p.key)):
            _restore(room, pod)
            if watcher is not None:
                watcher.observe_pod(pod, pod.node)
            if not fits(room):
                _release(room, pod)
                if watcher is not None:
                    watcher.forget_pod(pod)
                chosen.append(pod)
    for pod in (pods if chosen is None else chosen):
        _restore(room, pod)
        if watcher is not None:
            watcher.observe_pod(pod, pod.node)
    return chosen
