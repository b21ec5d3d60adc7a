"""CI's fixed seeds: the engine's pending count must equal the real kube-scheduler's.

The seeds are a contiguous range (not picked for being easy). A seed the engine still
gets wrong is listed in KNOWN_DISAGREEMENTS with the scheduler rule it misses; it is
an xfail(strict) so that fixing the engine turns it into a failure to be removed here.
A new disagreement fails with a shrunk reproducer (YAML) in the message.
"""

from __future__ import annotations

import pytest

from tests.differential.campaign import check_seed

CI_SEEDS = range(1, 101)
SHRINK_BUDGET = 12

#: seed -> the scheduler rule the engine gets wrong (see /work/notes/differential.md and README.md).
KNOWN_DISAGREEMENTS: dict[int, str] = {}


def _params():
    for seed in CI_SEEDS:
        if seed in KNOWN_DISAGREEMENTS:
            yield pytest.param(seed, marks=pytest.mark.xfail(reason=KNOWN_DISAGREEMENTS[seed], strict=True))
        else:
            yield seed


@pytest.mark.parametrize("seed", list(_params()))
def test_engine_agrees_with_kube_scheduler(referee, seed):
    # A known disagreement is not shrunk again here (it costs referee runs): its reproducer is in the notes.
    result = check_seed(referee, seed, shrink_budget=0 if seed in KNOWN_DISAGREEMENTS else SHRINK_BUDGET)
    assert not result.error, f"referee error (not a disagreement, but the seed was not judged): {result.error}"
    assert result.judgement.ok, f"seed {seed} disagrees: {result.cls}\n{result.reproducer}"
