"""Projection tasks: thin adapters over the tested catch-up functions."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from assessment_service import services
from shared import task_names
from shared.adapters.celery_wakeup import clear_pending
from shared.errors import StorageUnavailable
from workers.base import CimTask, assessment_context, intake_view, redis_client
from workers.celery_app import app

log = logging.getLogger(__name__)


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
    try:
        applied = services.catch_up_projections(assessment_context(), correlation_id, own=backstop)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        # The database went away (a PostgreSQL restart, a full disk): the storage-unavailable
        # error, not the driver's; the checkpoints stay where they were and the next wake-up or
        # beat tick catches up (issue 16.5).
        log.warning("read-model database unavailable during catch-up", extra={"error": type(error).__name__})
        raise StorageUnavailable("The read-model database is unavailable; the next catch-up retries.") from error
    if backstop:
        try:
            intake_view().catch_up()
        except Exception:  # the assessment read models are committed; the next tick retries this
            log.exception("intake status view could not catch up")
    return applied
