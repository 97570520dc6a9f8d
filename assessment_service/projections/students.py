"""Read model `students`: who is registered where, and how far along CIM (the status ladder).

Status only climbs: registered < studies completed < report submitted < withdrawn (final), so
the order of a student's milestones cannot leave a stale status. `status_position` is the feed
position of the event that last changed the status: it orders the status feed.
"""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.calendar_feeds import erase_student as erase_calendar_links
from assessment_service.projections.base import metadata, student_id_of, upsert
from assessment_service.projections.personal_keys import destroy_key
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue

REGISTERED = "registered"
STUDIES_COMPLETED = "studies completed"
REPORT_SUBMITTED = "report submitted"
WITHDRAWN = "withdrawn"
RANK = {REGISTERED: 1, STUDIES_COMPLETED: 2, REPORT_SUBMITTED: 3, WITHDRAWN: 4}

students = sa.Table(
    "students",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    # Personal data: None once the student's key is erased (the feed then serves None).
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("department", sa.String(20), nullable=False, index=True),
    sa.Column("programme", sa.String(20), nullable=False),
    sa.Column("expected_end_term", sa.String(10), nullable=False),
    sa.Column("rules", sa.String(100), nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("status_rank", sa.Integer, nullable=False),
    sa.Column("status_position", sa.BigInteger, nullable=False, index=True),
    sa.Column("status_changed_at", sa.String(40), nullable=False),
    sa.Column("studies_completed_on", sa.String(10), nullable=True),
    sa.Column("reports_submitted", sa.Integer, nullable=False),
)


def _climb_statement(**also: object) -> sa.Update:
    """Set `also`, and raise the status if the new one ranks higher: one UPDATE (every CASE reads
    the row as it was before the statement, on SQLite and PostgreSQL alike). Built once."""
    climbs = students.c.status_rank < sa.bindparam("b_rank")
    return (
        students.update()
        .where(students.c.student_id == sa.bindparam("b_sid"))
        .values(
            **also,
            status=sa.case((climbs, sa.bindparam("b_status")), else_=students.c.status),
            status_rank=sa.case((climbs, sa.bindparam("b_rank")), else_=students.c.status_rank),
            status_position=sa.case((climbs, sa.bindparam("b_position")), else_=students.c.status_position),
            status_changed_at=sa.case((climbs, sa.bindparam("b_at")), else_=students.c.status_changed_at),
        )
    )


_CLIMB = _climb_statement()
_CLIMB_WITH_REPORT = _climb_statement(reports_submitted=students.c.reports_submitted + 1)
_CLIMB_WITH_COMPLETION = _climb_statement(studies_completed_on=sa.bindparam("b_completed"))


def _climb(conn: sa.Connection, event: RecordedEvent, status: str, statement: sa.Update = _CLIMB,
           **params: object) -> None:
    sid = student_id_of(event)
    queue(
        conn,
        statement,
        {
            "b_sid": sid,
            "b_rank": RANK[status],
            "b_status": status,
            "b_position": event.position,
            "b_at": event.occurred_at.isoformat(),
            **params,
        },
        key=sid,
    )


def on_student_registered(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    upsert(
        conn,
        students,
        "student_id",
        {
            "student_id": student_id_of(event),
            "name": data["name"],
            "email": data["email"],
            "department": data["department"],
            "programme": data["programme"],
            "expected_end_term": data["expected_end_term"],
            "rules": data["rules"],
            "registered_at": event.occurred_at.isoformat(),
            "status": REGISTERED,
            "status_rank": RANK[REGISTERED],
            "status_position": event.position,
            "status_changed_at": event.occurred_at.isoformat(),
            "studies_completed_on": None,
            "reports_submitted": 0,
        },
    )


def on_report_submitted(conn: sa.Connection, event: RecordedEvent) -> None:
    _climb(conn, event, REPORT_SUBMITTED, _CLIMB_WITH_REPORT)


def on_studies_completed(conn: sa.Connection, event: RecordedEvent) -> None:
    _climb(conn, event, STUDIES_COMPLETED, _CLIMB_WITH_COMPLETION, b_completed=str(event.data["completed_on"]))


def on_registration_withdrawn(conn: sa.Connection, event: RecordedEvent) -> None:
    _climb(conn, event, WITHDRAWN)


def on_student_erased(conn: sa.Connection, event: RecordedEvent) -> None:
    """Forget the personal data copied here; the facts (department, status) stay. And destroy
    the student's key of this service: the review comments and summaries sealed with it read as
    None from then on. Their personal calendar links are deleted (not a read model: a rebuild
    leaves the table alone, and deleting again finds nothing)."""
    queue(
        conn,
        students.update().where(students.c.student_id == student_id_of(event)).values(name=None, email=None)
    )
    destroy_key(conn, event)
    erase_calendar_links(conn, student_id_of(event))


HANDLERS: dict[str, Handler] = {
    "StudentRegistered": on_student_registered,
    "ReportSubmitted": on_report_submitted,
    "StudiesCompleted": on_studies_completed,
    "RegistrationWithdrawn": on_registration_withdrawn,
    "StudentErased": on_student_erased,
}

PROJECTION = Projection("students", (students,), HANDLERS, scrubs=frozenset({"StudentErased"}))
