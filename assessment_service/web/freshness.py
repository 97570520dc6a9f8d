"""Staff pages say when what they show is behind (issue 16.3).

The pages read the read models, which the workers fill from the intake feed. When the projections
lag behind the feed head and have not moved for a while, or when Redis (the wake-up channel) or
the feed cannot be reached, every staff page shows a notice at the top of its main content
("Updated 2 minutes ago; the pipeline is catching up.") instead of presenting stale data as
current. Worked out at most once per STATUS_TTL seconds per process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
import sqlalchemy as sa
from flask import current_app
from flask_babel import format_timedelta, gettext

from shared.projection import checkpoints

STATUS_TTL = 5.0
#: Behind by any event and the checkpoints not moved for this long: the notice shows.
STALE_AFTER_SECONDS = 30.0
#: Behind by more than this many events: the notice shows at once.
BEHIND_EVENTS = 500


@dataclass(frozen=True)
class Freshness:
    redis_ok: bool
    feed_ok: bool
    lag: int
    #: seconds since the oldest lagging projection last moved (or since the oldest moved at all)
    age: float

    @property
    def behind(self) -> bool:
        return self.lag > 0 and (self.age >= STALE_AFTER_SECONDS or self.lag > BEHIND_EVENTS)


_lock = threading.Lock()


def measure(context: Any, redis_url: str, now: float | None = None) -> Freshness:
    """Look at Redis, the feed head and the checkpoints now."""
    now = time.time() if now is None else now
    client = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        client.ping()
        redis_ok = True
    except Exception:
        redis_ok = False
    finally:
        client.close()
    with context.reader.connect() as conn:
        rows = conn.execute(sa.select(checkpoints.c.name, checkpoints.c.position, checkpoints.c.updated_at)).all()
    own = set(context.own_runner.projections)
    feed_rows = [row for row in rows if row.name not in own and row.name in context.runner.projections]
    try:
        head = int(context.feed.head())
        feed_ok = True
    except Exception:
        head, feed_ok = 0, False
    lagging = [row for row in feed_rows if head > row.position]
    lag = max((head - row.position for row in lagging), default=0)
    moved = [row.updated_at for row in (lagging or feed_rows)]
    age = max(now - min(moved), 0.0) if moved else 0.0
    return Freshness(redis_ok=redis_ok, feed_ok=feed_ok, lag=lag, age=age)


def current_freshness() -> Freshness:
    app = current_app
    with _lock:
        cached = app.extensions.get("cim.freshness")
        if cached and time.monotonic() - cached[0] < STATUS_TTL:
            return cached[1]  # type: ignore[no-any-return]
    found = measure(app.extensions["cim.assessment"], app.config["CIM_SETTINGS"].redis_url)
    with _lock:
        app.extensions["cim.freshness"] = (time.monotonic(), found)
    return found


def pipeline_notice() -> str | None:
    """The notice for the staff pages, in the page's language, or None when all is current."""
    try:
        found = current_freshness()
    except Exception:
        return gettext("The status of the pipeline cannot be read: what you see may be out of date.")
    ago = format_timedelta(timedelta(seconds=found.age), threshold=1.0)
    if not found.redis_ok:
        return gettext(
            "Updates are paused: the message queue (Redis) cannot be reached. What you see may be out "
            "of date (last updated %(ago)s ago).", ago=ago)
    if not found.feed_ok:
        return gettext("The intake service cannot be reached: what you see may be out of date.")
    if found.behind:
        return gettext("Updated %(ago)s ago; the pipeline is catching up.", ago=ago)
    return None
