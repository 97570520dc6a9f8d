"""Read model `report_rounds`: what each round of each report stated, so assessors can see what
changed between rounds (the `/reports/<id>/changes` page).

`report_rounds` keeps each round's answers and covered activity ids; `report_round_activities`
keeps each covered activity as it stood when that round was submitted (an amendment between two
rounds shows as "amended"). The projection keeps its own copy of each activity's latest details
(`report_round_activity_sources`) to take those snapshots from: a handler never reads another
read model, so a rebuild of this one alone equals the live one.

Answers, titles, organisers and descriptions are the student's free text: kept as the `reports`
and `activities` read models keep them, and blanked (None) by the student's erasure in the same
transaction as its checkpoint (with the runner's compaction after a scrub).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from assessment_service.projections.base import dumps, metadata, student_id_of, upsert
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue

#: The activity's details as stated, in the order the changes page compares them.
DETAILS = ("title", "kind", "setting", "country_code", "start_date", "end_date", "hours", "organiser", "description")
#: Of those, the student's free text: blanked by erasure.
PERSONAL = ("title", "organiser", "description")


def _detail_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),  # personal: None once erased
        sa.Column("organiser", sa.String(200), nullable=True),  # personal: None once erased
        sa.Column("setting", sa.String(20), nullable=False),
        sa.Column("country_code", sa.String(2), nullable=True),
        sa.Column("start_date", sa.String(10), nullable=False),
        sa.Column("end_date", sa.String(10), nullable=False),
        sa.Column("hours", sa.Integer, nullable=True),
        sa.Column("description", sa.Text, nullable=True),  # personal: None once erased
        sa.Column("withdrawn", sa.Boolean, nullable=False),
    ]


report_rounds = sa.Table(
    "report_rounds",
    metadata,
    sa.Column("report_id", sa.String(36), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    sa.Column("submitted_at", sa.String(40), nullable=False),
    sa.Column("answers", sa.Text, nullable=True),  # personal: None once erased
    sa.Column("activity_ids", sa.Text, nullable=False),
    sa.Column("attachment_id", sa.String(36), nullable=True),
    sa.Column("rules", sa.String(100), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)

report_round_activities = sa.Table(
    "report_round_activities",
    metadata,
    sa.Column("report_id", sa.String(36), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("activity_id", sa.String(36), primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    *_detail_columns(),
)

report_round_activity_sources = sa.Table(
    "report_round_activity_sources",
    metadata,
    sa.Column("activity_id", sa.String(36), primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    *_detail_columns(),
)


def _details(data: dict[str, Any]) -> dict[str, Any]:
    row = {name: data.get(name) for name in DETAILS}
    row["start_date"], row["end_date"] = str(row["start_date"]), str(row["end_date"])
    return row


def on_activity_logged(conn: sa.Connection, event: RecordedEvent) -> None:
    # Queued writes (shared.projection.queue), keyed by the activity id: a batch of activity
    # events costs one executemany, not a statement each.
    row = {"activity_id": event.data["activity_id"], "student_id": student_id_of(event), **_details(event.data),
           "withdrawn": False}
    upsert(conn, report_round_activity_sources, "activity_id", row)


_SOURCES = report_round_activity_sources
_AMEND = (
    _SOURCES.update()
    .where(_SOURCES.c.activity_id == sa.bindparam("b_id"))
    .values({name: sa.bindparam(f"b_{name}") for name in DETAILS})
)
_WITHDRAW = _SOURCES.update().where(_SOURCES.c.activity_id == sa.bindparam("b_id")).values(withdrawn=True)


def on_activity_amended(conn: sa.Connection, event: RecordedEvent) -> None:
    activity_id = event.data["activity_id"]
    values = {f"b_{name}": value for name, value in _details(event.data).items()}
    queue(conn, _AMEND, {"b_id": activity_id, **values}, key=activity_id)


def on_activity_withdrawn(conn: sa.Connection, event: RecordedEvent) -> None:
    activity_id = event.data["activity_id"]
    queue(conn, _WITHDRAW, {"b_id": activity_id}, key=activity_id)


_INSERT_ROUND = report_rounds.insert()


def _record_round(conn: sa.Connection, event: RecordedEvent, round_: int) -> None:
    data, student_id = event.data, student_id_of(event)
    activity_ids = list(data["activity_ids"])
    queue(conn, _INSERT_ROUND, {
        "report_id": data["report_id"], "round": round_, "student_id": student_id,
        "submitted_at": event.occurred_at.isoformat(),
        "answers": None if data.get("answers") is None else dumps(data["answers"]),
        "activity_ids": dumps(activity_ids), "attachment_id": data.get("attachment_id"), "rules": data["rules"],
        "position": event.position,
    })
    sources = report_round_activity_sources
    # A read: the queued writes before it (the activities' latest details) run first.
    found = conn.execute(
        sa.select(sources).where(sources.c.activity_id.in_(activity_ids), sources.c.student_id == student_id)
    ).mappings().all()
    for row in found:
        queue(conn, _INSERT_SNAPSHOT, {**row, "report_id": data["report_id"], "round": round_})


_INSERT_SNAPSHOT = report_round_activities.insert()


def on_report_submitted(conn: sa.Connection, event: RecordedEvent) -> None:
    _record_round(conn, event, 1)


def on_report_resubmitted(conn: sa.Connection, event: RecordedEvent) -> None:
    _record_round(conn, event, int(event.data["round"]))


def on_student_erased(conn: sa.Connection, event: RecordedEvent) -> None:
    student_id = student_id_of(event)
    conn.execute(report_rounds.update().where(report_rounds.c.student_id == student_id).values(answers=None))
    blank = dict.fromkeys(PERSONAL)
    for table in (report_round_activities, report_round_activity_sources):
        conn.execute(table.update().where(table.c.student_id == student_id).values(**blank))


HANDLERS: dict[str, Handler] = {
    "ActivityLogged": on_activity_logged,
    "ActivityAmended": on_activity_amended,
    "ActivityWithdrawn": on_activity_withdrawn,
    "ReportSubmitted": on_report_submitted,
    "ReportResubmitted": on_report_resubmitted,
    "StudentErased": on_student_erased,
}

PROJECTION = Projection(
    "report_rounds",
    (report_rounds, report_round_activities, report_round_activity_sources),
    HANDLERS,
    scrubs=frozenset({"StudentErased"}),
)
