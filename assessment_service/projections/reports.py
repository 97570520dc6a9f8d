"""Read model `reports`: every submitted report, with its answers and the activities it covers as
they stand in its current round (1 at submission, +1 per resubmission)."""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.projections.base import dumps, student_id_of, student_table, upsert
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue

reports = student_table(
    "reports",
    "report_id",
    columns=(
        sa.Column("submitted_at", sa.String(40), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("answers", sa.Text, nullable=True),  # personal: None once erased
        sa.Column("activity_ids", sa.Text, nullable=False),
        sa.Column("attachment_id", sa.String(36), nullable=True),
        sa.Column("rules", sa.String(100), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("round", sa.Integer, nullable=False, server_default="1"),
        sa.Column("round_submitted_at", sa.String(40), nullable=True),
    ),
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
            "round": 1,
            "round_submitted_at": event.occurred_at.isoformat(),
        },
    )


def on_report_resubmitted(conn: sa.Connection, event: RecordedEvent) -> None:
    """A new round of the same report: its answers and activities replace the earlier round's."""
    data = event.data
    queue(
        conn,
        reports.update()
        .where(reports.c.report_id == data["report_id"], reports.c.student_id == student_id_of(event))
        .values(
            round=data["round"],
            round_submitted_at=event.occurred_at.isoformat(),
            position=event.position,
            answers=None if data.get("answers") is None else dumps(data["answers"]),
            activity_ids=dumps(list(data["activity_ids"])),
            attachment_id=data.get("attachment_id"),
            rules=data["rules"],
        ),
    )


def on_student_erased(conn: sa.Connection, event: RecordedEvent) -> None:
    queue(conn, reports.update().where(reports.c.student_id == student_id_of(event)).values(answers=None))


HANDLERS: dict[str, Handler] = {
    "ReportSubmitted": on_report_submitted,
    "ReportResubmitted": on_report_resubmitted,
    "StudentErased": on_student_erased,
}

PROJECTION = Projection("reports", (reports,), HANDLERS, scrubs=frozenset({"StudentErased"}))
