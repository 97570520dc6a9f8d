"""Process-level tuning shared by the servers (gunicorn workers) and the Celery processes."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Move everything alive now (imported modules, the app, its engines and schemas: objects that
    live as long as the process) out of the garbage collector's reach: `gc.freeze()`.

    Without it, each full (generation 2) collection walks that whole start-up heap while holding
    the GIL: measured 50–60 ms pauses in the intake process every 10–25 s at 100 requests/s, which
    alone set the p99 of POST->visible (bench/PIPELINE_RESULTS.md). Frozen objects are still freed
    by reference counting; only cycles among them are never collected, which for start-up objects
    that live until exit costs nothing. Call once per process, after start-up, in servers only
    (not in create_app: tests build hundreds of apps in one process)."""
    gc.collect()
    gc.freeze()
