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

PROJECTION = Projection("statistics_facts", (facts,), {t: _writer(facts) for t in _INTAKE_TYPES})
OWN = Projection("statistics_own_facts", (own_facts,), {t: _writer(own_facts) for t in _OWN_TYPES})


def facts_as_of(conn: sa.Connection, as_of: object, departments: list[str] | None) -> list[stats.Fact]:
    """Every fact dated on or before `as_of` (of `departments`, or all), both sources."""
    out: list[stats.Fact] = []
    for table in (facts, own_facts):
        q = sa.select(table).where(table.c.business_date <= as_of)
        if departments is not None:
            q = q.where(table.c.department.in_(departments))
        for r in conn.execute(q):
            out.append(stats.Fact(r.student_id, r.department, r.kind, r.business_date, r.position,
                                  r.ref, r.setting, r.country))
    return out
