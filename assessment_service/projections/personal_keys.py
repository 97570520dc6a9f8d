"""The student's erasure destroys their key in this service's key table: the review comments and
summaries sealed with it (in the own event store) read as None from then on.

Called by the `students` read model's erasure handler, in its transaction (so with its
checkpoint). The key table is not that read model's: a rebuild never resets the keys, and
destroying a key twice is harmless, so a replay changes nothing.
"""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.projections.base import student_id_of
from shared.adapters.sql_vault import subject_keys
from shared.events import RecordedEvent


def destroy_key(conn: sa.Connection, event: RecordedEvent) -> None:
    # The table exists wherever the assessment service runs (build_context creates the vault);
    # a runner built without it (tests of other read models) has nothing to destroy.
    subject_keys.create(conn, checkfirst=True)
    student_id = student_id_of(event)
    erased_at = event.occurred_at.isoformat()
    updated = conn.execute(
        subject_keys.update()
        .where(subject_keys.c.subject_id == student_id)
        .values(wrapped_key=None, erased_at=erased_at)
    ).rowcount
    if not updated:  # a tombstone: nothing can be sealed for them with a fresh key later
        conn.execute(subject_keys.insert().values(
            subject_id=student_id, wrapped_key=None, created_at=erased_at, erased_at=erased_at
        ))

