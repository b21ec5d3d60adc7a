#!/usr/bin/env python3
"""Mutation testing for capacity-webhook: how many small, deliberate bugs do the tests catch?

A test suite that passes proves little by itself; one that *fails* when the code is
broken proves it pins behaviour. This script breaks the code on purpose, one small AST
edit at a time (a comparison flipped, ``+`` turned into ``-``, ``and`` into ``or``, a
constant nudged, ``continue`` turned into ``break``, a return value dropped), runs the
tests that cover that module, and counts the mutants the tests kill.

It works on a private copy of the repository (the work tree is never touched), runs one
pytest process per mutant with a time limit (a mutant that hangs counts as killed: the
tests noticed), and prints a table per module. Equivalent mutants (edits that cannot
change behaviour, e.g. ``<=`` vs ``<`` where equality is impossible) are listed by name in
``scripts/mutation_equivalent.txt`` with the reason, and excluded from the score.

    python scripts/mutation.py                          # every module in MODULES, all mutants
    python scripts/mutation.py --module webhook/engine/quantity.py --sample 40 --seed 1
    python scripts/mutation.py --list webhook/engine/quantity.py   # mutant names only
    python scripts/mutation.py --survivors              # print each surviving mutant

Not part of the default test run: a full run is minutes to an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "scripts" / "mutation_equivalent.txt"

# Module -> the tests that are meant to pin it (the fast unit tiers; never the e2e tier).
ENGINE_TESTS = ["tests/test_engine.py", "tests/test_requests.py", "tests/test_scheduling.py",
                "tests/test_ipslots.py", "tests/test_storage.py", "tests/test_messages.py",
                "tests/test_pinned_behaviour.py"]
MODULES: dict[str, list[str]] = {
    "webhook/engine/quantity.py": ENGINE_TESTS,
    "webhook/engine/requests.py": ENGINE_TESTS,
    "webhook/engine/scheduling.py": ENGINE_TESTS,
    "webhook/engine/workloads.py": ENGINE_TESTS,
    "webhook/engine/placement.py": ENGINE_TESTS,
    "webhook/engine/ipslots.py": ENGINE_TESTS + ["tests/test_instance_limits.py"],
    "webhook/engine/storage.py": ENGINE_TESTS + ["tests/test_check_storage.py"],
    "webhook/engine/verdict.py": ENGINE_TESTS,
    "webhook/engine/model.py": ENGINE_TESTS + ["tests/test_state_sources.py"],
    "webhook/engine/evaluate.py": ENGINE_TESTS,
    "webhook/server/review.py": ["tests/test_server.py", "tests/test_selftest.py"],
}

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
    index: int      # position among the module's mutation points, to re-find the node

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


def _is_docstring_or_annotation(tree: ast.AST) -> set[int]:
    """ids of nodes inside annotations: mutating them changes nothing at run time."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations = [a.annotation for a in node.args.args + node.args.kwonlyargs if a.annotation] + \
                          ([node.returns] if node.returns else [])
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            skip.update(id(n) for n in ast.walk(annotation))
    return skip


def mutants_of(module: str) -> list[Mutant]:
    tree = ast.parse((ROOT / module).read_text())
    skip = _is_docstring_or_annotation(tree)
    return [Mutant(module, node.lineno, node.col_offset, kind, index)
            for index, (node, kind) in enumerate(_points(tree)) if id(node) not in skip]


class _Apply(ast.NodeTransformer):
    def __init__(self, target_index: int):
        self.target_index = target_index
        self.counter = -1
        self.target: ast.AST | None = None

    def find(self, tree: ast.AST) -> None:
        self.target = _points(tree)[self.target_index][0]

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
    tree = ast.parse((ROOT / mutant.module).read_text())
    applier = _Apply(mutant.index)
    applier.find(tree)
    return ast.unparse(ast.fix_missing_locations(applier.visit(tree)))


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


def start_tests(copy_root: Path, tests: list[str], show: bool = False) -> int:
    """Fork a child that runs pytest on ``copy_root`` and exits with its code; return the pid.

    This process has imported pytest and the third-party libraries already but never
    ``webhook``: the child imports the mutated code fresh, and each mutant saves an
    interpreter start and pytest's own import.
    """
    existing = [str(copy_root / t) for t in tests if (copy_root / t).exists()]
    args = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not e2e", "--no-header", "-o", "addopts=",
            "--rootdir", str(copy_root), *existing]
    pid = os.fork()
    if pid == 0:                                    # child
        code = 3
        try:
            os.chdir(copy_root)
            sys.path.insert(0, str(copy_root))
            if not show:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
            import pytest
            code = int(pytest.main(args))
        finally:
            os._exit(code)
    return pid


def finished(pid: int, deadline: float) -> str | None:
    """'killed', 'survived' or 'timeout' once the run is over (a hang is a kill), else None."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
    if time.monotonic() > deadline:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        return "timeout"
    return None


def run_tests(copy_root: Path, tests: list[str], timeout: float, show: bool = False) -> str:
    pid, deadline = start_tests(copy_root, tests, show), time.monotonic() + timeout
    while (outcome := finished(pid, deadline)) is None:
        time.sleep(0.02)
    return outcome


def make_copy(tmp: Path, index: int) -> Path:
    copy_root = tmp / f"repo{index}"
    shutil.copytree(ROOT, copy_root, ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache",
                                                                     "*.egg-info", ".cache"))
    return copy_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="only this module (repeatable)")
    parser.add_argument("--sample", type=int, default=0, help="at most N mutants per module, sampled (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="test runs at once, each on its own copy")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds per test run before a mutant counts as killed")
    parser.add_argument("--list", metavar="MODULE", help="print the module's mutant names and exit")
    parser.add_argument("--survivors", action="store_true", help="print every surviving mutant")
    args = parser.parse_args(argv)

    if args.list:
        for mutant in mutants_of(args.list):
            print(mutant.name)
        return 0
    import pytest  # noqa: F401  (imported once here, inherited by every forked test run)
    import yaml  # noqa: F401
    modules = args.module or list(MODULES)
    equivalent = load_equivalent()
    rng = random.Random(args.seed)
    tasks: list[Mutant] = []
    excluded: dict[str, int] = {}
    for module in modules:
        everything = mutants_of(module)
        candidates = [m for m in everything if m.name not in equivalent]
        excluded[module] = len(everything) - len(candidates)
        if args.sample and len(candidates) > args.sample:
            candidates = sorted(rng.sample(candidates, args.sample), key=lambda m: m.index)
        tasks.extend(candidates)
    killed: dict[str, int] = dict.fromkeys(modules, 0)
    total: dict[str, int] = dict.fromkeys(modules, 0)
    survivors: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp_name:
        tmp = Path(tmp_name)
        if (ROOT.parent / "shared").exists():    # tests that still read ../shared find it beside the copies
            (tmp / "shared").symlink_to(ROOT.parent / "shared")
        copies = [make_copy(tmp, i) for i in range(max(1, args.jobs))]
        every_test = sorted({t for m in modules for t in MODULES.get(m, ENGINE_TESTS)})
        if run_tests(copies[0], every_test, 900, show=True) != "survived":
            print("the unmutated tests do not pass: fix them first", file=sys.stderr)
            return 2
        running: dict[int, tuple[int, Mutant, float]] = {}     # pid -> (copy index, mutant, deadline)
        free = list(range(len(copies)))
        pending = list(tasks)
        while pending or running:
            while pending and free:
                slot, mutant = free.pop(), pending.pop(0)
                (copies[slot] / mutant.module).write_text(mutated_source(mutant))
                pid = start_tests(copies[slot], MODULES.get(mutant.module, ENGINE_TESTS))
                running[pid] = (slot, mutant, time.monotonic() + args.timeout)
            for pid, (slot, mutant, deadline) in list(running.items()):
                outcome = finished(pid, deadline)
                if outcome is None:
                    continue
                del running[pid]
                (copies[slot] / mutant.module).write_text((ROOT / mutant.module).read_text())
                free.append(slot)
                total[mutant.module] += 1
                if outcome == "survived":
                    survivors.append(mutant.name)
                else:
                    killed[mutant.module] += 1
                done = sum(total.values())
                if done % 10 == 0:
                    print(f"  {done}/{len(tasks)} mutants run", file=sys.stderr, flush=True)
            time.sleep(0.02)
    rows = [(m, total[m], killed[m], excluded[m]) for m in modules]
    print(f"({len(tasks)} mutants in {time.monotonic() - started:.0f} s, {max(1, args.jobs)} at once)")
    print(f"{'module':40} {'mutants':>8} {'killed':>7} {'score':>7} {'equiv':>6}")
    all_total = all_killed = 0
    for module, count, kills, equivalents in rows:
        all_total, all_killed = all_total + count, all_killed + kills
        score = f"{100 * kills / count:.0f}%" if count else "-"
        print(f"{module:40} {count:8} {kills:7} {score:>7} {equivalents:6}")
    if all_total:
        print(f"{'TOTAL':40} {all_total:8} {all_killed:7} {100 * all_killed / all_total:6.0f}%")
    if args.survivors:
        print("\nsurvivors:")
        for name in survivors:
            print("  " + name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
