"""Read-side queries on rulings: activities awaiting the assessor group's ruling, and the
department's precedents (re-exported by assessment_service/queries.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from assessment_service.events import ActivityKindRuled
from assessment_service.projections.activities import activities
from assessment_service.projections.rulings import activity_rulings
from assessment_service.projections.students import students

#: The kind a student logs when the department's catalogue lacks theirs.
OTHER_KIND = "other"


def kinds_awaiting_ruling(
    conn: sa.Connection, department: str, listed_kinds: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The department's activities (not withdrawn) of kind "other" — or, when `listed_kinds` (the
    rule set's kind codes) is given, of any kind it does not list — that have no ruling yet, oldest
    first. No personal fields: the agenda and the ruling list link to the activity instead."""
    unlisted = activities.c.kind == OTHER_KIND
    if listed_kinds:
        unlisted = sa.or_(unlisted, activities.c.kind.not_in(sorted(listed_kinds)))
    query = (
        sa.select(
            activities.c.activity_id, activities.c.student_id, activities.c.kind, activities.c.setting,
            activities.c.start_date, activities.c.logged_at,
        )
        .join(students, students.c.student_id == activities.c.student_id)
        .outerjoin(activity_rulings, activity_rulings.c.activity_id == activities.c.activity_id)
        .where(
            students.c.department == department,
            activities.c.withdrawn.is_(False),
            unlisted,
            activity_rulings.c.activity_id.is_(None),
        )
        .order_by(activities.c.logged_at, activities.c.activity_id)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


_PRECEDENT = (
    "activity_id", "kind_label", "outcome", "kind", "activity_class", "rationale", "ruled_at",
)


def precedents(conn: sa.Connection, department: str) -> list[dict[str, Any]]:
    """The department's rulings, newest first: what later assessors and students see (no student)."""
    query = (
        sa.select(*(activity_rulings.c[name] for name in _PRECEDENT))
        .where(activity_rulings.c.department == department)
        .order_by(activity_rulings.c.ruled_at.desc(), activity_rulings.c.activity_id)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def ruling_of(conn: sa.Connection, activity_id: str) -> ActivityKindRuled | None:
    """The latest ruling on an activity, as the event that recorded it (what the decider reads)."""
    row = conn.execute(sa.select(activity_rulings).where(activity_rulings.c.activity_id == activity_id)).first()
    if row is None:
        return None
    return ActivityKindRuled(
        activity_id=row.activity_id, student_id=row.student_id, department=row.department,
        kind_label=row.kind_label, outcome=row.outcome, kind=row.kind, activity_class=row.activity_class,
        rationale=row.rationale, ruled_by=row.ruled_by,
    )


def rulings_for(conn: sa.Connection, activity_ids: Collection[str]) -> dict[str, tuple[str, str | None]]:
    """activity_id -> (kind, class) it counts as, for the accepted rulings among `activity_ids`
    (what the checklist uses in place of the logged kind)."""
    if not activity_ids:
        return {}
    query = sa.select(activity_rulings.c.activity_id, activity_rulings.c.kind, activity_rulings.c.activity_class).where(
        activity_rulings.c.activity_id.in_(sorted(activity_ids)),
        activity_rulings.c.outcome != "not_accepted",
        activity_rulings.c.kind.is_not(None),
    )
    return {row.activity_id: (row.kind, row.activity_class) for row in conn.execute(query)}
