"""The web side of the outbox (shared/outbox.py): the app's Outbox, built on first use in the
identity database, and the kick after an enqueue.

With CIM_WAKEUP=celery (production, `make run`) the kick queues the delivery task by name (the
workers send; the web process never talks SMTP). With CIM_WAKEUP=none (unit tests, a single
process without workers) the kick delivers the due rows at once through the app's mailer
(`app.extensions["cim.mailer"]`), so a test sees the message when the request returns.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from shared import task_names
from shared.clock import SystemClock
from shared.config import Settings
from shared.outbox import Message, Outbox, smtp_sender

log = logging.getLogger(__name__)


def _settings() -> Settings:
    return current_app.config["CIM_SETTINGS"]


def outbox() -> Outbox:
    """This app's outbox (tests may set `app.extensions["cim.outbox"]`)."""
    found = current_app.extensions.get("cim.outbox")
    if found is None:
        settings = _settings()
        ident = current_app.extensions.get("cim.identity")
        clock = ident.accounts.clock if ident is not None else SystemClock()
        found = Outbox.from_url(settings.identity_db_url, settings.identity_secret, clock=clock)
        found.create_schema()
        current_app.extensions["cim.outbox"] = found
    return found


def kick() -> None:
    """Tell the workers there is mail to deliver. Never raises."""
    settings = _settings()
    if settings.wakeup == "celery":
        kicker = current_app.extensions.get("cim.outbox_kick")
        if kicker is None:
            from shared.adapters.celery_wakeup import CeleryWakeUp

            kicker = CeleryWakeUp(settings.redis_url, task_name=task_names.DELIVER_OUTBOX,
                                  pending_key=task_names.OUTBOX_PENDING_KEY,
                                  pending_ttl_ms=task_names.OUTBOX_PENDING_TTL_MS)
            current_app.extensions["cim.outbox_kick"] = kicker
        kicker.after_commit()
        return
    try:
        outbox().deliver_due(smtp_sender(current_app.extensions["cim.mailer"]))
    except Exception:  # the row stays due; the next kick or a worker sends it
        log.exception("outbox: in-process delivery failed")


def enqueue(message: Message) -> bool:
    """Enqueue `message` and kick the delivery. False if its key was there already."""
    added = outbox().enqueue(message)
    if added:
        kick()
    return added


def clock_holds() -> list[Any]:
    """The date-driven jobs the clock guard holds (shared/clock_guard.py), for the staff notice on
    /outbox and /admin/accounts. Never raises: a page must not fail because of the notice."""
    from shared.clock_guard import ClockGuard

    try:
        guard = current_app.extensions.get("cim.clock_guard")
        if guard is None:
            guard = ClockGuard(outbox().engine, max_jump_days=_settings().clock_jump_days)
            guard.create_schema()
            current_app.extensions["cim.clock_guard"] = guard
        return guard.holds()
    except Exception:
        log.exception("clock guard: could not read the holds")
        return []


def outbox_metrics() -> list[Any]:
    """Scrape-time metrics of the outbox and the clock guard (both in the identity database),
    served by the assessment's /api/v1/metrics (docs/operations.md, "Metrics"):

    - `cim_outbox_rows{status}`: rows per status (pending, sending, sent, failed, cancelled);
    - `cim_outbox_oldest_pending_seconds`: age of the oldest row not yet sent (0 when none);
    - `cim_clock_guard_held{job}`: 1 for each date-driven job the clock guard holds.

    A database that does not answer leaves them out of the scrape (and logs), never fails it."""
    from prometheus_client.core import GaugeMetricFamily

    rows = GaugeMetricFamily("cim_outbox_rows", "Outbox rows by status", labels=["status"])
    oldest = GaugeMetricFamily("cim_outbox_oldest_pending_seconds",
                               "Age of the oldest outbox row not yet sent (0 when none)")
    held = GaugeMetricFamily("cim_clock_guard_held", "1 for each date-driven job the clock guard holds",
                             labels=["job"])
    found: list[Any] = []
    try:
        counts, age = outbox().depth()
        for status, n in counts.items():
            rows.add_metric([status], n)
        oldest.add_metric([], age or 0.0)
        found += [rows, oldest]
    except Exception:
        log.exception("metrics: could not read the outbox")
    holds = clock_holds()
    for hold in holds:
        held.add_metric([hold.job], 1)
    found.append(held)
    return found
