"""Read-side queries on report rounds (the `report_rounds` read model): what each round stated."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from assessment_service.projections.report_rounds import (
    DETAILS,
    report_round_activities,
    report_round_activity_sources,
    report_rounds,
)


def round_numbers(conn: sa.Connection, report_id: str) -> list[int]:
    """The rounds of the report projected so far, in order."""
    return list(conn.execute(
        sa.select(report_rounds.c.round).where(report_rounds.c.report_id == report_id).order_by(report_rounds.c.round)
    ).scalars())


def report_round(conn: sa.Connection, report_id: str, number: int) -> dict[str, Any] | None:
    """One round as its student stated it: submitted_at, answers (None once erased), the covered
    activity ids in their order, and each of those activities as it stood then; None if unknown."""
    row = conn.execute(
        sa.select(report_rounds).where(report_rounds.c.report_id == report_id, report_rounds.c.round == number)
    ).first()
    if row is None:
        return None
    snapshots = conn.execute(
        sa.select(report_round_activities).where(
            report_round_activities.c.report_id == report_id, report_round_activities.c.round == number)
    ).mappings().all()
    return {
        "report_id": report_id,
        "round": number,
        "submitted_at": row.submitted_at,
        "answers": None if row.answers is None else json.loads(row.answers),
        "activity_ids": json.loads(row.activity_ids),
        "attachment_id": row.attachment_id,
        "rules": row.rules,
        "activities": {s["activity_id"]: {name: s[name] for name in DETAILS} for s in snapshots},
    }


def held_in_rounds(conn: sa.Connection, student_id: str) -> dict[str, list[dict[str, Any]]]:
    """Right of access: the `report_rounds` read model's rows about the student, every column as
    stored (JSON columns decoded, booleans as booleans), for `queries.held_about`."""

    def rows(table: sa.Table, *order: sa.ColumnElement[Any]) -> list[dict[str, Any]]:
        found = conn.execute(sa.select(table).where(table.c.student_id == student_id).order_by(*order)).all()
        return [dict(row._mapping) for row in found]

    rounds = rows(report_rounds, report_rounds.c.position)
    for row in rounds:
        row["answers"] = None if row["answers"] is None else json.loads(row["answers"])
        row["activity_ids"] = json.loads(row["activity_ids"])
    snapshots = [
        {**row, "withdrawn": bool(row["withdrawn"])}
        for row in rows(report_round_activities, report_round_activities.c.report_id, report_round_activities.c.round,
                        report_round_activities.c.activity_id)
    ]
    sources = [
        {**row, "withdrawn": bool(row["withdrawn"])}
        for row in rows(report_round_activity_sources, report_round_activity_sources.c.activity_id)
    ]
    return {"report_rounds": rounds, "report_round_activities": snapshots, "report_round_activity_sources": sources}
