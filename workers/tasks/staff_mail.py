"""The staff mails no single event causes: thin adapters over assessment_service.staff_mail (beat:
workers/schedule.py). Each enqueues into the outbox with keys of recipient + date bucket, so two
beats, a retried task or a worker killed mid-run enqueue each mail once; the delivery is kicked
when anything new was enqueued."""

from __future__ import annotations

from assessment_service import deadline_services, staff_mail
from assessment_service.notifications import Links, outbox_enqueue
from shared import task_names
from shared.clock_guard import DIGESTS, OVERDUE_REVIEWS
from shared.outbox import Outbox
from workers.base import CimTask, assessment_context, guard_of, guarded
from workers.celery_app import app


def _outbox() -> Outbox:
    ctx = assessment_context()
    box = Outbox.from_url(ctx.settings.identity_db_url, ctx.settings.identity_secret, clock=ctx.clock)
    box.create_schema()
    return box


def _kick(added: int) -> None:
    if added:
        from workers.tasks.projections import outbox_kick

        outbox_kick().after_commit()


@app.task(name=task_names.REMIND_OVERDUE_REVIEWS, base=CimTask)
def remind_overdue_reviews(correlation_id: str | None = None) -> int:
    """Idempotency key: `overdue-reviews:<assessor>:<milestone date>` in the outbox. Held by the
    clock guard (shared/clock_guard.py) on a date far past the last run: then it enqueues nothing."""
    ctx = assessment_context()
    day = deadline_services.today(ctx)

    def run() -> int:
        box = _outbox()
        with ctx.reader.connect() as conn:
            added = staff_mail.remind_overdue_reviews(
                conn, ctx.catalogue, day, box.engine, outbox_enqueue(box), Links.from_settings(ctx.settings))
        _kick(added)
        return added

    return guarded(OVERDUE_REVIEWS, day, run, 0, guard_of(ctx.settings))


@app.task(name=task_names.SEND_COORDINATOR_DIGESTS, base=CimTask)
def send_coordinator_digests(correlation_id: str | None = None) -> int:
    """Idempotency key: `digest:<coordinator>:<ISO week>` in the outbox. Held by the clock guard
    (shared/clock_guard.py) on a date far past the last run: then it enqueues nothing."""
    ctx = assessment_context()
    day = deadline_services.today(ctx)

    def run() -> int:
        box = _outbox()
        coordinators = staff_mail.staff_with_role(box.engine, "coordinator")
        with ctx.reader.connect() as conn:
            added = staff_mail.send_digests(
                conn, ctx.catalogue, day, coordinators, outbox_enqueue(box), Links.from_settings(ctx.settings),
                box.engine)
        _kick(added)
        return added

    return guarded(DIGESTS, day, run, 0, guard_of(ctx.settings))
