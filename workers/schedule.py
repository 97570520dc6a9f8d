"""The one beat schedule. Every entry expires, so ticks queued while workers were down do not pile up."""

from __future__ import annotations

from typing import Any

from shared import task_names

#: How often beat runs the catch-up: the backstop that heals any lost wake-up (Redis restarted
#: without AOF lost its whole queue in a measurement here). A lost message delays by at most this.
CATCH_UP_EVERY_SECONDS = 3.0

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "catch-up-projections": {
        "task": task_names.CATCH_UP_PROJECTIONS,
        "schedule": CATCH_UP_EVERY_SECONDS,
        # A tick not started within a few periods is worthless (a newer one is queued): drop it
        # instead of running a backlog of identical catch-ups after an outage.
        "options": {"expires": CATCH_UP_EVERY_SECONDS * 3},
    },
}
