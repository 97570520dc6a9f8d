"""The intake side's view of each student's deadline, for "my CIM" and for the deciders: the
deadline, whether a coordinator extended it, whether the student is deregistered.

Delivered by the assessment service's own events (`DeadlineSet`, `DeadlineExtended`,
`StudentDeregistered`, `StudentReinstated`; docs/deadlines.md) and projected by the workers into
the INTAKE database, on the same runner as `intake_report_decisions`
(intake_service/assessment_view.py). Nothing here is personal: ids, dates and flags.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from shared.events import RecordedEvent
from shared.projection import Handler, Projection

log = logging.getLogger(__name__)

metadata = sa.MetaData()

deadlines = sa.Table(
    "intake_deadlines",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("deadline", sa.String(10), nullable=False),
    sa.Column("extended", sa.Boolean, nullable=False),
    sa.Column("deregistered", sa.Boolean, nullable=False),
    sa.Column("changed_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)


def _save(conn: sa.Connection, event: RecordedEvent, **values: Any) -> None:
    sid = event.data["student_id"]
    current = conn.execute(sa.select(deadlines).where(deadlines.c.student_id == sid)).first()
    row = {"changed_at": event.occurred_at.isoformat(), "position": event.position, **values}
    if current is None:
        conn.execute(deadlines.insert().values(
            student_id=sid, **{"extended": False, "deregistered": False, "deadline": event.data["deadline"], **row}
        ))
    else:
        conn.execute(deadlines.update().where(deadlines.c.student_id == sid).values(**row))


def on_deadline_set(conn: sa.Connection, event: RecordedEvent) -> None:
    current = conn.execute(
        sa.select(deadlines.c.deadline, deadlines.c.extended).where(deadlines.c.student_id == event.data["student_id"])
    ).first()
    if current is not None and current.extended and current.deadline >= event.data["deadline"]:
        return  # a later extension stands (as assessment_service.deadlines.fold_deadline)
    _save(conn, event, deadline=event.data["deadline"], extended=False)


def on_deadline_extended(conn: sa.Connection, event: RecordedEvent) -> None:
    _save(conn, event, deadline=event.data["deadline"], extended=True)


def on_deregistered(conn: sa.Connection, event: RecordedEvent) -> None:
    _save(conn, event, deregistered=True)


def on_reinstated(conn: sa.Connection, event: RecordedEvent) -> None:
    _save(conn, event, deadline=event.data["deadline"], extended=True, deregistered=False)


HANDLERS: dict[str, Handler] = {
    "DeadlineSet": on_deadline_set,
    "DeadlineExtended": on_deadline_extended,
    "StudentDeregistered": on_deregistered,
    "StudentReinstated": on_reinstated,
}

PROJECTION = Projection("intake_deadlines", (deadlines,), HANDLERS)


def deadline_of(reader: sa.Engine, student_id: str) -> dict[str, Any] | None:
    """The student's deadline row ({"deadline", "extended", "deregistered", ...}), or None (also
    when unreadable now: the pages then show no deadline, and the deciders refuse nothing)."""
    try:
        with reader.connect() as conn:
            row = conn.execute(sa.select(deadlines).where(deadlines.c.student_id == student_id)).first()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        log.warning("deadline view unreadable; showing none", exc_info=True)
        return None
    return None if row is None else dict(row._mapping)
