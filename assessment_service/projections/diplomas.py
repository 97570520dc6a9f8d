"""Read model `diplomas`: every issued diploma with its status, projected from the assessment
service's OWN event store (the `diplomas-<department>` streams).

One row per diploma: its number, student, department, issue date, rule set, verification code,
the merits and signatories it lists, who issued it, valid or revoked (when, by whom), what it
replaces and what replaced it, and the stored PDF's SHA-256 and path once rendered. The rows hold
ids, dates and configured names, never the student's name or a reason (those are sealed in the
events and read from them with the student's key): an erased student's rows name nobody. The
verification page and the registry's CSV read this table; the holder's name comes from
`students` (None once erased).
"""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.projections.base import dumps, metadata
from shared.events import RecordedEvent
from shared.projection import Handler, Projection

VALID = "valid"
REVOKED = "revoked"

diplomas = sa.Table(
    "diplomas",
    metadata,
    sa.Column("diploma_id", sa.String(36), primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    sa.Column("department", sa.String(64), nullable=False),
    sa.Column("number", sa.String(100), nullable=False, unique=True),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("status_index", sa.Integer, nullable=False),
    sa.Column("issued_on", sa.String(10), nullable=False),
    sa.Column("issued_at", sa.String(40), nullable=False),
    sa.Column("rule_set", sa.String(80), nullable=False),
    sa.Column("verification_code", sa.String(19), nullable=False, unique=True),
    sa.Column("merits", sa.Text, nullable=False),  # JSON list of activity ids
    sa.Column("signatories", sa.Text, nullable=False),  # JSON list of {name, title_en, title_sv}
    sa.Column("issued_by", sa.String(36), nullable=False),
    sa.Column("by_hand", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("revoked_at", sa.String(40), nullable=True),
    sa.Column("revoked_by", sa.String(36), nullable=True),
    sa.Column("replaces", sa.String(36), nullable=True),
    sa.Column("replaced_by", sa.String(36), nullable=True),
    sa.Column("pdf_sha256", sa.String(64), nullable=True),
    sa.Column("pdf_size", sa.Integer, nullable=True),
    sa.Column("pdf_path", sa.String(200), nullable=True),  # relative to the data folder
    sa.Column("rendered_at", sa.String(40), nullable=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_diplomas_department_issued", "department", "issued_on", "number"),
)


def pdf_path(number: str) -> str:
    """Where the diploma's PDF is stored, relative to the data folder."""
    return f"diplomas/{number}.pdf"


def on_issued(conn: sa.Connection, event: RecordedEvent) -> None:
    d = event.data
    signatories = [
        {"name": name, "title_en": en, "title_sv": sv}
        for name, en, sv in zip(d["signatory_names"], d["signatory_titles_en"], d["signatory_titles_sv"], strict=False)
    ]
    conn.execute(diplomas.insert().values(
        diploma_id=d["diploma_id"], student_id=d["student_id"], department=d["department"], number=d["number"],
        year=d["year"], sequence=d["sequence"], status_index=d["status_index"], issued_on=str(d["issued_on"]),
        issued_at=event.occurred_at.isoformat(), rule_set=d["rule_set"], verification_code=d["verification_code"],
        merits=dumps(list(d["merits"])), signatories=dumps(signatories), issued_by=d["issued_by"],
        by_hand=d["issued_by"] != "system:diplomas", status=VALID, revoked_at=None, revoked_by=None,
        replaces=d.get("replaces"), replaced_by=None, pdf_sha256=None, pdf_size=None, pdf_path=None,
        rendered_at=None, position=event.position,
    ))
    if d.get("replaces"):
        conn.execute(diplomas.update().where(diplomas.c.diploma_id == d["replaces"])
                     .values(replaced_by=d["diploma_id"]))


def on_revoked(conn: sa.Connection, event: RecordedEvent) -> None:
    d = event.data
    conn.execute(diplomas.update().where(diplomas.c.diploma_id == d["diploma_id"]).values(
        status=REVOKED, revoked_at=event.occurred_at.isoformat(), revoked_by=d["revoked_by"], position=event.position,
    ))


def on_rendered(conn: sa.Connection, event: RecordedEvent) -> None:
    d = event.data
    number = conn.execute(sa.select(diplomas.c.number).where(diplomas.c.diploma_id == d["diploma_id"])).scalar()
    if number is None:
        return
    conn.execute(diplomas.update().where(diplomas.c.diploma_id == d["diploma_id"]).values(
        pdf_sha256=d["sha256"], pdf_size=d["size"], pdf_path=pdf_path(number),
        rendered_at=event.occurred_at.isoformat(), position=event.position,
    ))


HANDLERS: dict[str, Handler] = {
    "DiplomaIssued": on_issued,
    "DiplomaRevoked": on_revoked,
    "DiplomaRendered": on_rendered,
}

PROJECTION = Projection("diplomas", (diplomas,), HANDLERS)
