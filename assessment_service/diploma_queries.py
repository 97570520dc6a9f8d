"""Reads of the `diplomas` read model (assessment_service/projections/diplomas.py), joined with
the holder's name from `students` (None once erased) and whether their key is erased."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from assessment_service.projections.activities import activities
from assessment_service.projections.diplomas import diplomas
from assessment_service.projections.presentations import presentation_bookings, presentation_occasions
from assessment_service.projections.students import students
from shared.adapters.sql_vault import subject_keys

_D = diplomas.c


def _erased_student_ids(conn: sa.Connection, student_ids: list[str]) -> set[str]:
    if not student_ids:
        return set()
    try:
        rows = conn.execute(
            sa.select(subject_keys.c.subject_id)
            .where(subject_keys.c.subject_id.in_(student_ids), subject_keys.c.erased_at.is_not(None))
        ).scalars()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # a database without the key table (tests)
        return set()
    return set(rows)


def _row(row: Any, erased: set[str]) -> dict[str, Any]:
    out = dict(row._mapping)
    out["merits"] = orjson.loads(row.merits)
    out["signatories"] = orjson.loads(row.signatories)
    out["by_hand"] = bool(row.by_hand)
    out["erased"] = row.student_id in erased
    if out["erased"]:
        out["holder_name"] = None
    return out


def _select() -> sa.Select[Any]:
    return (sa.select(diplomas, students.c.name.label("holder_name"))
            .join(students, students.c.student_id == _D.student_id, isouter=True))


def _many(conn: sa.Connection, query: sa.Select[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(query).all()
    erased = _erased_student_ids(conn, sorted({r.student_id for r in rows}))
    return [_row(r, erased) for r in rows]


def by_id(conn: sa.Connection, diploma_id: str) -> dict[str, Any] | None:
    found = _many(conn, _select().where(_D.diploma_id == diploma_id))
    return found[0] if found else None


def by_code(conn: sa.Connection, code: str) -> dict[str, Any] | None:
    found = _many(conn, _select().where(_D.verification_code == code))
    return found[0] if found else None


def by_number(conn: sa.Connection, number: str) -> dict[str, Any] | None:
    found = _many(conn, _select().where(_D.number == number))
    return found[0] if found else None


def of_student(conn: sa.Connection, student_id: str) -> list[dict[str, Any]]:
    """The student's diplomas, newest first."""
    return _many(conn, _select().where(_D.student_id == student_id).order_by(_D.status_index.desc()))


def of_department(conn: sa.Connection, department: str, *, year: int | None = None,
                  limit: int = 5000) -> list[dict[str, Any]]:
    """The department's diplomas by number (a year's only, if given)."""
    query = _select().where(_D.department == department)
    if year is not None:
        query = query.where(_D.year == year)
    return _many(conn, query.order_by(_D.year, _D.sequence).limit(limit))


def unrendered(conn: sa.Connection, limit: int = 1000) -> list[str]:
    """Valid diplomas without a stored PDF yet, oldest first."""
    return list(conn.execute(
        sa.select(_D.diploma_id).where(_D.pdf_sha256.is_(None), _D.status == "valid")
        .order_by(_D.position).limit(limit)
    ).scalars())


def stored_files_of_erased(conn: sa.Connection) -> list[dict[str, Any]]:
    """Diplomas with a stored PDF whose student is erased (the files to delete)."""
    rows = conn.execute(sa.select(_D.diploma_id, _D.student_id, _D.number).where(_D.pdf_path.is_not(None))).all()
    erased = _erased_student_ids(conn, sorted({r.student_id for r in rows}))
    return [dict(r._mapping) for r in rows if r.student_id in erased]


def student(conn: sa.Connection, student_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(students.c.name, students.c.department, students.c.status).where(students.c.student_id == student_id)
    ).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out["erased"] = bool(_erased_student_ids(conn, [student_id]))
    return out


def activities_of(conn: sa.Connection, student_id: str) -> list[dict[str, Any]]:
    """The student's activities that stand (not withdrawn), by start date."""
    a = activities.c
    rows = conn.execute(
        sa.select(a.activity_id, a.kind, a.title, a.organiser, a.setting, a.country_code, a.start_date, a.end_date)
        .where(a.student_id == student_id, ~a.withdrawn).order_by(a.start_date, a.activity_id)
    ).all()
    return [dict(r._mapping) for r in rows]


def presentation_of(conn: sa.Connection, student_id: str) -> dict[str, Any] | None:
    """The occasion at which the student presented (the latest), or None."""
    b, o = presentation_bookings.c, presentation_occasions.c
    row = conn.execute(
        sa.select(o.kind, o.starts_at, o.place).join(presentation_occasions, o.occasion_id == b.occasion_id)
        .where(b.student_id == student_id, b.status == "held").order_by(o.starts_at.desc()).limit(1)
    ).first()
    return None if row is None else dict(row._mapping)


def revoked_in(conn: sa.Connection, department: str) -> list[tuple[int, str | None]]:
    """(status index, revoked at) of every revoked diploma of the department: its status list."""
    rows = conn.execute(sa.select(_D.status_index, _D.revoked_at)
                        .where(_D.department == department, _D.status == "revoked")).all()
    return [(int(r.status_index), r.revoked_at) for r in rows]
