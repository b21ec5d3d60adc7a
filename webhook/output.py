"""Formatters for ``check`` results: a readable table, JSON, JUnit XML and SARIF 2.1.0.

JUnit and SARIF are what CI systems (GitLab, Jenkins, GitHub code scanning) already
display, so a denied manifest shows up where the pipeline's other findings do.
"""

from __future__ import annotations

import json

from xml.etree import ElementTree as ET

from . import __version__

RULE_HELP = {
    "POD_IP_EXHAUSTED": "Nodes are out of AWS VPC CNI pod IP slots.",
    "POD_LIMIT_REACHED": "Nodes are at their kubelet maxPods.",
    "INSUFFICIENT_CPU": "Not enough allocatable CPU for the pods' requests.",
    "INSUFFICIENT_MEMORY": "Not enough allocatable memory for the pods' requests.",
    "INSUFFICIENT_EPHEMERAL_STORAGE": "Not enough allocatable ephemeral storage.",
    "NO_ELIGIBLE_NODE": "No node passes cordons, taints, nodeSelector and affinity.",
    "UNKNOWN_INSTANCE_TYPE": "A node's instance type is not in the instance-limits table.",
    "ROLLOUT_STALL": "A rollout cannot surge and may not take pods down.",
    "EBS_ACCESS_MODE": "EBS volumes are ReadWriteOnce/ReadWriteOncePod only.",
    "EBS_SIZE": "The requested size is outside the EBS volume type's range.",
    "EBS_SHARED_RWO": "A ReadWriteOnce EBS claim is shared by pods on several nodes.",
    "EBS_ZONE": "The zone of the pods' EBS volume has no room.",
    "EBS_ATTACH_LIMIT": "Nodes cannot attach more EBS volumes.",
    "EFS_BLOCK_MODE": "EFS does not serve block volumes.",
    "NO_STORAGE_CLASS": "No storageClassName and no default StorageClass.",
    "STORAGE_CLASS_NOT_FOUND": "The claim names a StorageClass that does not exist.",
    "CLAIM_NOT_FOUND": "A pod mounts a PersistentVolumeClaim that does not exist.",
    "INVALID_OBJECT": "The object has a field the engine cannot read.",
}


def _name(result) -> str:
    return f"{result.kind} {result.namespace}/{result.name}"


def to_text(results: list, sources: list[str]) -> str:
    rows = [("VERDICT", "OBJECT", "PODS", "FIT", "PENDING", "REASONS")]
    for r in results:
        pods = "-" if r.kind == "PersistentVolumeClaim" else str(r.requested)
        fit = "-" if r.kind == "PersistentVolumeClaim" else str(r.schedulable)
        rows.append((r.verdict.upper(), _name(r), pods, fit, str(r.pending), ",".join(r.codes) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    details = [f"\n{r.verdict.upper()} {_name(r)} ({src})\n" + "\n".join("  " + line for line in r.message.splitlines())
               for r, src in zip(results, sources) if r.reasons]
    counts = {v: sum(1 for r in results if r.verdict == v) for v in ("allow", "warn", "deny")}
    summary = f"\n{len(results)} objects: {counts['allow']} allowed, {counts['warn']} warned, {counts['deny']} denied"
    return "\n".join(lines) + "".join(details) + summary + "\n"


def to_json(results: list, sources: list[str]) -> str:
    out = []
    for r, src in zip(results, sources):
        item = r.as_dict()
        item["source"] = src
        out.append(item)
    return json.dumps({"results": out}, indent=2) + "\n"


def to_junit(results: list, sources: list[str]) -> str:
    failures = sum(1 for r in results if r.verdict == "deny")
    suite = ET.Element("testsuite", name="capacity-webhook", tests=str(len(results)), failures=str(failures),
                       errors="0", skipped="0")
    for r, src in zip(results, sources):
        case = ET.SubElement(suite, "testcase", classname=src, name=_name(r))
        if r.verdict == "deny":
            failure = ET.SubElement(case, "failure", type=",".join(r.codes), message=r.reasons[0].summary)
            failure.text = r.message
        elif r.verdict == "warn":
            ET.SubElement(case, "system-out").text = r.message
    suites = ET.Element("testsuites", name="capacity-webhook", tests=str(len(results)), failures=str(failures))
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def to_sarif(results: list, sources: list[str]) -> str:
    used = sorted({code for r in results for code in r.codes})
    rules = [{"id": code, "shortDescription": {"text": RULE_HELP.get(code, code)}} for code in used]
    findings = []
    for r, src in zip(results, sources):
        for reason in r.reasons:
            level = "error" if r.verdict == "deny" and reason.severity == "deny" else "warning"
            findings.append({
                "ruleId": reason.code, "level": level, "message": {"text": reason.message},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": src}},
                               "logicalLocations": [{"name": _name(r), "kind": "object"}]}],
                "properties": {"verdict": r.verdict, "pending": r.pending, "requested": r.requested},
            })
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "capacity-webhook", "version": __version__,
                                         "informationUri": "https://github.com/capacity-webhook/capacity-webhook",
                                         "rules": rules}},
                     "results": findings}]}
    return json.dumps(doc, indent=2) + "\n"


FORMATS = {"text": to_text, "json": to_json, "junit": to_junit, "sarif": to_sarif}
