"""Mail delivery: a thin adapter over shared.outbox (every few seconds from beat, and kicked by
whoever enqueues). Safe with any number of workers and beats: rows are claimed (PostgreSQL
`FOR UPDATE SKIP LOCKED`, SQLite's write lock) and keyed, so each is sent once; see docs/mail.md
for the one window where a crash sends a row again."""

from __future__ import annotations

import logging
import time
from functools import cache

from shared import task_names
from shared.adapters.celery_wakeup import clear_pending
from shared.clock import SystemClock
from shared.mail import Mailer
from shared.outbox import Outbox, smtp_sender
from workers.base import CimTask, redis_client
from workers.celery_app import app
from workers.settings import settings

log = logging.getLogger(__name__)

#: A run stops claiming after this long (the next tick goes on); well under the task time limit.
DELIVERY_BUDGET_SECONDS = 30.0


@cache
def outbox() -> Outbox:
    """One per worker process, built on first use (never at import, never across a fork)."""
    conf = settings()
    box = Outbox.from_url(conf.identity_db_url, conf.identity_secret, clock=SystemClock())
    box.create_schema()
    return box


@cache
def mailer() -> Mailer:
    return Mailer.from_settings(settings())


@app.task(name=task_names.DELIVER_OUTBOX, base=CimTask)
def deliver_outbox(correlation_id: str | None = None) -> dict[str, int]:
    """Send every due outbox row. Idempotency key: the row's key (one row per cause) and its
    status: a doubled or late run finds nothing due. The message carries no arguments but an id."""
    clear_pending(redis_client(), quiet=True, key=task_names.OUTBOX_PENDING_KEY)
    send = smtp_sender(mailer())
    started = time.monotonic()
    totals = {"sent": 0, "retried": 0, "failed": 0, "dropped": 0}
    while time.monotonic() - started < DELIVERY_BUDGET_SECONDS:
        done = outbox().deliver_due(send)
        for name in totals:
            totals[name] += getattr(done, name)
        if done.sent + done.retried + done.failed + done.dropped == 0:
            break
    return totals
