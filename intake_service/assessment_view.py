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
from typing import Any

import sqlalchemy as sa
from flask import Flask

from intake_service import deadline_view, diploma_view, precedent_view, presentation_view
from shared.adapters.feed import HttpEventFeed
from shared.adapters.sql import autocommit, is_sqlite, make_engine
from shared.config import Settings
from shared.events import RecordedEvent
from shared.personal import KeyErased, KeyVault, SubjectCipher
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

OWN_EVENTS_PATH = "/api/v1/events"

#: Where each round of each report stands, from the assessment service's own events: "in_review"
#: once a review is in, then the decision. The summary written for the student is sealed with the
#: student's intake key (the intake's erasure destroys it, so it reads as None afterwards).
report_decisions = sa.Table(
    "intake_report_decisions",
    metadata,
    sa.Column("report_id", sa.String(36), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("summary", sa.Text, nullable=True),  # sealed personal data
    sa.Column("changed_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)
DECISION_STATES = {
    "ReportApproved": "approved", "RevisionRequested": "revision_requested", "ReportRejected": "rejected",
}


def decisions_projection(vault: KeyVault) -> Projection:
    """The projection of `report_decisions`, sealing summaries with `vault` (the intake's)."""

    def record(conn: sa.Connection, event: RecordedEvent, state: str, summary: str | None) -> None:
        data = event.data
        sealed = None
        if summary:
            try:
                sealed = SubjectCipher(vault.key_for(data["student_id"])).seal("summary", summary)
            except KeyErased:
                sealed = None
        key = {"report_id": data["report_id"], "round": data["round"]}
        row = {"student_id": data["student_id"], "state": state, "summary": sealed,
               "changed_at": event.occurred_at.isoformat(), "position": event.position}
        where = (report_decisions.c.report_id == key["report_id"]) & (report_decisions.c.round == key["round"])
        if conn.execute(report_decisions.update().where(where).values(**row)).rowcount == 0:
            conn.execute(report_decisions.insert().values(**key, **row))

    def on_review(conn: sa.Connection, event: RecordedEvent) -> None:
        where = (report_decisions.c.report_id == event.data["report_id"]) & (
            report_decisions.c.round == event.data["round"])
        if conn.execute(sa.select(report_decisions.c.state).where(where)).first() is None:
            record(conn, event, "in_review", None)

    def on_decision(conn: sa.Connection, event: RecordedEvent) -> None:
        record(conn, event, DECISION_STATES[event.type], event.data.get("summary"))

    handlers: dict[str, Handler] = {"ReviewSubmitted": on_review, **dict.fromkeys(DECISION_STATES, on_decision)}
    return Projection("intake_report_decisions", (report_decisions,), handlers)


@dataclass
class AssessmentView:
    engine: sa.Engine
    runner: ProjectionRunner
    reader: sa.Engine
    #: Projects the assessment service's own events (reviews, decisions) into `report_decisions`.
    decisions: ProjectionRunner | None = None
    vault: KeyVault | None = None

    def catch_up(self) -> int:
        applied = self.runner.catch_up(time_budget=10.0)
        if self.decisions is not None:
            applied += self.decisions.catch_up(time_budget=10.0)
        return applied

    def create_schema(self) -> None:
        self.runner.create_schema()
        if self.decisions is not None:
            self.decisions.create_schema()

    def decisions_for(self, student_id: str) -> dict[str, dict[str, Any]]:
        """Each report's latest round: {report_id: {"round", "state", "summary", "changed_at"}}, the
        summary opened with the student's key (None once erased); {} when unreadable now."""
        try:
            with self.reader.connect() as conn:
                rows = conn.execute(
                    sa.select(report_decisions).where(report_decisions.c.student_id == student_id)
                    .order_by(report_decisions.c.report_id, report_decisions.c.round)
                ).all()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            log.warning("report decisions view unreadable; showing none", exc_info=True)
            return {}
        key = self.vault.keys_for([student_id]).get(student_id) if self.vault is not None and rows else None
        out: dict[str, dict[str, Any]] = {}
        for row in rows:  # a later round replaces an earlier one
            summary = SubjectCipher(key).open("summary", row.summary) if key and row.summary else None
            out[row.report_id] = {"round": row.round, "state": row.state, "summary": summary,
                                  "changed_at": row.changed_at}
        return out

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
    settings: Settings, feed: EventFeed | None = None, engine: sa.Engine | None = None, *, create_schema: bool = True,
    own_events: EventFeed | None = None, vault: KeyVault | None = None,
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
    decisions = None
    if vault is not None:
        own_events = own_events or HttpEventFeed(settings.assessment_url, OWN_EVENTS_PATH, token=settings.feed_token)
        decisions = ProjectionRunner(
            engine, own_events,
            [decisions_projection(vault), presentation_view.PROJECTION, precedent_view.projection(vault),
             deadline_view.PROJECTION, diploma_view.PROJECTION],
            batch_size=1000, reader=reader,
        )
    view = AssessmentView(engine, runner, reader, decisions, vault)
    if create_schema:
        view.create_schema()
    return view


def install_view(app: Flask, settings: Settings, vault: KeyVault | None = None) -> None:
    """At start-up (create_app): build the view, its table included, for the pages to read. A
    database that cannot be reached at start-up does not stop the app (the rest of it answers
    503 until the database is back): the table is made by the workers' first use of the view."""
    view = build_view(settings, create_schema=False, vault=vault)
    try:
        view.create_schema()
    except sa.exc.OperationalError:
        log.warning("intake database unreachable at start-up; the status view's table is left to the workers")
    app.extensions[_EXTENSION] = view


def decisions_for(app: Flask, student_id: str) -> dict[str, dict[str, Any]]:
    """Where each of the student's reports stands on the assessment side (see
    AssessmentView.decisions_for); {} before anything has arrived."""
    view: AssessmentView = app.extensions[_EXTENSION]
    return view.decisions_for(student_id)


def presentation_for(app: Flask, student_id: str) -> dict[str, Any] | None:
    """The student's latest presentation booking with its occasion, as delivered; None if none."""
    view: AssessmentView = app.extensions[_EXTENSION]
    return presentation_view.presentation_of(view.reader, student_id)


def deadline_for(app: Flask, student_id: str) -> dict[str, Any] | None:
    """The student's deadline as delivered ({"deadline", "extended", "deregistered"}); None if none."""
    reader = getattr(app.extensions.get(_EXTENSION), "reader", None)  # a stand-in view may have none
    return None if reader is None else deadline_view.deadline_of(reader, student_id)


def diploma_for(app: Flask, student_id: str) -> dict[str, Any] | None:
    """The student's latest diploma as delivered ({"number", "issued_on", "revoked_at", ...}); None if none."""
    reader = getattr(app.extensions.get(_EXTENSION), "reader", None)  # a stand-in view may have none
    return None if reader is None else diploma_view.diploma_of(reader, student_id)


def precedents_for(app: Flask, department: str) -> list[dict[str, Any]]:
    """The department's precedents (rulings on kinds its catalogue lacks), newest first."""
    view: AssessmentView = app.extensions[_EXTENSION]
    return precedent_view.precedents_of(view.reader, department)


def rulings_for(app: Flask, student_id: str, activity_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The ruling on each of the student's ruled activities; {} once erased or before any arrived."""
    view: AssessmentView = app.extensions[_EXTENSION]
    if view.vault is None:
        return {}
    return precedent_view.rulings_of(view.reader, view.vault, student_id, activity_ids)


def status_for(app: Flask, student_id: str) -> str | None:
    """The student's assessment status as last delivered ("registered", "report submitted",
    "studies completed", "withdrawn"), or None if none has arrived yet. Reads the view the app
    factory installed; a request never builds it (nor runs its DDL)."""
    view: AssessmentView = app.extensions[_EXTENSION]
    return view.status_for(student_id)
