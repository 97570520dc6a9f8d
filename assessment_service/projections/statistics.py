"""Read models `statistics_facts` and `statistics_own_facts`: one row per happening the figures
count (assessment_service/statistics.py), with its business date, so "CIM in numbers" as of a date
D selects only the rows dated up to D (indexed) and never reads current state.

`statistics_facts` is projected from the intake feed (registrations, activities, reports,
withdrawals); its rows other than the registration take the student's department from their
registration. `statistics_own_facts` is projected from the assessment service's own store
(approvals, presentations held, deregistrations and reinstatements, diplomas issued and revoked,
registrations voided).
Rows hold ids, dates, a setting and a country code: nothing that names a person. Rebuilding
from position 0 gives the same rows (each row is keyed by the event's position).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from assessment_service import statistics as stats
from assessment_service.projections.base import metadata
from shared.events import RecordedEvent
from shared.projection import Handler, Projection


def _table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("position", sa.BigInteger, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("student_id", sa.String(36), nullable=False),
        sa.Column("department", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("ref", sa.String(36), nullable=True),
        sa.Column("setting", sa.String(16), nullable=True),
        sa.Column("country", sa.String(8), nullable=True),
        sa.Index(f"ix_{name}_department_date", "department", "business_date"),
        sa.Index(f"ix_{name}_date", "business_date"),
        sa.Index(f"ix_{name}_student", "student_id"),
    )


facts = _table("statistics_facts")
own_facts = _table("statistics_own_facts")


def _writer(table: sa.Table) -> Handler:
    def on_event(conn: sa.Connection, event: RecordedEvent) -> None:
        for seq, fact in enumerate(stats.facts_of(event)):
            department = fact.department
            if department is None:
                department = conn.execute(sa.select(facts.c.department).where(
                    facts.c.student_id == fact.student_id, facts.c.kind == stats.REGISTERED,
                ).order_by(facts.c.position).limit(1)).scalar()
            conn.execute(table.insert().values(
                position=event.position, seq=seq, student_id=fact.student_id, department=department,
                kind=fact.kind, business_date=fact.on, recorded_at=event.recorded_at.isoformat(),
                ref=fact.ref, setting=fact.setting, country=fact.country,
            ))
    return on_event


_INTAKE_TYPES = ("StudentRegistered", "ActivityLogged", "ActivityAmended", "ActivityWithdrawn",
                 "ReportSubmitted", "ReportResubmitted", "RegistrationWithdrawn")
_OWN_TYPES = ("ReportApproved", "PresentationHeld", "StudentDeregistered", "StudentReinstated",
              "DiplomaIssued", "DiplomaRevoked", "RegistrationVoided")



def _fact(r: Any) -> stats.Fact:
    recorded = stats.business_date(datetime.fromisoformat(r.recorded_at)) if r.recorded_at else None
    return stats.Fact(r.student_id, r.department, r.kind, r.business_date, r.position, r.ref, r.setting, r.country,
                      recorded)


def facts_as_of(conn: sa.Connection, as_of: object, departments: list[str] | None) -> list[stats.Fact]:
    """Every fact dated on or before `as_of` (of `departments`, or all), both sources."""
    out: list[stats.Fact] = []
    for table in (facts, own_facts):
        q = sa.select(table).where(table.c.business_date <= as_of)
        if departments is not None:
            q = q.where(table.c.department.in_(departments))
        out.extend(_fact(r) for r in conn.execute(q))
    return out


# -- the summed counts: what the page reads ----------------------------------------------------------
#
# Each student's contribution to the figures changes only on the dates of their facts
# (`stats.timeline`). The changes are summed per department, key and period at three grains:
# the year, the month and the day of the change. The figures as of D are then the sum of the
# years before D's year, the months of D's year before D's month, and the days of D's month up to
# D: at most 10 + 11 + 31 periods of rows, whatever the size of the history. Two bases: "b" by
# business date, "k" by the date each fact was known (recorded). The changes a student has added
# are kept (`statistics_students`) so that a new fact of theirs takes them back out and adds the
# new ones; `statistics_counted` holds, per facts table, the last position counted.
#
# The counts are a cache of the facts tables, not a projection of a feed: they need both tables
# (a student's funnel spans both services' events), so `refresh` brings them up to date with the
# facts, within the transaction it is given (the page calls it before reading). Rebuilding a facts
# table gives the same rows at the same positions, so the counts stay right; `recount` makes them
# again from nothing (tested equal to the counts kept up as facts arrive).

counts = sa.Table(
    "statistics_counts",
    metadata,
    sa.Column("basis", sa.String(1), primary_key=True),
    sa.Column("grain", sa.String(1), primary_key=True),
    sa.Column("period", sa.Date, primary_key=True),
    sa.Column("department", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(48), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)
student_counts = sa.Table(
    "statistics_students",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("changes", sa.Text, nullable=False),
)
counted = sa.Table(
    "statistics_counted",
    metadata,
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
CACHE_TABLES = (counts, student_counts, counted)
BASES = ("b", "k")


def _periods(day: date) -> tuple[tuple[str, date], ...]:
    return (("y", date(day.year, 1, 1)), ("m", date(day.year, day.month, 1)), ("d", day))


def _changes(items: list[stats.Fact]) -> list[list[Any]]:
    """A student's changes, as stored: [basis, day, department, key, n]."""
    return [[basis, day.isoformat(), dep, key, n]
            for basis in BASES for day, change in stats.timeline(items, known=basis == "k")
            for (dep, key), n in change.items()]


def _add(conn: sa.Connection, total: Counter[tuple[str, str, date, str, str]]) -> None:
    rows = [{"basis": b, "grain": g, "period": p, "department": dep, "key": key, "n": n}
            for (b, g, p, dep, key), n in total.items() if n]
    if not rows:
        return
    insert: Any = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(counts)
    statement = insert.on_conflict_do_update(index_elements=[c.name for c in counts.primary_key.columns],
                                             set_={"n": counts.c.n + insert.excluded.n})
    for start in range(0, len(rows), 5000):
        conn.execute(statement, rows[start:start + 5000])


def _recount_students(conn: sa.Connection, students: list[str]) -> None:
    total: Counter[tuple[str, str, date, str, str]] = Counter()
    for start in range(0, len(students), 500):
        chunk = students[start:start + 500]
        by_student: dict[str, list[stats.Fact]] = defaultdict(list)
        for table in (facts, own_facts):
            for r in conn.execute(sa.select(table).where(table.c.student_id.in_(chunk))):
                by_student[r.student_id].append(_fact(r))
        old = {r.student_id: orjson.loads(r.changes) for r in conn.execute(
            sa.select(student_counts).where(student_counts.c.student_id.in_(chunk)))}
        for sid in chunk:
            for basis, day, dep, key, n in old.get(sid, ()):
                for grain, period in _periods(date.fromisoformat(day)):
                    total[(basis, grain, period, dep, key)] -= n
            new = _changes(by_student.get(sid, []))
            for basis, day, dep, key, n in new:
                for grain, period in _periods(date.fromisoformat(day)):
                    total[(basis, grain, period, dep, key)] += n
            if sid in old:
                conn.execute(student_counts.update().where(student_counts.c.student_id == sid)
                             .values(changes=orjson.dumps(new).decode()))
            else:
                conn.execute(student_counts.insert().values(student_id=sid, changes=orjson.dumps(new).decode()))
    _add(conn, total)


def refresh(conn: sa.Connection) -> int:
    """Bring the counts up to date with the facts tables (in `conn`'s transaction): recount the
    students with facts past the positions counted. Returns how many students were recounted."""
    marks = {r.source: r.position for r in conn.execute(
        sa.select(counted).with_for_update() if conn.dialect.name == "postgresql" else sa.select(counted))}
    heads: dict[str, int] = {}
    students: set[str] = set()
    for table in (facts, own_facts):
        mark = marks.get(table.name, 0)
        found = conn.execute(sa.select(table.c.student_id, sa.func.max(table.c.position))
                             .where(table.c.position > mark).group_by(table.c.student_id)).all()
        students.update(sid for sid, _ in found)
        heads[table.name] = max((p for _, p in found), default=mark)
    if not students:
        return 0
    _recount_students(conn, sorted(students))
    for name, head in heads.items():
        if name in marks:
            conn.execute(counted.update().where(counted.c.source == name).values(position=head))
        else:
            conn.execute(counted.insert().values(source=name, position=head))
    return len(students)


def recount(conn: sa.Connection) -> int:
    """Make the counts again from nothing, from the facts tables."""
    for table in CACHE_TABLES:
        conn.execute(table.delete())
    return refresh(conn)


def counts_as_of(conn: sa.Connection, as_of: date, departments: list[str] | None,
                 basis: str = "b") -> dict[tuple[str, str], int]:
    """The summed contributions as of the end of `as_of`: (department, key) -> count."""
    year, month = date(as_of.year, 1, 1), date(as_of.year, as_of.month, 1)
    c = counts.c
    parts = []
    for grain, low, high in (("y", None, year), ("m", year, month), ("d", month, None)):
        q = sa.select(c.department, c.key, c.n).where(c.basis == basis, c.grain == grain)
        q = q.where(c.period >= low) if low is not None else q
        q = q.where(c.period < high) if high is not None else q.where(c.period <= as_of)
        if departments is not None:
            q = q.where(c.department.in_(departments))
        parts.append(q)
    union = sa.union_all(*parts).subquery()
    q = sa.select(union.c.department, union.c.key, sa.func.sum(union.c.n)).group_by(union.c.department,
                                                                                       union.c.key)
    return {(dep, key): int(n) for dep, key, n in conn.execute(q) if n}


def figures_as_of(engine: sa.Engine, reader: sa.Engine, as_of: date, departments: list[str] | None) -> stats.Figures:
    """The figures as of `as_of` by business date, with what was known on that date beside them
    (`Figures.known`): the counts brought up to date (`engine`), then read (`reader`)."""
    with engine.begin() as conn:
        refresh(conn)
    with reader.connect() as conn:
        result = stats.from_counts(counts_as_of(conn, as_of, departments, "b"), as_of, departments)
        result.known = stats.from_counts(counts_as_of(conn, as_of, departments, "k"), as_of, departments)
    return result


PROJECTION = Projection("statistics_facts", (facts,), {t: _writer(facts) for t in _INTAKE_TYPES})
#: The counts travel with the own facts: rebuilding them leaves the counts empty, and the next
#: `refresh` makes them again from the facts tables.
OWN = Projection("statistics_own_facts", (own_facts, *CACHE_TABLES), {t: _writer(own_facts) for t in _OWN_TYPES})
