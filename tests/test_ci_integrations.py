"""The CI integrations, run the way their hosts run them.

* ``action.yml``: the composite action's ``run`` steps executed by bash as a GitHub runner
  would (inputs and ``github.action_path`` substituted, ``GITHUB_OUTPUT``,
  ``GITHUB_STEP_SUMMARY`` and ``RUNNER_TEMP`` set); the install step pip-installs the
  worktree into a fresh venv.
* ``.pre-commit-hooks.yaml``: validated by pre-commit's own manifest schema, then its
  entry run with file names as pre-commit passes them (``pre-commit try-repo`` itself,
  which builds the hook's environment from PyPI, runs in the e2e tier).
* ``kubectl capacity``: a ``kubectl-capacity`` executable on PATH found through kubectl's
  real plugin mechanism (kubectl from ~/.cache/capacity-webhook/tools; skipped without it).
* ``certs``: a ca.key in a git work tree that .gitignore does not cover is warned about.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests import synthetic as s

ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("CAPACITY_WEBHOOK_TOOLS", Path.home() / ".cache" / "capacity-webhook" / "tools"))


def workspace(tmp_path: Path) -> Path:
    """A repository the way a user has it: a snapshot, manifests, a Helm chart file."""
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    (repo / "ops").mkdir()
    (repo / "ops" / "snapshot.json").write_text(json.dumps(s.two_t3_medium_cluster()))
    (repo / "deploy" / "web.yaml").write_text(yaml.safe_dump(s.small_web("web", 30)))
    (repo / "deploy" / "api.yaml").write_text(yaml.safe_dump(s.small_web("api", 4)))
    (repo / "deploy" / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    return repo


# ---- GitHub Action --------------------------------------------------------------------------
def run_action(tmp_path: Path, inputs: dict) -> tuple[int, dict, str, Path]:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    defaults = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    missing = [n for n, spec in action["inputs"].items() if spec.get("required") and n not in inputs]
    assert not missing, missing
    values = {**defaults, **inputs}
    runner = tmp_path / "runner"
    runner.mkdir()
    files = {name: runner / name for name in ("output", "summary", "path")}
    for f in files.values():
        f.write_text("")
    context = {"github.action_path": str(ROOT), "runner.temp": str(runner),
               **{f"inputs.{k}": v for k, v in values.items()}}

    def substitute(text: str) -> str:
        def one(match):
            key = match.group(1).strip()
            assert key in context, f"action.yml uses ${{{{ {key} }}}}, which this runner does not provide"
            return context[key]
        return re.sub(r"\$\{\{(.*?)\}\}", one, text)

    code, path_extra = 0, []
    for step in action["runs"]["steps"]:
        if "uses" in step:
            assert step["uses"].startswith("actions/setup-python@v"), step   # the runner's Python stands in
            continue
        assert step["shell"] == "bash"
        env = {**os.environ, "GITHUB_OUTPUT": str(files["output"]), "GITHUB_STEP_SUMMARY": str(files["summary"]),
               "GITHUB_PATH": str(files["path"]), "RUNNER_TEMP": str(runner), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        env.pop("PYTHONPATH", None)
        env["PATH"] = os.pathsep.join([*path_extra, env["PATH"]])
        env.update({k: substitute(str(v)) for k, v in (step.get("env") or {}).items()})
        # GitHub runs composite bash steps as: bash --noprofile --norc -eo pipefail {0}
        script = runner / "step.sh"
        script.write_text(substitute(step["run"]))
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=tmp_path / "repo",
                              env=env, capture_output=True, text=True, timeout=600)
        path_extra = [p for p in files["path"].read_text().splitlines() if p]
        code = proc.returncode
        if code != 0:
            break
    outputs = dict(line.split("=", 1) for line in files["output"].read_text().splitlines() if "=" in line)
    return code, outputs, files["summary"].read_text(), runner


def test_github_action_runs_check_writes_sarif_and_fails_the_job(tmp_path):
    workspace(tmp_path)
    code, outputs, summary, runner = run_action(tmp_path, {"manifests": "deploy", "cluster": "ops/snapshot.json"})
    assert code == 1 and outputs["exit-code"] == "1"
    assert (runner / "capacity-webhook-venv" / "bin" / "kubectl-capacity").exists()   # installed with the package
    assert "DENY     Deployment default/web" in summary and "1 allowed, 0 warned, 1 denied" in summary
    sarif = json.loads((tmp_path / "repo" / outputs["sarif-file"]).read_text())
    (result,) = sarif["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]
    assert result["ruleId"] == "POD_IP_EXHAUSTED" and location["artifactLocation"]["uri"] == "deploy/web.yaml"
    assert location["region"] == {"startLine": 1}


def test_github_action_inputs_reach_the_flags(tmp_path):
    """The second half of the action's contract without a second pip install: the check step alone."""
    repo = workspace(tmp_path)
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    step = next(st for st in action["runs"]["steps"] if st.get("id") == "check")
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    shim = venv / "capacity-webhook"       # what pip would install, importing this worktree
    shim.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                    "from webhook.cli import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    outputs, summary = tmp_path / "out", tmp_path / "summary"

    def check_step(**inputs):
        outputs.write_text("")
        env = {**os.environ, "VENV": str(tmp_path / "venv"), "GITHUB_OUTPUT": str(outputs),
               "GITHUB_STEP_SUMMARY": str(summary)}
        defaults = {n: str(spec.get("default", "")) for n, spec in action["inputs"].items()}
        for name, value in {**defaults, **inputs}.items():
            env["INPUT_" + name.upper().replace("-", "_")] = value
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=repo,
                              env=env, capture_output=True, text=True, timeout=120)
        return proc.returncode, dict(line.split("=", 1) for line in outputs.read_text().splitlines())

    base = {"manifests": "deploy", "cluster": "ops/snapshot.json"}
    assert check_step(**base, mode="warn") == (0, {"exit-code": "0", "sarif-file": "capacity-webhook.sarif"})
    assert check_step(**base, **{"fail-on": "warn", "mode": "warn"})[0] == 1
    assert check_step(**base, ignore="POD_IP_EXHAUSTED")[0] == 0
    assert check_step(**base, **{"headroom-nodes": "1"})[0] == 0          # one more node absorbs the 9 pods
    assert check_step(**base, **{"exclude-namespaces": "default"})[0] == 0
    assert check_step(**base, exclude="web.yaml")[0] == 0
    (repo / "values.yaml").write_text("mode: warn\n")
    assert check_step(**base, mode="", **{"chart-values": "values.yaml"})[0] == 0        # the chart's warn mode
    assert check_step(**base, **{"chart-values": "values.yaml"})[0] == 1                 # the input wins
    # Selectors: from the values files, or the inputs (kubectl -l syntax); default/web is left out.
    (repo / "values.yaml").write_text("webhook:\n  namespaceSelector:\n    matchLabels: {capacity: checked}\n")
    assert check_step(**base, **{"chart-values": "values.yaml"})[0] == 0
    assert check_step(**base, **{"namespace-selector": "capacity=checked"})[0] == 0
    assert check_step(**base, **{"namespace-selector": "kubernetes.io/metadata.name notin (x, y)"})[0] == 1
    assert check_step(**base, **{"object-selector": "app=other"})[0] == 0
    assert check_step(**base, **{"object-selector": "a=b=c"})[0] == 2
    assert check_step(manifests="deploy", cluster="missing.json") == (2, {"exit-code": "2", "sarif-file": ""})
    # Input text is data, never code: a hostile value is one odd file name.
    code, _ = check_step(manifests="deploy/web.yaml; touch pwned", cluster="ops/snapshot.json")
    assert code == 2 and not (repo / "pwned").exists()


# ---- pre-commit -------------------------------------------------------------------------------
def test_pre_commit_hook_manifest_and_entry(tmp_path):
    clientlib = pytest.importorskip("pre_commit.clientlib")
    (hook,) = clientlib.load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    assert hook["id"] == "capacity-webhook-check" and hook["language"] == "python" and hook["pass_filenames"]
    repo = workspace(tmp_path)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    tracked = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True, check=True)
    files = [f for f in tracked.stdout.split() if re.search(hook["files"], f)]
    assert "deploy/Chart.yaml" in files and "ops/snapshot.json" in files     # the hook gets them too
    entry = shlex.split(hook["entry"])
    assert entry[0] == "capacity-webhook"
    # [project.scripts] maps the entry to webhook.cli:main; run that as the installed script would.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[entry[0]] == "webhook.cli:main"
    command = [sys.executable, "-m", "webhook.cli", *entry[1:], *hook["args"], "--cluster", "ops/snapshot.json",
               *files]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1, result.stderr
    assert "DENY     Deployment default/web" in result.stdout and "ALLOW    Deployment default/api" in result.stdout
    assert "skipped deploy/Chart.yaml:1: not a Kubernetes object" in result.stderr
    assert "skipped ops/snapshot.json: the --cluster snapshot" in result.stderr
    # The snapshot can come from the environment, so the hook needs no args at all.
    by_env = subprocess.run(command[:command.index("--cluster")] + files, cwd=repo, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT),
                                             "CAPACITY_WEBHOOK_CLUSTER": "ops/snapshot.json"})
    assert by_env.returncode == 1 and by_env.stdout == result.stdout


# ---- kubectl plugin -------------------------------------------------------------------------
def plugin_path(tmp_path: Path) -> Path:
    """A bin folder holding ``kubectl-capacity`` as pip writes a console script (pyproject's entry point)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["kubectl-capacity"].split(":")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    plugin = bin_dir / "kubectl-capacity"
    plugin.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      f"from {module} import {func}\nsys.exit({func}())\n")
    plugin.chmod(0o755)
    return bin_dir


def kubectl_binary() -> Path:
    kubectl = TOOLS / "kubectl"
    if not kubectl.exists():
        pytest.skip(f"kubectl not built in {TOOLS} (run .ci/build-control-plane)")
    return kubectl


def test_kubectl_finds_the_plugin_and_runs_report(tmp_path):
    kubectl = kubectl_binary()
    env = {"PATH": f"{plugin_path(tmp_path)}{os.pathsep}{TOOLS}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path),
           "KUBECONFIG": str(tmp_path / "none")}
    listed = subprocess.run([str(kubectl), "plugin", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert str(tmp_path / "bin" / "kubectl-capacity") in listed.stdout, listed.stdout + listed.stderr
    helped = subprocess.run([str(kubectl), "capacity", "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert helped.returncode == 0 and "Usage: kubectl capacity" in helped.stdout
    assert all(command in helped.stdout for command in ("report", "check", "snapshot"))
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(s.two_t3_medium_cluster()))
    report = subprocess.run([str(kubectl), "capacity", "report", "--cluster", str(snap)], capture_output=True,
                            text=True, env=env, timeout=60)
    assert report.returncode == 0, report.stderr
    assert next(line for line in report.stdout.splitlines() if line.startswith("TOTAL")).split()[5:7] == ["9/30", "21"]


def test_installed_scripts_are_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"capacity-webhook": "webhook.cli:main", "kubectl-capacity": "webhook.kubectl_plugin:main"}


# ---- certs ------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_certs_warns_when_ca_key_is_not_git_ignored(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    def certs(out: str):
        return subprocess.run([sys.executable, "-m", "webhook.cli", "certs", "--out", out, "--dns", "localhost"],
                              cwd=repo, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    loud = certs("tls")
    assert loud.returncode == 0 and "tls/ca.key is inside the git repository" in loud.stderr
    assert "add 'tls/' to .gitignore" in loud.stderr
    (repo / ".gitignore").write_text("/secrets/\n")
    quiet = certs("secrets")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
    outside = subprocess.run([sys.executable, "-m", "webhook.cli", "certs", "--out", str(tmp_path / "elsewhere"),
                              "--dns", "localhost"], cwd=repo, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert outside.returncode == 0 and "warning" not in outside.stderr
    # This repository ignores the README's default folder.
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "tls/ca.key"])
    assert ignored.returncode == 0
