"""A time budget for one decision, checked cooperatively at the engine's loops.

A decision runs while the state lock is held, and in the gevent server no other review
is served while it computes. Nothing can safely stop a thread or greenlet from outside
in the middle of that work, so the engine itself calls ``check()`` where it loops over
nodes or pods: once the deadline set by ``deadline(seconds)`` has passed, ``check()``
raises ``BudgetExceeded``, which unwinds through every ``with`` (the state lock is
released on the way out) to the adapter that set the deadline. The clock is read, never
waited on: the engine stays free of I/O. Without a deadline, ``check()`` does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("capacity_webhook_decision_deadline", default=None)
_SECONDS: ContextVar[float] = ContextVar("capacity_webhook_decision_budget", default=0.0)


class BudgetExceeded(Exception):
    """The decision ran past its deadline; the adapter allows the object with a warning."""

    def __init__(self, seconds: float):
        super().__init__(f"the capacity decision took longer than its {seconds:g} s budget")
        self.seconds = seconds


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Give the decisions made inside the block ``seconds`` in total (``None``: no limit)."""
    if seconds is None:
        yield
        return
    token = _DEADLINE.set(time.monotonic() + seconds)
    _SECONDS.set(seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check() -> None:
    """Raise ``BudgetExceeded`` if the current decision's deadline has passed."""
    limit = _DEADLINE.get()
    if limit is not None and time.monotonic() > limit:
        raise BudgetExceeded(_SECONDS.get())
