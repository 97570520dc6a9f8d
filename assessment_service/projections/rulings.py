"""Read model `activity_rulings`: the assessor group's rulings on activities of a kind the
department's catalogue lacks, one row per activity (its latest ruling).

Projected from the assessment service's OWN event store (`ActivityKindRuled`, stream
`activity-ruling-<activity_id>`), like `assignments`. Read as the department's precedents (the
"Precedents" page, the help on the student's activity form) and by the review queue's checklist,
which counts an accepted activity as the ruled kind and class. The rows hold no personal data:
the kind's label and the rationale are written about the kind, not the student.
"""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.projections.base import metadata, upsert
from shared.events import RecordedEvent
from shared.projection import Handler, Projection

activity_rulings = sa.Table(
    "activity_rulings",
    metadata,
    sa.Column("activity_id", sa.String(36), primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    sa.Column("department", sa.String(64), nullable=False, index=True),
    sa.Column("kind_label", sa.String(120), nullable=False),
    sa.Column("outcome", sa.String(30), nullable=False),
    sa.Column("kind", sa.String(60), nullable=True),
    sa.Column("activity_class", sa.String(10), nullable=True),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("ruled_by", sa.String(36), nullable=False),
    sa.Column("ruled_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)

_COLUMNS = ("activity_id", "student_id", "department", "kind_label", "outcome", "kind", "activity_class",
            "rationale", "ruled_by")


def on_activity_kind_ruled(conn: sa.Connection, event: RecordedEvent) -> None:
    row = {name: event.data.get(name) for name in _COLUMNS}
    row.update(ruled_at=event.occurred_at.isoformat(), position=event.position)
    upsert(conn, activity_rulings, "activity_id", row)


HANDLERS: dict[str, Handler] = {"ActivityKindRuled": on_activity_kind_ruled}

PROJECTION = Projection("activity_rulings", (activity_rulings,), HANDLERS)
