"""Run many seeds against one control plane and summarise agreement (used by ``__main__`` and the tests)."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from tests.differential.generator import Scenario, scenario
from tests.differential.judge import Judgement, disagreement_class, judge, reproducer, shrink
from tests.differential.referee import Referee, RefereeError

START_OPTIONS = {"scheduler": True}
#: Runs of a disagreeing scenario before it counts as one (a second outcome makes it "unstable").
REPLAYS = 3


def start_control_plane():
    """etcd + kube-apiserver + kube-scheduler on loopback, configured for the differential tier."""
    from tests.differential.referee import APISERVER_ARGS, SCHEDULER_ARGS
    from tests.e2e.controlplane import start_local

    return start_local(apiserver_args=APISERVER_ARGS, scheduler_args=SCHEDULER_ARGS, **START_OPTIONS)


@dataclass
class SeedResult:
    seed: int
    judgement: Judgement | None
    error: str = ""
    reproducer: str = ""
    cls: str = ""
    seconds: float = 0.0


def check_seed(referee: Referee, seed: int, shrink_budget: int = 0) -> SeedResult:
    """Play ``seed``; on a disagreement shrink it (``shrink_budget`` referee runs) into a reproducer."""
    start = time.monotonic()
    sc = scenario(seed)
    try:
        run = referee.run(sc)
    except RefereeError as exc:
        return SeedResult(seed, None, error=str(exc), seconds=time.monotonic() - start)
    j = judge(run)
    result = SeedResult(seed, j)
    if not j.ok:
        # The scheduler breaks score ties at random: play it again (up to REPLAYS times) before calling it a
        # disagreement. Seed 2 binds 8 of 8 pods in about one run of four, 7 of 8 otherwise.
        for _ in range(REPLAYS):
            try:
                again = referee.run(sc)
            except RefereeError as exc:
                return SeedResult(seed, None, error=str(exc), seconds=time.monotonic() - start)
            if (again.outcome.unscheduled, len(again.outcome.rejected)) != (run.outcome.unscheduled,
                                                                             len(run.outcome.rejected)):
                result.judgement = Judgement("unstable", "scheduler-nondeterministic",
                                             f"{j.detail}; another run: unscheduled={again.outcome.unscheduled} "
                                             f"rejected={len(again.outcome.rejected)}")
                result.seconds = time.monotonic() - start
                return result
    if not j.ok:
        small, small_j, small_run = sc, j, run
        header = "not shrunk"
        if shrink_budget:
            def still_fails(candidate: Scenario) -> bool:
                nonlocal small_j, small_run
                try:
                    candidate_run = referee.run(candidate)
                except RefereeError:
                    return False
                verdict = judge(candidate_run)
                if verdict.status == "disagree" and verdict.direction == j.direction:
                    small_j, small_run = verdict, candidate_run
                    return True
                return False
            small, runs = shrink(sc, still_fails, shrink_budget)
            header = f"shrunk in {runs} referee runs from {len(sc.objects)} objects to {len(small.objects)}"
        if small_run.outcome.placements:
            header += f"\nscheduler placed: {dict(sorted(small_run.outcome.placements.items()))}"
        reasons = "; ".join(sorted(set(small_run.outcome.unscheduled_reasons)))[:600]
        if reasons:
            header += f"\nscheduler said: {reasons}"
        if small_run.engine.message:
            header += "\nengine said: " + small_run.engine.message.splitlines()[0]
        result.reproducer = reproducer(small, small_j, header)
        result.cls = disagreement_class(small_j, small)
    result.seconds = time.monotonic() - start
    return result


@dataclass
class Summary:
    results: list[SeedResult] = field(default_factory=list)

    def add(self, r: SeedResult) -> None:
        self.results.append(r)

    def counts(self) -> collections.Counter:
        return collections.Counter(r.judgement.status if r.judgement else "error" for r in self.results)

    def text(self) -> str:
        c = self.counts()
        comparable = c["agree"] + c["disagree"] + c["deliberate"]
        agreeing = c["agree"] + c["deliberate"]
        ratio = agreeing / comparable if comparable else 0.0
        lines = [f"{len(self.results)} scenarios: {c['agree']} agree, {c['deliberate']} deliberate differences, "
                 f"{c['disagree']} disagree, {c['unstable']} where the scheduler itself placed differently on a "
                 f"replay (not counted), {c['error']} referee errors",
                 f"agreement: {agreeing}/{comparable} = {ratio:.2%} "
                 f"(strict, deliberate differences counted as disagreements: "
                 f"{c['agree'] / comparable if comparable else 0:.2%})"]
        classes = collections.Counter(r.judgement.direction for r in self.results
                                      if r.judgement and r.judgement.status == "disagree")
        if classes:
            lines.append("disagreements by direction: " + ", ".join(f"{k}: {v}" for k, v in classes.most_common()))
            by_cls = collections.defaultdict(list)
            for r in self.results:
                if r.judgement and r.judgement.status == "disagree":
                    by_cls[r.cls].append(r.seed)
            for cls, seeds in sorted(by_cls.items(), key=lambda kv: -len(kv[1])):
                lines.append(f"  {len(seeds):4d}  {cls}  seeds {seeds[:12]}")
        errors = [r for r in self.results if r.error]
        for r in errors[:5]:
            lines.append(f"  referee error on seed {r.seed}: {r.error[:300]}")
        return "\n".join(lines)


def run_campaign(referee: Referee, seeds: Iterable[int], shrink_budget: int,
                 report: Callable[[SeedResult], None] | None = None) -> Summary:
    summary = Summary()
    for seed in seeds:
        r = check_seed(referee, seed, shrink_budget)
        summary.add(r)
        if report:
            report(r)
    return summary
