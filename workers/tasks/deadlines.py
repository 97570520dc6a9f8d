"""Deadline tasks: thin adapters over assessment_service.deadline_services (beat: workers/schedule.py)."""

from __future__ import annotations

from assessment_service import deadline_services
from shared import task_names
from shared.clock_guard import SWEEP_DEADLINES
from workers.base import CimTask, assessment_context, guard_of, guarded
from workers.celery_app import app


@app.task(name=task_names.SWEEP_DEADLINES, base=CimTask)
def sweep_deadlines(correlation_id: str | None = None) -> dict[str, int]:
    """Record each reminder due and each deregistration of today. Idempotency key: the student's
    deadline stream and its version (each fact decided on it), so two beats, a retried task or a
    worker killed mid-run record each fact once. Held by the clock guard (shared/clock_guard.py)
    on a date far past the last run: then it records nothing and answers {}."""
    ctx = assessment_context()
    day = deadline_services.today(ctx)
    return guarded(SWEEP_DEADLINES, day,
                   lambda: deadline_services.sweep(ctx, day, correlation_id=correlation_id), {}, guard_of(ctx.settings))


@app.task(name=task_names.SET_DEADLINES, base=CimTask)
def set_deadlines(correlation_id: str | None = None) -> int:
    """Record DeadlineSet for new completions. Idempotency key: the completion (its feed position)
    decided on the student's deadline stream."""
    return deadline_services.set_deadlines(assessment_context(), correlation_id)
