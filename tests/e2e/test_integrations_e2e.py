"""The CI integrations against the real things: kube-apiserver, kubectl, pre-commit.

* ``kubectl capacity report`` / ``check`` through kubectl's plugin mechanism, against the
  current context of a kubeconfig (no flags), compared with what kubectl itself lists.
* ``check -o policyreport`` output created (server dry run, strict field validation) in a
  kube-apiserver that has the wg-policy PolicyReport CRD (v1alpha2, schema vendored in
  tests/data): the API server, not our test, says the objects are valid.
* ``pre-commit try-repo`` on this repository: pre-commit builds the hook's environment from
  PyPI and runs it on a scratch repository (about two minutes the first time).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import synthetic as s

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "data" / "wgpolicyk8s.io_policyreports.v1alpha2.schema.yaml"


def plugin_bin(tmp_path: Path) -> Path:
    import tomllib

    module, func = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"][
        "kubectl-capacity"].split(":")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    plugin = bin_dir / "kubectl-capacity"
    plugin.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      f"from {module} import {func}\nsys.exit({func}())\n")
    plugin.chmod(0o755)
    return bin_dir


def test_kubectl_capacity_reads_the_current_context(control_plane, tmp_path):
    cp = control_plane
    env = cp.env(cp.webhook_kubeconfig)
    env["PATH"] = os.pathsep.join([str(plugin_bin(tmp_path)), str(cp.kubectl_path.parent), env.get("PATH", "")])
    kubectl = str(cp.kubectl_path)
    context = subprocess.run([kubectl, "config", "current-context"], capture_output=True, text=True, env=env,
                             timeout=60)
    assert context.returncode == 0 and context.stdout.strip()
    report = subprocess.run([kubectl, "capacity", "report", "-o", "json"], capture_output=True, text=True, env=env,
                            timeout=180)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    names = cp.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert sorted(n["name"] for n in data["nodes"]) == sorted(names)
    assert data["source"] == "live cluster, current context"
    manifest = tmp_path / "one.yaml"
    manifest.write_text(yaml.safe_dump(s.small_web("plugin-probe", 1, namespace="default")))
    check = subprocess.run([kubectl, "capacity", "check", "-f", str(manifest), "-o", "json", "--fail-on", "never"],
                           capture_output=True, text=True, env=env, timeout=180)
    assert check.returncode == 0, check.stderr
    (result,) = json.loads(check.stdout)["results"]
    assert (result["kind"], result["name"], result["requested"]) == ("Deployment", "plugin-probe", 1)


def test_policyreports_are_accepted_by_the_api_server(control_plane, tmp_path):
    cp = control_plane
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "policyreports.wgpolicyk8s.io"},
           "spec": {"group": "wgpolicyk8s.io", "scope": "Namespaced",
                    "names": {"kind": "PolicyReport", "listKind": "PolicyReportList", "plural": "policyreports",
                              "singular": "policyreport", "shortNames": ["polr"]},
                    "versions": [{"name": "v1alpha2", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": yaml.safe_load(SCHEMA.read_text())}}]}}
    existed = cp.kubectl("get", "crd", "policyreports.wgpolicyk8s.io", check=False).returncode == 0
    if not existed:
        cp.apply(crd)
    try:
        cp.kubectl("wait", "--for=condition=Established", "crd/policyreports.wgpolicyk8s.io", "--timeout=60s")
        snap, manifest = tmp_path / "snap.json", tmp_path / "m.yaml"
        snap.write_text(json.dumps(s.two_t3_medium_cluster()))
        skip = s.small_web("skipped", 1)
        skip["metadata"]["annotations"] = {"capacity-webhook/skip": "load test"}
        manifest.write_text(yaml.safe_dump_all([s.small_web("ok", 3), s.small_web("big", 40), skip]))
        result = subprocess.run([sys.executable, "-m", "webhook.cli", "check", "--cluster", str(snap), "-f",
                                 str(manifest), "-o", "policyreport"], capture_output=True, text=True, cwd=ROOT,
                                timeout=60)
        assert result.returncode == 1, result.stderr
        created = cp.kubectl("create", "--dry-run=server", "--validate=strict", "-o", "json", "-f", "-",
                             input=result.stdout, check=False)
        assert created.returncode == 0, created.stderr
        stored = json.loads(created.stdout)
        assert stored["kind"] == "PolicyReport" and stored["summary"] == {"pass": 1, "fail": 1, "warn": 0,
                                                                          "error": 0, "skip": 1}
        assert {r["rule"] for r in stored["results"]} == {"capacity", "POD_IP_EXHAUSTED"}
    finally:
        if not existed:
            cp.kubectl("delete", "crd", "policyreports.wgpolicyk8s.io", "--wait=false", check=False)


def test_pre_commit_try_repo(tmp_path):
    pre_commit = shutil.which("pre-commit")
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (pip install pre-commit)")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "snapshot.json").write_text(json.dumps(s.two_t3_medium_cluster()))
    (work / "web.yaml").write_text(yaml.safe_dump(s.small_web("web", 30)))
    (work / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    env = {**os.environ, "CAPACITY_WEBHOOK_CLUSTER": "snapshot.json",
           "PRE_COMMIT_HOME": str(Path.home() / ".cache" / "capacity-webhook" / "pre-commit")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([pre_commit, "try-repo", str(ROOT), "capacity-webhook-check", "--all-files",
                             "--verbose"], cwd=work, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DENY     Deployment default/web" in result.stdout
    assert "skipped Chart.yaml:1: not a Kubernetes object" in result.stdout
    assert "skipped snapshot.json: the --cluster snapshot" in result.stdout
