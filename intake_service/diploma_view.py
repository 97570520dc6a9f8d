"""The intake side's view of each student's diploma, for the status line of "my CIM": the latest
diploma issued to the student, its number and date, and whether it was revoked.

Delivered by the assessment service's own events (`DiplomaIssued`, `DiplomaRevoked`;
docs/diplomas.md) and projected by the workers into the INTAKE database, on the same runner as
`intake_report_decisions` (intake_service/assessment_view.py). Nothing here is personal: ids, a
diploma number, a date and a flag (the reasons, which are sealed, are not copied).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from shared.events import RecordedEvent
from shared.projection import Handler, Projection

log = logging.getLogger(__name__)

metadata = sa.MetaData()

#: The student's latest diploma: a reissue replaces the revoked one it corrects.
diplomas = sa.Table(
    "intake_diplomas",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("diploma_id", sa.String(36), nullable=False),
    sa.Column("number", sa.String(40), nullable=False),
    sa.Column("issued_on", sa.String(10), nullable=False),
    sa.Column("revoked_at", sa.String(40), nullable=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


def on_issued(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    row = {"diploma_id": data["diploma_id"], "number": data["number"], "issued_on": str(data["issued_on"]),
           "revoked_at": None, "position": event.position}
    where = diplomas.c.student_id == data["student_id"]
    if conn.execute(diplomas.update().where(where).values(**row)).rowcount == 0:
        conn.execute(diplomas.insert().values(student_id=data["student_id"], **row))


def on_revoked(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    # Only the diploma shown: revoking an older one never hides the newer one that replaced it.
    conn.execute(
        diplomas.update()
        .where((diplomas.c.student_id == data["student_id"]) & (diplomas.c.diploma_id == data["diploma_id"]))
        .values(revoked_at=event.occurred_at.isoformat(), position=event.position)
    )


HANDLERS: dict[str, Handler] = {"DiplomaIssued": on_issued, "DiplomaRevoked": on_revoked}

PROJECTION = Projection("intake_diplomas", (diplomas,), HANDLERS)


def diploma_of(reader: sa.Engine, student_id: str) -> dict[str, Any] | None:
    """The student's latest diploma ({"diploma_id", "number", "issued_on", "revoked_at"}), or None
    (also when unreadable now: the page then shows the step before it)."""
    try:
        with reader.connect() as conn:
            row = conn.execute(sa.select(diplomas).where(diplomas.c.student_id == student_id)).first()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        log.warning("diploma view unreadable; showing none", exc_info=True)
        return None
    return None if row is None else dict(row._mapping)
