"""The intake side's view of each student's presentation, for "my CIM": the occasions published
and the student's latest booking (booked, cancelled, presented, did not show).

Delivered by the assessment service's own events (GET /api/v1/events on :8001) and projected by
the workers into the INTAKE database, on the same runner as `intake_report_decisions`
(intake_service/assessment_view.py). Nothing here is personal: an occasion's place is the
department's, a booking row holds ids and dates.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from shared.events import RecordedEvent
from shared.projection import Handler, Projection

log = logging.getLogger(__name__)

metadata = sa.MetaData()

occasions = sa.Table(
    "intake_occasions",
    metadata,
    sa.Column("occasion_id", sa.String(36), primary_key=True),
    sa.Column("department", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("starts_at", sa.String(40), nullable=False),
    sa.Column("ends_at", sa.String(40), nullable=False),
    sa.Column("place", sa.String(300), nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
)

#: The student's latest booking; "booked", "cancelled", "held" or "missed".
presentations = sa.Table(
    "intake_presentations",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("occasion_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("changed_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)

_STATUS = {
    "PresentationBooked": "booked", "BookingCancelled": "cancelled", "PresentationHeld": "held",
    "PresentationMissed": "missed",
}


def on_published(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    conn.execute(occasions.delete().where(occasions.c.occasion_id == data["occasion_id"]))
    conn.execute(occasions.insert().values(
        occasion_id=data["occasion_id"], department=data["department"], kind=data["kind"],
        starts_at=data["starts_at"], ends_at=data["ends_at"], place=data["place"], cancelled=False,
    ))


def on_cancelled(conn: sa.Connection, event: RecordedEvent) -> None:
    conn.execute(occasions.update().where(occasions.c.occasion_id == event.data["occasion_id"]).values(cancelled=True))


def on_booking(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    status = _STATUS[event.type]
    where = presentations.c.student_id == data["student_id"]
    current = conn.execute(sa.select(presentations.c.occasion_id, presentations.c.status).where(where)).first()
    if status == "cancelled" and current is not None and current.occasion_id != data["occasion_id"]:
        return  # an older booking's cancellation does not hide a newer one
    row = {"occasion_id": data["occasion_id"], "status": status, "changed_at": event.occurred_at.isoformat(),
           "position": event.position}
    if current is None:
        conn.execute(presentations.insert().values(student_id=data["student_id"], **row))
    elif not (current.status == "held" and status != "booked"):  # presented stays presented
        conn.execute(presentations.update().where(where).values(**row))


HANDLERS: dict[str, Handler] = {
    "OccasionPublished": on_published, "OccasionCancelled": on_cancelled, **dict.fromkeys(_STATUS, on_booking),
}

PROJECTION = Projection("intake_presentations", (occasions, presentations), HANDLERS)


def presentation_of(reader: sa.Engine, student_id: str) -> dict[str, Any] | None:
    """The student's latest booking with its occasion, or None (also when unreadable now)."""
    try:
        with reader.connect() as conn:
            row = conn.execute(
                sa.select(presentations.c.status, presentations.c.changed_at, occasions)
                .join(occasions, occasions.c.occasion_id == presentations.c.occasion_id)
                .where(presentations.c.student_id == student_id)
            ).first()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        log.warning("presentation view unreadable; showing none", exc_info=True)
        return None
    return None if row is None else dict(row._mapping)
