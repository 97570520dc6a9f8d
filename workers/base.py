"""House defaults for tasks, and the per-process contexts the tasks call into."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from functools import cache
from typing import Any, TypeVar

import redis
from celery import Task
from celery.signals import setup_logging, worker_process_init, worker_ready

from assessment_service import queries
from assessment_service import services as assessment_services
from assessment_service.bootstrap import AssessmentContext, build_context
from intake_service.assessment_view import AssessmentView, build_view
from shared.adapters.feed import FunctionFeed
from shared.adapters.sql_vault import SqlKeyVault
from shared.clock_guard import ClockGuard
from shared.config import Settings
from shared.events import RecordedEvent
from shared.logs import configure_logging, correlation_id_var
from shared.runtime import settle_heap
from workers.settings import settings

log = logging.getLogger(__name__)


class CimTask(Task):
    """Idempotent tasks only: late acks and re-delivery are safe because each task is keyed
    (the catch-up by its checkpoints, side effects by the causing event id)."""

    acks_late = True
    reject_on_worker_lost = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = correlation_id_var.set(kwargs.get("correlation_id"))
        try:
            return super().__call__(*args, **kwargs)
        finally:
            correlation_id_var.reset(token)


@cache
def assessment_context() -> AssessmentContext:
    """One per worker process: engines must not cross a fork, so nothing is built at import.
    Its HttpEventFeed presents the API token from the settings (CIM_FEED_TOKEN, scope feed:read);
    tokens never travel in task messages, which carry ids only."""
    return build_context(settings())


@cache
def clock_guard(identity_db_url: str, max_jump_days: int) -> ClockGuard:
    """The clock guard (shared/clock_guard.py) in the identity database, one per worker process."""
    return ClockGuard.from_url(identity_db_url, max_jump_days=max_jump_days)


def guard_of(conf: Settings) -> ClockGuard:
    return clock_guard(conf.identity_db_url, conf.clock_jump_days)


_T = TypeVar("_T")


def guarded(job: str, today: date, run: Callable[[], _T], held: _T, guard: ClockGuard) -> _T:
    """Run a date-driven job on `today` unless the clock guard holds it (a date far past the last
    run): then do nothing, count the refusal (`cim_clock_guard_refusals_total{job}`) and answer
    `held`. The guard logs the refusal and stores the hold the staff outbox page shows."""
    if not guard.admit(job, today).admitted:
        from workers.metrics import count_clock_guard_refusal

        count_clock_guard_refusal(job)
        return held
    result = run()
    guard.record(job, today)
    return result


@cache
def intake_view() -> AssessmentView:
    """The intake side's assessment-status view (in the intake DB), fed by the assessment status
    feed. The worker reads that feed in-process from the assessment read model it has just
    written (the same query GET /api/v1/status-feed serves), so the view does not depend on the
    assessment web server being up; intake code itself only ever sees the events."""
    ctx = assessment_context()

    def read(after: int, limit: int) -> list[RecordedEvent]:
        with ctx.reader.connect() as conn:
            return queries.status_changes(conn, after, limit)

    def head() -> int:
        with ctx.reader.connect() as conn:
            return queries.status_head(conn)

    def read_own(after: int, limit: int) -> list[RecordedEvent]:
        return assessment_services.own_feed(ctx, after, limit)

    # The intake's vault (its key table in the intake database): summaries for the student are
    # sealed with the student's intake key, which the intake's erasure destroys.
    vault = SqlKeyVault(settings().intake_db_url, settings().vault_secret)
    vault.create_schema()
    return build_view(settings(), feed=FunctionFeed(read, head), vault=vault,
                      own_events=FunctionFeed(read_own, ctx.store.head))


@cache
def redis_client() -> redis.Redis:
    """For the wake-up coalescing key only (short timeouts: Redis down must not stall a catch-up)."""
    return redis.Redis.from_url(settings().redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    assessment_context.cache_clear()
    intake_view.cache_clear()
    redis_client.cache_clear()
    if not settings().feed_token:
        # The intake feed answers 401 to a reader without a token: every catch-up would fail.
        log.error("CIM_FEED_TOKEN is not set: the intake feed will refuse this worker (it needs feed:read)")
    try:  # warm up, so the first wake-up after a (re)start is not slowed by connecting
        intake_view()
    except Exception:  # a database still starting: the first task builds it instead
        log.warning("could not prepare the projection context at process start", exc_info=True)
    settle_heap()


@worker_ready.connect
def _settle_consumer(**_: Any) -> None:
    """The consumer process that hands messages to the pool: no full-heap GC pauses either."""
    settle_heap()


@setup_logging.connect
def _json_logs(**_: Any) -> None:
    configure_logging(settings().log_level)
