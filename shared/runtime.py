"""Process-level tuning shared by the servers (gunicorn workers) and the Celery processes."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def settle_heap() -> None:
    """Move everything alive now (imported modules, the app, its engines and schemas: objects that
    live as long as the process) out of the garbage collector's reach: `gc.freeze()`.

    Without it, each full (generation 2) collection walks that whole start-up heap while holding
    the GIL, and those pauses alone set the p99 of POST->visible (bench/RESULTS.md has the
    measurement). Frozen objects are still freed
    by reference counting; only cycles among them are never collected, which for start-up objects
    that live until exit costs nothing. Call once per process, after start-up, in servers only
    (not in create_app: tests build hundreds of apps in one process)."""
    gc.collect()
    gc.freeze()


_pause_lock = threading.Lock()
_pauses = 0
_enabled_before = False


@contextmanager
def collection_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the duration (process-wide; nested and concurrent
    uses count, the last one out restores what was there before).

    For bulk work that allocates many short-lived, acyclic objects — a projection page of 2,000
    events: decoded JSON, rows, parameter tuples — which reference counting frees page by page.
    Measured on a PostgreSQL rebuild in-process: 10–20 % less time, as the collector no longer
    walks each page's objects again and again while it is being applied. Only for bounded work:
    cyclic garbage made meanwhile (by any thread) waits for the collector's return."""
    global _pauses, _enabled_before
    with _pause_lock:
        if _pauses == 0:
            _enabled_before = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _enabled_before:
                gc.enable()
