"""``report``: what each node has left, as a table, JSON, or an HTML page for real clusters.

The HTML page is built for hundreds of nodes: one compact row per node, sorted tightest
first (the node closest to full on any resource), ties in natural name order
(``node-2`` before ``node-10``), a totals row, a legend, and where and when the state
was read. One unit per resource everywhere: CPU in millicores, memory in GiB. The page
is a list of ``<section>``s built by ``SECTIONS``; another section (a subnet view, say)
is one more function that takes the state and returns HTML.
"""

from __future__ import annotations

import datetime
import html
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from . import report_subnets
from .engine.model import ClusterState
from .engine.placement import NodeRoom

GIB = 2**30
IP_MODE_NOTES = {
    "unknown-type": "unknown type: not checked",
    "not-aws": "not an AWS node: not checked",
    "no-vpc-cni": "no VPC CNI: no IP limit",
    "ipv6": "IPv6: no IP limit",
}


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

    def shares(self) -> dict[str, float | None]:
        """Used share per resource (None where no limit is checked)."""
        def share(used, total):
            return None if not total else max(0.0, used / total)
        return {"ip": share(self.ip_used, self.ip_total), "pods": share(self.pods_used, self.pods_total),
                "cpu": share(self.cpu_total - self.cpu_free, self.cpu_total),
                "memory": share(self.memory_total - self.memory_free, self.memory_total)}

    @property
    def tightness(self) -> float:
        return max((v for v in self.shares().values() if v is not None), default=0.0)


def natural_key(name: str) -> list:
    """``ip-10-0-1-9`` before ``ip-10-0-1-17``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def node_rows(state: ClusterState) -> list[NodeRow]:
    """One row per node, in natural name order."""
    rows = []
    reserved = state.reserved_by_node()
    for name in sorted(state.nodes, key=natural_key):
        node = state.nodes[name]
        room = NodeRoom.of(state, node, reserved)
        slots = room.capacity.slots
        rows.append(NodeRow(name, node.instance_type or "-", room.capacity.mode,
                            slots - room.ips if slots is not None and room.ips is not None else node.ip_pods,
                            room.capacity.slots, node.allocatable_pods - room.pods, node.allocatable_pods,
                            room.free.cpu, node.allocatable.cpu, room.free.memory, node.allocatable.memory))
    return rows


def tightest_first(rows: list[NodeRow]) -> list[NodeRow]:
    return sorted(rows, key=lambda r: (-round(r.tightness, 6), natural_key(r.name)))


def cpu(millicores: int) -> str:
    return f"{millicores}m"


def gib(amount: int) -> str:
    return f"{amount / GIB:,.1f}Gi"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass
class Totals:
    nodes: int
    ip_used: int
    ip_total: int
    unchecked_ip_nodes: int
    pods_used: int
    pods_total: int
    cpu_free: int
    cpu_total: int
    memory_free: int
    memory_total: int


def totals(rows: list[NodeRow]) -> Totals:
    checked = [r for r in rows if r.ip_total is not None]
    return Totals(len(rows), sum(r.ip_used for r in checked), sum(r.ip_total or 0 for r in checked),
                  len(rows) - len(checked), sum(r.pods_used for r in rows), sum(r.pods_total for r in rows),
                  sum(r.cpu_free for r in rows), sum(r.cpu_total for r in rows),
                  sum(r.memory_free for r in rows), sum(r.memory_total for r in rows))


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
                      str(r.pods_total - r.pods_used), cpu(r.cpu_free), gib(r.memory_free)))
    t = totals(rows)
    table.append(("TOTAL", plural(t.nodes, "node"), state.cni.describe(), f"{t.ip_used}/{t.ip_total}",
                  str(t.ip_total - t.ip_used), f"{t.pods_used}/{t.pods_total}", str(t.pods_total - t.pods_used),
                  cpu(t.cpu_free), gib(t.memory_free)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    if t.unchecked_ip_nodes:
        lines.append(f"\n{plural(t.unchecked_ip_nodes, 'node')} without an IP limit checked (IP MODE says why).")
    if state.pending:
        count = len(state.pending)
        lines.append(f"\n{plural(count, 'pod')} {'is' if count == 1 else 'are'} already Pending (waiting for a node).")
    return "\n".join(lines) + "\n" + report_subnets.to_text(state)


def _origin_text(origin: dict | None) -> tuple[str, str]:
    origin = origin or {}
    when = origin.get("time")
    stamp = when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if when else "unknown time"
    return origin.get("source", "unknown source"), f"{origin.get('time_label', 'read')} {stamp}"


def to_json(state: ClusterState, origin: dict | None = None) -> str:
    rows = node_rows(state)
    source, when = _origin_text(origin)
    nodes = [dict(asdict(r), ip_free=r.ip_free, tightness=round(r.tightness, 4)) for r in tightest_first(rows)]
    return json.dumps({"source": source, "time": when, "cni": state.cni.describe(), "pending": len(state.pending),
                       "totals": asdict(totals(rows)), "nodes": nodes,
                       "subnets": report_subnets.to_json(state)}, indent=2) + "\n"


# ---- HTML ---------------------------------------------------------------------------------
def _tone(share: float) -> str:
    return "full" if share >= 0.95 else "high" if share >= 0.8 else "ok"


def _cell(used: int, total: int | None, text: str, title: str, note: str = "") -> str:
    """A table cell whose background is a bar of ``used``/``total``."""
    if not total:
        return f'<td class="na" title="{html.escape(title)}">{html.escape(note or text)}</td>'
    share = max(0.0, min(1.0, used / total))
    return (f'<td class="bar {_tone(share)}" style="--used:{share * 100:.1f}%" title="{html.escape(title)}">'
            f'{html.escape(text)}</td>')


def _row_cells(r: NodeRow) -> str:
    cpu_used, mem_used = r.cpu_total - r.cpu_free, r.memory_total - r.memory_free
    ip_note = IP_MODE_NOTES.get(r.ip_mode, "no IP limit")
    ip_free_text = f"{r.ip_free} free" if r.ip_total is not None else ip_note
    return (
        _cell(r.ip_used, r.ip_total, f"{r.ip_used}/{r.ip_total}", f"pod IPs: {r.ip_used} used, {ip_free_text}",
              note=ip_note)
        + _cell(r.pods_used, r.pods_total, f"{r.pods_used}/{r.pods_total}",
                f"kubelet pods: {r.pods_used} used, {r.pods_total - r.pods_used} free")
        + _cell(cpu_used, r.cpu_total, f"{cpu(cpu_used)} / {cpu(r.cpu_total)}",
                f"CPU requested: {cpu(cpu_used)} of {cpu(r.cpu_total)}, {cpu(r.cpu_free)} free")
        + _cell(mem_used, r.memory_total, f"{gib(mem_used)} / {gib(r.memory_total)}",
                f"memory requested: {gib(mem_used)} of {gib(r.memory_total)}, {gib(r.memory_free)} free"))


def _nodes_section(state: ClusterState, rows: list[NodeRow]) -> str:
    t = totals(rows)
    head = ("<tr><th class='num'>#</th><th>Node</th><th>Type</th><th>IP mode</th><th>Pod IPs<br><small>used/slots"
            "</small></th><th>Kubelet pods<br><small>used/maxPods</small></th><th>CPU requested<br><small>"
            "millicores</small></th><th>Memory requested<br><small>GiB</small></th></tr>")
    ip_text = f"{t.ip_used:,}/{t.ip_total:,}"
    unchecked = f" · {t.unchecked_ip_nodes} not checked" if t.unchecked_ip_nodes else ""
    total_row = ("<tr class='totals'><td class='num'></td>"
                 f"<td>Total: {plural(t.nodes, 'node')}</td><td></td>"
                 f"<td title='IP mode of the cluster; nodes whose IPs are not checked'>"
                 f"{html.escape(state.cni.describe())}{unchecked}</td>"
                 + _cell(t.ip_used, t.ip_total, ip_text, f"pod IPs: {t.ip_total - t.ip_used:,} free")
                 + _cell(t.pods_used, t.pods_total, f"{t.pods_used:,}/{t.pods_total:,}",
                         f"kubelet pods: {t.pods_total - t.pods_used:,} free")
                 + _cell(t.cpu_total - t.cpu_free, t.cpu_total, f"{cpu(t.cpu_total - t.cpu_free)} / {cpu(t.cpu_total)}",
                         f"CPU: {cpu(t.cpu_free)} free")
                 + _cell(t.memory_total - t.memory_free, t.memory_total,
                         f"{gib(t.memory_total - t.memory_free)} / {gib(t.memory_total)}",
                         f"memory: {gib(t.memory_free)} free")
                 + "</tr>")
    body = "".join(
        f"<tr id='node-{i}' data-name='{html.escape(r.name)}' data-tight='{r.tightness:.4f}'><td class='num'>{i}</td>"
        f"<td class='name' title='{html.escape(r.name)}'>{html.escape(r.name)}</td>"
        f"<td>{html.escape(r.instance_type)}</td>"
        f"<td>{html.escape(r.ip_mode)}</td>{_row_cells(r)}</tr>"
        for i, r in enumerate(tightest_first(rows), 1))
    return (f"<section id='nodes'><h2>Nodes <small>tightest first; "
            f"<a href='#' data-sort='name'>sort by name</a> · <a href='#' data-sort='tight'>tightest first</a>"
            f"</small></h2><table><thead>{head}{total_row}</thead><tbody>{body}</tbody></table></section>")


def _legend_section(state: ClusterState, rows: list[NodeRow]) -> str:
    return ("<section id='legend'><span class='key bar ok' style='--used:60%'>under 80% used</span>"
            "<span class='key bar high' style='--used:85%'>80-95%</span>"
            "<span class='key bar full' style='--used:97%'>95% and over</span>"
            "<span class='key na'>not checked</span>"
            "<span class='hint'>Bars show what is used or requested out of what the node allows; a row's order "
            "is its fullest resource. Hover a cell for what is free.</span></section>")


def _overview_section(state: ClusterState, rows: list[NodeRow]) -> str:
    """Every node as one small tile, tightest first: a 500-node cluster fits on one screen."""
    tiles = []
    for i, r in enumerate(tightest_first(rows), 1):
        shares = r.shares()
        detail = ", ".join(f"{label} {share * 100:.0f}%" for key, label in
                           (("ip", "IPs"), ("pods", "pods"), ("cpu", "CPU"), ("memory", "memory"))
                           if (share := shares[key]) is not None)
        unchecked = " unchecked" if r.ip_total is None else ""
        tiles.append(f"<a class='tile {_tone(r.tightness)}{unchecked}' href='#node-{i}' "
                     f"title='{html.escape(r.name)} ({html.escape(r.instance_type)}): {detail}"
                     f"{'; IPs not checked' if unchecked else ''}'></a>")
    return (f"<section id='overview'><h2>Overview <small>one tile per node, tightest first; a striped tile's "
            f"IPs are not checked; click a tile for its row</small></h2><div class='tiles'>{''.join(tiles)}</div>"
            "</section>")


SECTIONS: list[Callable[[ClusterState, list[NodeRow]], str]] = [_legend_section, _overview_section, _nodes_section,
                                                               report_subnets.subnets_section]

STYLE = """
body{font:13px/1.35 system-ui,-apple-system,Segoe UI,sans-serif;margin:1rem 1.5rem;color:#1d232a;background:#fff}
h1{font-size:1.25rem;margin:0 0 .2rem}h2{font-size:1rem;margin:1rem 0 .4rem}h2 small{font-weight:normal;color:#667}
header p{margin:.1rem 0;color:#445}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th,td{padding:1px 6px;border-bottom:1px solid #e4e7eb;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
th{background:#f3f5f7;text-align:left;position:sticky;top:0;z-index:1;font-weight:600;vertical-align:bottom}
th small{font-weight:normal;color:#667}
thead tr.totals td{white-space:normal;position:sticky;top:2.6rem;background-color:#fafbfc;font-weight:600;
border-bottom:2px solid #9aa4ae}
th:nth-child(1){width:2.5rem}th:nth-child(2){width:19%}th:nth-child(3){width:7%}th:nth-child(4){width:10%}
.num{text-align:right;color:#889}.name{font-family:ui-monospace,Menlo,Consolas,monospace}
.bar{background-image:linear-gradient(to right,var(--c) var(--used),transparent var(--used));
 font-variant-numeric:tabular-nums}
.ok{--c:#bfe5c6}.high{--c:#f7d58b}.full{--c:#f2a3a3}
.na{background:repeating-linear-gradient(135deg,#f4f4f4 0 6px,#e9e9e9 6px 12px);color:#666;font-style:italic}
#legend{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.6rem 0}
.key{display:inline-block;padding:2px 10px;border:1px solid #d5d9de;min-width:7rem}
.hint{color:#667}
.tiles{display:flex;flex-wrap:wrap;gap:2px}
.tile{display:block;width:13px;height:13px;background:var(--c);border-radius:2px}
.tile.unchecked{background-image:repeating-linear-gradient(135deg,transparent 0 3px,rgba(0,0,0,.25) 3px 5px)}
.tile:hover{outline:2px solid #1d232a}
tr:target td{outline:2px solid #1f5fbf}
a{color:#1f5fbf}
"""

SCRIPT = """
document.querySelectorAll('[data-sort]').forEach(function(link){link.addEventListener('click',function(e){
 e.preventDefault();var body=document.querySelector('#nodes tbody');var rows=[].slice.call(body.rows);
 var nat=function(s){return s.split(/(\\d+)/).map(function(p,i){return i%2?Number(p):p.toLowerCase();});};
 var cmp=function(a,b){var x=nat(a.dataset.name),y=nat(b.dataset.name);for(var i=0;i<Math.min(x.length,y.length);i++)
 {if(x[i]<y[i])return -1;if(x[i]>y[i])return 1;}return x.length-y.length;};
 rows.sort(link.dataset.sort==='name'?cmp:function(a,b){return (b.dataset.tight-a.dataset.tight)||cmp(a,b);});
 rows.forEach(function(r,i){r.cells[0].textContent=i+1;body.appendChild(r);});});});
"""


def to_html(state: ClusterState, title: str = "capacity-webhook report", origin: dict | None = None) -> str:
    rows = node_rows(state)
    source, when = _origin_text(origin)
    pending = f" · {plural(len(state.pending), 'pod')} already Pending" if state.pending else ""
    header = (f"<header><h1>{html.escape(title)}</h1><p>{plural(len(rows), 'node')} · "
              f"{html.escape(state.cni.describe())}{pending}</p>"
              f"<p>Source: {html.escape(source)} · {html.escape(when)}</p></header>")
    sections = "".join(section(state, rows) for section in SECTIONS)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{STYLE}</style></head>"
            f"<body>{header}{sections}<script>{SCRIPT}</script></body></html>\n")
