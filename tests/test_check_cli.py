"""``capacity-webhook check`` and ``report`` as CI runs them: real processes, real files, exit codes."""

import json
import shlex
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from tests import synthetic as s

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CLUSTER = ROOT / "webhook" / "examples" / "cluster.json"
EXAMPLE_WORKLOADS = ROOT / "webhook" / "examples" / "workloads.yaml"


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "webhook.cli", *map(str, args)], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(s.two_t3_medium_cluster()))
    return path


def test_readme_first_command_runs_the_bundled_example():
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if "capacity-webhook check" in ln)
    command = shlex.split(line.split("&&", 1)[1])
    assert command[0] == "capacity-webhook"
    result = run(*command[1:])
    assert result.returncode == 0, result.stderr
    assert "DENY     Deployment default/web" in result.stdout and "9 of 30 pods would stay Pending" in result.stdout
    assert "EBS_ACCESS_MODE" in result.stdout and "Use the EFS StorageClass 'efs-sc'" in result.stdout
    assert "1 allowed, 0 warned, 2 denied" in result.stdout


def test_json_output_and_exit_code_1_on_deny():
    result = run("check", "--cluster", EXAMPLE_CLUSTER, "-f", EXAMPLE_WORKLOADS, "-o", "json")
    assert result.returncode == 1
    results = json.loads(result.stdout)["results"]
    web = results[0]
    assert {k: web[k] for k in ("kind", "namespace", "name", "verdict", "requested", "schedulable", "pending")} == \
        {"kind": "Deployment", "namespace": "default", "name": "web", "verdict": "deny", "requested": 30,
         "schedulable": 21, "pending": 9}
    assert web["reasons"][0]["code"] == "POD_IP_EXHAUSTED" and web["reasons"][0]["message"]
    assert [r["verdict"] for r in results] == ["deny", "deny", "allow"]


def test_warn_mode_and_fail_on_warn(snapshot, tmp_path):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(yaml.safe_dump(s.small_web("web", 30)))
    assert run("check", "--cluster", snapshot, "-f", manifest, "--mode", "warn").returncode == 0
    assert run("check", "--cluster", snapshot, "-f", manifest, "--mode", "warn", "--fail-on", "warn").returncode == 1


def test_objects_in_one_run_spend_capacity_in_order(snapshot, tmp_path):
    folder = tmp_path / "manifests" / "nested"
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text(yaml.safe_dump_all([s.small_web("a", 12), s.small_web("b", 9)]))
    (folder / "c.json").write_text(json.dumps(s.as_list([s.small_web("c", 1)])))
    (folder / "notes.txt").write_text("not a manifest")
    result = run("check", "--cluster", snapshot, "-f", tmp_path / "manifests", "-o", "json")
    verdicts = [(r["name"], r["verdict"], r["pending"]) for r in json.loads(result.stdout)["results"]]
    assert verdicts == [("a", "allow", 0), ("b", "allow", 0), ("c", "deny", 1)]


def test_stdin_as_helm_template_output(snapshot):
    docs = "---\n# Source: chart/templates/deploy.yaml\n" + yaml.safe_dump(s.small_web("web", 21))
    result = run("check", "--cluster", snapshot, "-f", "-", stdin=docs)
    assert result.returncode == 0 and "ALLOW    Deployment default/web" in result.stdout


def test_junit_and_sarif(snapshot, tmp_path):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(yaml.safe_dump_all([s.small_web("ok", 3), s.small_web("big", 40)]))
    junit = ET.fromstring(run("check", "--cluster", snapshot, "-f", manifest, "-o", "junit").stdout)
    suite = junit.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.find("testcase[@name='Deployment default/big']/failure")
    assert failure is not None and "POD_IP_EXHAUSTED" in failure.get("type")
    sarif = json.loads(run("check", "--cluster", snapshot, "-f", manifest, "-o", "sarif").stdout)
    assert sarif["version"] == "2.1.0"
    (result,) = sarif["runs"][0]["results"]
    assert result["ruleId"] == "POD_IP_EXHAUSTED" and result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == manifest.as_uri()       # outside the working directory
    second_document = manifest.read_text().splitlines().index("---") + 2   # 1-based line after the separator
    assert location["region"] == {"startLine": second_document}
    assert [r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]] == ["POD_IP_EXHAUSTED"]


@pytest.mark.parametrize("content, expected", [
    (None, "no such file or directory"),
    ("kind: Deployment\nmetadata: {name: x\n  bad", "invalid YAML"),
])
def test_input_errors_exit_2_with_one_line(snapshot, tmp_path, content, expected):
    path = tmp_path / "m.yaml"
    if content is not None:
        path.write_text(content)
    result = run("check", "--cluster", snapshot, "-f", path)
    assert result.returncode == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    if content is not None:
        assert f"{path}:" in result.stderr   # file and line


def test_snapshot_must_be_a_list(tmp_path):
    bad = tmp_path / "snap.json"
    bad.write_text(json.dumps(s.node("n1")))
    result = run("check", "--cluster", bad, "-f", EXAMPLE_WORKLOADS)
    assert result.returncode == 2 and "kind: List" in result.stderr


def test_an_unknown_mode_is_a_usage_error_that_names_it():
    # --cluster is given so that nothing can reach a real cluster from a developer's kubeconfig.
    result = run("check", "--cluster", EXAMPLE_CLUSTER, "-f", EXAMPLE_WORKLOADS, "--mode", "strict")
    assert result.returncode == 2 and "strict" in result.stderr and "Traceback" not in result.stderr
    assert run("check", "--cluster", EXAMPLE_CLUSTER, "-f", EXAMPLE_WORKLOADS, "--mode", "warn",
               "--fail-on", "never").returncode == 0


def test_report_text_and_html(tmp_path):
    page = tmp_path / "report.html"
    result = run("report", "--cluster", EXAMPLE_CLUSTER, "--html", page)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    node1 = next(ln for ln in lines if ln.startswith("ip-10-0-1-17"))
    # 5 IP pods of 15 used, 10 free; 7 of 17 kubelet pods; 1930m - 625m CPU.
    assert node1.split()[1:8] == ["t3.medium", "secondary-ip", "5/15", "10", "7/17", "10", "1305m"]
    total = next(ln for ln in lines if ln.startswith("TOTAL"))
    assert "9/30" in total and " 21 " in total
    html = page.read_text()
    assert html.count(" data-name=") == 2 and ">5/15</td>" in html
