"""The seam between state sources and their readers (the webhook server, ``check``, ``report``).

A source (snapshot file or live watch) owns a ``StateHolder`` and fills its ClusterState;
readers take ``holder.lock`` for the short time of one decision. The holder also says
whether the data can be trusted: ``ready`` after the first full list, and ``stale_for``
once a watch has been broken, so verdicts can degrade from deny to warn.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from ..engine.model import ClusterState

if TYPE_CHECKING:   # live imports this module
    from .live import LiveSource


class StateHolder:
    def __init__(self, state: ClusterState | None = None, clock=time.monotonic):
        self.state = state or ClusterState()
        self.lock = threading.RLock()
        self.clock = clock
        self.ready = False
        self.broken_since: float | None = None     # when the first still-broken watch broke
        self.description = "empty"
        self.source: LiveSource | None = None       # what keeps the state current, if anything

    @contextmanager
    def locked(self) -> Iterator[ClusterState]:
        """The state under the holder's lock, to read or to change (a review reserves room in it)."""
        with self.lock:
            yield self.state

    def mark_ready(self, description: str) -> None:
        self.ready = True
        self.description = description

    def mark_broken(self) -> None:
        if self.broken_since is None:
            self.broken_since = self.clock()

    def mark_healthy(self) -> None:
        self.broken_since = None

    def stop(self) -> None:
        """Stop the source feeding this holder (nothing to stop for a snapshot)."""
        if self.source is not None:
            self.source.stop()

    def stale_for(self) -> float:
        """Seconds the data has been possibly out of date (0 when every watch is healthy)."""
        return 0.0 if self.broken_since is None else self.clock() - self.broken_since


def snapshot_holder(path: str) -> StateHolder:
    """A holder filled once from a snapshot file: ready at once, never stale."""
    from .snapshot import load_snapshot

    holder = StateHolder(load_snapshot(path))
    holder.mark_ready(f"snapshot {path}")
    return holder
