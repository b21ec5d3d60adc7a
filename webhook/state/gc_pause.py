"""Pausing Python's cyclic garbage collector while a large state is being built.

Parsing a list page or a snapshot allocates hundreds of thousands of dicts, and every
collection they trigger walks the whole (growing) cache: with the GC running, building
the state of 150,000 pods takes about twice as long. The state holds no reference
cycles (it is freed by reference counting), so nothing is lost. Pauses nest and may
overlap between threads (one list per collection); the last one to end re-enables the
collector if it was enabled before the first began.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_LOCK = threading.Lock()
_PAUSES = 0
_WAS_ENABLED = False


@contextmanager
def gc_paused(enabled: bool = True) -> Iterator[None]:
    global _PAUSES, _WAS_ENABLED
    if not enabled:
        yield
        return
    with _LOCK:
        if _PAUSES == 0:
            _WAS_ENABLED = gc.isenabled()
            gc.disable()
        _PAUSES += 1
    try:
        yield
    finally:
        with _LOCK:
            _PAUSES -= 1
            if _PAUSES == 0 and _WAS_ENABLED:
                gc.enable()


# The youngest generation's threshold once a state is frozen (Python's default is 700). A
# decision that explains a deny on 5,000 nodes keeps ~20,000 rooms and outcomes alive at
# once: at 700 the collector ran ~27 times per such decision, walking them again each time
# (and moving them to older generations, whose runs walk them once more): about 15% of
# the decision. Almost all of a decision's objects are freed by reference counting when it
# ends, so at 50,000 collections become rare; what they walk is still bounded.
YOUNG_THRESHOLD = 50_000


def freeze_survivors(collect: bool = True) -> None:
    """Move everything alive now out of the collector's reach (``gc.freeze``).

    For a state that was just built and lives on: later collections, triggered by
    decisions or watch traffic, then no longer walk every pod record; and collections
    are made rarer (``YOUNG_THRESHOLD``), since what they could find is only the garbage
    of decisions.

    ``collect=False`` skips the full collection first: it walks every object alive (a
    second on a 150,000-pod state) to find cyclic garbage that a state built from parsed
    JSON hardly has (the parsed document is freed by reference counting); what little
    there is stays frozen.
    """
    if collect:
        gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:       # 0: the collector is turned off; never made more frequent
        gc.set_threshold(YOUNG_THRESHOLD, *older)
