"""Read models of deadlines.

- `deadline_basis` (from the INTAKE feed, on the first runner): each student whose studies are
  recorded as completed, the completion date and the feed position of that StudiesCompleted
  (indexed): what the sweep sets deadlines from, reading only completions newer than the last
  deadline it set.
- `deadlines` (from the assessment service's OWN store, like `assignments`): one row per student
  with a deadline: the date (indexed), whether a coordinator extended it, whether the student is
  deregistered, whether a report of theirs is approved (the clock stopped for good), the reminder
  offsets recorded for the current deadline, and `next_due_on` (indexed): the first day the
  sweep may find something due (assessment_service/deadlines.py `next_due_on`). A report under
  review stops the clock too; that is read from `reports` and `review_states` for the few
  students due (deadline_queries.clock_stopped), not copied here.

No personal data: ids, dates, codes.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import sqlalchemy as sa

from assessment_service.deadlines import next_due_on
from assessment_service.projections.base import metadata, student_id_of
from shared.events import RecordedEvent
from shared.projection import Handler, Projection

deadline_basis = sa.Table(
    "deadline_basis",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("completed_on", sa.String(10), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False, index=True),
)

deadlines = sa.Table(
    "deadlines",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("department", sa.String(64), nullable=False, index=True),
    sa.Column("rule_set", sa.String(100), nullable=True),
    sa.Column("completed_on", sa.String(10), nullable=True),
    sa.Column("term", sa.String(10), nullable=True),
    sa.Column("deadline", sa.String(10), nullable=True, index=True),
    sa.Column("extended", sa.Boolean, nullable=False),
    sa.Column("deregistered", sa.Boolean, nullable=False),
    sa.Column("approved", sa.Boolean, nullable=False),
    sa.Column("reminder_days", sa.String(100), nullable=False),
    sa.Column("reminded", sa.String(100), nullable=False),
    sa.Column("next_due_on", sa.String(10), nullable=True, index=True),
    sa.Column("basis_position", sa.BigInteger, nullable=False, index=True),
    sa.Column("changed_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)


# -- intake feed ----------------------------------------------------------------------------------


def on_studies_completed(conn: sa.Connection, event: RecordedEvent) -> None:
    sid = student_id_of(event)
    row = {"completed_on": str(event.data["completed_on"]), "position": event.position}
    if conn.execute(deadline_basis.update().where(deadline_basis.c.student_id == sid).values(**row)).rowcount == 0:
        conn.execute(deadline_basis.insert().values(student_id=sid, **row))


BASIS = Projection("deadline_basis", (deadline_basis,), {"StudiesCompleted": on_studies_completed})


# -- own store -----------------------------------------------------------------------------------


def _row(conn: sa.Connection, student_id: str) -> dict[str, Any] | None:
    found = conn.execute(sa.select(deadlines).where(deadlines.c.student_id == student_id)).first()
    return None if found is None else dict(found._mapping)


def _write(conn: sa.Connection, event: RecordedEvent, row: dict[str, Any] | None, **values: Any) -> None:
    """Store the row with `values`, `next_due_on` recomputed by the one rule."""
    data = event.data
    merged: dict[str, Any] = row or {
        "student_id": data["student_id"], "department": data["department"], "rule_set": None,
        "completed_on": None, "term": None, "deadline": None, "extended": False, "deregistered": False,
        "approved": False, "reminder_days": "[]", "reminded": "[]", "basis_position": 0,
    }
    merged = {**merged, **values, "changed_at": event.occurred_at.isoformat(), "position": event.position}
    deadline = date.fromisoformat(merged["deadline"]) if merged["deadline"] else None
    due = None if merged["approved"] else next_due_on(
        deadline, orjson.loads(merged["reminder_days"]), orjson.loads(merged["reminded"]),
        deregistered=merged["deregistered"],
    )
    merged["next_due_on"] = due.isoformat() if due else None
    if row is None:
        conn.execute(deadlines.insert().values(**merged))
    else:
        conn.execute(deadlines.update().where(deadlines.c.student_id == merged["student_id"]).values(**merged))


def _dump(values: list[int]) -> str:
    return orjson.dumps(sorted(values, reverse=True)).decode()


def on_deadline_set(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    row = _row(conn, data["student_id"])
    # As deadlines.fold_deadline: a corrected completion date sets the deadline anew; a later
    # extension stands.
    keep = bool(row and row["extended"] and row["deadline"] and row["deadline"] >= data["deadline"])
    deadline = row["deadline"] if keep and row else data["deadline"]
    reminded = row["reminded"] if row and row["deadline"] == deadline else "[]"
    _write(conn, event, row, department=data["department"], rule_set=data["rule_set"],
           completed_on=data["completed_on"], term=data["term"], deadline=deadline, extended=keep,
           reminder_days=_dump(data["reminder_days"]), reminded=reminded, basis_position=data["basis_position"])


def on_deadline_extended(conn: sa.Connection, event: RecordedEvent) -> None:
    _write(conn, event, _row(conn, event.data["student_id"]), deadline=event.data["deadline"], extended=True,
           reminded="[]")


def on_reminder_due(conn: sa.Connection, event: RecordedEvent) -> None:
    row = _row(conn, event.data["student_id"])
    if row is None or row["deadline"] != event.data["deadline"]:
        return
    _write(conn, event, row, reminded=_dump([*orjson.loads(row["reminded"]), event.data["offset_days"]]))


def on_deregistered(conn: sa.Connection, event: RecordedEvent) -> None:
    _write(conn, event, _row(conn, event.data["student_id"]), deregistered=True)


def on_reinstated(conn: sa.Connection, event: RecordedEvent) -> None:
    _write(conn, event, _row(conn, event.data["student_id"]), deadline=event.data["deadline"], extended=True,
           deregistered=False, reminded="[]")


def on_report_approved(conn: sa.Connection, event: RecordedEvent) -> None:
    """An approved report stops the clock for good."""
    _write(conn, event, _row(conn, event.data["student_id"]), approved=True)


HANDLERS: dict[str, Handler] = {
    "DeadlineSet": on_deadline_set,
    "DeadlineExtended": on_deadline_extended,
    "DeadlineReminderDue": on_reminder_due,
    "StudentDeregistered": on_deregistered,
    "StudentReinstated": on_reinstated,
    "ReportApproved": on_report_approved,
}

PROJECTION = Projection("deadlines", (deadlines,), HANDLERS)
