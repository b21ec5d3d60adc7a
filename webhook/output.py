"""Formatters for ``check`` results: a table, JSON, JUnit XML, SARIF 2.1.0 and PolicyReport.

JUnit and SARIF are what CI systems (GitLab, Jenkins, GitHub code scanning) already
display, and wg-policy ``PolicyReport`` objects are what Policy Reporter and Kyverno users
already collect, so a denied manifest shows up where the pipeline's other findings do.
Every formatter gets the run's ``--fail-on`` so that what it calls a failure is exactly
what makes the job exit 1, and none of them drops a finding (audit-mode findings included).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import yaml

from . import __version__
from .check import CheckResult
from .engine.verdict import DENY, WARN

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
POLICY_NAME = "capacity-webhook"
REPORT_API = "wgpolicyk8s.io/v1alpha2"


def _location(r: CheckResult) -> str:
    return f"{r.source}:{r.line}" if r.source != "<stdin>" or r.line > 1 else r.source


def _fails(r: CheckResult, fail_on: str) -> bool:
    verdict = r.verdict.verdict
    return fail_on != "never" and (verdict == DENY or (fail_on == "warn" and verdict == WARN))


def _label(r: CheckResult) -> str:
    """The VERDICT column: the verdict, SKIP, or AUDIT for findings audit mode only records."""
    if r.skipped:
        return "SKIP"
    if r.verdict.verdict == "allow" and r.verdict.reasons:
        return "AUDIT"
    return r.verdict.verdict.upper()


def to_text(results: list[CheckResult], fail_on: str = "deny") -> str:
    rows = [("VERDICT", "OBJECT", "PODS", "FIT", "PENDING", "REASONS")]
    for r in results:
        v = r.verdict
        pods = "-" if v.kind == "PersistentVolumeClaim" else str(v.requested)
        fit = "-" if v.kind == "PersistentVolumeClaim" else str(v.schedulable)
        rows.append((_label(r), r.name, pods, fit, str(v.pending), ",".join(v.codes) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    details = []
    for r in results:
        if r.skipped:
            details.append(f"\nSKIP {r.name} ({_location(r)})\n  not checked: {r.skipped}")
        elif r.verdict.reasons:
            details.append(f"\n{_label(r)} {r.name} ({_location(r)})\n"
                           + "\n".join("  " + line for line in r.verdict.message.splitlines()))
        if r.ignored:
            details.append(f"\nIGNORED {r.name}: {', '.join(x.code for x in r.ignored)}")
    counts = {v: sum(1 for r in results if r.verdict.verdict == v and not r.skipped) for v in ("allow", "warn", "deny")}
    skipped = sum(1 for r in results if r.skipped)
    summary = (f"\n{len(results)} {'object' if len(results) == 1 else 'objects'}: {counts['allow']} allowed, "
               f"{counts['warn']} warned, {counts['deny']} denied" + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines) + "".join(details) + summary + "\n"


def to_json(results: list[CheckResult], fail_on: str = "deny") -> str:
    out = []
    for r in results:
        item = r.verdict.as_dict()
        item.update(source=r.source, line=r.line)
        if r.skipped:
            item["skipped"] = r.skipped
        if r.ignored:
            item["ignored"] = [x.as_dict() for x in r.ignored]
        out.append(item)
    return json.dumps({"results": out}, indent=2) + "\n"


def to_junit(results: list[CheckResult], fail_on: str = "deny") -> str:
    """One testcase per object; a failure exactly when the object makes the job exit 1."""
    failures = sum(1 for r in results if _fails(r, fail_on))
    skipped = sum(1 for r in results if r.skipped)
    suite = ET.Element("testsuite", name="capacity-webhook", tests=str(len(results)), failures=str(failures),
                       errors="0", skipped=str(skipped))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.source, name=r.name, file=r.source, line=str(r.line))
        v = r.verdict
        if r.skipped:
            ET.SubElement(case, "skipped", message=r.skipped)
        elif _fails(r, fail_on):
            failure = ET.SubElement(case, "failure", type=",".join(v.codes), message=v.reasons[0].summary)
            failure.text = v.message
        elif v.reasons:
            prefix = "audit mode, recorded only" if v.verdict == "allow" else "warning"
            ET.SubElement(case, "system-out").text = f"{prefix} ({','.join(v.codes)}):\n{v.message}"
    suites = ET.Element("testsuites", name="capacity-webhook", tests=str(len(results)), failures=str(failures))
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _uri(source: str) -> str:
    """A repository-relative URI when the file is under the working directory (GitHub needs that)."""
    if source == "<stdin>":
        return source
    path = Path(source)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return path.as_uri()
    return path.as_posix()


def _sarif_result(r: CheckResult, reason, level: str, suppression: dict | None = None) -> dict:
    v = r.verdict
    found = {
        "ruleId": reason.code, "level": level, "message": {"text": reason.message},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(r.source)},
                                            "region": {"startLine": r.line}},
                       "logicalLocations": [{"name": r.name, "kind": "object"}]}],
        "properties": {"verdict": v.verdict, "mode": v.mode, "pending": v.pending, "requested": v.requested},
    }
    if suppression:
        found["suppressions"] = [suppression]
    return found


def to_sarif(results: list[CheckResult], fail_on: str = "deny") -> str:
    used = sorted({x.code for r in results for x in (*r.verdict.reasons, *r.ignored)})
    rules = [{"id": code, "shortDescription": {"text": RULE_HELP.get(code, code)},
              "helpUri": "https://github.com/capacity-webhook/capacity-webhook#verdicts-and-reason-codes"}
             for code in used]
    findings = []
    for r in results:
        for reason in r.verdict.reasons:
            if r.verdict.verdict == "allow":
                level = "note"                          # audit mode: recorded, never blocks
            elif r.verdict.verdict == DENY and reason.severity == DENY:
                level = "error"
            else:
                level = "warning"
            findings.append(_sarif_result(r, reason, level))
        for reason in r.ignored:
            in_source = reason.code in r.ignored_in_source
            findings.append(_sarif_result(r, reason, "note", {
                "kind": "inSource" if in_source else "external",
                "justification": "capacity-webhook/ignore annotation" if in_source else "check --ignore"}))
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "capacity-webhook", "version": __version__,
                                         "informationUri": "https://github.com/capacity-webhook/capacity-webhook",
                                         "rules": rules}},
                     "results": findings}]}
    return json.dumps(doc, indent=2) + "\n"


def _report_result(r: CheckResult, result: str, now: float, code: str | None = None, message: str = "",
                   severity: str | None = None) -> dict:
    v, meta = r.verdict, (r.obj.get("metadata") or {})
    resource = {"apiVersion": str(r.obj.get("apiVersion") or ""), "kind": v.kind, "name": v.name,
                "namespace": v.namespace}
    if isinstance(meta, dict) and isinstance(meta.get("uid"), str):
        resource["uid"] = meta["uid"]
    item = {"source": POLICY_NAME, "policy": POLICY_NAME, "rule": code or "capacity", "result": result,
            "scored": True, "category": "Capacity", "message": message,
            "resources": [resource],
            "properties": {"verdict": v.verdict, "mode": v.mode, "requested": str(v.requested),
                           "schedulable": str(v.schedulable), "pending": str(v.pending),
                           "file": r.source, "line": str(r.line)},
            "timestamp": {"seconds": int(now), "nanos": 0}}
    if severity:
        item["severity"] = severity
    return item


def policy_reports(results: list[CheckResult], now: float | None = None) -> list[dict]:
    """One wg-policy ``PolicyReport`` (wgpolicyk8s.io/v1alpha2) per namespace.

    A reason with deny severity is ``fail`` in every mode (as Kyverno records an audit-mode
    violation); a warn-severity reason is ``warn``; an object with no finding is ``pass``;
    one the webhook would not check (skip annotation, excluded namespace) is ``skip``.
    """
    now = time.time() if now is None else now
    by_namespace: dict[str, list[dict]] = {}
    for r in results:
        entries = by_namespace.setdefault(r.verdict.namespace, [])
        if r.skipped:
            entries.append(_report_result(r, "skip", now, message=f"not checked: {r.skipped}"))
        elif not r.verdict.reasons:
            entries.append(_report_result(r, "pass", now, message=f"{r.name}: fits"))
        for reason in r.verdict.reasons:
            failed = reason.severity == DENY
            entries.append(_report_result(r, "fail" if failed else "warn", now, reason.code, reason.message,
                                          "high" if failed else "medium"))
    reports = []
    for namespace in sorted(by_namespace):
        entries = by_namespace[namespace]
        summary = {key: sum(1 for e in entries if e["result"] == key) for key in ("pass", "fail", "warn", "error",
                                                                                  "skip")}
        reports.append({"apiVersion": REPORT_API, "kind": "PolicyReport",
                        "metadata": {"name": "capacity-webhook-check", "namespace": namespace,
                                     "labels": {"app.kubernetes.io/managed-by": "capacity-webhook"}},
                        "summary": summary, "results": entries})
    return reports


def to_policyreport(results: list[CheckResult], fail_on: str = "deny") -> str:
    now = float(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    return yaml.safe_dump_all(policy_reports(results, now), sort_keys=False, explicit_start=True)


FORMATS: dict[str, Callable[[list[CheckResult], str], str]] = {
    "text": to_text, "json": to_json, "junit": to_junit, "sarif": to_sarif, "policyreport": to_policyreport}
