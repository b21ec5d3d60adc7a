#!/usr/bin/env python3
"""Mutation testing for capacity-webhook: how many small, deliberate bugs do the tests catch?

A test suite that passes proves little by itself; one that *fails* when the code is
broken proves it pins behaviour. This script breaks the code on purpose, one small AST
edit at a time (a comparison flipped, ``+`` turned into ``-``, ``and`` into ``or``, a
constant nudged, ``continue`` turned into ``break``, a return value dropped), runs the
tests that execute the edited line, and counts the mutants the tests kill.

Fast because it only runs what can notice: the unit tests run once under coverage with
one context per test, which maps every line of the measured modules to the tests that
execute it. A mutant then runs only those tests (``-x``, stop at the first failure); a
mutant on a line no test executes survives without a run (``uncovered`` in the table).
Code that runs at import (module constants, class bodies, default values) is paired
with every test that executes any line of its module.

Honest because a kill must be a failing test: the unmutated copy must pass first (the
same run that records coverage); a child that exits with a usage error or "no tests
collected" is a harness error, reported and never counted as a kill; and at the end
every test that killed a mutant runs alone on the unmutated copy and must pass (else
the kills it made are withdrawn and reported, with the failure). That re-check runs in the
warm process the kills were made in, so that process must hold the unmutated code: no
mutant is written into a copy before its warm process has finished importing it (a cold
mutant written during that import used to stay loaded for the whole run, so every later
warm run measured it and the re-check withdrew honest kills). A mutant that hangs past its
time limit (five times its tests' own time, plus a margin) counts as killed: the tests noticed.

Everything runs on private copies of the repository (the work tree is never touched),
with bytecode caching off so an edited module can never be loaded from a stale ``.pyc``.
Equivalent mutants (edits that cannot change behaviour) are listed by name in
``scripts/mutation_equivalent.txt`` with the reason, and excluded from the score.

    python scripts/mutation.py --jobs 2                 # webhook/engine/ and review.py, every mutant
    python scripts/mutation.py --module webhook/engine/quantity.py --survivors
    python scripts/mutation.py --sample 40 --seed 1     # a quicker estimate
    python scripts/mutation.py --list webhook/engine/quantity.py   # mutant names only

Not part of the default test run: the whole scope (3,377 mutants) took 38 minutes with 2 jobs
on 2 cores shared with other work (load 8-16); a re-run that carries the earlier kills, minutes.
Needs ``coverage`` (in the ``test`` extra).
"""

from __future__ import annotations

import argparse
import ast
import functools
import gc
import hashlib
import importlib
import json
import os
import random
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "scripts" / "mutation_equivalent.txt"

# The measured scope: every module of the engine, and the server's review decoding.
SCOPE = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "webhook" / "engine").glob("*.py")) + \
        ["webhook/server/review.py"]
# The tests that may kill a mutant: every top-level unit test file. The e2e tier (a real
# kube-apiserver) and the differential tier (the real kube-scheduler) are left out, by
# directory and by marker. Files whose tests only start subprocesses cost one coverage run
# and are then never selected (coverage is measured in this process only).
UNIT_TESTS = "tests/test_*.py"
MARKERS = "not e2e and not differential"

COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                 ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
                 ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
               ast.Div: ast.Mult, ast.Mod: ast.FloorDiv}


@dataclass(frozen=True)
class Mutant:
    """One edit: ``name`` is stable across runs (module:line:col:kind) so it can be listed as equivalent."""

    module: str
    line: int
    col: int
    kind: str
    index: int                      # position among the module's mutation points, to re-find the node
    lines: tuple[int, ...]          # source lines whose execution reaches the edit
    at_import: bool                 # outside any function body: runs when the module is imported

    @property
    def name(self) -> str:
        return f"{self.module}:{self.line}:{self.col}:{self.kind}"


def _points(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every (node, kind) this script knows how to mutate, in a deterministic walk order."""
    points: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in COMPARE_SWAPS:
            points.append((node, f"compare-{type(node.ops[0]).__name__}"))
        elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAPS:
            points.append((node, f"binop-{type(node.op).__name__}"))
        elif isinstance(node, ast.BoolOp):
            points.append((node, f"boolop-{type(node.op).__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            points.append((node, "not-dropped"))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            points.append((node, "bool-flip"))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            points.append((node, "int-plus-one"))
        elif isinstance(node, (ast.Continue, ast.Break)):
            points.append((node, type(node).__name__.lower() + "-swapped"))
        elif isinstance(node, ast.Return) and node.value is not None \
                and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            points.append((node, "return-none"))
    return points


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes inside annotations: mutating them changes nothing at run time."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        annotations: list[ast.expr] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            every = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            every += [a for a in (node.args.vararg, node.args.kwarg) if a]
            annotations = [a.annotation for a in every if a.annotation] + ([node.returns] if node.returns else [])
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            skip.update(id(n) for n in ast.walk(annotation))
    return skip


def _reach(tree: ast.AST) -> dict[int, tuple[tuple[int, ...], bool]]:
    """node id -> (lines whose execution reaches the node, whether it runs at import).

    The lines are the node's own span plus the first line of the innermost statement
    around it (a tracer may report a multi-line statement on its first line). A node in
    a function body runs when that body runs; anything else (module and class bodies,
    default values, decorators) runs at import.
    """
    reach: dict[int, tuple[tuple[int, ...], bool]] = {}

    def visit(node: ast.AST, statement: ast.AST | None, in_body: bool) -> None:
        if isinstance(node, ast.stmt):
            statement = node
        if hasattr(node, "lineno"):
            first = getattr(statement, "lineno", node.lineno)
            own = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            reach[id(node)] = (tuple(sorted({first, *own})), not in_body)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.iter_child_nodes(node):
                body = node.body if isinstance(node.body, list) else [node.body]
                visit(child, statement, in_body or child in body)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, statement, in_body)

    visit(tree, None, False)
    return reach


_SOURCES: dict[str, str] = {}


def source_of(module: str) -> str:
    """The module's text as it was when first read: the copies hold this text, whatever the work tree does next."""
    if module not in _SOURCES:
        _SOURCES[module] = (ROOT / module).read_text()
    return _SOURCES[module]


def mutants_of(module: str) -> list[Mutant]:
    tree = ast.parse(source_of(module))
    skip = _annotation_nodes(tree)
    reach = _reach(tree)
    return [Mutant(module, node.lineno, node.col_offset, kind, index, *reach[id(node)])
            for index, (node, kind) in enumerate(_points(tree)) if id(node) not in skip]


class _Apply(ast.NodeTransformer):
    def __init__(self, target: ast.AST):
        self.target = target

    def generic_visit(self, node: ast.AST) -> ast.AST:
        node = super().generic_visit(node)
        if node is not self.target:
            return node
        if isinstance(node, ast.Compare):
            node.ops[0] = COMPARE_SWAPS[type(node.ops[0])]()
        elif isinstance(node, ast.BinOp):
            node.op = BINOP_SWAPS[type(node.op)]()
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            node.value = not node.value
        elif isinstance(node, ast.Constant):
            node.value = node.value + 1
        elif isinstance(node, ast.Continue):
            return ast.copy_location(ast.Break(), node)
        elif isinstance(node, ast.Break):
            return ast.copy_location(ast.Continue(), node)
        elif isinstance(node, ast.Return):
            node.value = ast.Constant(None)
        return node


def mutated_source(mutant: Mutant) -> str:
    tree = ast.parse(source_of(mutant.module))
    target = _points(tree)[mutant.index][0]
    return ast.unparse(ast.fix_missing_locations(_Apply(target).visit(tree)))


def load_equivalent() -> dict[str, str]:
    """name -> reason, from scripts/mutation_equivalent.txt (``name  # reason`` per line)."""
    if not EQUIVALENT_FILE.exists():
        return {}
    known = {}
    for line in EQUIVALENT_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, reason = line.partition("#")
            known[name.strip()] = reason.strip()
    return known


def _def_chain(tree: ast.AST, target: ast.AST) -> list[tuple[str, int]] | None:
    """(qualname, first line) of every function around ``target``, outermost first; None if none.

    The first line is what CPython records as the code's ``co_firstlineno`` (the first
    decorator's line for a decorated function), so the live function and its mutated
    twin, compiled from the same positions, match on both.
    """
    def walk(node: ast.AST, prefix: str, chain: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
        if node is target:
            return chain
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = child.name if not isinstance(child, ast.Lambda) else "<lambda>"
                first = min([child.lineno] + [d.lineno for d in getattr(child, "decorator_list", [])])
                found = walk(child, f"{prefix}{name}.<locals>.", chain + [(prefix + name, first)])
            elif isinstance(child, ast.ClassDef):
                found = walk(child, f"{prefix}{child.name}.", chain)
            else:
                found = walk(child, prefix, chain)
            if found is not None:
                return found
        return None

    chain = walk(tree, "", [])
    return chain or None


def _codes(code: types.CodeType) -> list[types.CodeType]:
    found = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(_codes(const))
    return found


def patch_in_place(mutant: Mutant, copy_root: Path,
                   functions: dict[tuple[str, str, int], list[types.FunctionType]]) -> bool:
    """Give the already imported functions around the edit the mutated code; False if that cannot be done.

    Every function object made from the edited function's code (the module's own,
    closures made at import, and the same object in every table or module that holds
    it) gets the mutated ``__code__``, so no import runs again. Code that runs at import
    cannot be patched this way: those mutants run on a fresh import instead.
    """
    module = sys.modules.get(mutant.module[:-3].replace("/", "."))
    if module is None or mutant.at_import:
        return False
    tree = ast.parse(source_of(mutant.module))
    target = _points(tree)[mutant.index][0]
    chain = _def_chain(tree, target)
    if chain is None:
        return False
    filename = module.__spec__.origin if module.__spec__ else None
    new = _codes(compile(ast.fix_missing_locations(_Apply(target).visit(tree)), filename or "", "exec"))
    wanted: dict[tuple[str, int], types.CodeType] = {}
    for qualname, first in chain:
        twins = [c for c in new if c.co_qualname == qualname and c.co_firstlineno == first]
        if len(twins) != 1:
            return False
        wanted[(qualname, first)] = twins[0]
    patched = 0
    for (qualname, first), code in wanted.items():
        for function in functions.get((filename or "", qualname, first), []):
            function.__code__ = code
            patched += 1
    if patched:
        _clear_caches()
    return patched > 0


def _clear_caches() -> None:
    """Empty every functools cache of the package: what an import-time call cached ran unmutated."""
    for name, loaded in list(sys.modules.items()):
        if not name.startswith("webhook") or loaded is None:
            continue
        for value in list(vars(loaded).values()):
            if isinstance(value, functools._lru_cache_wrapper):     # not getattr: proxies (flask.request) raise
                value.cache_clear()


# ---- the child processes ---------------------------------------------------------------------

class _Recorder:
    """pytest plugin for a mutant run: the first failing test (or collection error) and its phase."""

    def __init__(self) -> None:
        self.failed: str | None = None
        self.why: str | None = None

    def pytest_runtest_logreport(self, report):  # noqa: ANN001 (pytest hook)
        if report.failed and self.failed is None:
            self.failed = report.nodeid + ("" if report.when == "call" else f" ({report.when})")
            self.why = _why(report)

    def pytest_collectreport(self, report):  # noqa: ANN001 (pytest hook)
        if report.failed and self.failed is None:
            self.failed = f"collection error in {report.nodeid or 'the test files'}"


def _why(report) -> str:  # noqa: ANN001 (a pytest TestReport)
    """The failure in one line (the exception and its message), for the harness's own reports."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return " ".join(text.split())[:300]


def _test_of(detail: str) -> str:
    """The test's node id in a kill's detail: without the phase (`` (setup)``) or `` (carried over)``.

    Only those known suffixes are cut: a parametrized id may itself hold " (".
    """
    for suffix in (" (carried over)", " (setup)", " (teardown)"):
        detail = detail.removesuffix(suffix)
    return detail


class _CoverageMap:
    """pytest plugin for the baseline run: which test executes which line, and how long each test takes.

    Two clocks per test. Wall time (pytest's phase durations) sizes a mutant's hang budget: it is
    what a run will take on this machine. CPU time (this process's plus that of the child
    processes the test reaped, from its first phase to its last) decides ``--slowest``: on a
    shared machine wall time swells with the load (at load 10-20 on 2 cores some 150 tests
    crossed 0.5 s wall and were dropped, so the score moved with the load), while the CPU a
    test burns does not; a test that drives a subprocess still counts the subprocess's work.
    """

    def __init__(self, copy_root: Path, modules: list[str]):
        import coverage
        self.cov = coverage.Coverage(data_file=None, include=[str(copy_root / m) for m in modules])
        self.durations: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.failed: list[str] = []
        self._cpu_start = 0.0

    def pytest_sessionstart(self, session):  # noqa: ANN001 (pytest hook)
        self.cov.start()

    def pytest_runtest_logstart(self, nodeid, location):  # noqa: ANN001 (pytest hook)
        self.cov.switch_context(nodeid)
        self._cpu_start = _cpu_seconds()

    def pytest_runtest_logreport(self, report):  # noqa: ANN001 (pytest hook)
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed.append(report.nodeid)

    def pytest_runtest_logfinish(self, nodeid, location):  # noqa: ANN001 (pytest hook)
        self.cpu[nodeid] = self.cpu.get(nodeid, 0.0) + _cpu_seconds() - self._cpu_start
        self.cov.switch_context("")

    def pytest_sessionfinish(self, session):  # noqa: ANN001 (pytest hook)
        self.cov.stop()


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and by the child processes it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _child_setup(copy_root: Path, show: bool) -> None:
    os.chdir(copy_root)
    sys.path.insert(0, str(copy_root))
    sys.dont_write_bytecode = True                  # never a stale .pyc of another mutant
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"     # nor in the subprocesses some tests start
    if not show:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)


def _pytest_args(copy_root: Path, selection: list[str], stop_first: bool = True) -> list[str]:
    return [*(["-x"] if stop_first else []), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "-m", MARKERS, "--no-header", "-o", "addopts=", "--rootdir", str(copy_root), *selection]


def start_tests(copy_root: Path, selection: list[str], result: Path) -> int:
    """Fork a child that runs ``selection`` on ``copy_root``; it writes the first failure to ``result``.

    This process has imported pytest and the third-party libraries already but never
    ``webhook``: the child imports the (mutated) code fresh, and each mutant saves an
    interpreter start and the libraries' import.
    """
    pid = os.fork()
    if pid == 0:                                    # child
        code = 3
        try:
            _child_setup(copy_root, show=False)
            import pytest
            recorder = _Recorder()
            code = int(pytest.main(_pytest_args(copy_root, selection), plugins=[recorder]))
            result.write_text(json.dumps({"code": code, "failed": recorder.failed, "why": recorder.why}))
        finally:
            os._exit(code)
    return pid


def coverage_map(copy_root: Path, modules: list[str], tests: list[str], out: Path) -> dict:
    """Run every test once, unmutated and under coverage, in a child; return the map it writes."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            _child_setup(copy_root, show=True)
            import pytest
            mapper = _CoverageMap(copy_root, modules)
            code = int(pytest.main(_pytest_args(copy_root, tests, stop_first=False), plugins=[mapper]))
            data = mapper.cov.get_data()
            lines: dict[str, dict[str, list[str]]] = {}
            for module in modules:
                by_line = data.contexts_by_lineno(str(copy_root / module))
                # "" is the code run outside any test (imports, collection): kept as IMPORT
                lines[module] = {str(n): sorted(c or IMPORT for c in contexts) for n, contexts in by_line.items()}
            libraries = sorted(name for name, mod in list(sys.modules.items())
                               if _is_library(name, getattr(mod, "__file__", None), copy_root))
            out.write_text(json.dumps({"code": code, "failed": mapper.failed, "lines": lines,
                                       "durations": mapper.durations, "cpu": mapper.cpu,
                                       "libraries": libraries}))
        finally:
            os._exit(code)
    os.waitpid(pid, 0)
    return json.loads(out.read_text()) if out.exists() else {"code": 3, "failed": ["(no coverage map written)"]}


def _is_library(name: str, path: str | None, copy_root: Path) -> bool:
    """A third-party or standard module the children may inherit already imported."""
    top = name.partition(".")[0]
    if top in {"webhook", "certs", "tests", "conftest", "__main__", "bench", "scripts"} or not path:
        return False
    return not path.startswith(str(copy_root)) and not path.startswith(str(ROOT))


def finished(pid: int, deadline: float, result: Path) -> tuple[str, str | None, str | None] | None:
    """(outcome, detail, why) once the run is over, else None.

    outcome: 'survived', 'killed' (detail: the failing test; why: its error, one line),
    'timeout' (a hang is a kill) or 'error' (pytest could not run the selection: a harness
    fault, never a kill).
    """
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        code = os.waitstatus_to_exitcode(status)
        detail = json.loads(result.read_text()) if result.exists() else {"code": code, "failed": None}
        result.unlink(missing_ok=True)
        if code == 0:
            return "survived", None, None
        if code == FALLBACK:
            return "fallback", None, None
        failed = detail.get("failed") or ""
        if (code in (1, 2) and failed) or (code == 4 and failed.startswith("collection error")):
            return "killed", failed, detail.get("why")  # a test failed, or the mutant broke the tests' import
        if code < 0:                                # the mutant crashed the interpreter itself
            return "killed", f"(test process died with signal {-code})", None
        return "error", f"pytest exit {code}", None
    if time.monotonic() > deadline:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        result.unlink(missing_ok=True)
        return "timeout", None, None
    return None


IMPORT = "<import>"      # the coverage context of code that ran outside every test

def write_source(path: Path, text: str) -> None:
    """Write a module's source and drop its cached bytecode.

    Python trusts a ``.pyc`` whose recorded source size and mtime (whole seconds) match the
    file: a mutant such as ``100`` -> ``101`` keeps the size, and written within the same second
    the stale bytecode would be imported instead of the new source (the mutant would not run,
    or a restored module would still carry it and make an honest test fail alone).
    """
    path.write_text(text)
    for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        cached.unlink(missing_ok=True)


FALLBACK = 97   # a warm child's exit code: the edit cannot be patched in place, run it on a fresh import


class Slot:
    """One private copy of the repository, and a warm process that has imported the code and the tests.

    The warm process (forked from this one, so it shares the libraries) imports every
    test file once (pytest ``--collect-only``) and then, per mutant, forks a child that
    patches the edited function in place (``patch_in_place``) and runs the selected
    tests; it waits for the child with the time limit and answers with the outcome. A
    mutant that runs at import is run cold instead: a child of this process (which never
    imports ``webhook``) on a copy whose file holds the mutated source.
    """

    def __init__(self, copy_root: Path, result: Path, tests: list[str]):
        self.copy_root, self.result = copy_root, result
        self.busy: tuple[Mutant | None, list[str], str, int, float] | None = None   # mutant, tests, mode, pid, deadline
        to_warm_r, to_warm_w = os.pipe()
        from_warm_r, from_warm_w = os.pipe()
        self.warm = os.fork()
        if self.warm == 0:
            code = 3
            try:
                os.close(to_warm_w)
                os.close(from_warm_r)
                _warm_loop(copy_root, result, tests, to_warm_r, from_warm_w)
                code = 0
            finally:
                os._exit(code)
        os.close(to_warm_r)
        os.close(from_warm_w)
        self.inbox = os.fdopen(to_warm_w, "w")
        self.outbox = os.fdopen(from_warm_r, "r")
        self.ready = False

    def wait_ready(self) -> None:
        """Block until the warm process has imported the code and the tests (its first line says so).

        Nothing may be written into the copy before that: the warm process imports the
        copy's modules while it collects, and a cold mutant written into the copy meanwhile
        would be imported instead of the unmutated code. The warm process would then carry
        that mutant for the whole run (every later test in it runs against it, and since
        the mutated text is re-formatted by ``ast.unparse``, no function is found at its
        line to be patched in place either).
        """
        if not self.ready:
            line = self.outbox.readline()
            if line.strip() != '"ready"':
                raise RuntimeError(f"the warm test process did not start: {line.strip() or 'it exited'}")
            self.ready = True

    def start(self, mutant: Mutant | None, selection: list[str], budget: float, cold: bool) -> None:
        """Run ``selection`` against ``mutant`` (``None``: the unmutated code, in the warm process)."""
        self.wait_ready()
        if cold and mutant is not None:
            write_source(self.copy_root / mutant.module, mutated_source(mutant))
            pid = start_tests(self.copy_root, selection, self.result)
            self.busy = (mutant, selection, "cold", pid, time.monotonic() + budget)
        else:
            job = {"mutant": asdict(mutant) if mutant else None, "tests": selection, "timeout": budget}
            self.inbox.write(json.dumps(job) + "\n")
            self.inbox.flush()
            self.busy = (mutant, selection, "warm", self.warm, 0.0)

    def poll(self) -> tuple[str, str | None, str | None] | None:
        """The outcome of the running mutant once it is known (a cold mutant's file is restored)."""
        assert self.busy is not None
        mutant, selection, mode, pid, deadline = self.busy
        if mode == "cold":
            outcome = finished(pid, deadline, self.result)
            if outcome is not None:
                write_source(self.copy_root / mutant.module, source_of(mutant.module))
            return outcome
        ready, _, _ = select.select([self.outbox], [], [], 0)
        if not ready:
            return None
        line = self.outbox.readline()
        if not line:
            raise RuntimeError("the warm test process died")
        outcome, detail, why = json.loads(line)
        return outcome, detail, why

    def close(self) -> None:
        """End the idle warm process (a later slot's warm process holds this pipe too: no EOF to wait for)."""
        self.inbox.close()
        os.kill(self.warm, signal.SIGKILL)
        os.waitpid(self.warm, 0)


def _warm_loop(copy_root: Path, result: Path, tests: list[str], inbox_fd: int, outbox_fd: int) -> None:
    """Collect every test once, then serve mutants until the inbox closes (see ``_WarmSession``)."""
    _child_setup(copy_root, show=False)
    import pytest
    pytest.main(_pytest_args(copy_root, tests, stop_first=False),
                plugins=[_WarmSession(copy_root, result, inbox_fd, outbox_fd)])


class _WarmSession:
    """pytest plugin that replaces the test loop: one collected session serves every mutant.

    Per mutant it forks; the child patches the edited function in place and runs the
    selected items through pytest's own ``runtestprotocol`` (setup, call, teardown, the
    fixtures shared between consecutive items), stopping at the first failure. No
    collection or configuration is repeated per mutant.
    """

    def __init__(self, copy_root: Path, result: Path, inbox_fd: int, outbox_fd: int):
        self.copy_root, self.result = copy_root, result
        self.inbox_fd, self.outbox_fd = inbox_fd, outbox_fd

    def pytest_runtestloop(self, session):  # noqa: ANN001 (pytest hook)
        from _pytest.runner import runtestprotocol
        items = {item.nodeid: item for item in session.items}
        functions = _function_index(self.copy_root)
        outbox = os.fdopen(self.outbox_fd, "w")
        outbox.write('"ready"\n')      # the code is imported: from now on the copy's files may be edited
        outbox.flush()
        for line in os.fdopen(self.inbox_fd):
            job = json.loads(line)
            mutant = Mutant(**{**job["mutant"], "lines": tuple(job["mutant"]["lines"])}) if job["mutant"] else None
            chosen = [items.get(t) for t in job["tests"]]
            pid = os.fork()
            if pid == 0:
                code = 3
                try:
                    if None in chosen:
                        code = 4                    # a selected test is not in this session: harness error
                    elif mutant is not None and not patch_in_place(mutant, self.copy_root, functions):
                        code = FALLBACK
                    else:
                        code, failed, why = 0, None, None
                        for i, item in enumerate(chosen):
                            following = chosen[i + 1] if i + 1 < len(chosen) else None
                            reports = runtestprotocol(item, log=False, nextitem=following)
                            bad = [r for r in reports if r.failed]
                            if bad:
                                code = 1
                                failed = item.nodeid + ("" if bad[0].when == "call" else f" ({bad[0].when})")
                                why = _why(bad[0])
                                break
                        self.result.write_text(json.dumps({"code": code, "failed": failed, "why": why}))
                finally:
                    os._exit(code)
            deadline = time.monotonic() + job["timeout"]
            while (outcome := finished(pid, deadline, self.result)) is None:
                time.sleep(0.005)
            outbox.write(json.dumps(outcome) + "\n")
            outbox.flush()
        return True


def _function_index(copy_root: Path) -> dict[tuple[str, str, int], list[types.FunctionType]]:
    """(file, qualname, first line) -> every live function object of the copy's own code."""
    prefix = str(copy_root / "webhook")
    index: dict[tuple[str, str, int], list[types.FunctionType]] = {}
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and obj.__code__.co_filename.startswith(prefix):
            code = obj.__code__
            index.setdefault((code.co_filename, code.co_qualname, code.co_firstlineno), []).append(obj)
    return index


def make_copy(tmp: Path, index: int) -> Path:
    copy_root = tmp / f"repo{index}"
    shutil.copytree(ROOT, copy_root, ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache",
                                                                     "*.egg-info", ".cache", ".mypy_cache",
                                                                     ".ruff_cache", "build"))
    return copy_root


# ---- the run ---------------------------------------------------------------------------------

@dataclass
class Tally:
    mutants: int = 0
    killed: int = 0
    timeouts: int = 0
    uncovered: int = 0
    errors: int = 0
    equivalent: int = 0
    survivors: list[str] = field(default_factory=list)


def _carried_kills(carry: list[str], modules: list[str]) -> dict[str, str]:
    """Kills of an earlier run (``--json`` FILE, run on the tree in DIR) that still hold: mutant -> killer.

    Only for modules whose text is the same in DIR as now, and only kills by a test (tests are
    added, not removed, between a "before" and an "after" run); timeouts and every survivor run again.
    """
    log, directory = carry
    same = {m for m in modules if (Path(directory) / m).exists() and (Path(directory) / m).read_text() == source_of(m)}
    rows = [json.loads(line) for line in Path(log).read_text().splitlines()]
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["mutant"]] = seen.get(row["mutant"], 0) + 1
    kept: dict[str, str] = {}
    for row in rows:
        if seen[row["mutant"]] > 1:     # two edits share a name (nested operators at one column): run both
            continue
        test = _test_of(str(row.get("detail") or ""))
        module = row["mutant"].split(":")[0]
        if row["outcome"] == "killed" and module in same and (ROOT / test.split("::")[0]).exists():
            kept[row["mutant"]] = test
    return kept


def _fingerprint(modules: list[str], tests: list[str]) -> str:
    """A digest of every file the coverage map depends on: the package, the scripts' helpers, the tests."""
    digest = hashlib.sha256(b"map format 4: the whole scope, CPU seconds per test")
    files = sorted({*modules, *tests, *(str(p.relative_to(ROOT)) for p in (ROOT / "webhook").rglob("*.py")),
                    *(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("*.py"))})
    for name in files:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return digest.hexdigest()


def selection_for(mutant: Mutant, lines: dict[str, dict[str, list[str]]], durations: dict[str, float]) -> list[str]:
    """The tests that execute the mutated code (every test that touches the module, for import-time code).

    Quickest first: pytest runs them in the order given and stops at the first failure.
    """
    by_line = lines.get(mutant.module, {})
    chosen = {t for n in mutant.lines for t in by_line.get(str(n), [])}
    if mutant.at_import or IMPORT in chosen:     # its effect is kept by the module, or cached: every test of it
        chosen = {t for tests in by_line.values() for t in tests}
    chosen.discard(IMPORT)
    return sorted(chosen, key=lambda t: (durations.get(t, 0.0), t))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="only this module (repeatable; default: the scope)")
    parser.add_argument("--sample", type=int, default=0, help="at most N mutants per module, sampled (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="test runs at once, each on its own copy")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="most seconds per mutant before it counts as killed (by a hang)")
    parser.add_argument("--tests", action="append", help="test files (default: every tests/test_*.py)")
    parser.add_argument("--list", metavar="MODULE", help="print the module's mutant names and exit")
    parser.add_argument("--survivors", action="store_true", help="print every surviving mutant")
    parser.add_argument("--map", metavar="FILE",
                        help="keep the coverage map in FILE and reuse it while the code and tests are unchanged")
    parser.add_argument("--slowest", type=float, default=0.5,
                        help="leave out tests that use more than this many CPU seconds, their subprocesses' "
                             "included (they drive servers and subprocesses); measured in CPU, not wall, "
                             "time so the cut does not move with the machine's load")
    parser.add_argument("--cold", action="store_true",
                        help="import the mutated module afresh for every mutant (slower; no patching in place)")
    parser.add_argument("--carry", nargs=2, metavar=("JSON", "DIR"),
                        help="count the kills logged in JSON (an earlier --json run over the tree in DIR) for "
                             "modules unchanged since, and run only the rest")
    parser.add_argument("--json", metavar="FILE", help="also append every mutant's outcome to FILE (JSON lines)")
    args = parser.parse_args(argv)

    if args.list:
        for mutant in mutants_of(args.list):
            print(mutant.name)
        return 0
    import pytest  # noqa: F401  (imported once here, inherited by every forked test run)
    modules = args.module or SCOPE
    tests = args.tests or sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(UNIT_TESTS))
    equivalent = load_equivalent()
    rng = random.Random(args.seed)
    tally = {m: Tally() for m in modules}
    tasks: list[Mutant] = []
    for module in modules:
        everything = mutants_of(module)
        candidates = [m for m in everything if m.name not in equivalent]
        tally[module].equivalent = len(everything) - len(candidates)
        if args.sample and len(candidates) > args.sample:
            candidates = sorted(rng.sample(candidates, args.sample), key=lambda m: m.index)
        tasks.extend(candidates)
    stale = sorted(set(equivalent) - {m.name for module in modules for m in mutants_of(module)}
                   - {n for n in equivalent if n.partition(":")[0] not in modules})
    started = time.monotonic()
    outcomes: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp_name:
        tmp = Path(tmp_name)
        if (ROOT.parent / "shared").exists():    # tests that still read ../shared find it beside the copies
            (tmp / "shared").symlink_to(ROOT.parent / "shared")
        copies = [make_copy(tmp, i) for i in range(max(1, args.jobs))]
        for copy in copies:         # the text the mutants were made from, even if the work tree moved on
            for module in modules:
                (copy / module).write_text(source_of(module))
        print(f"baseline: {len(tests)} test files, unmutated, under coverage ...", file=sys.stderr, flush=True)
        fingerprint = _fingerprint(modules, tests)
        saved = json.loads(Path(args.map).read_text()) if args.map and Path(args.map).exists() else {}
        if saved.get("fingerprint") == fingerprint:
            baseline = saved
            print(f"  reusing the coverage map in {args.map} (same code and tests)", file=sys.stderr)
        else:
            # the whole scope is measured whatever --module says, so the map serves any later subset
            baseline = coverage_map(copies[0], sorted({*SCOPE, *modules}), tests, tmp / "coverage.json")
            if args.map and baseline["code"] in (0, 1):
                Path(args.map).write_text(json.dumps({**baseline, "fingerprint": fingerprint}))
        if baseline["code"] not in (0, 1):
            print(f"the unmutated tests could not run (pytest exit {baseline['code']})", file=sys.stderr)
            return 2
        broken = set(baseline["failed"])
        if broken:      # a test that fails unmutated can never show a kill: it is left out, and said so
            print(f"{len(broken)} tests fail on the unmutated code and are left out of every selection:\n  "
                  + "\n  ".join(sorted(broken)), file=sys.stderr)
        durations = baseline["durations"]
        # CPU seconds, not wall: the cut must not move with the machine's load (see _CoverageMap)
        slow = {t for t, seconds in baseline["cpu"].items() if seconds > args.slowest}
        if slow:        # tests that start servers and subprocesses: their in-process lines are incidental
            print(f"{len(slow)} tests take more than {args.slowest} s of CPU and are left out of every "
                  "selection", file=sys.stderr)
        lines = {module: {n: [t for t in chosen if t not in broken and t not in slow] for n, chosen in by_line.items()}
                 for module, by_line in baseline["lines"].items()}
        for name in baseline["libraries"]:      # warm this process: every child inherits these imports
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 (a library that will not import twice is imported by the child)
                pass
        used_files = sorted({t.split("::")[0] for by_line in lines.values() for c in by_line.values() for t in c
                             if t != IMPORT})
        slots = [Slot(copy, tmp / f"result{i}.json", used_files) for i, copy in enumerate(copies)]
        print(f"baseline done in {time.monotonic() - started:.0f} s; {len(tasks)} mutants",
              file=sys.stderr, flush=True)

        pending = list(tasks)
        carried = _carried_kills(args.carry, modules) if args.carry else {}
        if carried:
            print(f"{len(carried)} kills carried over from {args.carry[0]} (modules unchanged since)",
                  file=sys.stderr)
        done = 0
        cold = 0
        killers: dict[str, list[Mutant]] = {}

        def record(mutant: Mutant, outcome: str, detail: str | None, selection: int) -> None:
            nonlocal done
            done += 1
            row = tally[mutant.module]
            row.mutants += 1
            if outcome in ("killed", "timeout"):
                row.killed += 1
                row.timeouts += outcome == "timeout"
                if outcome == "killed" and detail and not detail.startswith(("(", "collection error")) \
                        and not detail.endswith("(carried over)"):
                    killers.setdefault(_test_of(detail), []).append(mutant)
            elif outcome == "error":
                row.errors += 1
                row.survivors.append(f"{mutant.name}  (harness error: {detail})")
            elif outcome == "uncovered":
                row.uncovered += 1
                row.survivors.append(f"{mutant.name}  (no test executes it)")
            else:
                row.survivors.append(mutant.name)
            outcomes.append({"mutant": mutant.name, "outcome": outcome, "detail": detail, "tests": selection})
            if args.json:
                with open(args.json, "a") as log:
                    log.write(json.dumps(outcomes[-1]) + "\n")
            if done % 25 == 0:
                print(f"  {done}/{len(tasks)} mutants, {time.monotonic() - started:.0f} s",
                      file=sys.stderr, flush=True)

        while pending or any(slot.busy for slot in slots):
            for slot in slots:
                while slot.busy is None and pending:
                    mutant = pending.pop(0)
                    if mutant.name in carried:
                        record(mutant, "killed", carried[mutant.name] + " (carried over)", 0)
                        continue
                    selection = selection_for(mutant, lines, durations)
                    if not selection:
                        record(mutant, "uncovered", None, 0)
                        continue
                    budget = min(args.timeout, 10 + 5 * sum(durations.get(t, 1.0) for t in selection))
                    slot.start(mutant, selection, budget, cold=mutant.at_import or args.cold)
                    cold += mutant.at_import or args.cold
                if slot.busy is None:
                    continue
                outcome = slot.poll()
                if outcome is None:
                    continue
                mutant, selection, _, _, _ = slot.busy
                slot.busy = None
                if outcome[0] == "fallback":        # could not patch in place: run it on a fresh import
                    budget = min(args.timeout, 10 + 5 * sum(durations.get(t, 1.0) for t in selection))
                    slot.start(mutant, selection, budget, cold=True)
                    cold += 1
                    continue
                record(mutant, outcome[0], outcome[1], len(selection))
            time.sleep(0.005)
        # Every test that killed a mutant must pass alone on the unmutated code.
        print(f"checking the {len(killers)} killing tests alone on the unmutated code ...",
              file=sys.stderr, flush=True)
        withdrawn = 0
        checks = list(killers)
        while checks or any(slot.busy for slot in slots):
            for slot in slots:
                if slot.busy is None and checks:
                    test = checks.pop()
                    # In the warm process the kills were made in: if its state is no longer the
                    # unmutated code's, the kills made there are withdrawn (conservative).
                    slot.start(None, [test], min(args.timeout, 10 + 5 * durations.get(test, 1.0)), cold=False)
                if slot.busy is None:
                    continue
                outcome = slot.poll()
                if outcome is None:
                    continue
                test = slot.busy[1][0]
                slot.busy = None
                if outcome[0] == "survived":
                    continue
                victims = killers[test]
                print(f"  {test} fails alone on the unmutated code ({outcome[2] or outcome[1] or outcome[0]}): "
                      f"its {len(victims)} kills withdrawn", file=sys.stderr)
                for mutant in victims:
                    tally[mutant.module].killed -= 1
                    tally[mutant.module].errors += 1
                    tally[mutant.module].survivors.append(f"{mutant.name}  (harness error: {test} fails alone)")
                    withdrawn += 1
            time.sleep(0.005)
        for slot in slots:
            slot.close()

    elapsed = time.monotonic() - started
    print(f"({len(tasks)} mutants in {elapsed:.0f} s, {max(1, args.jobs)} at once; "
          f"{cold} on a fresh import; {len(killers)} killing tests re-checked alone, {withdrawn} kills withdrawn)")
    print(f"{'module':36} {'mutants':>7} {'killed':>7} {'timeout':>7} {'uncov':>6} {'error':>6} "
          f"{'score':>6} {'equiv':>6}")
    total = Tally()
    for module in modules:
        row = tally[module]
        for name in ("mutants", "killed", "timeouts", "uncovered", "errors", "equivalent"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
        print(_row(module, row))
    print(_row("TOTAL", total))
    if stale:
        print(f"\n{len(stale)} names in {EQUIVALENT_FILE.name} match no mutant any more (the code moved):")
        for name in stale:
            print("  " + name)
    if args.survivors:
        print("\nsurvivors:")
        for module in modules:
            for name in tally[module].survivors:
                print("  " + name)
    return 0


def _row(module: str, row: Tally) -> str:
    score = f"{100 * row.killed / row.mutants:.1f}%" if row.mutants else "-"
    return (f"{module:36} {row.mutants:7} {row.killed:7} {row.timeouts:7} {row.uncovered:6} {row.errors:6} "
            f"{score:>6} {row.equivalent:6}")


if __name__ == "__main__":
    sys.exit(main())
