"""Retention task: a thin adapter over intake_service.retention.dispose_due (daily, from beat)."""

from __future__ import annotations

import logging
from functools import cache

from intake_service.bootstrap import build_services
from intake_service.retention import RetentionContext, dispose_due
from shared import task_names
from shared.adapters.sql import compact_sqlite
from shared.clock import SystemClock
from shared.clock_guard import RETENTION, ClockGuard, local_date
from shared.identity.wiring import build_identity
from shared.retention import load_policy
from workers.base import CimTask, assessment_context, guarded
from workers.celery_app import app
from workers.settings import settings

log = logging.getLogger(__name__)


@cache
def retention_context() -> RetentionContext:
    """One per worker process, built on first use (never at import, never across a fork). The
    identity store is opened without Redis: disposal touches no sessions (their TTL ends them)."""
    conf = settings()
    clock = SystemClock()
    services = build_services(conf, clock=clock)
    identity = build_identity(clock=clock, identity_key=conf.identity_secret, db_url=conf.identity_db_url)
    identity.store.create_schema()
    return RetentionContext(services=services, identity=identity, policy=load_policy(),
                            clock_jump_days=conf.clock_jump_days)


def _guard(ctx: RetentionContext) -> ClockGuard:
    """The clock guard on the context's identity database (where the outbox and accounts are)."""
    guard = ClockGuard(ctx.identity.store.engine, max_jump_days=ctx.clock_jump_days)  # type: ignore[attr-defined]
    guard.create_schema()
    return guard


@app.task(name=task_names.DISPOSE_DUE_RECORDS, base=CimTask)
def dispose_due_records(correlation_id: str | None = None) -> dict[str, int]:
    """Dispose of every record past its retention period and record RecordsDisposed per kind.
    Idempotency key: the records themselves (what was disposed of is no longer a candidate), so a
    doubled or late run disposes of nothing more. The message carries no arguments but an id.
    Held by the clock guard (shared/clock_guard.py) on a date far past the last run: then it
    disposes of nothing and answers {}."""
    ctx = retention_context()

    def run() -> dict[str, int]:
        counts = dispose_due(ctx, correlation_id)
        log.info("retention: disposed of %s records", sum(counts.values()))
        compact_all(ctx)
        return counts

    return guarded(RETENTION, local_date(ctx.services.clock.now()), run, {}, _guard(ctx))


def compact_all(ctx: RetentionContext) -> None:
    """Checkpoint and truncate every SQLite WAL (a no-op on PostgreSQL): the assessment read
    models blank erased students when they project StudentErased, but the page images from before
    stay in the -wal file until it is overwritten. After this daily run they are gone."""
    compact_sqlite(assessment_context().engine)
    ctx.identity.store.compact()
    ctx.services.store.compact()
