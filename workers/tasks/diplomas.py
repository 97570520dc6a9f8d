"""Diploma tasks: thin adapters over assessment_service.diploma_services (beat: workers/schedule.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.signals import worker_process_init

from assessment_service import diploma_queries, diploma_services
from shared import task_names
from workers.base import CimTask, assessment_context, redis_client
from workers.celery_app import app

log = logging.getLogger(__name__)


@worker_process_init.connect
def _warm_renderer(**_: Any) -> None:
    """Load the diploma's fonts and stylesheet once per process: a cold render takes ~1 s, a
    warm one ~130 ms (bench/RESULTS.md)."""
    try:
        from assessment_service.diploma_pdf import warm_up

        warm_up()
    except Exception:  # WeasyPrint's system libraries missing: the render task says so itself
        log.warning("could not warm up the diploma renderer", exc_info=True)


def queue_renders(ctx: Any, send: Callable[[str], None], claim: Callable[[str], bool]) -> int:
    """Send a render for each valid diploma without a stored PDF, unless one is already queued
    (`claim`: the per-diploma pending key). How many were sent."""
    with ctx.reader.connect() as conn:
        todo = diploma_queries.unrendered(conn)
    sent = 0
    for diploma_id in todo:
        if claim(diploma_id):
            send(diploma_id)
            sent += 1
    return sent


def _claim(diploma_id: str) -> bool:
    try:
        return bool(redis_client().set(task_names.RENDER_PENDING_PREFIX + diploma_id, "1", nx=True,
                                       px=task_names.RENDER_PENDING_TTL_MS))
    except Exception:  # Redis unreachable: send anyway; the render itself is idempotent
        log.warning("could not claim a render; sending it anyway", exc_info=True)
        return True


@app.task(name=task_names.ISSUE_DIPLOMAS, base=CimTask)
def issue_diplomas(correlation_id: str | None = None) -> dict[str, int]:
    """Issue a diploma to each eligible student who never had one, queue the renders due and
    delete the PDFs of erased students. Idempotency key: the department's diploma stream and its
    version (a student with a diploma is never issued another by the sweep)."""
    ctx = assessment_context()
    issued = diploma_services.issue_due(ctx, correlation_id)
    queued = queue_renders(ctx, lambda diploma_id: render_diploma.delay(diploma_id), _claim)
    purged = diploma_services.purge_erased_files(ctx)
    return {"issued": issued, "renders_queued": queued, "files_deleted": purged}


@app.task(name=task_names.RENDER_DIPLOMA, base=CimTask)
def render_diploma(diploma_id: str, correlation_id: str | None = None) -> str:
    """Render and store one diploma's PDF. Idempotency key: the diploma id (DiplomaRendered is
    recorded once; a second run answers "already" without rendering)."""
    try:
        return diploma_services.render(assessment_context(), diploma_id, correlation_id=correlation_id)
    finally:
        try:
            redis_client().delete(task_names.RENDER_PENDING_PREFIX + diploma_id)
        except Exception:  # the key expires by itself
            log.debug("could not clear the render's pending key", exc_info=True)
