"""Projection tasks: thin adapters over the tested catch-up functions."""

from __future__ import annotations

import logging
from functools import cache

import sqlalchemy as sa

from assessment_service import notifications, services
from assessment_service.bootstrap import AssessmentContext
from shared import task_names
from shared.adapters.celery_wakeup import CeleryWakeUp, clear_pending
from shared.clock import SystemClock
from shared.errors import StorageUnavailable
from shared.outbox import Outbox
from workers.base import CimTask, assessment_context, intake_view, redis_client
from workers.celery_app import app
from workers.settings import settings

log = logging.getLogger(__name__)


#: The notification runners of the context they were built for (one per worker process).
_notifiers: list[tuple[AssessmentContext, notifications.NotificationRunners]] = []


def notification_runners(ctx: AssessmentContext) -> notifications.NotificationRunners:
    """The notification policies (assessment_service/notifications.py) over `ctx`, built on
    first use: they enqueue into the outbox in the identity database of `ctx`'s settings, whose
    engine also serves the assessors' addresses."""
    if _notifiers and _notifiers[0][0] is ctx:
        return _notifiers[0][1]
    box = Outbox.from_url(ctx.settings.identity_db_url, ctx.settings.identity_secret, clock=SystemClock())
    box.create_schema()
    built = notifications.runners(ctx, notifications.outbox_enqueue(box), box.engine)
    _notifiers[:] = [(ctx, built)]
    return built


@cache
def outbox_kick() -> CeleryWakeUp:
    """Queues one outbox delivery unless one is pending (coalesced like the catch-up wake-ups)."""
    return CeleryWakeUp(
        settings().redis_url, task_name=task_names.DELIVER_OUTBOX, pending_key=task_names.OUTBOX_PENDING_KEY,
        pending_ttl_ms=task_names.OUTBOX_PENDING_TTL_MS,
    )


def notify(ctx: AssessmentContext) -> int:
    """Enqueue the mails of the events the read models have reached, and kick the delivery if
    that enqueued anything. Never raises: the policies' checkpoints say what is left."""
    try:
        enqueued = notification_runners(ctx).catch_up(time_budget=services.CATCH_UP_BUDGET_SECONDS)
    except Exception:  # the next catch-up resumes from the policies' checkpoints
        log.exception("notifications could not catch up")
        return 0
    if enqueued:
        outbox_kick().after_commit()
    return enqueued


@app.task(name=task_names.CATCH_UP_PROJECTIONS, base=CimTask)
def catch_up_projections(correlation_id: str | None = None, backstop: bool = False) -> int:
    """Apply every intake event past each assessment checkpoint. Idempotency key: the
    checkpoints. Safe to run twice, late, or at once.

    A wake-up (an intake commit) does only that, so the next wake-up is not kept waiting behind
    work that is not on the path to the review queue (one worker process on SQLite). Beat's tick
    (`backstop=True`) also catches up the assessment's own `assignments` projection (the requests
    that record decisions project them at once) and intake's status view: "my CIM" shows a new
    status within one beat period."""
    clear_pending(redis_client())  # commits from now on queue the next catch-up
    ctx = assessment_context()
    try:
        applied = services.catch_up_projections(ctx, correlation_id, own=backstop)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        # The database went away (a PostgreSQL restart, a full disk): the storage-unavailable
        # error, not the driver's; the checkpoints stay where they were and the next wake-up or
        # beat tick catches up (issue 16.5).
        log.warning("read-model database unavailable during catch-up", extra={"error": type(error).__name__})
        raise StorageUnavailable("The read-model database is unavailable; the next catch-up retries.") from error
    notify(ctx)  # the mails of what the read models now show (one outbox row per causing event)
    if backstop:
        try:
            intake_view().catch_up()
        except Exception:  # the assessment read models are committed; the next tick retries this
            log.exception("intake status view could not catch up")
    return applied
