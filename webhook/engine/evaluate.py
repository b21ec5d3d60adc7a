"""``evaluate(state, obj, old, mode)``: the one decision every adapter calls.

The walk of one value: ``spec.replicas`` becomes the pods wanted; an update subtracts the
pods the workload already runs (or gives their room back when a rollout replaces them);
placement meets each eligible node's free IP slots, kubelet slots, CPU and memory; what
does not fit leaves as ``pending`` with a reason per limit that stopped it.
"""

from __future__ import annotations

from typing import Mapping

from . import budget, explain, limitranger, pod_eni, preemption, quota, shape, storage, subnets
from .growth import absorb
from .model import ClusterState
from .constraints import PodConstraints
from .placement import RoomMap, place, reserved_by_node
from .priority import (PRIORITY_CLASS_NOT_FOUND, local_victims, pod_priority, preemption_reason, unknown_class,
                       victims, victims_used)
from .requests import NO_DEFAULTS, ObjectError, extended_requests, pod_requests, uses_pod_ip
from .scheduling import PodPlacementRules, ineligibility
from .verdict import DENY, WARN, Reason, Verdict, clip, counted, decide
from .workloads import POD_KINDS, Demand, demand_of, same_template

INVALID_OBJECT = "INVALID_OBJECT"
LIMITRANGE_REJECTS = "LIMITRANGE_REJECTS"
NO_ELIGIBLE_NODE = "NO_ELIGIBLE_NODE"
UNKNOWN_INSTANCE_TYPE = "UNKNOWN_INSTANCE_TYPE"
ROLLOUT_STALL = "ROLLOUT_STALL"
HANDLED_KINDS = POD_KINDS + ("PersistentVolumeClaim",)


def identity(obj: Mapping) -> tuple[str, str, str]:
    """(kind, namespace, name), tolerant of malformed objects (they still need a label)."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    kind = obj.get("kind") if isinstance(obj, Mapping) else None
    namespace, name = meta.get("namespace"), meta.get("name")
    return (kind if isinstance(kind, str) else "", namespace if isinstance(namespace, str) and namespace else "default",
            name if isinstance(name, str) else ("" if name is None else "<invalid name>"))


def evaluate(state: ClusterState, obj: Mapping, old: Mapping | None = None, mode: str = "enforce") -> Verdict:
    """Decide whether ``obj`` (created, or updated from ``old``) fits the cluster.

    Objects the engine cannot read are allowed with an ``INVALID_OBJECT`` warning that
    names the field: the API server validates objects itself, we only judge capacity.
    Shapes are checked first (``shape.check_object``); any other exception is a bug in the
    engine and propagates to the adapter's internal-error path (never blamed on the object).
    """
    kind, namespace, name = identity(obj)
    try:
        shape.check_object(obj, depth=True)
        if old is not None:
            shape.check_object(old, "oldObject.", depth=True)
        budget.check()
        if kind == "PersistentVolumeClaim":
            verdict = Verdict(kind, namespace, name)
            verdict.reasons.extend(storage.claim_findings(state, obj, old))
        elif kind in POD_KINDS:
            verdict = _evaluate_workload(state, obj, old)
        else:
            verdict = Verdict(kind, namespace, name)
    except ObjectError as exc:
        verdict = _invalid(kind, namespace, name, exc.field, exc.problem)
    return decide(verdict, mode)


def _invalid(kind: str, namespace: str, name: str, field: str, problem: str) -> Verdict:
    verdict = Verdict(kind, namespace, name)
    label = clip(f"{kind} {namespace}/{name}", 60)          # the field must stay on the first line
    verdict.reasons = [Reason(INVALID_OBJECT, clip(f"{label}: cannot read {field}: {problem}")
                              + f"\nThe capacity check was skipped: {field} {problem}.", WARN)]
    return verdict


def _evaluate_workload(state: ClusterState, obj: Mapping, old: Mapping | None) -> Verdict:
    demand = demand_of(obj)
    old_demand = demand_of(old) if old and old.get("kind") == demand.kind else None
    label = explain.workload_label(*demand.key)
    verdict = Verdict(*demand.key)
    path = "spec.template.spec" if demand.kind != "Pod" else "spec"
    limit_ranges = state.limit_ranges_in(demand.namespace)
    # API defaulting (a request from its limit) happens with or without LimitRanges: quota reads it.
    pod_spec = limitranger.admitted_spec(demand.pod_spec, limit_ranges)
    refused = limitranger.rejections(pod_spec, limit_ranges) if limit_ranges else []
    if refused:     # the API server refuses every pod: none is created, none is Pending
        verdict.requested = demand.replicas if demand.replicas is not None else 0
        verdict.reasons.append(Reason(LIMITRANGE_REJECTS, clip(
            f"{label}: the API server would refuse its pods: LimitRange {refused[0]}")
            + f"\n{'; '.join(refused[:4])}{' ...' if len(refused) > 4 else ''}."
            + "\nSet requests and limits within the namespace's LimitRange (kubectl describe limitrange).", DENY))
        return verdict
    requests = pod_requests(pod_spec, NO_DEFAULTS, path)
    scored = pod_requests(pod_spec, NO_DEFAULTS, path, for_scoring=True)
    extended = extended_requests(pod_spec, path)
    uses_ip = uses_pod_ip(demand.pod_spec)
    branch = pod_eni.branch_demand(state, demand.namespace, demand.pod_spec, demand.pod_labels)
    if branch is not None:     # a branch ENI per pod instead of one of the node's secondary IPs
        uses_ip = False
    constraints = PodConstraints.from_pod_spec(demand.pod_spec, demand.namespace, demand.created_pod_labels,
                                               state.anti_pods.values(), state.namespace_labels(demand.namespace))
    rules = PodPlacementRules.from_pod_spec(demand.pod_spec, demand.pod_labels, daemon=demand.kind == "DaemonSet",
                                            constraints=constraints)
    priority = pod_priority(state, demand.pod_spec)
    own = state.pods_of(demand.key) if old_demand else []
    running = [p for p in own if p.node]
    changed = old_demand is None or not same_template(demand, old_demand)

    if old_demand and (demand.kind == "Pod" or (not changed and (
            demand.replicas is None or demand.replicas <= max(old_demand.replicas or 0, len(running))))):
        # Scale-down, label edit, status change, no-op apply: nothing new to place.
        verdict.requested = verdict.schedulable = demand.replicas if demand.replicas is not None else len(running)
        if demand.replicas is not None and demand.kind != "Pod":
            # A scale-down (or a no-op apply) releases what an earlier promise holds beyond it.
            verdict.hold_at_most = max(0, demand.replicas - len(own))
        return verdict

    unknown = unknown_class(state, demand.pod_spec)
    if unknown and unknown[1] and demand.replicas != 0:   # the API server refuses every pod: none is Pending
        verdict.requested = demand.replicas if demand.replicas is not None else 0
        verdict.reasons.append(Reason(PRIORITY_CLASS_NOT_FOUND, clip(
            f"{label}: the API server would refuse its pods: no PriorityClass with name {unknown[0]} was found")
            + "\nCreate the PriorityClass first or fix priorityClassName (kubectl get priorityclasses).", DENY))
        return verdict

    if demand.pod_spec.get("schedulingGates"):
        # Gated pods are created but not handed to the scheduler: no demand until the gates go.
        verdict.requested = demand.replicas if demand.replicas is not None else 0
        return verdict

    volumes = storage.pod_volume_rules(state, demand)
    verdict.reasons.extend(volumes.findings)
    if volumes.blocking:   # a claim that never binds: every pod would wait
        verdict.requested = demand.replicas if demand.replicas is not None else \
            sum(1 for node in state.nodes.values() if ineligibility(node, rules) is None)
        verdict.pending = verdict.requested
        return verdict

    wanted: int | None
    if not changed:                      # scale-up: only the extra pods need room
        assert demand.replicas is not None   # an unchanged DaemonSet (replicas None) returned above
        existing, wanted = len(running), demand.replicas - len(running)
        rooms = RoomMap(state, ignore_owner=demand.key, priority=priority.value)
    else:                                # create, or a rollout that replaces every pod
        existing, wanted = 0, demand.replicas
        if old_demand and demand.rolling:
            _check_surge(state, demand, requests, uses_ip, rules, volumes, label, verdict, priority.value,
                         branch is not None)
        rooms = RoomMap(state, ignore_owner=demand.key, give_back=running, priority=priority.value)

    over_quota = 0
    if wanted is not None and not (old_demand and changed):   # a rollout swaps pods: quota is not modelled there
        outcome = quota.admitted_pods(state, demand.namespace, pod_spec, wanted)
        if outcome.allowed is not None and outcome.allowed < wanted:
            over_quota, wanted = wanted - outcome.allowed, outcome.allowed
            verdict.reasons.append(Reason(quota.QUOTA_EXCEEDED, clip(
                f"{label}: the API server would refuse {over_quota} of its pods: ResourceQuota {outcome.quota} "
                f"({outcome.resource})") + f"\n{outcome.message}.\nRaise the quota, lower the requests, or lower "
                f"{demand.replica_word}.", DENY))

    waiting = 0
    if volumes.max_pods is not None and wanted is not None:   # ReadWriteOncePod: the others wait for the claim
        allowed = max(0, volumes.max_pods - existing)
        waiting, wanted = max(0, wanted - allowed), min(wanted, allowed)
    caps = pod_eni.branch_caps(state, rooms, demand.key) if branch is not None else None
    placement = place(rooms, rules, requests, uses_ip, wanted, node_filter=volumes.node_filter,
                      new_volumes=volumes.new_volumes_per_pod, caps=caps, scored=scored, extended=extended)
    placement.caps = caps
    placement.caps_held = state.reserved_branch_enis(demand.key) if caps is not None and state.reservations else None
    verdict.placement, verdict.pod_requests, verdict.uses_ip = placement, requests, uses_ip
    verdict.branch_eni = branch is not None
    if running and changed:
        # A rollout replaces running pods: only pods beyond them are new demand to hold.
        verdict.reserve_limit = max(0, placement.placed - len(running))
    verdict.requested = existing + placement.wanted + waiting + over_quota
    verdict.schedulable = existing + placement.placed
    verdict.pending = placement.pending + waiting
    verdict.reasons.extend(_unknown_types(state, placement))
    if uses_ip or branch is not None:
        lower = demand.replica_word if demand.kind != "DaemonSet" else "the pod's requests"
        reserved = {n: ips for n, (_r, _p, ips) in reserved_by_node(state, demand.key).items()} \
            if state.reservations and state.network.subnets else None   # only subnet room reads it
        found, stuck = subnets.subnet_findings(state, placement, label, lower, reserved, branch=branch is not None)
        verdict.reasons.extend(found)
        verdict.pending += min(stuck, placement.placed)
    if placement.pending:
        zone_excluded = any(cause.startswith(storage.ZONE_EXCLUSION) for cause in placement.excluded)
        if zone_excluded and placement.per_node and volumes.zones is not None:   # the zone kept pods off roomy nodes
            verdict.reasons.append(storage.zone_reason(label, volumes.zones, placement))
        covered = evicted = 0
        candidates = victims(state, priority, rules, volumes.node_filter)
        played = None
        if candidates and wanted is not None:   # the scheduler's loop: bind, else preempt on one node, pod by pod
            play_rooms = RoomMap(state, ignore_owner=demand.key, give_back=running if changed else [],
                                 priority=priority.value)
            played = preemption.play(
                state, play_rooms, rules, requests, scored, uses_ip, extended, wanted, candidates,
                node_filter=volumes.node_filter, new_volumes=volumes.new_volumes_per_pod,
                caps=pod_eni.branch_caps(state, play_rooms, demand.key) if branch is not None else None)
        if played is not None:
            covered, evicted = min(verdict.pending, max(0, played.placed - placement.placed)), played.evicted
        elif candidates:   # too big to play pod by pod: every candidate node's victims gone at once
            if constraints is not None:
                # SelectVictimsOnNode removes only the candidate node's own pods: a node whose domain is held
                # by pods elsewhere (zone anti-affinity, spread) is no candidate, its pods are no victims.
                candidates = local_victims(state, rules, candidates, running if changed else [],
                                           placement.placed_per_node())
            first = placement.placed_per_node() if wanted is not None else None
            again_rooms = RoomMap(state, ignore_owner=demand.key, give_back=(running if changed else []) + candidates,
                                  priority=priority.value)
            again = place(again_rooms, rules, requests, uses_ip, placement.pending if first is not None else wanted,
                          node_filter=volumes.node_filter, new_volumes=volumes.new_volumes_per_pod,
                          caps=pod_eni.branch_caps(state, again_rooms, demand.key) if branch is not None else None,
                          scored=scored, extended=extended, already=first)
            gained = again.placed if first is not None else max(0, again.placed - placement.placed)
            covered = min(verdict.pending, gained)
            evicted = victims_used(state, placement, again, candidates, requests, uses_ip, extended, constraints,
                                   cumulative=first is None)
        if covered:    # the scheduler evicts lower-priority pods to make room: those pods run after all
            verdict.pending -= covered
            verdict.schedulable += covered
        shortfall = _shortfall_reasons(state, demand, placement, requests, label, verdict) if verdict.pending else []
        if branch is not None:
            shortfall = [Reason(r.code, f"{r.message}\n{pod_eni.policy_note(branch)}",
                                r.severity if branch.certain else WARN) for r in shortfall]
        if covered:
            shortfall.insert(0, preemption_reason(placement, priority, covered, evicted, label))
        if unknown and not unknown[1] and state.bound_priorities:   # priority unknown: preemption may make room
            shortfall = [Reason(r.code, f"{r.message}\nPriorityClass {unknown[0]} was not read (no permission to list "
                                "priorityclasses, or a snapshot without them): the scheduler may preempt "
                                "lower-priority pods for these, so this is a warning.", WARN) for r in shortfall]
        growth = absorb(state, placement, requests, uses_ip)
        if growth:   # the autoscaler only reacts to Pending pods: never block its input
            shortfall = [Reason(r.code, f"{r.message}\n{growth}", WARN) for r in shortfall]
        verdict.reasons.extend(shortfall)
    return verdict


def _shortfall_reasons(state, demand: Demand, placement, requests, label: str, verdict: Verdict) -> list[Reason]:
    if not placement.per_node:
        message = explain.no_eligible_message(label, verdict.requested, placement.excluded, len(state.nodes))
        return [Reason(NO_ELIGIBLE_NODE, message)]
    lower = demand.replica_word if demand.kind != "DaemonSet" else "the pod's requests"
    counts = placement.limits()
    reasons = []
    for code in sorted(counts, key=lambda c: (-counts[c], c)):
        detail = explain.node_list(code, placement, requests, state)
        fix = explain.fix_for(code, state, placement, lower, requests)
        message = explain.shortfall_message(code, label, verdict.requested, verdict.schedulable, verdict.pending,
                                            detail, fix, placement.excluded)
        reasons.append(Reason(code, message))
    return reasons


def _unknown_types(state, placement) -> list[Reason]:
    unknown = placement.instance_types_unknown()
    if not unknown:
        return []
    names = ", ".join(unknown[:3]) + (" ..." if len(unknown) > 3 else "")
    return [Reason(UNKNOWN_INSTANCE_TYPE,
                   clip(f"Instance type {names} is not in the instance-limits table: its pod IP limit is unknown")
                   + "\nOnly the kubelet pod limit was checked on those nodes. Refresh the table with "
                     "scripts/generate_instance_limits.py or give the server AWS credentials.", WARN)]


def _check_surge(state, demand: Demand, requests, uses_ip, rules, volumes, label: str, verdict: Verdict,
                 priority: int | None = None, branch: bool = False) -> None:
    """A changed template rolls out new pods next to the old ones: ``maxSurge`` of them must fit
    (a branch ENI each too, when a SecurityGroupPolicy selects them)."""
    if demand.max_surge <= 0:
        return
    rooms = RoomMap(state, ignore_owner=demand.key, priority=priority)
    surge = place(rooms, rules, requests, uses_ip, demand.max_surge, node_filter=volumes.node_filter,
                  new_volumes=volumes.new_volumes_per_pod,
                  caps=pod_eni.branch_caps(state, rooms, demand.key) if branch else None)
    if surge.placed == 0 and demand.max_unavailable == 0:
        verdict.reasons.append(Reason(ROLLOUT_STALL, clip(
            f"{label}: the rollout will stall: no room for a surge pod and maxUnavailable is 0")
            + f"\nmaxSurge allows {counted(demand.max_surge, 'extra pod')} but none fits next to the running ones, "
              "and no old pod may stop first.\nSet maxUnavailable to 1 or more, or free capacity before the "
              "rollout.", WARN))
