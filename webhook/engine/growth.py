"""Room the cluster can still grow into: a shortfall it absorbs is a warning, not a deny.

The cluster autoscaler and Karpenter only add nodes when pods are Pending, so refusing
such pods would stop the cluster from ever growing. A new node is modelled as a clone
of the roomiest eligible node carrying only its DaemonSet pods. Sources: the server's
``--headroom-nodes`` and Karpenter NodePools with room left under ``spec.limits``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .placement import NodeRoom, Placement
from .quantity import QuantityError, milli, units
from .requests import Resources
from .verdict import counted


@dataclass(frozen=True)
class Growth:
    nodes: int | None            # None: no limit set
    source: str


def growth_sources(state, template) -> list[Growth]:
    sources = []
    if state.headroom_nodes > 0:
        allows = counted(state.headroom_nodes, "more node")
        sources.append(Growth(state.headroom_nodes, f"--headroom-nodes allows {allows}"))
    for name, pool in sorted(state.node_pools.items()):
        limits, used = pool["spec"]["limits"], pool["status"]["resources"]
        if not limits:
            sources.append(Growth(None, f"Karpenter NodePool {name} has no limits"))
            continue
        try:
            counts = []
            if "cpu" in limits and template.allocatable.cpu:
                counts.append((milli(limits["cpu"]) - milli(used.get("cpu", 0))) // template.allocatable.cpu)
            if "memory" in limits and template.allocatable.memory:
                counts.append((units(limits["memory"]) - units(used.get("memory", 0))) // template.allocatable.memory)
        except QuantityError:
            continue
        nodes = max(0, min(counts)) if counts else None
        more = "more nodes" if nodes is None else counted(nodes, "node")
        sources.append(Growth(nodes, f"Karpenter NodePool {name} can add {more}"))
    return sources


def fresh_room(state, node) -> NodeRoom:
    capacity = state.ip_capacity(node)
    ips = None if capacity.slots is None else capacity.slots - node.daemon_ip_pods
    return NodeRoom(node, capacity, node.allocatable - node.daemon_used, node.allocatable_pods - node.daemon_pods, ips)


def absorb(state, placement: Placement, requests: Resources, uses_ip: bool) -> str | None:
    """A sentence saying how the cluster can grow to take the pending pods, or ``None``."""
    if not placement.pending or not placement.per_node or not (state.headroom_nodes or state.node_pools):
        return None
    template = max((o.room.node for o in placement.per_node.values()),
                   key=lambda n: (n.allocatable_pods, n.allocatable.cpu, n.allocatable.memory, n.name))
    per_node = fresh_room(state, template).fit(requests, uses_ip)[0]
    if per_node <= 0:
        return None
    for growth in growth_sources(state, template):
        if growth.nodes is None or growth.nodes * per_node >= placement.pending:
            needed = -(-placement.pending // per_node)
            kind = f"{template.instance_type} " if template.instance_type else ""
            return (f"The cluster can grow: {growth.source}; about {counted(needed, f'new {kind}node')} "
                    f"of {counted(per_node, 'pod')} each would take the "
                    f"{counted(placement.pending, 'pending pod')} once the autoscaler reacts.")
    return None
