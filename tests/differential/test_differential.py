"""CI's fixed seeds: the engine's pending count must equal the real kube-scheduler's.

The seeds are a contiguous range (not picked for being easy). A seed the engine still
gets wrong is listed in KNOWN_DISAGREEMENTS with the scheduler rule it misses, as a
non-strict xfail (a fix shows up as XPASS in the -ra summary; then remove the entry).
A seed where kube-scheduler itself places differently on another run (random tie-break
among equal scores) is skipped, saying so.
A new disagreement fails with a shrunk reproducer (YAML) in the message.
"""

from __future__ import annotations

import pytest

from tests.differential.campaign import check_seed

CI_SEEDS = range(1, 151)
SHRINK_BUDGET = 12

#: seed -> the scheduler rule the engine gets wrong (README.md "Known disagreements"). Not strict: when the
#: engine learns the rule the test XPASSes (shown by -ra); remove the entry then. Empty since seed 108 (required
#: podAffinity held by the workload's own bound pods during preemption) agrees.
KNOWN_DISAGREEMENTS: dict[int, str] = {}


def _params():
    for seed in CI_SEEDS:
        if seed in KNOWN_DISAGREEMENTS:
            yield pytest.param(seed, marks=pytest.mark.xfail(reason=KNOWN_DISAGREEMENTS[seed], strict=False))
        else:
            yield seed


@pytest.mark.parametrize("seed", list(_params()))
def test_engine_agrees_with_kube_scheduler(referee, seed):
    # A known disagreement is not shrunk again here (it costs referee runs): its reproducer is in the notes.
    result = check_seed(referee, seed, shrink_budget=0 if seed in KNOWN_DISAGREEMENTS else SHRINK_BUDGET)
    assert not result.error, f"referee error (not a disagreement, but the seed was not judged): {result.error}"
    if result.judgement.status == "unstable":
        pytest.skip(
            f"kube-scheduler itself placed differently on two runs (random tie-break): {result.judgement.detail}"
        )
    assert result.judgement.ok, f"seed {seed} disagrees: {result.cls}\n{result.reproducer}"
