"""Static checks of the Dockerfile (docker itself is not available in CI).

A small parser splits the Dockerfile into instructions (comments dropped,
backslash continuations joined) and stages (one per FROM); the assertions are
about the final stage, which is what ships.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART_VALUES = ROOT / "charts" / "capacity-webhook" / "values.yaml"


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue  # blank lines and comments (incl. parser directives)
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by docker too
        if not buf:
            start = lineno
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        joined = " ".join(part for part in buf if part)
        buf = []
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    assert not buf, "Dockerfile ends inside a line continuation"
    return instructions


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """``ARG NAME=default`` before the first FROM: the only variables a FROM line may use."""
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            args[name.strip()] = default.strip().strip('"')
    return args


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), text)


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    """Stages with their base image as built by default (global ARG defaults expanded)."""
    args = global_args(instructions)
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=expand(words[0], args), name=name))
        elif stages:
            stages[-1].instructions.append(ins)
    return stages


def exec_form(args: str) -> list[str]:
    """ENTRYPOINT/CMD arguments as a list (exec form is JSON; shell form is split)."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value
    return ["/bin/sh", "-c", args]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    assert DOCKERFILE.is_file(), "Dockerfile missing at the repo root"
    parsed = split_stages(parse_dockerfile(DOCKERFILE.read_text()))
    assert parsed, "no FROM in Dockerfile"
    return parsed


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_parser_handles_continuations_and_comments() -> None:
    text = "# syntax=docker/dockerfile:1\nFROM a AS b\nRUN x \\\n  # note\n  && y\nUSER 1\n"
    ins = parse_dockerfile(text)
    assert [(i.keyword, i.args) for i in ins] == [("FROM", "a AS b"), ("RUN", "x && y"), ("USER", "1")]
    assert split_stages(ins)[0].name == "b"
    with_arg = parse_dockerfile("ARG BASE=python:3.11-slim\nFROM ${BASE} AS b\nFROM $BASE\n")
    assert [st.base for st in split_stages(with_arg)] == ["python:3.11-slim", "python:3.11-slim"]


def test_multi_stage_with_slim_builder(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "expected a builder stage and a final stage"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", stages[0].base), stages[0].base


def test_stages_share_the_swappable_base(stages: list[Stage]) -> None:
    """The venv's python is a symlink into the base: the builder and the runtime root must come
    from the same base, and scripts/build-image swaps both for a local Debian root through one ARG.
    The shipped stage starts from scratch: it is that root plus the venv, no base layer underneath."""
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    assert "PYTHON_IMAGE" in global_args(instructions)
    froms = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE}"] * (len(froms) - 1) + ["scratch"]


def test_default_base_is_python_311_slim(stages: list[Stage]) -> None:
    for stage in stages[:-1]:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.base), stage.base


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    out = []
    for copy in stage.all("COPY"):
        words = shlex.split(copy.args)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        source = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        out.append((source, paths[:-1], paths[-1]))
    return out


def test_final_stage_is_the_runtime_root_plus_the_venv(stages: list[Stage], final: Stage) -> None:
    names = [s.name for s in stages]
    runtime, builder = stages[names.index("runtime")], stages[names.index("builder")]
    assert copies(final) == [("runtime", ["/"], "/"), ("builder", ["/opt/venv"], "/opt/venv")]
    assert not final.all("ADD") and not final.all("RUN")
    assert not copies(runtime) and runtime.base == builder.base


def test_runtime_root_purges_what_a_webhook_never_runs(stages: list[Stage]) -> None:
    runtime = next(s for s in stages if s.name == "runtime")
    text = " ".join(i.args for i in runtime.all("RUN"))
    # The user is made before passwd goes; packages leave through dpkg, so its status stays true.
    assert text.index("useradd") < text.index("dpkg --purge")
    for package in ("apt", "perl-base", "debconf", "tzdata", "passwd", "util-linux", "python3-pip-whl"):
        assert re.search(rf"\s{re.escape(package)}(\s|\))", text), package
    for kept in ("python3.11 ", "libpython", "libssl3", "ca-certificates", "coreutils", "dash", "libc6"):
        assert kept not in text.split("dpkg --purge", 1)[1].split("rm -rf")[0], kept
    assert "gconv" in text


def test_user_is_numeric_nonroot_65532(final: Stage) -> None:
    users = final.all("USER")
    assert users, "final stage has no USER (would run as root)"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit(), f"USER should be numeric so runAsNonRoot can verify it, got {uid!r}"
    assert int(uid) == 65532


def test_entrypoint_and_cmd(final: Stage) -> None:
    entry = final.all("ENTRYPOINT")
    assert entry, "no ENTRYPOINT"
    assert exec_form(entry[-1].args) == ["capacity-webhook"]
    cmd = final.all("CMD")
    assert cmd, "no CMD defaults"
    args = exec_form(cmd[-1].args)
    assert args[0] == "serve"
    for flag in ("--tls-cert-file", "--tls-private-key-file", "--port"):
        assert flag in args, f"CMD lacks {flag}"


def test_env_workdir_expose(final: Stage) -> None:
    env = " ".join(i.args for i in final.all("ENV"))
    assert re.search(r"\bPYTHONDONTWRITEBYTECODE=1\b", env)
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)
    assert final.all("WORKDIR")
    assert any("8443" in i.args.split() for i in final.all("EXPOSE"))


def test_no_healthcheck(stages: list[Stage]) -> None:
    for stage in stages:
        assert not stage.all("HEALTHCHECK"), "Kubernetes probes do the health checking; no HEALTHCHECK"


def test_no_compilers_or_pip_cache_in_final_stage(final: Stage) -> None:
    text = " ".join(i.args for i in final.instructions if i.keyword == "RUN")
    for banned in ("gcc", "g++", "build-essential", "clang", "make ", "pip install", "apt-get install"):
        assert banned not in text, f"final stage RUN mentions {banned!r}"


def test_builder_trims_what_the_server_never_imports(stages: list[Stage]) -> None:
    text = " ".join(i.args for i in next(s for s in stages if s.name == "builder").all("RUN"))
    assert "site-packages/kubernetes/aio" in text and "rm -rf" in text
    for dist in ("aiohttp", "aiohttp-retry", "yarl", "multidict", "frozenlist", "pip", "setuptools"):
        assert re.search(rf"uninstall[^&]*\s{re.escape(dist)}(\s|$)", text), dist
    # The trimmed venv is imported before it is shipped: a trim too many fails the build.
    builder = next(s for s in stages if s.name == "builder")
    last = [i.args for i in builder.all("RUN")][-1]
    assert "import webhook.cli" in last and "kubernetes.client" in last and "capacity-webhook --help" in last


def test_proxy_ca_is_a_build_secret_not_a_layer(stages: list[Stage]) -> None:
    for stage in stages:
        for ins in stage.instructions:
            assert "pip-ca" not in ins.args or (ins.keyword == "RUN" and "--mount=type=secret,id=pip-ca" in ins.args), \
                f"line {ins.line}: the CA bundle may only be a RUN secret mount"
        assert not [e for e in stage.all("ENV") if "PIP_CERT" in e.args]


def test_builder_pip_uses_no_cache(stages: list[Stage]) -> None:
    for stage in stages[:-1]:
        for run in stage.all("RUN"):
            for m in re.finditer(r"pip\s+(install|wheel)\b[^&;]*", run.args):
                assert "--no-cache-dir" in m.group(0), f"line {run.line}: pip without --no-cache-dir"


def test_chart_runs_as_the_image_user(final: Stage) -> None:
    uid = int(final.all("USER")[-1].args.split(":")[0])
    values = yaml.safe_load(CHART_VALUES.read_text())
    assert values["securityContext"]["runAsUser"] == uid
    assert values["podSecurityContext"]["runAsUser"] == uid
    assert values["securityContext"]["readOnlyRootFilesystem"] is True


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule for one path: the last pattern matching it (or a parent directory) wins;
    ``!`` re-includes. ``**`` spans directories, ``*`` and ``?`` stay within one."""
    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
            out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        return re.compile(out)

    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        rx = regex(pattern[1:] if negate else pattern)
        if any(rx.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


NEEDED = ("pyproject.toml", "image-constraints.txt", "README.md", "webhook", "certs")  # what the build reads


def test_dockerignore_sends_only_the_package_sources() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    for entry in ROOT.iterdir():  # everything at the top of the repository, now
        assert dockerignore_excludes(patterns, entry.name) == (entry.name not in NEEDED), entry.name
    for kept in ("webhook/server/app.py", "webhook/data/instance_limits.json", "certs/authority.py"):
        assert not dockerignore_excludes(patterns, kept), kept
    for junk in ("webhook/__pycache__/cli.cpython-311.pyc", "certs/__pycache__", "tests/test_chart.py",
                 "charts/capacity-webhook/values.yaml", ".git/HEAD", "some-future-dir/file"):
        assert dockerignore_excludes(patterns, junk), junk


def test_image_constraints_pin_every_dependency() -> None:
    """image-constraints.txt pins each of pyproject's dependencies to a version its specifier allows
    (an unpinned boto3/botocore resolve backtracks through a hundred releases in the build)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "image-constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in image-constraints.txt"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} violates {text}"
