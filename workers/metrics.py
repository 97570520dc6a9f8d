"""Celery task outcomes as Prometheus counters (issue 16.4): `cim_celery_tasks_total{task,state}`
with state `succeeded`, `failed` or `retried`. `make run` gives the worker the assessment
process's multiprocess directory, so the assessment's `/api/v1/metrics` shows them
(shared/web/metrics.py). Imported by workers/celery_app.py; the counting never fails a task."""

from __future__ import annotations

import contextlib
from typing import Any

from celery import signals
from prometheus_client import Counter

TASKS = Counter("cim_celery_tasks_total", "Celery tasks run, by outcome", ["task", "state"])
CLOCK_GUARD_REFUSALS = Counter("cim_clock_guard_refusals_total",
                               "Date-driven jobs the clock guard held (a date far past the last run)", ["job"])


def count_clock_guard_refusal(job: str) -> None:
    with contextlib.suppress(Exception):
        CLOCK_GUARD_REFUSALS.labels(job).inc()


def _count(sender: Any, state: str) -> None:
    # A metrics file that cannot be written must not fail a task.
    with contextlib.suppress(Exception):
        TASKS.labels(getattr(sender, "name", None) or "unknown", state).inc()


@signals.task_success.connect
def _succeeded(sender: Any = None, **_: Any) -> None:
    _count(sender, "succeeded")


@signals.task_failure.connect
def _failed(sender: Any = None, **_: Any) -> None:
    _count(sender, "failed")


@signals.task_retry.connect
def _retried(sender: Any = None, **_: Any) -> None:
    _count(sender, "retried")
