"""Read models of presentations and of eligibility for the diploma, projected from the assessment
service's OWN event store (like `assignments`).

- `presentation_occasions`: each published occasion, with its places taken and whether it was
  cancelled (the list a coordinator manages and a student books from).
- `presentation_bookings`: one row per student and occasion: booked, cancelled, held or missed.
- `diploma_eligibility`: one row per student with an approved report: when it was approved,
  when they presented, and `eligible_since` once both hold, or at approval when the rule set
  the report was decided under asks for no presentation. This is the status the diploma work
  consumes.

The rows hold ids, dates and the occasion's place (not personal data): an erased student's rows
name nobody once the intake's erasure has removed the student from `students`.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from assessment_service.projections.base import metadata
from assessment_service.projections.review_queue import shipped_rule_sets
from shared.catalogue import Department
from shared.events import RecordedEvent
from shared.projection import Handler, Projection

presentation_occasions = sa.Table(
    "presentation_occasions",
    metadata,
    sa.Column("occasion_id", sa.String(36), primary_key=True),
    sa.Column("department", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("starts_at", sa.String(40), nullable=False),
    sa.Column("ends_at", sa.String(40), nullable=False),
    sa.Column("place", sa.String(300), nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("taken", sa.Integer, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Column("published_by", sa.String(36), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_presentation_occasions_department_starts", "department", "starts_at"),
)

#: A booking's status: "booked" (standing), "cancelled", "held" or "missed".
presentation_bookings = sa.Table(
    "presentation_bookings",
    metadata,
    sa.Column("occasion_id", sa.String(36), primary_key=True),
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("department", sa.String(64), nullable=False),
    sa.Column("report_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("booked_at", sa.String(40), nullable=False),
    sa.Column("changed_at", sa.String(40), nullable=False),
    sa.Column("changed_by", sa.String(36), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_presentation_bookings_student", "student_id", "status"),
)

diploma_eligibility = sa.Table(
    "diploma_eligibility",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("department", sa.String(64), nullable=False, index=True),
    sa.Column("report_id", sa.String(36), nullable=False),
    sa.Column("rule_set", sa.String(100), nullable=False),
    sa.Column("presentation_required", sa.Boolean, nullable=False),
    sa.Column("approved_at", sa.String(40), nullable=True),
    sa.Column("presented_at", sa.String(40), nullable=True),
    sa.Column("eligible_since", sa.String(40), nullable=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

#: The booking statuses that free the place again.
_FREED = ("cancelled", "missed")


def build(rule_sets: Callable[[str], Department | None] = shipped_rule_sets) -> Projection:
    """The projection, reading whether a presentation is required from `rule_sets` ('SOCSW@1')."""

    def on_published(conn: sa.Connection, event: RecordedEvent) -> None:
        data = event.data
        conn.execute(presentation_occasions.insert().values(
            occasion_id=data["occasion_id"], department=data["department"], kind=data["kind"],
            starts_at=data["starts_at"], ends_at=data["ends_at"], place=data["place"], capacity=data["capacity"],
            taken=0, cancelled=False, published_by=data["published_by"], position=event.position,
        ))

    def on_cancelled(conn: sa.Connection, event: RecordedEvent) -> None:
        conn.execute(presentation_occasions.update()
                     .where(presentation_occasions.c.occasion_id == event.data["occasion_id"])
                     .values(cancelled=True, position=event.position))

    def _taken(conn: sa.Connection, occasion_id: str, change: int) -> None:
        if change:
            conn.execute(presentation_occasions.update()
                         .where(presentation_occasions.c.occasion_id == occasion_id)
                         .values(taken=presentation_occasions.c.taken + change))

    def _status(conn: sa.Connection, event: RecordedEvent, status: str, by: str) -> None:
        data = event.data
        where = ((presentation_bookings.c.occasion_id == data["occasion_id"])
                 & (presentation_bookings.c.student_id == data["student_id"]))
        before = conn.execute(sa.select(presentation_bookings.c.status).where(where)).scalar_one_or_none()
        at = event.occurred_at.isoformat()
        if before is None:
            conn.execute(presentation_bookings.insert().values(
                occasion_id=data["occasion_id"], student_id=data["student_id"], department=data["department"],
                report_id=data.get("report_id") or "", status=status, booked_at=at, changed_at=at,
                changed_by=by, position=event.position,
            ))
        else:
            values = {"status": status, "changed_at": at, "changed_by": by, "position": event.position}
            if status == "booked":
                values.update(booked_at=at, report_id=data["report_id"])
            conn.execute(presentation_bookings.update().where(where).values(**values))
        held_before = before is not None and before not in _FREED
        held_now = status not in _FREED
        _taken(conn, data["occasion_id"], int(held_now) - int(held_before))

    def on_booked(conn: sa.Connection, event: RecordedEvent) -> None:
        _status(conn, event, "booked", event.data["booked_by"])

    def on_booking_cancelled(conn: sa.Connection, event: RecordedEvent) -> None:
        _status(conn, event, "cancelled", event.data["cancelled_by"])

    def on_missed(conn: sa.Connection, event: RecordedEvent) -> None:
        _status(conn, event, "missed", event.data["recorded_by"])

    def _eligibility(conn: sa.Connection, student_id: str) -> sa.Row | None:
        return conn.execute(
            sa.select(diploma_eligibility).where(diploma_eligibility.c.student_id == student_id)
        ).first()

    def on_held(conn: sa.Connection, event: RecordedEvent) -> None:
        _status(conn, event, "held", event.data["recorded_by"])
        at = event.occurred_at.isoformat()
        row = _eligibility(conn, event.data["student_id"])
        if row is None:  # a presentation before an approval cannot be booked; kept all the same
            return
        conn.execute(diploma_eligibility.update().where(diploma_eligibility.c.student_id == row.student_id).values(
            presented_at=row.presented_at or at,
            eligible_since=row.eligible_since or (at if row.approved_at else None), position=event.position,
        ))

    def on_approved(conn: sa.Connection, event: RecordedEvent) -> None:
        data = event.data
        at = event.occurred_at.isoformat()
        rule_set = rule_sets(data["rule_set"])
        required = rule_set.presentation_required if rule_set is not None else True
        row = _eligibility(conn, data["student_id"])
        presented_at = row.presented_at if row is not None else None
        values = {
            "department": data["department"], "report_id": data["report_id"], "rule_set": data["rule_set"],
            "presentation_required": required, "approved_at": at, "presented_at": presented_at,
            "eligible_since": at if (not required or presented_at) else None, "position": event.position,
        }
        if row is None:
            conn.execute(diploma_eligibility.insert().values(student_id=data["student_id"], **values))
        else:
            conn.execute(diploma_eligibility.update()
                         .where(diploma_eligibility.c.student_id == data["student_id"]).values(**values))

    handlers: dict[str, Handler] = {
        "OccasionPublished": on_published,
        "OccasionCancelled": on_cancelled,
        "PresentationBooked": on_booked,
        "BookingCancelled": on_booking_cancelled,
        "PresentationHeld": on_held,
        "PresentationMissed": on_missed,
        "ReportApproved": on_approved,
    }
    return Projection(
        "presentations", (presentation_occasions, presentation_bookings, diploma_eligibility), handlers
    )


PROJECTION = build()
