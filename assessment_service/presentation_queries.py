"""Reads of the presentation read models (assessment_service/projections/presentations.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from assessment_service.presentations import StudentFacts
from assessment_service.projections.presentations import (
    diploma_eligibility,
    presentation_bookings,
    presentation_occasions,
)
from assessment_service.projections.students import students

_OCCASION = presentation_occasions.c


def _occasion(row: Any) -> dict[str, Any]:
    return {
        "occasion_id": row.occasion_id, "department": row.department, "kind": row.kind,
        "starts_at": row.starts_at, "ends_at": row.ends_at, "place": row.place, "capacity": row.capacity,
        "taken": row.taken, "free": max(row.capacity - row.taken, 0), "cancelled": bool(row.cancelled),
    }


def occasions(
    conn: sa.Connection, departments: Collection[str], *, after: str | None = None, open_only: bool = False,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The departments' occasions by start; `after` (ISO time): only those starting later;
    `open_only`: not cancelled, with a free place."""
    query = sa.select(presentation_occasions).where(_OCCASION.department.in_(sorted(departments)))
    if after is not None:
        query = query.where(_OCCASION.starts_at > after)
    if open_only:
        query = query.where(~_OCCASION.cancelled, _OCCASION.taken < _OCCASION.capacity)
    rows = conn.execute(query.order_by(_OCCASION.starts_at, _OCCASION.occasion_id).limit(limit)).all()
    return [_occasion(row) for row in rows]


def occasion(conn: sa.Connection, occasion_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(presentation_occasions).where(_OCCASION.occasion_id == occasion_id)).first()
    return None if row is None else _occasion(row)


def bookings(conn: sa.Connection, occasion_id: str) -> list[dict[str, Any]]:
    """Everyone booked at the occasion (cancelled bookings last), with the student's name."""
    b = presentation_bookings.c
    rows = conn.execute(
        sa.select(b.student_id, b.report_id, b.status, b.booked_at, b.changed_at, students.c.name)
        .join(students, students.c.student_id == b.student_id, isouter=True)
        .where(b.occasion_id == occasion_id)
        .order_by((b.status == "cancelled"), students.c.name, b.student_id)
    ).all()
    return [dict(row._mapping) for row in rows]


def student_facts(conn: sa.Connection, student_id: str) -> StudentFacts | None:
    """What a booking for the student is decided on; None for an unknown student."""
    student = conn.execute(
        sa.select(students.c.department, students.c.status).where(students.c.student_id == student_id)
    ).first()
    if student is None:
        return None
    eligibility = conn.execute(
        sa.select(diploma_eligibility).where(diploma_eligibility.c.student_id == student_id)
    ).first()
    b = presentation_bookings.c
    standing = conn.execute(
        sa.select(b.occasion_id).where(b.student_id == student_id, b.status == "booked").limit(1)
    ).scalar()
    held = conn.execute(
        sa.select(b.occasion_id).where(b.student_id == student_id, b.status == "held").limit(1)
    ).scalar()
    return StudentFacts(
        student_id, student.department,
        approved_report_id=eligibility.report_id if eligibility is not None and eligibility.approved_at else None,
        booked_occasion_id=standing, presented=held is not None, withdrawn=student.status == "withdrawn",
    )


def student_presentation(conn: sa.Connection, student_id: str) -> dict[str, Any]:
    """The student's presentation: their approval, each booking with its occasion (latest first)
    and their eligibility for the diploma."""
    eligibility = conn.execute(
        sa.select(diploma_eligibility).where(diploma_eligibility.c.student_id == student_id)
    ).first()
    b = presentation_bookings.c
    rows = conn.execute(
        sa.select(b.status, b.booked_at, b.changed_at, presentation_occasions)
        .join(presentation_occasions, _OCCASION.occasion_id == b.occasion_id)
        .where(b.student_id == student_id)
        .order_by(b.changed_at.desc(), b.occasion_id)
    ).all()
    history = [{**_occasion(row), "status": row.status, "booked_at": row.booked_at, "changed_at": row.changed_at}
               for row in rows]
    return {
        "student_id": student_id,
        "approved_at": eligibility.approved_at if eligibility is not None else None,
        "report_id": eligibility.report_id if eligibility is not None else None,
        "presentation_required": bool(eligibility.presentation_required) if eligibility is not None else None,
        "presented_at": eligibility.presented_at if eligibility is not None else None,
        "eligible": eligibility is not None and eligibility.eligible_since is not None,
        "eligible_since": eligibility.eligible_since if eligibility is not None else None,
        "booking": next((h for h in history if h["status"] == "booked"), None),
        "bookings": history,
    }


def eligible_students(conn: sa.Connection, department: str) -> list[dict[str, Any]]:
    """The department's students eligible for the diploma, by when they became so."""
    e = diploma_eligibility.c
    rows = conn.execute(
        sa.select(e.student_id, e.report_id, e.rule_set, e.approved_at, e.presented_at, e.eligible_since)
        .where(e.department == department, e.eligible_since.is_not(None))
        .order_by(e.eligible_since, e.student_id)
    ).all()
    return [dict(row._mapping) for row in rows]
