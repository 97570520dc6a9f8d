"""The intake side's view of the assessor group's rulings on activity kinds the catalogue lacks:
the department's precedents (help on the student's activity form) and each ruled activity's own
ruling (shown on "my CIM").

Delivered by the assessment service's own events (`ActivityKindRuled` over GET /api/v1/events on
:8001) and projected by the workers into the INTAKE database, on the same runner as
`intake_report_decisions` (intake_service/assessment_view.py). Two tables:

- `intake_precedents`: the department's catalogue of precedents. No student and no activity id:
  the kind's label and the rationale are written about the KIND; the row is keyed by a one-way
  digest of the activity id only so that a later ruling on the same activity replaces it.
- `intake_activity_rulings`: the ruling of each ruled activity, keyed by activity id, naming no
  student. The activity ties it to its student, so the ruling itself is sealed with the student's
  intake key, like the decisions' summaries: the student's erasure destroys the key and the row
  then reads as nothing (a ruling arriving after the erasure is not kept at all).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from shared.events import RecordedEvent
from shared.personal import KeyErased, KeyVault, SubjectCipher
from shared.projection import Handler, Projection

log = logging.getLogger(__name__)

metadata = sa.MetaData()

precedents = sa.Table(
    "intake_precedents",
    metadata,
    sa.Column("precedent_id", sa.String(64), primary_key=True),
    sa.Column("department", sa.String(64), nullable=False, index=True),
    sa.Column("kind_label", sa.String(120), nullable=False),
    sa.Column("outcome", sa.String(30), nullable=False),
    sa.Column("kind", sa.String(60), nullable=True),
    sa.Column("activity_class", sa.String(10), nullable=True),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("ruled_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)

activity_rulings = sa.Table(
    "intake_activity_rulings",
    metadata,
    sa.Column("activity_id", sa.String(36), primary_key=True),
    sa.Column("ruling", sa.Text, nullable=False),  # sealed with the student's intake key
    sa.Column("ruled_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)

#: What a ruling says, as the precedents and the activity's own ruling show it.
FIELDS = ("kind_label", "outcome", "kind", "activity_class", "rationale")


def precedent_id(activity_id: str) -> str:
    """A key that a later ruling on the same activity finds again, without holding the activity id
    (which the intake's own records tie to a student)."""
    return hashlib.sha256(f"cim precedent {activity_id}".encode()).hexdigest()


def _seal_name(activity_id: str) -> str:
    return f"activity ruling {activity_id}"  # binds the sealed ruling to its row


def projection(vault: KeyVault) -> Projection:
    """The projection of both tables, sealing each activity's ruling with `vault` (the intake's)."""

    def on_activity_kind_ruled(conn: sa.Connection, event: RecordedEvent) -> None:
        data = event.data
        ruling = {name: data.get(name) for name in FIELDS}
        ruled_at = event.occurred_at.isoformat()
        key = precedent_id(data["activity_id"])
        conn.execute(precedents.delete().where(precedents.c.precedent_id == key))
        conn.execute(precedents.insert().values(
            precedent_id=key, department=data["department"], ruled_at=ruled_at, position=event.position, **ruling))
        conn.execute(activity_rulings.delete().where(activity_rulings.c.activity_id == data["activity_id"]))
        try:
            sealed = SubjectCipher(vault.key_for(data["student_id"])).seal(_seal_name(data["activity_id"]), ruling)
        except KeyErased:
            return  # the student is erased: their activity's ruling is not kept
        conn.execute(activity_rulings.insert().values(
            activity_id=data["activity_id"], ruling=sealed, ruled_at=ruled_at, position=event.position))

    handlers: dict[str, Handler] = {"ActivityKindRuled": on_activity_kind_ruled}
    return Projection("intake_precedents", (precedents, activity_rulings), handlers)


def precedents_of(reader: sa.Engine, department: str) -> list[dict[str, Any]]:
    """The department's precedents, newest first ([] when none, or unreadable now)."""
    columns = [precedents.c[name] for name in FIELDS]
    try:
        with reader.connect() as conn:
            rows = conn.execute(
                sa.select(*columns, precedents.c.ruled_at).where(precedents.c.department == department)
                .order_by(precedents.c.ruled_at.desc(), precedents.c.precedent_id)
            ).all()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        log.warning("precedents view unreadable; showing none", exc_info=True)
        return []
    return [dict(row._mapping) for row in rows]


def rulings_of(
    reader: sa.Engine, vault: KeyVault, student_id: str, activity_ids: Collection[str]
) -> dict[str, dict[str, Any]]:
    """activity_id -> its ruling ({FIELDS..., "ruled_at"}) for the student's own `activity_ids`,
    opened with the student's key: {} once the student is erased (or when unreadable now)."""
    if not activity_ids:
        return {}
    try:
        with reader.connect() as conn:
            rows = conn.execute(
                sa.select(activity_rulings).where(activity_rulings.c.activity_id.in_(sorted(activity_ids)))
            ).all()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        log.warning("activity rulings view unreadable; showing none", exc_info=True)
        return {}
    key = vault.keys_for([student_id]).get(student_id) if rows else None
    if key is None:
        return {}
    cipher = SubjectCipher(key)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        ruling = cipher.open(_seal_name(row.activity_id), row.ruling)
        if isinstance(ruling, dict):  # another student's activity does not open with this key
            out[row.activity_id] = {**ruling, "ruled_at": row.ruled_at}
    return out
