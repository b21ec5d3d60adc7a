"""``check`` as the platform team's tools consume it: folders of real repositories, SARIF
regions, JUnit failures that match the exit code, and wg-policy PolicyReports.

Oracles: line numbers counted in the written file's text; the PolicyReport CRD's schema
(v1alpha2, vendored in tests/data) with jsonschema; the JUnit and SARIF shapes CI tools read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest
import yaml

from tests import synthetic as s

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "data" / "wgpolicyk8s.io_policyreports.v1alpha2.schema.yaml"


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "webhook.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(s.two_t3_medium_cluster()))    # 21 light pods fit
    return path


def line_of(path: Path, text: str, nth: int = 1) -> int:
    """1-based line of the nth line of ``path`` that equals ``text``."""
    hits = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line == text]
    return hits[nth - 1]


# ---- folders as they look in a real repository -------------------------------------------
def repo_folder(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "chart" / "templates").mkdir(parents=True)
    (repo / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (repo / "chart" / "values.yaml").write_text("replicas: 3\n")
    (repo / "overlay").mkdir()
    (repo / "overlay" / "kustomization.yaml").write_text("resources:\n  - ../base\n")
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\njobs: {}\n")
    (repo / "base").mkdir()
    (repo / "base" / "web.yaml").write_text(yaml.safe_dump(s.small_web("web", 30)))
    (repo / "tests").mkdir()
    (repo / "tests" / "huge.yaml").write_text(yaml.safe_dump(s.small_web("huge", 500)))
    return repo


def test_a_repository_folder_with_chart_and_kustomization_files_runs(snapshot, tmp_path):
    repo = repo_folder(tmp_path)
    result = run("check", "--cluster", snapshot, "-f", repo, "-o", "json")
    assert result.returncode == 1, result.stderr
    names = [r["name"] for r in json.loads(result.stdout)["results"]]
    assert names == ["web", "huge"]
    for skipped in ("Chart.yaml", "values.yaml", "kustomization.yaml", "ci.yml"):
        assert skipped in result.stderr and "not a Kubernetes object" in result.stderr
    excluded = run("check", "--cluster", snapshot, "-f", repo, "-o", "json", "--exclude", "tests",
                   "--exclude", "*.yml")
    assert [r["name"] for r in json.loads(excluded.stdout)["results"]] == ["web"]
    assert "huge.yaml: matches --exclude" in excluded.stderr and "ci.yml: matches --exclude" in excluded.stderr


def test_a_kindless_file_named_on_the_command_line_is_still_an_error(snapshot, tmp_path):
    chart = tmp_path / "Chart.yaml"
    chart.write_text("apiVersion: v2\nname: web\n")
    result = run("check", "--cluster", snapshot, "-f", chart)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "object without kind" in result.stderr


# ---- SARIF regions ---------------------------------------------------------------------
def test_sarif_region_is_the_line_of_each_object(snapshot, tmp_path):
    manifest = tmp_path / "all.yaml"
    manifest.write_text("# leading comment\n---\n" + yaml.safe_dump(s.small_web("a", 20)) + "---\n# between\n"
                        + yaml.safe_dump(s.as_list([s.small_web("b", 5), s.small_web("c", 9)])))
    result = run("check", "--cluster", snapshot, "-f", manifest, "-o", "sarif", cwd=tmp_path)
    findings = json.loads(result.stdout)["runs"][0]["results"]
    by_object = {f["locations"][0]["logicalLocations"][0]["name"]: f["locations"][0]["physicalLocation"]
                 for f in findings}
    assert set(by_object) == {"Deployment default/b", "Deployment default/c"}     # a takes 20 of 21 slots
    assert by_object["Deployment default/b"]["artifactLocation"]["uri"] == "all.yaml"   # relative to the cwd
    # Items of a List start at their '- apiVersion' line (the first key of the mapping).
    items = [i + 1 for i, line in enumerate(manifest.read_text().splitlines()) if line.startswith("- apiVersion")]
    assert [by_object[f"Deployment default/{n}"]["region"]["startLine"] for n in "bc"] == items
    text = run("check", "--cluster", snapshot, "-f", "all.yaml", cwd=tmp_path).stdout
    assert f"(all.yaml:{line_of(manifest, 'apiVersion: apps/v1')})" not in text    # a is allowed: no detail
    assert f"(all.yaml:{items[0]})" in text


# ---- JUnit matches the exit code --------------------------------------------------------
def junit(snapshot, manifest, *flags):
    result = run("check", "--cluster", snapshot, "-f", manifest, "-o", "junit", *flags)
    return result.returncode, ET.fromstring(result.stdout).find("testsuite")


def test_junit_failures_follow_fail_on(snapshot, tmp_path):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(yaml.safe_dump_all([s.small_web("ok", 3), s.small_web("big", 40)]))
    code, suite = junit(snapshot, manifest, "--mode", "warn")
    assert code == 0 and suite.get("failures") == "0"
    big = suite.find("testcase[@name='Deployment default/big']")
    assert "POD_IP_EXHAUSTED" in big.find("system-out").text
    code, suite = junit(snapshot, manifest, "--mode", "warn", "--fail-on", "warn")
    assert code == 1 and suite.get("failures") == "1"
    failure = suite.find("testcase[@name='Deployment default/big']/failure")
    assert failure.get("type") == "POD_IP_EXHAUSTED" and "22 would stay Pending" in failure.text
    assert suite.find("testcase[@name='Deployment default/big']").get("line") == str(
        line_of(manifest, "apiVersion: apps/v1", 2))
    code, suite = junit(snapshot, manifest, "--mode", "enforce", "--fail-on", "never")
    assert code == 0 and suite.get("failures") == "0"


def test_audit_mode_findings_are_kept_everywhere(snapshot, tmp_path):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(yaml.safe_dump(s.small_web("big", 40)))
    code, suite = junit(snapshot, manifest, "--mode", "audit")
    assert code == 0 and suite.get("failures") == "0"
    assert "audit mode" in suite.find("testcase/system-out").text
    assert "POD_IP_EXHAUSTED" in suite.find("testcase/system-out").text
    sarif = json.loads(run("check", "--cluster", snapshot, "-f", manifest, "-o", "sarif", "--mode", "audit").stdout)
    assert [(r["ruleId"], r["level"]) for r in sarif["runs"][0]["results"]] == [("POD_IP_EXHAUSTED", "note")]
    text = run("check", "--cluster", snapshot, "-f", manifest, "--mode", "audit").stdout
    assert "AUDIT    Deployment default/big" in text


# ---- PolicyReport -----------------------------------------------------------------------
def closed(schema):
    """The CRD schema with unknown fields refused (the API server would prune them silently)."""
    if isinstance(schema, dict):
        schema = {k: closed(v) for k, v in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def test_policyreport_objects_validate_against_the_crd(snapshot, tmp_path):
    manifest = tmp_path / "m.yaml"
    skip = s.small_web("skipped", 1)
    skip["metadata"]["annotations"] = {"capacity-webhook/skip": "load test"}
    manifest.write_text(yaml.safe_dump_all([s.small_web("ok", 3), s.small_web("big", 40),
                                            s.small_web("dns", 2, namespace="kube-system"), skip]))
    result = run("check", "--cluster", snapshot, "-f", manifest, "-o", "policyreport")
    assert result.returncode == 1, result.stderr
    reports = list(yaml.safe_load_all(result.stdout))
    schema = closed(yaml.safe_load(SCHEMA.read_text()))
    for report in reports:
        jsonschema.validate(report, schema)
        assert (report["apiVersion"], report["kind"]) == ("wgpolicyk8s.io/v1alpha2", "PolicyReport")
    by_namespace = {r["metadata"]["namespace"]: r for r in reports}
    assert set(by_namespace) == {"default", "kube-system"}
    default = by_namespace["default"]
    outcome = {(e["resources"][0]["name"], e["rule"]): e["result"] for e in default["results"]}
    assert outcome == {("ok", "capacity"): "pass", ("big", "POD_IP_EXHAUSTED"): "fail",
                       ("skipped", "capacity"): "skip"}
    assert default["summary"] == {"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 1}
    assert by_namespace["kube-system"]["summary"]["skip"] == 1
    big = next(e for e in default["results"] if e["rule"] == "POD_IP_EXHAUSTED")
    assert big["properties"]["pending"] == "22" and big["severity"] == "high" and big["source"] == "capacity-webhook"
    # Audit mode records the same violation as fail, as Kyverno's audit reports do, and exits 0.
    audit = run("check", "--cluster", snapshot, "-f", manifest, "-o", "policyreport", "--mode", "audit")
    assert audit.returncode == 0
    assert next(r for r in yaml.safe_load_all(audit.stdout)
                if r["metadata"]["namespace"] == "default")["summary"]["fail"] == 1
