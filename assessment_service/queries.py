"""Read-side queries over the assessment read models (what the pages and the JSON API show)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from assessment_service.projections.activities import activities
from assessment_service.projections.reports import reports
from assessment_service.projections.review_queue import review_queue
from assessment_service.projections.students import students
from shared.events import RecordedEvent

STATUS_CHANGED = "StudentStatusChanged"

_ACTIVITY_FIELDS = (
    "activity_id", "kind", "title", "organiser", "setting", "country_code",
    "start_date", "end_date", "hours", "description", "withdrawn",
)


def _activity(row: Any) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in _ACTIVITY_FIELDS}
    out["withdrawn"] = bool(out["withdrawn"])
    return out


def _activities_by_id(conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = conn.execute(sa.select(activities).where(activities.c.activity_id.in_(ids))).all()
    return {row.activity_id: _activity(row) for row in rows}


def review_queue_items(conn: sa.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Reports waiting for review, oldest first, with the student and the covered activities."""
    query = (
        sa.select(
            review_queue.c.report_id,
            review_queue.c.student_id,
            review_queue.c.submitted_at,
            review_queue.c.position,
            reports.c.answers,
            reports.c.activity_ids,
            reports.c.attachment_id,
            students.c.name,
            students.c.department,
            students.c.programme,
            students.c.status,
        )
        .select_from(
            review_queue.join(reports, reports.c.report_id == review_queue.c.report_id, isouter=True).join(
                students, students.c.student_id == review_queue.c.student_id, isouter=True
            )
        )
        .order_by(review_queue.c.position)
        .limit(limit)
    )
    rows = conn.execute(query).all()
    wanted = sorted({a for row in rows for a in json.loads(row.activity_ids or "[]")})
    found = _activities_by_id(conn, wanted)
    return [
        {
            "report_id": row.report_id,
            "student_id": row.student_id,
            "name": row.name,
            "department": row.department,
            "programme": row.programme,
            "status": row.status,
            "submitted_at": row.submitted_at,
            "position": row.position,
            "answers": json.loads(row.answers or "{}"),
            "attachment_id": row.attachment_id,
            "activities": [found[a] for a in json.loads(row.activity_ids or "[]") if a in found],
        }
        for row in rows
    ]


def student_overview(conn: sa.Connection, student_id: str) -> dict[str, Any] | None:
    """One student's registration, status, activities and reports; None if unknown."""
    row = conn.execute(sa.select(students).where(students.c.student_id == student_id)).first()
    if row is None:
        return None
    acts = conn.execute(
        sa.select(activities).where(activities.c.student_id == student_id).order_by(activities.c.position)
    ).all()
    reps = conn.execute(
        sa.select(reports).where(reports.c.student_id == student_id).order_by(reports.c.position)
    ).all()
    waiting = set(
        conn.execute(sa.select(review_queue.c.report_id).where(review_queue.c.student_id == student_id)).scalars()
    )
    return {
        "student_id": row.student_id,
        "name": row.name,
        "department": row.department,
        "programme": row.programme,
        "expected_end_term": row.expected_end_term,
        "registered_at": row.registered_at,
        "status": row.status,
        "studies_completed_on": row.studies_completed_on,
        "activities": [_activity(a) for a in acts],
        "reports": [
            {
                "report_id": r.report_id,
                "submitted_at": r.submitted_at,
                "answers": json.loads(r.answers or "{}"),
                "activity_ids": json.loads(r.activity_ids),
                "attachment_id": r.attachment_id,
                "waiting_for_review": r.report_id in waiting,
            }
            for r in reps
        ],
    }


def status_changes(conn: sa.Connection, after: int, limit: int) -> list[RecordedEvent]:
    """The status feed: each student whose status last changed past `after`, as a
    `StudentStatusChanged` event at the intake position that caused the change.

    It is a compacted feed (latest status per student, like a compacted topic): a reader that
    follows `after` sees every student's current status, never a stale one, and positions are
    those of the intake events, so a rebuild serves the very same entries.
    """
    rows = conn.execute(
        sa.select(
            students.c.student_id, students.c.status, students.c.status_position, students.c.status_changed_at
        )
        .where(students.c.status_position > after)
        .order_by(students.c.status_position)
        .limit(limit)
    ).all()
    return [
        RecordedEvent(
            position=int(row.status_position),
            event_id=f"{row.student_id}:{row.status_position}",
            stream_id=f"student-{row.student_id}",
            version=1,
            type=STATUS_CHANGED,
            schema_version=1,
            data={"student_id": row.student_id, "status": row.status},
            metadata={},
            occurred_at=datetime.fromisoformat(row.status_changed_at),
            recorded_at=datetime.fromisoformat(row.status_changed_at),
        )
        for row in rows
    ]


def status_head(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(students.c.status_position), 0))).scalar_one())


def department_of(conn: sa.Connection, student_id: str) -> str | None:
    """The student's department as projected; None if unknown (for object-level access rules)."""
    return conn.execute(sa.select(students.c.department).where(students.c.student_id == student_id)).scalar()
