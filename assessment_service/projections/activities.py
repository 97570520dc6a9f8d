"""Read model `activities`: each student's logged activities as last amended, withdrawn ones flagged."""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.projections.base import student_id_of, student_table, upsert
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue

activities = student_table(
    "activities",
    "activity_id",
    columns=(
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),  # personal: None once erased
        sa.Column("organiser", sa.String(200), nullable=True),  # personal: None once erased
        sa.Column("setting", sa.String(20), nullable=False),
        sa.Column("country_code", sa.String(2), nullable=True),
        sa.Column("start_date", sa.String(10), nullable=False),
        sa.Column("end_date", sa.String(10), nullable=False),
        sa.Column("hours", sa.Integer, nullable=True),
        sa.Column("description", sa.Text, nullable=True),  # personal: None once erased
        sa.Column("logged_at", sa.String(40), nullable=False),
        sa.Column("withdrawn", sa.Boolean, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    ),
)

_FIELDS = ("kind", "title", "organiser", "setting", "country_code", "start_date", "end_date", "hours", "description")


def on_activity_logged(conn: sa.Connection, event: RecordedEvent) -> None:
    row = {name: event.data.get(name) for name in _FIELDS}
    row.update(
        activity_id=event.data["activity_id"],
        student_id=student_id_of(event),
        start_date=str(row["start_date"]),
        end_date=str(row["end_date"]),
        description=row["description"],
        logged_at=event.occurred_at.isoformat(),
        withdrawn=False,
        position=event.position,
    )
    upsert(conn, activities, "activity_id", row)


_AMEND = (
    activities.update()
    .where(activities.c.activity_id == sa.bindparam("b_id"))
    .values({name: sa.bindparam(f"b_{name}") for name in (*_FIELDS, "position")})
)
_WITHDRAW = (
    activities.update()
    .where(activities.c.activity_id == sa.bindparam("b_id"))
    .values(withdrawn=True, position=sa.bindparam("b_position"))
)


def on_activity_amended(conn: sa.Connection, event: RecordedEvent) -> None:
    values = {f"b_{name}": event.data.get(name) for name in _FIELDS}
    values.update(
        b_id=event.data["activity_id"],
        b_start_date=str(values["b_start_date"]),
        b_end_date=str(values["b_end_date"]),
        b_position=event.position,
    )
    queue(conn, _AMEND, values, key=values["b_id"])


def on_activity_withdrawn(conn: sa.Connection, event: RecordedEvent) -> None:
    activity_id = event.data["activity_id"]
    queue(conn, _WITHDRAW, {"b_id": activity_id, "b_position": event.position}, key=activity_id)


def on_student_erased(conn: sa.Connection, event: RecordedEvent) -> None:
    erased = activities.c.student_id == student_id_of(event)
    queue(conn, activities.update().where(erased).values(title=None, organiser=None, description=None))


HANDLERS: dict[str, Handler] = {
    "ActivityLogged": on_activity_logged,
    "ActivityAmended": on_activity_amended,
    "ActivityWithdrawn": on_activity_withdrawn,
    "StudentErased": on_student_erased,
}

PROJECTION = Projection("activities", (activities,), HANDLERS, scrubs=frozenset({"StudentErased"}))
