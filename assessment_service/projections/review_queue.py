"""Read model `review_queue`: reports waiting for review, in submission order.

A newer report from the same student replaces the waiting one; a withdrawn registration leaves
the queue. (Assignment and decisions will remove entries once the assessment events exist.)
"""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.projections.base import metadata, student_id_of
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue

review_queue = sa.Table(
    "review_queue",
    metadata,
    sa.Column("report_id", sa.String(36), primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    sa.Column("submitted_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False, index=True),
)


_LEAVE = review_queue.delete().where(review_queue.c.student_id == sa.bindparam("b_sid"))
_ENTER = review_queue.insert()


def on_report_submitted(conn: sa.Connection, event: RecordedEvent) -> None:
    sid = student_id_of(event)
    queue(conn, _LEAVE, {"b_sid": sid}, key=sid)
    queue(
        conn,
        _ENTER,
        {
            "report_id": event.data["report_id"],
            "student_id": sid,
            "submitted_at": event.occurred_at.isoformat(),
            "position": event.position,
        },
        key=sid,
    )


def on_registration_withdrawn(conn: sa.Connection, event: RecordedEvent) -> None:
    sid = student_id_of(event)
    queue(conn, _LEAVE, {"b_sid": sid}, key=sid)


HANDLERS: dict[str, Handler] = {
    "ReportSubmitted": on_report_submitted,
    "RegistrationWithdrawn": on_registration_withdrawn,
}

PROJECTION = Projection("review_queue", (review_queue,), HANDLERS)
