"""The reservation ledger: room promised to admitted workloads whose pods do not exist yet.

One interface, two stores:

* ``MemoryLedger`` (snapshot mode, ``serve --cluster``): the promises live in the
  process, in ``ClusterState.reservations``.
* ``ClusterLedger`` (``webhook.state.ledger_api``, live mode): the promises live in one
  ``CapacityLedger`` object in the webhook's namespace, so every replica and every
  worker sees the same promises; the cluster's own etcd is the shared store.

Either way ``ClusterState.reservations`` holds the copy the engine reads (the engine
reads promises as demand and never writes them), and ``version`` names that copy. A
decision is made against one version and committed against the same version: if
anybody committed in between, ``commit`` raises ``LedgerConflict`` and the caller
re-reads (``refresh``) and decides again. That compare-and-swap is what keeps two
deciders from spending the same free slots.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

from ..engine.model import Reservation


class LedgerConflict(Exception):
    """Somebody committed since the version the decision was made against: decide again.

    ``reread``: the local copy is older than the store's (a 409 from the API server), so
    read it first; otherwise the local copy is already the newer one.
    """

    def __init__(self, message: str, reread: bool = True):
        super().__init__(message)
        self.reread = reread


class LedgerUnavailable(Exception):
    """The ledger could not be read or written within the review's time budget."""


class Ledger(Protocol):
    """What the admission handler needs of a ledger store."""

    shared: bool          # True when other processes write it too (a deny is re-checked on a fresh copy)

    @property
    def version(self) -> object: ...

    def refresh(self, deadline: float) -> None:
        """Read the latest promises into ``state.reservations`` (raises LedgerUnavailable)."""

    def commit(self, based_on: object, workload: tuple, held: Reservation | None, deadline: float) -> None:
        """Replace ``workload``'s promise (``None``: release it), if nobody committed since ``based_on``."""

    def stop(self) -> None: ...


class MemoryLedger:
    """The in-process store: ``state.reservations`` itself, versioned by a counter.

    Decisions and commits happen under ``holder.lock`` separately, so two threads can
    still race; the counter turns that into a ``LedgerConflict`` like the shared store's.
    """

    shared = False

    def __init__(self, holder, clock: Callable[[], float] = time.monotonic):
        self.holder = holder
        self.clock = clock
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def refresh(self, deadline: float) -> None:
        return None

    def commit(self, based_on: object, workload: tuple, held: Reservation | None, deadline: float) -> None:
        with self.holder.lock:
            if based_on != self._version:
                raise LedgerConflict(f"in-process ledger moved from version {based_on} to {self._version}",
                                     reread=False)
            reservations = self.holder.state.reservations
            if held is None:
                reservations.pop(workload, None)
            else:
                reservations[workload] = held
            self._version += 1

    def stop(self) -> None:
        return None


class LocalOnly:
    """Reservations off (``--reservation-ttl 0``): nothing is held, nothing is written."""

    shared = False
    version = 0

    def refresh(self, deadline: float) -> None:
        return None

    def commit(self, based_on: object, workload: tuple, held: Reservation | None, deadline: float) -> None:
        return None

    def stop(self) -> None:
        return None
