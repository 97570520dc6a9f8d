"""The Celery app: Redis broker and result backend from CIM_REDIS_URL, settings for at-least-once.

Celery delivery is NOT the source of truth: the event store is, and a message only says "catch
up" (docs/architecture.md). Each setting below says why it is here.
Start with: celery -A workers.celery_app worker / celery -A workers.celery_app beat
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Connection

from shared import task_names
from workers.schedule import BEAT_SCHEDULE
from workers.settings import settings

#: The longest a task may run. The catch-up task stops itself after 30 s (CATCH_UP_BUDGET_SECONDS);
#: the hard limit kills a stuck one. Everything else is sized from this.
TASK_TIME_LIMIT = 120

app = Celery("cim", include=[
    "workers.tasks.projections", "workers.tasks.retention", "workers.tasks.deadlines", "workers.tasks.mail",
    "workers.tasks.staff_mail",
    "workers.tasks.diplomas",
])


class PromptReconnectConnection(Connection):
    """Reconnects to the broker every second, not on kombu's default back-off (2, 4, 6 … 30 s
    between attempts): after a Redis outage the worker and beat would otherwise come back many
    seconds after Redis did, waiting out that back-off (bench/RESULTS.md; the Redis-outage test in
    tests/e2e/test_pipeline_r5.py); one TCP connect a second to a local Redis costs nothing.
    Only the default schedule is replaced: a caller that names its own intervals
    (the publish retry policy) keeps them."""

    def _ensure_connection(  # type: ignore[override]
        self, errback: Any = None, max_retries: Any = None, interval_start: float = 2,
        interval_step: float = 2, interval_max: float = 30, **kwargs: Any,
    ) -> Any:
        if (interval_start, interval_step, interval_max) == (2, 2, 30):
            interval_start, interval_step, interval_max = 0.5, 0.5, 1.0
        return super()._ensure_connection(
            errback, max_retries, interval_start=interval_start, interval_step=interval_step,
            interval_max=interval_max, **kwargs,
        )


# Every connection the worker and beat open (consumer, beat's publisher) is built from this class.
app.amqp.Connection = PromptReconnectConnection

_redis_url = settings().redis_url

app.conf.update(
    broker_url=_redis_url,
    result_backend=_redis_url,
    # JSON only: a pickle message from anyone who can reach Redis would run code in the worker;
    # and task arguments are ids and positions (JSON primitives) by design.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    # Acknowledge after the task ran, not when it was received: a worker killed mid-task leaves
    # the message unacknowledged, so it is delivered again. Safe because every task is idempotent.
    task_acks_late=True,
    # Measured: killing a pool child lost one task per kill unless this is on. With it, the
    # message of a child that died is rejected and requeued instead of acknowledged.
    task_reject_on_worker_lost=True,
    # Measured: a whole worker killed and restarted got its unacknowledged tasks back only after
    # ~100 s, and with the default visibility timeout (1 h) after an hour. Redelivery waits for
    # this timeout, so keep it short, but longer than the longest task (else a task still running
    # is delivered again): 3 min > TASK_TIME_LIMIT. Beat's catch-up covers the wait meanwhile.
    broker_transport_options={"visibility_timeout": 180},
    result_backend_transport_options={"visibility_timeout": 180},
    task_time_limit=TASK_TIME_LIMIT,
    task_soft_time_limit=TASK_TIME_LIMIT - 20,
    # One message at a time per process: prefetched messages of a killed worker wait out the
    # visibility timeout, and a long catch-up must not hold wake-ups another process could run.
    worker_prefetch_multiplier=1,
    # Measured (bench/bench_diplomas.py): a process grows ~45 KiB per diploma rendered, outside
    # Python. Replace a pool process once it passes 400 MiB resident, after its current task.
    worker_max_memory_per_child=400 * 1024,
    # Nobody reads catch-up results; storing thousands of them would only fill Redis, which runs
    # with maxmemory-policy noeviction (a full Redis refuses writes rather than dropping queues).
    task_ignore_result=True,
    result_expires=3600,
    # Keep retrying the broker at start-up (Redis may come up after the worker, or restart).
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    # A Redis that refuses writes (a full disk: "MISCONF Errors writing to the AOF file") answers
    # ResponseError, a channel error to kombu. Measured under a full data disk: without this the
    # worker's main process exited ("Unrecoverable error: ResponseError") and the supervisor had
    # to start it again; with it the consumer reconnects and retries (about once a second, Celery's
    # restart limiter), the process lives on, and it resumes by itself once Redis can write again.
    broker_channel_error_retry=True,
    # Our JSON log lines, not Celery's root-logger takeover.
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
    task_default_queue=task_names.QUEUE,
    timezone="UTC",
    enable_utc=True,
    beat_schedule=BEAT_SCHEDULE,
)

# Task outcomes as Prometheus counters (issue 16.4).
import workers.metrics  # noqa: E402,F401
