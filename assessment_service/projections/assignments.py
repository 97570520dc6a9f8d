"""Read model `assignments`: who is assigned to which report, and who declared a conflict.

Projected from the assessment service's OWN event store (not the intake feed): a second
ProjectionRunner over a StoreEventFeed of that store, with its checkpoint in the same
`projection_checkpoints` table and moved in the same transaction as these rows. The access rules
and the review queue read it; the decisions themselves are validated against the report's stream.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from assessment_service.projections.base import student_table
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue


def _per_assessor(name: str, *columns: sa.Column[Any], when: str) -> sa.Table:
    """One row per report and assessor, in a department, `when` it was recorded, at its position."""
    return student_table(
        name,
        "report_id", "assessor_account_id",
        columns=(
            sa.Column("department", sa.String(64), nullable=False),
            *columns,
            sa.Column(when, sa.String(40), nullable=False),
            sa.Column("position", sa.BigInteger, nullable=False),
            sa.Index(f"ix_{name}_assessor", "assessor_account_id"),
        ),
    )


assignments = _per_assessor("assignments", when="assigned_at")
# The daily overdue-review reminder and the weekly digest read a department's assignments older
# than a day (docs/mail.md): an index range, not every assignment.
sa.Index("ix_assignments_department_assigned", assignments.c.department, assignments.c.assigned_at)
assignment_conflicts = _per_assessor(
    "assignment_conflicts", sa.Column("reason_code", sa.String(40), nullable=False), when="declared_at"
)

_FORGET = assignments.delete().where(
    assignments.c.report_id == sa.bindparam("b_report"),
    assignments.c.assessor_account_id == sa.bindparam("b_assessor"),
)


def _key(event: RecordedEvent) -> tuple[str, str]:
    return (event.data["report_id"], event.data["assessor_account_id"])


def on_assessor_assigned(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    # Delete, then insert: a re-assignment after an unassignment is a new row (no upsert needed).
    queue(conn, _FORGET, {"b_report": data["report_id"], "b_assessor": data["assessor_account_id"]},
          key=_key(event))
    queue(
        conn,
        assignments.insert(),
        {
            "report_id": data["report_id"],
            "assessor_account_id": data["assessor_account_id"],
            "student_id": data["student_id"],
            "department": data["department"],
            "assigned_at": event.occurred_at.isoformat(),
            "position": event.position,
        },
        key=_key(event),
    )


def on_assessor_unassigned(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    queue(conn, _FORGET, {"b_report": data["report_id"], "b_assessor": data["assessor_account_id"]},
          key=_key(event))


def on_conflict_of_interest_declared(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    queue(
        conn,
        assignment_conflicts.insert(),
        {
            "report_id": data["report_id"],
            "assessor_account_id": data["assessor_account_id"],
            "student_id": data["student_id"],
            "department": data["department"],
            "reason_code": data["reason_code"],
            "declared_at": event.occurred_at.isoformat(),
            "position": event.position,
        },
        key=_key(event),
    )


HANDLERS: dict[str, Handler] = {
    "AssessorAssigned": on_assessor_assigned,
    "AssessorUnassigned": on_assessor_unassigned,
    "ConflictOfInterestDeclared": on_conflict_of_interest_declared,
}

PROJECTION = Projection("assignments", (assignments, assignment_conflicts), HANDLERS)

# Rulings on new activity kinds; the review states the queue and the agenda read.
from assessment_service.projections import review_states, rulings  # noqa: E402

#: The projections fed by the assessment service's own store (`projections.own` adds presentations).
OWN: tuple[Projection, ...] = (PROJECTION, rulings.PROJECTION, review_states.PROJECTION)
