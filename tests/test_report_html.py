"""``report`` for real clusters: order, totals, units and notes, checked on the page itself.

The page is parsed with the standard library's HTMLParser; the numbers are recomputed
from the synthetic cluster's own objects (allocatable and pod requests as written), not
from the report code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from tests import synthetic as s

ROOT = Path(__file__).resolve().parents[1]


class Rows(HTMLParser):
    """Cells of every <tr> in the page, and the node names in order."""

    def __init__(self):
        super().__init__()
        self.rows, self.names, self._cell, self._row = [], [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
            name = dict(attrs).get("data-name")
            if name:
                self.names.append(name)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def report(tmp_path, doc, *flags):
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(doc))
    result = subprocess.run([sys.executable, "-m", "webhook.cli", "report", "--cluster", str(snap), *flags],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_natural_order_and_tightest_first(tmp_path):
    alloc = dict(s.T3_MEDIUM_ALLOCATABLE)
    names = ["node-10", "node-9", "node-2", "node-1"]
    items = [s.aws_node(), s.namespace("default")] + [s.node(n, allocatable=alloc) for n in names]
    # node-9 holds 12 light pods of 17 (the fullest), node-10 holds 4; node-1 and node-2 are empty.
    for node, count in (("node-9", 12), ("node-10", 4)):
        items += [s.pod(f"p-{node}-{i}", node_name=node,
                        spec=s.pod_spec([s.container(requests={"cpu": "10m", "memory": "16Mi"})]))
                  for i in range(count)]
    result = report(tmp_path, s.as_list(items), "-o", "html")
    page = Rows()
    page.feed(result.stdout)
    assert page.names == ["node-9", "node-10", "node-1", "node-2"]
    text = report(tmp_path, s.as_list(items)).stdout
    assert [line.split()[0] for line in text.splitlines()[1:5]] == ["node-1", "node-2", "node-9", "node-10"]


def test_totals_units_and_unknown_types(tmp_path):
    doc = s.fleet_cluster(24, seed=24)
    result = report(tmp_path, doc, "-o", "html")
    page = Rows()
    page.feed(result.stdout)
    assert len(page.names) == 24
    nodes = [i for i in doc["items"] if i["kind"] == "Node"]
    pods = [i for i in doc["items"] if i["kind"] == "Pod"]
    totals = next(row for row in page.rows if row and row[1].startswith("Total"))
    assert totals[1] == "Total: 24 nodes"
    assert totals[5] == f"{len(pods):,}/{sum(int(n['status']['allocatable']['pods']) for n in nodes):,}"

    def millicores(q):
        return int(q[:-1]) if q.endswith("m") else int(q) * 1000

    cpu_total = sum(millicores(n["status"]["allocatable"]["cpu"]) for n in nodes)
    cpu_used = sum(millicores(c["resources"]["requests"]["cpu"]) for p in pods for c in p["spec"]["containers"])
    assert totals[6] == f"{cpu_used}m / {cpu_total}m"
    # One unit per resource: every CPU cell in millicores, every memory cell in GiB.
    body = [row for row in page.rows if len(row) == 8 and row[0].isdigit()]
    assert all(row[6].count("m") == 2 and row[6].endswith("m") for row in body)
    assert all(row[7].count("Gi") == 2 for row in body)
    unknown = [row for row in body if row[2] == "x9.mystery"]
    assert unknown and all(row[4] == "unknown type: not checked" for row in unknown)
    assert "no IP limit" not in "".join(row[4] for row in unknown)
    assert "Source: snapshot" in result.stdout and "file written" in result.stdout and " UTC" in result.stdout
    assert "id='legend'" in result.stdout and "95% and over" in result.stdout


def test_json_and_out_file(tmp_path):
    out = tmp_path / "r.json"
    result = report(tmp_path, s.two_t3_medium_cluster(), "-o", "json", "--out", out)
    assert result.stdout == "" and f"wrote {out}" in result.stderr
    data = json.loads(out.read_text())
    assert data["totals"]["ip_total"] == 30 and data["totals"]["ip_used"] == 9
    assert [n["name"] for n in data["nodes"]] == ["ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"]


def test_one_pending_pod_is_singular(tmp_path):
    doc = s.two_t3_medium_cluster()
    doc["items"].append(s.pod("waiting"))
    assert "1 pod is already Pending" in report(tmp_path, doc).stdout
