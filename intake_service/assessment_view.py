"""The intake side's view of each student's assessment status, for the "my CIM" page.

Delivered by events, never by reading the assessment database: the assessment service publishes
a status feed (GET /api/v1/status-feed on :8001), a compacted stream of `StudentStatusChanged`
events (each student's latest status, positioned by the intake event that changed it). The
workers project that feed into this small read model in the INTAKE database, with its own
checkpoint, using the same runner as every projection (checkpoint in the same transaction).
When the assessment service records decisions as events, its own event feed replaces the
status feed behind the same event type, and this module stays as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask

from shared.adapters.feed import HttpEventFeed
from shared.adapters.sql import autocommit, is_sqlite, make_engine
from shared.config import Settings
from shared.events import RecordedEvent
from shared.projection import PIPELINED, EventFeed, Handler, Projection, ProjectionRunner

log = logging.getLogger(__name__)

STATUS_FEED_PATH = "/api/v1/status-feed"

_EXTENSION = "cim.intake.assessment_view"

metadata = sa.MetaData()

assessment_status = sa.Table(
    "intake_assessment_status",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)


def on_student_status_changed(conn: sa.Connection, event: RecordedEvent) -> None:
    sid, status = event.data["student_id"], event.data["status"]
    updated = conn.execute(
        assessment_status.update()
        .where(assessment_status.c.student_id == sid)
        .values(status=status, position=event.position)
    )
    if updated.rowcount == 0:
        conn.execute(assessment_status.insert().values(student_id=sid, status=status, position=event.position))


HANDLERS: dict[str, Handler] = {"StudentStatusChanged": on_student_status_changed}

PROJECTION = Projection("intake_assessment_status", (assessment_status,), HANDLERS)


@dataclass
class AssessmentView:
    engine: sa.Engine
    runner: ProjectionRunner
    reader: sa.Engine

    def catch_up(self) -> int:
        return self.runner.catch_up(time_budget=10.0)

    def status_for(self, student_id: str) -> str | None:
        """The delivered status, or None when none has arrived or the view cannot be read now
        (its table not made yet because the database was down at start-up: the page then shows
        no assessment status rather than failing; the workers make the table on first use)."""
        try:
            with self.reader.connect() as conn:
                return conn.execute(
                    sa.select(assessment_status.c.status).where(assessment_status.c.student_id == student_id)
                ).scalar_one_or_none()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            log.warning("assessment status view unreadable; showing no status", exc_info=True)
            return None


def build_view(
    settings: Settings, feed: EventFeed | None = None, engine: sa.Engine | None = None, *, create_schema: bool = True
) -> AssessmentView:
    """The view over the intake database, fed by `feed` (default: the assessment status feed),
    with its table created if missing: for start-up (the app factory, a worker's first use),
    never a request."""
    url = engine.url.render_as_string(hide_password=False) if engine is not None else settings.intake_db_url
    engine = engine or make_engine(url, immediate=True, pool_size=2)
    # Page reads must not take SQLite's write lock (the writer engine begins IMMEDIATE).
    reader = make_engine(url, pool_size=2) if is_sqlite(url) else autocommit(engine)
    # The status feed needs an API token with feed:read (CIM_FEED_TOKEN), like every feed.
    feed = feed or HttpEventFeed(settings.assessment_url, STATUS_FEED_PATH, token=settings.feed_token)
    runner = ProjectionRunner(engine, feed, [PROJECTION], batch_size=1000, reader=reader, options=PIPELINED)
    if create_schema:
        runner.create_schema()
    return AssessmentView(engine, runner, reader)


def install_view(app: Flask, settings: Settings) -> None:
    """At start-up (create_app): build the view, its table included, for the pages to read. A
    database that cannot be reached at start-up does not stop the app (the rest of it answers
    503 until the database is back): the table is made by the workers' first use of the view."""
    view = build_view(settings, create_schema=False)
    try:
        view.runner.create_schema()
    except sa.exc.OperationalError:
        log.warning("intake database unreachable at start-up; the status view's table is left to the workers")
    app.extensions[_EXTENSION] = view


def status_for(app: Flask, student_id: str) -> str | None:
    """The student's assessment status as last delivered ("registered", "report submitted",
    "studies completed", "withdrawn"), or None if none has arrived yet. Reads the view the app
    factory installed; a request never builds it (nor runs its DDL)."""
    view: AssessmentView = app.extensions[_EXTENSION]
    return view.status_for(student_id)
