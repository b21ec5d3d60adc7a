"""``report``: what each node has left, as a table for people and an HTML page with bars."""

from __future__ import annotations

import html
from dataclasses import dataclass

from .engine.model import ClusterState
from .engine.placement import NodeRoom
from .engine.quantity import format_bytes, format_cpu


@dataclass
class NodeRow:
    name: str
    instance_type: str
    ip_mode: str
    ip_used: int
    ip_total: int | None
    pods_used: int
    pods_total: int
    cpu_free: int
    cpu_total: int
    memory_free: int
    memory_total: int

    @property
    def ip_free(self) -> int | None:
        return None if self.ip_total is None else self.ip_total - self.ip_used


def node_rows(state: ClusterState) -> list[NodeRow]:
    rows = []
    reserved = state.reserved_by_node()
    for name in sorted(state.nodes):
        node = state.nodes[name]
        room = NodeRoom.of(state, node, reserved)
        rows.append(NodeRow(name, node.instance_type or "-", room.capacity.mode,
                            (room.capacity.slots - room.ips) if room.ips is not None else node.ip_pods,
                            room.capacity.slots, node.allocatable_pods - room.pods, node.allocatable_pods,
                            room.free.cpu, node.allocatable.cpu, room.free.memory, node.allocatable.memory))
    return rows


def _ip_cell(row: NodeRow) -> tuple[str, str]:
    if row.ip_total is None:
        return f"{row.ip_used}/-", "-"
    return f"{row.ip_used}/{row.ip_total}", str(row.ip_free)


def to_text(state: ClusterState) -> str:
    rows = node_rows(state)
    table = [("NODE", "TYPE", "IP MODE", "IP USED", "IP FREE", "PODS USED", "PODS FREE", "CPU FREE", "MEM FREE")]
    for r in rows:
        used, free = _ip_cell(r)
        table.append((r.name, r.instance_type, r.ip_mode, used, free, f"{r.pods_used}/{r.pods_total}",
                      str(r.pods_total - r.pods_used), format_cpu(r.cpu_free), format_bytes(r.memory_free)))
    ip_free = sum(r.ip_free for r in rows if r.ip_free is not None)
    ip_total = sum(r.ip_total for r in rows if r.ip_total is not None)
    table.append(("TOTAL", f"{len(rows)} nodes", state.cni.describe(), f"{ip_total - ip_free}/{ip_total}",
                  str(ip_free), f"{sum(r.pods_used for r in rows)}/{sum(r.pods_total for r in rows)}",
                  str(sum(r.pods_total - r.pods_used for r in rows)), format_cpu(sum(r.cpu_free for r in rows)),
                  format_bytes(sum(r.memory_free for r in rows))))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    if state.pending:
        lines.append(f"\n{len(state.pending)} pods are already Pending (waiting for a node).")
    return "\n".join(lines) + "\n"


def _bar(label: str, used: int, total: int | None, text: str) -> str:
    if not total:
        return f'<div class="bar na"><span>{html.escape(label)}: {html.escape(text)}</span></div>'
    share = max(0.0, min(1.0, used / total))
    tone = "full" if share >= 0.95 else "high" if share >= 0.8 else "ok"
    return (f'<div class="bar"><div class="fill {tone}" style="width:{share * 100:.1f}%"></div>'
            f'<span>{html.escape(label)}: {html.escape(text)}</span></div>')


def to_html(state: ClusterState, title: str = "capacity-webhook report") -> str:
    cards = []
    for r in node_rows(state):
        bars = [
            _bar("Pod IPs", r.ip_used, r.ip_total, f"{r.ip_used} of {r.ip_total} used ({r.ip_free} free)" if r.ip_total
                 else "no IP limit"),
            _bar("Kubelet pods", r.pods_used, r.pods_total,
                 f"{r.pods_used} of {r.pods_total} used ({r.pods_total - r.pods_used} free)"),
            _bar("CPU requested", r.cpu_total - r.cpu_free, r.cpu_total,
                 f"{format_cpu(r.cpu_total - r.cpu_free)} of {format_cpu(r.cpu_total)} ({format_cpu(r.cpu_free)} free)"),
            _bar("Memory requested", r.memory_total - r.memory_free, r.memory_total,
                 f"{format_bytes(r.memory_total - r.memory_free)} of {format_bytes(r.memory_total)} "
                 f"({format_bytes(r.memory_free)} free)"),
        ]
        cards.append(f'<section class="node"><h2>{html.escape(r.name)}</h2><p>{html.escape(r.instance_type)} · '
                     f'{html.escape(r.ip_mode)}</p>{"".join(bars)}</section>')
    style = """body{font-family:system-ui,sans-serif;margin:2rem;background:#fafafa;color:#222}
.node{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:0 0 1rem;max-width:720px}
.node h2{font-size:1.05rem;margin:0}.node p{margin:.2rem 0 .6rem;color:#666}
.bar{position:relative;height:1.5rem;background:#eee;border-radius:4px;margin:.35rem 0;overflow:hidden}
.bar span{position:absolute;left:.5rem;top:.15rem;font-size:.85rem}.fill{height:100%}
.ok{background:#8fd19e}.high{background:#f5c16c}.full{background:#ef8a8a}.na{background:#f3f3f3}"""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{len(state.nodes)} nodes · {html.escape(state.cni.describe())}</p>{''.join(cards)}</body></html>\n")
