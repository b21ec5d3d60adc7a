"""Messages a person can act on: how many pods, which nodes, what stopped them, what to do.

Every message starts with a one-line summary (<= 120 characters, it becomes an
admission warning), then the per-node detail, then the fix that matches the cause.
"""

from __future__ import annotations

import heapq

from . import node_class, pod_eni
from .ipslots import recommended_max_pods
from .constraint_state import AFFINITY, ANTI_AFFINITY, HOST_PORT, SPREAD
from .node_truth import laggard_fix, prefix_laggards
from .placement import (
    EBS_ATTACH_LIMIT,
    INSUFFICIENT_CPU,
    INSUFFICIENT_EPHEMERAL_STORAGE,
    INSUFFICIENT_EXTENDED,
    INSUFFICIENT_MEMORY,
    POD_IP_EXHAUSTED,
    POD_LIMIT_REACHED,
    Placement,
)
from .quantity import format_bytes, format_cpu
from .requests import Resources
from .verdict import clip, counted

NODES_LISTED = 4
CAUSES = {
    POD_IP_EXHAUSTED: "no pod IP slots left",
    POD_LIMIT_REACHED: "kubelet pod limit (maxPods) reached",
    INSUFFICIENT_CPU: "not enough CPU",
    INSUFFICIENT_MEMORY: "not enough memory",
    INSUFFICIENT_EPHEMERAL_STORAGE: "not enough ephemeral storage",
    EBS_ATTACH_LIMIT: "EBS volume attach limit reached",
    INSUFFICIENT_EXTENDED: "not enough of an extended resource",
    ANTI_AFFINITY: "pod anti-affinity allows no more pods there",
    AFFINITY: "required pod affinity not satisfied",
    SPREAD: "topologySpreadConstraints (maxSkew) would be violated",
    HOST_PORT: "hostPort already taken",
    pod_eni.POD_ENI_EXHAUSTED: "no branch ENIs (security groups for pods) left",
    "NO_ELIGIBLE_NODE": "no eligible node",
}


def workload_label(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


def _node_phrase(code: str, name: str, outcome, requests: Resources, short: bool) -> str:
    if code == POD_IP_EXHAUSTED:
        room = outcome.room
        total = room.capacity.slots
        free = max(0, outcome.free_ips_before or 0)
        if short:
            return f"node {name}: {free} of {total}"
        return f"node {name}: {counted(free, 'IP slot')} left of {total} on {room.capacity.instance_type}"
    if code == POD_LIMIT_REACHED:
        # "0 of 1 pod slot left", "1 of 110 pod slots left": the noun agrees with the total
        total = outcome.room.node.allocatable_pods
        return f"node {name}: {max(0, outcome.free_pods_before)} of {counted(total, 'pod slot')} left"
    if code == INSUFFICIENT_CPU:
        return f"node {name}: {format_cpu(max(outcome.free_before.cpu, 0))} CPU free"
    if code == INSUFFICIENT_MEMORY:
        return f"node {name}: {format_bytes(max(outcome.free_before.memory, 0))} memory free"
    if code == INSUFFICIENT_EPHEMERAL_STORAGE:
        return f"node {name}: {format_bytes(max(outcome.free_before.ephemeral, 0))} ephemeral storage free"
    if code == INSUFFICIENT_EXTENDED:
        return f"node {name}: not enough {outcome.short_of or 'extended resource'}"
    if code == ANTI_AFFINITY:
        return f"node {name}: a pod its anti-affinity excludes runs in its domain"
    if code == AFFINITY:
        return f"node {name}: no pod it must run near is in its domain"
    if code == SPREAD:
        return f"node {name}: one more pod there would exceed maxSkew"
    if code == HOST_PORT:
        return f"node {name}: host port in use"
    return f"node {name}: {counted(max(0, outcome.free_volumes_before or 0), 'EBS attachment')} left"


def held_phrase(outcome) -> str:
    """`` (10 reserved for Deployment default/web21)``: whose promised room a node's count leaves out."""
    held = {k: c for k, c in (getattr(outcome.room, "held_for", None) or {}).items() if c > 0}
    if not held:
        return ""
    top = min(held, key=lambda k: (-held[k], k))
    total = sum(held.values())
    others = len(held) - 1
    more = f" and {others} other workload{'s' if others > 1 else ''}" if others else ""
    return f" ({total} reserved for {workload_label(*top)}{more})"


def _anti_keys(placement: Placement) -> str:
    constraints = placement.constraints
    affinity = getattr(constraints, "affinity", None)
    keys = sorted({t.topology_key for t in (affinity.anti_affinity if affinity else ())})
    return ", ".join(keys) or "topology domain"


def node_list(code: str, placement: Placement, requests: Resources, state=None) -> str:
    stopped = placement.stopped_by(code)
    nodes = heapq.nsmallest(NODES_LISTED, stopped, key=lambda item: item[0])
    phrases = []
    first_type = None
    for name, outcome in nodes[:NODES_LISTED]:
        if code == pod_eni.POD_ENI_EXHAUSTED and state is not None:
            phrases.append(pod_eni.node_phrase(state, name, outcome, placement.caps, placement.caps_held))
            continue
        itype = outcome.room.capacity.instance_type
        short = code == POD_IP_EXHAUSTED and first_type is not None and itype == first_type
        source = node_class.explains(state, outcome.room.node) \
            if code == POD_LIMIT_REACHED and state is not None else None
        phrases.append(_node_phrase(code, name, outcome, requests, short)
                       + (f" ({source})" if source else "")
                       + (held_phrase(outcome) if code != EBS_ATTACH_LIMIT else ""))
        first_type = first_type or itype
    if len(stopped) > NODES_LISTED:
        phrases.append(f"and {counted(len(stopped) - NODES_LISTED, 'more node')}")
    return "; ".join(phrases)


def _excluded_text(excluded: dict) -> str:
    if not excluded:
        return ""
    parts = [f"{count} {cause}" for cause, count in sorted(excluded.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f" Nodes not eligible: {', '.join(parts[:4])}{' ...' if len(parts) > 4 else ''}."


def _cni_max_pods(state, room) -> int | None:
    """The kubelet maxPods the node's IP model supports (AWS's recommendation under prefix delegation).

    IPv6 has no per-node IP limit (each node gets a /80 prefix), so maxPods alone bounds the
    pods; EKS runs max-pods-calculator.sh with --cni-prefix-delegation-enabled for IPv6 nodes
    (amazon-eks-ami bootstrap: IPv6 needs prefix delegation), which gives 110, or 250 above 30
    vCPUs (less only for the smallest types).
    """
    limits = state.limits_for(room.node)
    if limits is None:
        return None
    if state.cni.ipv6 and state.cni.aws_vpc_cni:
        return recommended_max_pods(limits)
    if room.capacity.slots is None:
        return None
    if state.cni.prefix_delegation:
        return recommended_max_pods(limits, state.cni.custom_networking)
    return room.capacity.max_pods


_DAEMON_ROOM_CODES = (INSUFFICIENT_CPU, INSUFFICIENT_MEMORY, INSUFFICIENT_EPHEMERAL_STORAGE, INSUFFICIENT_EXTENDED,
                      HOST_PORT)


def _daemon_fix(code: str, nodes: list[str], requests: Resources) -> str:
    """A DaemonSet's Pending pod is pinned to its node: only room on that node seats it.

    The DaemonSet controller creates one pod per eligible node with a node affinity for
    that node (pkg/controller/daemon), so added nodes get pods of their own and never
    take a stuck one, and fewer replicas is not a knob a DaemonSet has. What helps is
    room on the named nodes, a smaller pod, preemption, or not targeting those nodes.
    """
    wants = {INSUFFICIENT_CPU: f"{format_cpu(requests.cpu)} CPU",
             INSUFFICIENT_MEMORY: f"{format_bytes(requests.memory)} memory",
             INSUFFICIENT_EPHEMERAL_STORAGE: f"{format_bytes(requests.ephemeral)} ephemeral storage"}.get(code)
    shown = ", ".join(nodes[:3]) + (f" and {counted(len(nodes) - 3, 'more node')}" if len(nodes) > 3 else "")
    smaller = "drop the hostPort" if code == HOST_PORT else \
        (f"lower the pod's requests ({wants})" if wants else "lower the pod's request")
    return (f"A DaemonSet pod can only run on its own node, so added nodes do not seat it: free room on {shown}, "
            f"{smaller}, give the DaemonSet a higher priorityClassName so the scheduler preempts for it, "
            f"or keep it off those nodes with a nodeSelector or node affinity.")


def fix_for(code: str, state, placement: Placement, lower: str, requests: Resources) -> str:
    """The remedy that matches the cause: prefix delegation, maxPods, requests or nodes."""
    stopped = [o.room for _name, o in placement.stopped_by(code)]
    if code == pod_eni.POD_ENI_EXHAUSTED:
        return pod_eni.fix(state, placement, lower)
    if placement.daemon and code in _DAEMON_ROOM_CODES:
        return _daemon_fix(code, [r.node.name for r in stopped], requests)
    laggards = [r.node.name for r in stopped if r.node.name in set(prefix_laggards(state))] \
        if code in (POD_IP_EXHAUSTED, POD_LIMIT_REACHED) and state.cni.prefix_delegation else []
    if laggards:
        return f"{laggard_fix(laggards)} Or add nodes, or lower {lower}."
    if code == POD_IP_EXHAUSTED:
        cni = state.cni
        pd_ready = [r for r in stopped if (lim := state.limits_for(r.node)) and lim.supports_prefix_delegation]
        if not cni.prefix_delegation and pd_ready:
            lim = state.limits_for(pd_ready[0].node)
            per = recommended_max_pods(lim, cni.custom_networking)
            classes = sorted({c.label for r in pd_ready if (c := node_class.node_class_of(state, r.node))
                              and not c.auto_mode})
            if classes:       # Karpenter keeps its ENI-limited maxPods until the node class says otherwise
                return (f"Enable prefix delegation on aws-node ({per} pods per {lim.name}) and set "
                        f"spec.kubelet.maxPods to {per} on {', '.join(classes[:3])} (Karpenter keeps the "
                        f"ENI-limited figure otherwise), add nodes, or lower {lower}.")
            return (f"Enable prefix delegation on aws-node ({per} pods per {lim.name}) and raise kubelet maxPods, "
                    f"add nodes, or lower {lower}.")
        if not cni.prefix_delegation and stopped:
            return f"Prefix delegation needs Nitro instance types: use Nitro nodes, add nodes, or lower {lower}."
        return f"Add nodes or larger instance types, or lower {lower}."
    if code == POD_LIMIT_REACHED:
        advice = node_class.raise_advice(state, stopped, lambda room: _cni_max_pods(state, room), lower)
        if advice:
            return advice
        for room in stopped:
            allowed = _cni_max_pods(state, room)
            if allowed and allowed > room.node.allocatable_pods:
                return (f"Raise kubelet maxPods (the VPC CNI allows {allowed} on {room.capacity.instance_type}), "
                        f"add nodes, or lower {lower}.")
        return f"Add nodes or lower {lower}."
    if code == INSUFFICIENT_CPU:
        return f"Each pod requests {format_cpu(requests.cpu)} CPU: lower the requests, add nodes, or lower {lower}."
    if code == INSUFFICIENT_MEMORY:
        return (f"Each pod requests {format_bytes(requests.memory)} memory: lower the requests, add nodes, "
                f"or lower {lower}.")
    if code == INSUFFICIENT_EPHEMERAL_STORAGE:
        return (f"Each pod requests {format_bytes(requests.ephemeral)} ephemeral storage: lower the requests, "
                f"add nodes, or lower {lower}.")
    if code == INSUFFICIENT_EXTENDED:
        return f"Add nodes that offer the extended resource, lower its request, or lower {lower}."
    if code == ANTI_AFFINITY:
        return (f"Required pod anti-affinity allows one matching pod per {_anti_keys(placement)}: add nodes or "
                f"domains, make it preferredDuringSchedulingIgnoredDuringExecution, or lower {lower}.")
    if code == AFFINITY:
        return ("Required pod affinity needs a matching pod in the node's domain: start those pods first, "
                f"make it preferredDuringSchedulingIgnoredDuringExecution, or lower {lower}.")
    if code == SPREAD:
        return (f"Add capacity in the domains with fewest pods, raise maxSkew, use whenUnsatisfiable: "
                f"ScheduleAnyway, or lower {lower}.")
    if code == HOST_PORT:
        return f"A hostPort allows one such pod per node: drop hostPort, add nodes, or lower {lower}."
    return f"Spread the pods over more nodes, use fewer EBS volumes per pod, or lower {lower}."


def shortfall_message(code: str, label: str, requested: int, schedulable: int, pending: int, detail: str,
                      fix: str, excluded: dict) -> str:
    summary = clip(f"{label}: {pending} of {counted(requested, 'pod')} would stay Pending: {CAUSES.get(code, code)}")
    body = f"{label} wants {counted(requested, 'pod')}; {schedulable} fit ({detail}); {pending} would stay Pending."
    return f"{summary}\n{body}{_excluded_text(excluded)}\n{fix}"


def no_eligible_message(label: str, requested: int, excluded: dict, total_nodes: int) -> str:
    summary = clip(f"{label}: none of {requested} pods can be scheduled: no eligible node" if requested != 1
                   else f"{label}: its pod cannot be scheduled: no eligible node")
    if total_nodes == 0:
        return f"{summary}\nThe cluster has no nodes.\nAdd nodes before deploying."
    every = f"All {total_nodes} nodes refuse" if total_nodes != 1 else "The only node refuses"
    return (f"{summary}\n{every} its {'pod' if requested == 1 else 'pods'}.{_excluded_text(excluded)}\n"
            "Fix the pod's tolerations, nodeSelector or node affinity, uncordon nodes, or add matching nodes.")
