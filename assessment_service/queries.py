"""Read-side queries over the assessment read models (what the pages and the JSON API show)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from assessment_service.domain import ReportFacts
from assessment_service.projections.activities import activities
from assessment_service.projections.assignments import assignment_conflicts, assignments
from assessment_service.projections.reports import reports
from assessment_service.projections.review_queue import review_queue, review_queue_activities
from assessment_service.projections.review_states import review_marks, review_states
from assessment_service.projections.students import WITHDRAWN, students
from assessment_service.round_queries import held_in_rounds
from shared.events import RecordedEvent

STATUS_CHANGED = "StudentStatusChanged"

# Rulings on new activity kinds (assessment_service/ruling_queries.py), re-exported for the agenda.
from assessment_service.ruling_queries import kinds_awaiting_ruling as kinds_awaiting_ruling  # noqa: E402
from assessment_service.ruling_queries import precedents as precedents  # noqa: E402
from assessment_service.ruling_queries import ruling_of as ruling_of  # noqa: E402

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


@dataclass(frozen=True)
class QueueScope:
    """Which waiting reports one member of staff may see: every report of the departments they
    coordinate, and the reports assigned to them in the departments where they are an assessor,
    minus every report of a student they declared a conflict of interest with."""

    account_id: str
    coordinated: frozenset[str]
    assessing: frozenset[str]


def _visible(scope: QueueScope) -> sa.ColumnElement[bool]:
    """The SQL condition of `scope` over review_queue/reports joined with students."""
    conflicted = sa.select(assignment_conflicts.c.student_id).where(
        assignment_conflicts.c.assessor_account_id == scope.account_id
    )
    mine = sa.select(assignments.c.report_id).where(
        assignments.c.assessor_account_id == scope.account_id,
        assignments.c.department.in_(sorted(scope.assessing)),
    )
    assigned = sa.and_(
        students.c.department.in_(sorted(scope.assessing)),
        reports.c.report_id.in_(mine),
        students.c.student_id.not_in(conflicted),
    )
    return sa.or_(students.c.department.in_(sorted(scope.coordinated)), assigned)


def review_queue_items(conn: sa.Connection, limit: int = 200, scope: QueueScope | None = None) -> list[dict[str, Any]]:
    """Reports waiting for review, oldest first, with the student, the covered activities and the
    assigned assessors. `scope` None: every report (an integration's token)."""
    query = (
        sa.select(
            review_queue.c.report_id,
            review_queue.c.student_id,
            review_queue.c.submitted_at,
            review_queue.c.position,
            review_queue.c.rules,
            review_queue.c.checklist,
            review_queue.c.checklist_met,
            review_queue.c.checklist_total,
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
    if scope is not None:
        query = query.where(_visible(scope))
    rows = conn.execute(query).all()
    wanted = sorted({a for row in rows for a in json.loads(row.activity_ids or "[]")})
    found = _activities_by_id(conn, wanted)
    assessors = assessors_of(conn, [row.report_id for row in rows])
    return [
        {
            **_report_fields(row, found),
            "position": row.position,
            "assessor_account_ids": assessors.get(row.report_id, []),
            **_checklist(row),
        }
        for row in rows
    ]


def _report_fields(row: Any, activities: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """What a report row says with its student's columns, and the covered activities found."""
    return {
        "report_id": row.report_id,
        "student_id": row.student_id,
        "name": row.name,
        "department": row.department,
        "programme": row.programme,
        "status": row.status,
        "submitted_at": row.submitted_at,
        "rules": row.rules,
        "answers": json.loads(row.answers or "{}"),
        "attachment_id": row.attachment_id,
        "activities": [activities[a] for a in json.loads(row.activity_ids or "[]") if a in activities],
    }


def _checklist(row: Any) -> dict[str, Any]:
    """The rule checklist the projection stored for a waiting report (nothing computed here):
    `checklist` as `shared.completion.Checklist.to_dict` made it (None if the report's
    rule set is unknown) and `checklist_summary`, how many of its requirements are met."""
    if row.checklist is None:
        return {"checklist": None, "checklist_summary": None}
    return {
        "checklist": json.loads(row.checklist),
        "checklist_summary": {"met": row.checklist_met, "total": row.checklist_total},
    }


def report_facts(conn: sa.Connection, report_id: str) -> ReportFacts | None:
    """Whose report it is, in which department, and whether it waits for review; None if unknown
    (or if its student is not projected yet)."""
    row = conn.execute(
        sa.select(reports.c.report_id, reports.c.student_id, students.c.department, review_queue.c.report_id.label("q"))
        .select_from(
            reports.join(students, students.c.student_id == reports.c.student_id).join(
                review_queue, review_queue.c.report_id == reports.c.report_id, isouter=True
            )
        )
        .where(reports.c.report_id == report_id)
    ).first()
    if row is None:
        return None
    return ReportFacts(row.report_id, row.student_id, row.department, row.q is not None)


def report_detail(conn: sa.Connection, report_id: str) -> dict[str, Any] | None:
    """One report with its student, the activities it covers, its assessors and declared
    conflicts (ids and reason codes); None if unknown."""
    row = conn.execute(
        sa.select(reports, students.c.name, students.c.department, students.c.programme, students.c.status)
        .select_from(reports.join(students, students.c.student_id == reports.c.student_id))
        .where(reports.c.report_id == report_id)
    ).first()
    if row is None:
        return None
    ids = json.loads(row.activity_ids or "[]")
    found = _activities_by_id(conn, ids)
    waiting = conn.execute(
        sa.select(review_queue.c.checklist, review_queue.c.checklist_met, review_queue.c.checklist_total)
        .where(review_queue.c.report_id == report_id)
    ).first()
    conflicts = conn.execute(
        sa.select(assignment_conflicts.c.assessor_account_id, assignment_conflicts.c.reason_code)
        .where(assignment_conflicts.c.report_id == report_id)
        .order_by(assignment_conflicts.c.position)
    ).all()
    return {
        **_report_fields(row, found),
        "round": row.round,
        "waiting_for_review": waiting is not None,
        **(_checklist(waiting) if waiting is not None else {"checklist": None, "checklist_summary": None}),
        "assessor_account_ids": assessors_of(conn, [report_id]).get(report_id, []),
        "conflicts": [{"assessor_account_id": c.assessor_account_id, "reason_code": c.reason_code} for c in conflicts],
    }


def assessors_of(conn: sa.Connection, report_ids: Collection[str]) -> dict[str, list[str]]:
    """The assessors assigned to each report, in assignment order."""
    if not report_ids:
        return {}
    rows = conn.execute(
        sa.select(assignments.c.report_id, assignments.c.assessor_account_id)
        .where(assignments.c.report_id.in_(list(report_ids)))
        .order_by(assignments.c.position)
    ).all()
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row.report_id, []).append(row.assessor_account_id)
    return out


def conflicted_with_student(conn: sa.Connection, student_id: str, account_id: str) -> bool:
    """True if the account declared a conflict of interest on any report of the student."""
    return conn.execute(
        sa.select(assignment_conflicts.c.report_id).where(
            assignment_conflicts.c.student_id == student_id,
            assignment_conflicts.c.assessor_account_id == account_id,
        ).limit(1)
    ).first() is not None


def assigned_to_report(conn: sa.Connection, report_id: str, account_id: str) -> bool:
    """True if the account is assigned to the report (an assignment ends at a conflict)."""
    return conn.execute(
        sa.select(assignments.c.report_id).where(
            assignments.c.report_id == report_id, assignments.c.assessor_account_id == account_id
        )
    ).first() is not None


def assigned_to_student(conn: sa.Connection, student_id: str, account_id: str, departments: Collection[str]) -> bool:
    """True if the account is assigned to some report of the student in one of `departments` and
    has declared no conflict of interest with the student."""
    if not departments:
        return False
    found = conn.execute(
        sa.select(assignments.c.report_id).where(
            assignments.c.student_id == student_id,
            assignments.c.assessor_account_id == account_id,
            assignments.c.department.in_(list(departments)),
        ).limit(1)
    ).first()
    return found is not None and not conflicted_with_student(conn, student_id, account_id)


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


def conflict_on_report(conn: sa.Connection, report_id: str, account_id: str) -> bool:
    """True if the account declared a conflict of interest on this very report."""
    return conn.execute(
        sa.select(assignment_conflicts.c.report_id).where(
            assignment_conflicts.c.report_id == report_id,
            assignment_conflicts.c.assessor_account_id == account_id,
        )
    ).first() is not None


def held_about(conn: sa.Connection, student_id: str) -> dict[str, Any]:
    """Right of access: every row the assessment read models hold about one student, every
    column as stored (JSON columns decoded), oldest first. `student` is None if the student is
    not projected (yet). Only rows keyed by this student id; nothing joined from anyone else."""

    def rows(table: sa.Table, order: sa.ColumnElement[Any]) -> list[dict[str, Any]]:
        found = conn.execute(sa.select(table).where(table.c.student_id == student_id).order_by(order)).all()
        return [dict(row._mapping) for row in found]

    student = conn.execute(sa.select(students).where(students.c.student_id == student_id)).first()
    held_reports = rows(reports, reports.c.position)
    for report in held_reports:
        report["answers"] = None if report["answers"] is None else json.loads(report["answers"])
        report["activity_ids"] = json.loads(report["activity_ids"] or "[]")
    held_activities = rows(activities, activities.c.position)
    for activity in held_activities:
        activity["withdrawn"] = bool(activity["withdrawn"])
    return {
        "student": None if student is None else dict(student._mapping),
        "activities": held_activities,
        "reports": held_reports,
        "review_queue": rows(review_queue, review_queue.c.position),
        # The review queue's own copy of the activity facts its rule checklists are computed from.
        "review_queue_activities": [
            {**row, "withdrawn": bool(row["withdrawn"])}
            for row in rows(review_queue_activities, review_queue_activities.c.position)
        ],
        "assignments": rows(assignments, assignments.c.position),
        "conflicts": rows(assignment_conflicts, assignment_conflicts.c.position),
        # Where each report stands in its review (the queue's states) and each review's recommendation.
        "review_states": rows(review_states, review_states.c.position),
        "review_marks": rows(review_marks, review_marks.c.position),
        # Each round of the student's reports, and the activities as each round covered them.
        **held_in_rounds(conn, student_id),
    }


def review_facts(conn: sa.Connection, report_id: str) -> dict[str, Any] | None:
    """What a review or decision of the report rests on: whose it is, where, its current round and
    rule set, and whether its student withdrew; None if unknown (or its student not projected)."""
    row = conn.execute(
        sa.select(reports.c.student_id, reports.c.round, reports.c.rules, students.c.department, students.c.status)
        .select_from(reports.join(students, students.c.student_id == reports.c.student_id))
        .where(reports.c.report_id == report_id)
    ).first()
    if row is None:
        return None
    return {
        "student_id": row.student_id, "round": row.round, "rules": row.rules, "department": row.department,
        "withdrawn": row.status == WITHDRAWN,
    }
