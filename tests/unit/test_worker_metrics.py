"""Issue 16.4: Celery task outcomes are counted (cim_celery_tasks_total{task,state})."""

from __future__ import annotations

from celery import signals

import workers.celery_app  # noqa: F401  (connects the counters)
from workers.metrics import TASKS


class _Task:
    name = "cim.test.task"


def _value(state: str) -> float:
    return TASKS.labels("cim.test.task", state)._value.get()


def test_task_outcomes_are_counted() -> None:
    before = {state: _value(state) for state in ("succeeded", "failed", "retried")}
    signals.task_success.send(sender=_Task(), result=None)
    signals.task_success.send(sender=_Task(), result=None)
    signals.task_failure.send(sender=_Task(), task_id="x", exception=RuntimeError("boom"))
    signals.task_retry.send(sender=_Task(), request=None, reason="later")
    assert _value("succeeded") == before["succeeded"] + 2
    assert _value("failed") == before["failed"] + 1
    assert _value("retried") == before["retried"] + 1
