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
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import orjson
import sqlalchemy as sa

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
              "DiplomaIssued", "DiplomaRevoked", "RegistrationVoided",
              "RegistrationVoidUndone",
              "HistoryImported")  # the historical import (assessment_service/history_import.py)



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
#: Days from registration to the first diploma, one row per student and span of dates in which it
#: counts (the median as of D is over the rows with since <= D < until).
gaps = sa.Table(
    "statistics_gaps",
    metadata,
    sa.Column("student_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("department", sa.String(64), nullable=False),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("since", sa.Date, nullable=False),
    sa.Column("until", sa.Date, nullable=True),
    sa.Index("ix_statistics_gaps_since", "since", "until", "department", "days"),  # covering the median's read
)
counted = sa.Table(
    "statistics_counted",
    metadata,
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
_REFRESH_LOCK_KEY = 0x43494D15  # "CIM" + issue 15
CACHE_TABLES = (counts, student_counts, gaps, counted)


def _periods(day: date) -> tuple[tuple[str, date], ...]:
    return (("y", date(day.year, 1, 1)), ("m", date(day.year, day.month, 1)), ("d", day))


def _changes(items: list[stats.Fact]) -> tuple[list[list[Any]], list[tuple[str, int, date, date | None]]]:
    """A student's changes as stored: [basis, day, department, key, n], by business date ("b", no
    gaps) and the corrections to them as known on each date ("k", only where a fact was recorded
    after its business date); and their gap spans (department, days, since, until)."""
    business = stats.timeline(items)
    out: list[list[Any]] = []
    spans: dict[tuple[str, str], list[tuple[date, int]]] = defaultdict(list)
    for day, change in business:
        for (dep, key), n in change.items():
            if key.startswith("gap:"):
                spans[(dep, key)].append((day, n))
            else:
                out.append(["b", day.isoformat(), dep, key, n])
    if any(stats.known_date(f) != f.on for f in items):
        correction: Counter[tuple[date, str, str]] = Counter()
        for day, change in stats.timeline(items, known=True):
            for (dep, key), n in change.items():
                correction[(day, dep, key)] += n
        for day, change in business:
            for (dep, key), n in change.items():
                correction[(day, dep, key)] -= n
        out.extend(["k", day.isoformat(), dep, key, n] for (day, dep, key), n in sorted(correction.items()) if n)
    rows: list[tuple[str, int, date, date | None]] = []
    for (dep, key), steps in spans.items():
        level, since = 0, None
        for day, n in steps:  # a student counts a gap at most once at a time: 0 -> 1 -> 0 ...
            level += n
            if level > 0 and since is None:
                since = day
            elif level <= 0 and since is not None:
                rows.append((dep, int(key[4:]), since, day))
                since = None
        if since is not None:
            rows.append((dep, int(key[4:]), since, None))
    return out, rows


_UPSERT = ("INSERT INTO statistics_counts (basis, grain, period, department, key, n) VALUES ({p}) "
           "ON CONFLICT (basis, grain, period, department, key) DO UPDATE SET n = statistics_counts.n + excluded.n")


def _add(conn: sa.Connection, total: Counter[tuple[str, str, date, str, str]]) -> None:
    marker = "?" if conn.dialect.name == "sqlite" else "%s"
    rows = [(b, g, p if conn.dialect.name != "sqlite" else p.isoformat(), dep, key, n)
            for (b, g, p, dep, key), n in total.items() if n]
    statement = _UPSERT.format(p=", ".join([marker] * 6))
    for start in range(0, len(rows), 10_000):
        conn.exec_driver_sql(statement, rows[start:start + 10_000])


def _recount_students(conn: sa.Connection, students: list[str]) -> None:
    total: Counter[tuple[str, str, date, str, str]] = Counter()
    for start in range(0, len(students), 1000):
        chunk = students[start:start + 1000]
        by_student: dict[str, list[stats.Fact]] = defaultdict(list)
        for table in (facts, own_facts):
            for r in conn.execute(sa.select(table).where(table.c.student_id.in_(chunk))):
                by_student[r.student_id].append(_fact(r))
        old = {r.student_id: orjson.loads(r.changes) for r in conn.execute(
            sa.select(student_counts).where(student_counts.c.student_id.in_(chunk)))}
        stored: list[dict[str, Any]] = []
        spans: list[dict[str, Any]] = []
        for sid in chunk:
            for basis, day, dep, key, n in old.get(sid, ()):
                for grain, period in _periods(date.fromisoformat(day)):
                    total[(basis, grain, period, dep, key)] -= n
            new, student_spans = _changes(by_student.get(sid, []))
            for basis, day, dep, key, n in new:
                on = date.fromisoformat(day)
                for grain, period in _periods(on):
                    total[(basis, grain, period, dep, key)] += n
            stored.append({"student_id": sid, "changes": orjson.dumps(new).decode()})
            spans.extend({"student_id": sid, "seq": seq, "department": dep, "days": days, "since": since,
                          "until": until} for seq, (dep, days, since, until) in enumerate(student_spans))
        if old:
            conn.execute(student_counts.delete().where(student_counts.c.student_id.in_(list(old))))
        conn.execute(gaps.delete().where(gaps.c.student_id.in_(chunk)))
        conn.execute(student_counts.insert(), stored)
        if spans:
            conn.execute(gaps.insert(), spans)
    _add(conn, total)


def refresh(conn: sa.Connection) -> int:
    """Bring the counts up to date with the facts tables (in `conn`'s transaction): recount the
    students with facts past the positions counted. Returns how many students were recounted."""
    if conn.dialect.name == "postgresql":  # one refresh at a time (SQLite: BEGIN IMMEDIATE does it)
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_REFRESH_LOCK_KEY})")
    marks = {r.source: r.position for r in conn.execute(sa.select(counted))}
    heads: dict[str, int] = {}
    students: set[str] = set()
    for table in (facts, own_facts):
        mark = marks.get(table.name, 0)
        if (conn.execute(sa.select(sa.func.max(table.c.position))).scalar() or 0) <= mark:
            continue
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


def _summed(conn: sa.Connection, basis: str, as_of: date, departments: list[str] | None,
            out: Counter[tuple[str, str]]) -> None:
    """Add to `out` the rows of `basis` as of the end of `as_of`: the years before its year, the
    months of its year before its month, the days of its month up to it."""
    year, month = date(as_of.year, 1, 1), date(as_of.year, as_of.month, 1)
    c = counts.c
    for grain, low, high in (("y", None, year), ("m", year, month), ("d", month, None)):
        q = sa.select(c.department, c.key, sa.func.sum(c.n)).where(c.basis == basis, c.grain == grain)
        q = q.where(c.period >= low) if low is not None else q
        q = q.where(c.period < high) if high is not None else q.where(c.period <= as_of)
        if departments is not None:
            q = q.where(c.department.in_(departments))
        for dep, key, n in conn.execute(q.group_by(c.department, c.key)):
            out[(dep, key)] += int(n)


def counts_as_of(conn: sa.Connection, as_of: date, departments: list[str] | None,
                 basis: str = "b", *, gaps_by_department: bool = False) -> dict[tuple[str, str], int]:
    """The summed contributions as of the end of `as_of`: (department, key) -> count, by business
    date ("b", with the gaps), or what was known on that date ("k"). The gaps (for the median)
    come under the department "*" (those asked, together) unless `gaps_by_department` (for
    figures of a part of them, e.g. a faculty)."""
    out: Counter[tuple[str, str]] = Counter()
    _summed(conn, "b", as_of, departments, out)
    g = gaps.c
    q = sa.select(g.department if gaps_by_department else sa.literal(stats.ANY_DEPARTMENT), g.days, sa.func.count())
    q = q.where(g.since <= as_of, sa.or_(g.until.is_(None), g.until > as_of))
    if departments is not None:
        q = q.where(g.department.in_(departments))
    grouped = (g.department, g.days) if gaps_by_department else (g.days,)
    for dep, days, n in conn.execute(q.group_by(*grouped)):
        out[(dep, f"gap:{days}")] += int(n)
    if basis == "k":
        out.update(corrections_as_of(conn, as_of, departments))
    return {k: n for k, n in out.items() if n}


def corrections_as_of(conn: sa.Connection, as_of: date, departments: list[str] | None) -> Counter[tuple[str, str]]:
    """What to add to the counts by business date as of `as_of` to get what was known then."""
    out: Counter[tuple[str, str]] = Counter()
    _summed(conn, "k", as_of, departments, out)
    return Counter({k: n for k, n in out.items() if n})


def figures_as_of(engine: sa.Engine, reader: sa.Engine, as_of: date, departments: list[str] | None) -> stats.Figures:
    """The figures as of `as_of` by business date, with what was known on that date beside them
    (`Figures.known`): the counts brought up to date (`engine`), then read (`reader`)."""
    return figures_and_counts(engine, reader, as_of, departments)[0]


def figures_and_counts(engine: sa.Engine, reader: sa.Engine, as_of: date, departments: list[str] | None, *,
                       gaps_by_department: bool = False) -> tuple[stats.Figures, dict[tuple[str, str], int]]:
    """`figures_as_of` and the counts by business date it was made from (`counts_as_of`), for
    figures of parts of the departments (e.g. faculties) with `gaps_by_department`."""
    with engine.begin() as conn:
        refresh(conn)
    with reader.connect() as conn:
        counted = counts_as_of(conn, as_of, departments, gaps_by_department=gaps_by_department)
        business = Counter(counted)
        result = stats.from_counts(business, as_of, departments)
        corrections = corrections_as_of(conn, as_of, departments)
        business.update(corrections)
        result.known = stats.from_counts(business, as_of, departments) if corrections else replace(result)
    return result, counted


PROJECTION = Projection("statistics_facts", (facts,), {t: _writer(facts) for t in _INTAKE_TYPES})
#: The counts travel with the own facts: rebuilding them leaves the counts empty, and the next
#: `refresh` makes them again from the facts tables.
OWN = Projection("statistics_own_facts", (own_facts, *CACHE_TABLES), {t: _writer(own_facts) for t in _OWN_TYPES})
