"""A state built with the collector paused is frozen before the collector runs again.

While a snapshot or an initial list is turned into the state, the cyclic GC is paused: every
object allocated meanwhile is still in the youngest generation when it is enabled again, so
the first collection afterwards would walk all of them (the whole state: seconds for a
150,000-pod cluster) to find nothing. Frozen first, they are out of every collection's reach.
"""

import gc
import json

import pytest

from tests import synthetic as s
from webhook.state.gc_pause import YOUNG_THRESHOLD
from webhook.state.snapshot import load_snapshot


@pytest.fixture(autouse=True)
def _default_thresholds():
    """Each test starts from Python's default thresholds and leaves them as it found them."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


class _Collections:
    """Records, for each collection that starts while it is active, how many objects it walks."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, int]] = []        # (objects walked, generation)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            generation = info["generation"]
            self.runs.append((sum(len(gc.get_objects(g)) for g in range(generation + 1)), generation))

    def __enter__(self) -> "_Collections":
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self)


def test_a_loaded_snapshot_is_frozen_before_the_collector_is_enabled_again(tmp_path):
    items = s.fleet_cluster(40, seed=5)["items"]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(s.as_list(items)))
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with _Collections() as seen:
        state = load_snapshot(str(path))
    assert gc.isenabled() and len(state.pods) > 200
    # Every pod record is out of the collector's reach, and no collection walked the state
    # (the old order ran one over the young generation holding all of it, inside the load).
    assert gc.get_freeze_count() - frozen_before >= len(state.pods)
    reachable = {id(o) for g in range(3) for o in gc.get_objects(g)}
    assert not any(id(record) in reachable for record in state.pods.values())
    assert all(walked < len(state.pods) for walked, _generation in seen.runs)
    # Decisions on the frozen state leave their garbage to reference counting: collections are rarer.
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)


def test_the_collector_is_never_made_more_frequent_nor_turned_on():
    from webhook.state.gc_pause import freeze_survivors

    gc.set_threshold(100_000, 10, 10)
    freeze_survivors(collect=False)
    assert gc.get_threshold() == (100_000, 10, 10)
    gc.set_threshold(0, 10, 10)
    freeze_survivors(collect=False)
    assert gc.get_threshold() == (0, 10, 10)


def test_an_initial_list_is_frozen_before_the_collector_runs_again():
    from tests.watch_server import FakeApiServer
    from webhook.state.holder import StateHolder
    from webhook.state.live import LiveSource

    with FakeApiServer(s.fleet_cluster(40, seed=5)["items"]) as server:
        source = LiveSource(StateHolder(), server.api_client(), page_size=100)
        pods = source.status["Pod"]
        assert gc.isenabled()
        with _Collections() as seen:
            source._list(pods)                  # the first list of the pods, as at start-up
            junk = [[i] for i in range(5000)]
    assert pods.lists == 1
    state = source.holder.state
    assert len(state.pods) > 200 and junk and gc.isenabled()
    reachable = {id(o) for g in range(3) for o in gc.get_objects(g)}
    assert not any(id(record) in reachable for record in state.pods.values())
    # No collection walked the list's records (a full one would walk the test run's whole heap).
    young = [walked for walked, generation in seen.runs if generation < 2]
    assert young and max(young) < len(state.pods)
