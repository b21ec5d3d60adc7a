"""``report``'s subnet room: per zone, the subnets pods draw from and the addresses left in each.

Beside the node table, because a node with free IP slots in a subnet with no free
addresses still cannot start a pod. Figures come from ``state.network`` (EC2
DescribeSubnets, recorded by ``snapshot --aws`` or refreshed live); nodes are mapped to
subnets as the engine maps them (``subnets.pod_subnet``). Nodes still on secondary IPs
under prefix delegation are listed with the fix.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .engine.ipslots import PREFIX_IPS
from .engine.node_truth import laggard_fix, prefix_laggards
from .engine.subnets import AWS_RESERVED, pod_subnet


@dataclass
class SubnetRow:
    zone: str
    subnet: str
    cidr: str
    free: int
    usable: int | None            # addresses in the CIDR less AWS's 5
    nodes: int                    # nodes whose pods draw from it
    blocks: int | None            # free /28 blocks at most (prefix delegation)

    @property
    def used(self) -> int | None:
        return None if self.usable is None else max(0, self.usable - self.free)


def subnet_rows(state) -> list[SubnetRow]:
    network = state.network
    if not network.subnets:
        return []
    drawing: dict[str, int] = {}
    for node in state.nodes.values():
        subnet_id, _ = pod_subnet(state, node)
        if subnet_id:
            drawing[subnet_id] = drawing.get(subnet_id, 0) + 1
    rows = []
    for subnet in network.subnets.values():
        size = subnet.size
        rows.append(SubnetRow(subnet.zone or "-", subnet.id, subnet.cidr or "-", subnet.available,
                              size - AWS_RESERVED if size else None, drawing.get(subnet.id, 0),
                              subnet.available // PREFIX_IPS if state.cni.prefix_delegation else None))
    return sorted(rows, key=lambda r: (r.zone, r.free, r.subnet))


def to_text(state) -> str:
    """The subnet table (empty when no subnet figures are known) and the prefix-delegation laggards."""
    lines = []
    rows = subnet_rows(state)
    if rows:
        prefix = state.cni.prefix_delegation
        table = [("ZONE", "SUBNET", "CIDR", "FREE IPS", "USED", "NODES") + (("FREE /28 (AT MOST)",) if prefix else ())]
        for r in rows:
            used = f"{r.used}/{r.usable}" if r.usable is not None else "-"
            table.append((r.zone, r.subnet, r.cidr, str(r.free), used, str(r.nodes))
                         + ((str(r.blocks),) if prefix else ()))
        zones: dict[str, int] = {}
        for r in rows:
            zones[r.zone] = zones.get(r.zone, 0) + r.free
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines.append("\nSubnet room (EC2 DescribeSubnets"
                     f"{', read ' + state.network.aws_observed_at if state.network.aws_observed_at else ''}):")
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
        lines.append("Free IPs per zone: " + ", ".join(f"{z} {n}" for z, n in sorted(zones.items())))
    if state.network.aws_error:
        lines.append(f"\nAWS lookup failed, subnet figures may be old: {state.network.aws_error}")
    laggards = prefix_laggards(state)
    if laggards:
        lines.append("\n" + laggard_fix(laggards))
    return "\n".join(lines) + ("\n" if lines else "")


def to_json(state) -> list[dict]:
    return [dict(r.__dict__, used=r.used) for r in subnet_rows(state)]


def subnets_section(state, _rows) -> str:
    """HTML: one bar per subnet (addresses used of the usable ones), grouped by zone."""
    rows = subnet_rows(state)
    laggards = prefix_laggards(state)
    if not rows and not laggards:
        return ""
    body = []
    for r in rows:
        share = 0.0 if not r.usable else max(0.0, min(1.0, (r.used or 0) / r.usable))
        tone = "full" if share >= 0.95 else "high" if share >= 0.8 else "ok"
        blocks = f" · at most {r.blocks} free /28" if r.blocks is not None else ""
        title = f"{r.subnet}: {r.free} free of {r.usable if r.usable is not None else '?'} usable{blocks}"
        body.append(f"<tr><td>{html.escape(r.zone)}</td><td class='name'>{html.escape(r.subnet)}</td>"
                    f"<td>{html.escape(r.cidr)}</td><td>{r.nodes}</td>"
                    f"<td class='bar {tone}' style='--used:{share * 100:.1f}%' title='{html.escape(title)}'>"
                    f"{r.used if r.used is not None else '?'}/{r.usable if r.usable is not None else '?'} used "
                    f"({r.free} free{blocks})</td></tr>")
    note = f"<p>{html.escape(laggard_fix(laggards))}</p>" if laggards else ""
    table = ("<table><thead><tr><th>Zone</th><th>Subnet</th><th>CIDR</th><th>Nodes</th><th>Addresses</th></tr>"
             f"</thead><tbody>{''.join(body)}</tbody></table>") if rows else ""
    return (f"<section id='subnets'><h2>Subnets <small>addresses pods draw from, per zone (EC2 DescribeSubnets)"
            f"</small></h2>{table}{note}</section>")
