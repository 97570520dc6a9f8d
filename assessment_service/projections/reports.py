"""Read model `reports`: every submitted report, with its answers and the activities it covers."""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.projections.base import dumps, metadata, student_id_of, upsert
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("report_id", sa.String(36), primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    sa.Column("submitted_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("answers", sa.Text, nullable=True),  # personal: None once erased
    sa.Column("activity_ids", sa.Text, nullable=False),
    sa.Column("attachment_id", sa.String(36), nullable=True),
    sa.Column("rules", sa.String(100), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=True),
)


def on_report_submitted(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    upsert(
        conn,
        reports,
        "report_id",
        {
            "report_id": data["report_id"],
            "student_id": student_id_of(event),
            "submitted_at": event.occurred_at.isoformat(),
            "position": event.position,
            "answers": None if data.get("answers") is None else dumps(data["answers"]),
            "activity_ids": dumps(list(data["activity_ids"])),
            "attachment_id": data.get("attachment_id"),
            "rules": data["rules"],
            "correlation_id": (event.metadata.get("correlation_id") or None),
        },
    )


def on_student_erased(conn: sa.Connection, event: RecordedEvent) -> None:
    queue(conn, reports.update().where(reports.c.student_id == student_id_of(event)).values(answers=None))


HANDLERS: dict[str, Handler] = {"ReportSubmitted": on_report_submitted, "StudentErased": on_student_erased}

PROJECTION = Projection("reports", (reports,), HANDLERS, scrubs=frozenset({"StudentErased"}))
