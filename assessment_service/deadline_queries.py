"""Reads of the deadline read models (assessment_service/projections/deadlines.py): the completions
that have no deadline yet, the students due on a day (by the indexed `next_due_on`), what the
sweep needs to know about those few (clock stopped, withdrawn), and the coordinator's overview."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import sqlalchemy as sa

from assessment_service.deadlines import SweepFacts
from assessment_service.projections.deadlines import deadline_basis, deadlines
from assessment_service.projections.reports import reports
from assessment_service.projections.review_states import review_states
from assessment_service.projections.students import WITHDRAWN, students


@dataclass(frozen=True)
class Completion:
    """A completion the sweep may set a deadline from (the student as registered)."""

    student_id: str
    department: str
    rules: str
    completed_on: date
    position: int


def new_completions(conn: sa.Connection, limit: int = 1000) -> list[Completion]:
    """Completions newer than the newest one a deadline was set from, oldest first: two indexed
    range reads, never every student."""
    newest = sa.select(sa.func.coalesce(sa.func.max(deadlines.c.basis_position), 0)).scalar_subquery()
    rows = conn.execute(
        sa.select(deadline_basis, students.c.department, students.c.rules)
        .join(students, students.c.student_id == deadline_basis.c.student_id)
        .where(deadline_basis.c.position > newest)
        .order_by(deadline_basis.c.position)
        .limit(limit)
    )
    return [Completion(r.student_id, r.department, r.rules, date.fromisoformat(r.completed_on), r.position)
            for r in rows]


@dataclass(frozen=True)
class DeadlineRow:
    """One row of `deadlines`, decoded."""

    student_id: str
    department: str
    rule_set: str | None
    completed_on: str | None
    term: str | None
    deadline: date | None
    extended: bool
    deregistered: bool
    approved: bool
    reminder_days: tuple[int, ...]
    reminded: tuple[int, ...]
    next_due_on: str | None


def _decode(row: Any) -> DeadlineRow:
    return DeadlineRow(
        row.student_id, row.department, row.rule_set, row.completed_on, row.term,
        date.fromisoformat(row.deadline) if row.deadline else None, bool(row.extended), bool(row.deregistered),
        bool(row.approved), tuple(orjson.loads(row.reminder_days)), tuple(orjson.loads(row.reminded)), row.next_due_on,
    )


def due_on(conn: sa.Connection, day: date, departments: Sequence[str] | None = None) -> list[DeadlineRow]:
    """The students something may be due for on `day`: one indexed range read of `next_due_on`
    (None for the deregistered and the approved), optionally of some departments only."""
    query = sa.select(deadlines).where(deadlines.c.next_due_on <= day.isoformat())
    if departments is not None:
        query = query.where(deadlines.c.department.in_(list(departments)))
    return [_decode(r) for r in conn.execute(query.order_by(deadlines.c.next_due_on, deadlines.c.student_id))]


def sweep_facts(conn: sa.Connection, student_ids: Iterable[str]) -> dict[str, SweepFacts]:
    """For each student: the clock is stopped while a report of theirs waits for or is in review,
    was resubmitted after a revision request, or is approved (only a revision request on its
    current round or a rejection lets it run); withdrawn or erased students are never swept."""
    ids = list(dict.fromkeys(student_ids))
    facts: dict[str, SweepFacts] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        stopping = (
            sa.select(reports.c.student_id)
            .outerjoin(review_states, review_states.c.report_id == reports.c.report_id)
            .where(reports.c.student_id.in_(chunk))
            .where(sa.or_(
                review_states.c.report_id.is_(None),
                review_states.c.outcome == "approved",
                reports.c.round > review_states.c.decided_round,
            ))
        )
        stopped = {r.student_id for r in conn.execute(stopping)}
        gone = {
            r.student_id for r in conn.execute(
                sa.select(students.c.student_id, students.c.status, students.c.name)
                .where(students.c.student_id.in_(chunk))
            ) if r.status == WITHDRAWN or r.name is None
        }
        known = {r.student_id for r in conn.execute(
            sa.select(students.c.student_id).where(students.c.student_id.in_(chunk)))}
        for sid in chunk:
            facts[sid] = SweepFacts(clock_stopped=sid in stopped, withdrawn=sid in gone or sid not in known)
    return facts


def deadline_of(conn: sa.Connection, student_id: str) -> DeadlineRow | None:
    row = conn.execute(sa.select(deadlines).where(deadlines.c.student_id == student_id)).first()
    return None if row is None else _decode(row)


#: The overview's sort keys and their columns.
SORTS = {"deadline": deadlines.c.deadline, "department": deadlines.c.department, "name": students.c.name}
#: The overview's filters: everyone, those within 60 days, the deregistered, the extended.
FILTERS = ("all", "close", "deregistered", "extended")


def overview(
    conn: sa.Connection, departments: Sequence[str], today: date, *, sort: str = "deadline", descending: bool = False,
    show: str = "all", within_days: int = 60, limit: int = 500,
) -> list[dict[str, Any]]:
    """The deadlines of `departments`' students for the coordinator's overview, with the student's
    name and whether the clock is stopped (computed for the rows shown)."""
    query = (
        sa.select(deadlines, students.c.name, students.c.status)
        .join(students, students.c.student_id == deadlines.c.student_id)
        .where(deadlines.c.department.in_(list(departments)))
        .where(deadlines.c.deadline.is_not(None))
    )
    if show == "close":
        horizon = date.fromordinal(today.toordinal() + within_days).isoformat()
        query = query.where(deadlines.c.deadline <= horizon, deadlines.c.deregistered.is_(False),
                            deadlines.c.approved.is_(False), deadlines.c.deadline >= today.isoformat())
    elif show == "deregistered":
        query = query.where(deadlines.c.deregistered.is_(True))
    elif show == "extended":
        query = query.where(deadlines.c.extended.is_(True))
    column = SORTS.get(sort, deadlines.c.deadline)
    query = query.order_by(column.desc() if descending else column.asc(), deadlines.c.student_id).limit(limit)
    rows = list(conn.execute(query))
    facts = sweep_facts(conn, [r.student_id for r in rows])
    out = []
    for row in rows:
        decoded = _decode(row)
        stopped = decoded.approved or facts[row.student_id].clock_stopped
        out.append({
            "row": decoded, "name": row.name, "status": row.status, "clock_stopped": stopped,
            "days_left": (decoded.deadline - today).days if decoded.deadline else None,
        })
    return out


def names_of(conn: sa.Connection, student_ids: Sequence[str]) -> dict[str, str | None]:
    """Each student's name (None once erased), for the pages that list students due."""
    if not student_ids:
        return {}
    rows = conn.execute(sa.select(students.c.student_id, students.c.name).where(students.c.student_id.in_(student_ids)))
    return {r.student_id: r.name for r in rows}
