"""The mails to staff that no single event causes: an assessor's overdue reviews and a
coordinator's weekly digest (docs/mail.md). Each is ONE outbox message keyed by its recipient and
a date bucket, so a retried task, two beat processes or a worker killed mid-run enqueue it once:

- `overdue-reviews:<assessor account>:<milestone date>` — a review is due `review_days` (the
  department's rule set) after the later of its assignment and the submission of the report's
  current round; from the day after, it is overdue. An assessor is mailed on the first day one of
  their reviews is overdue and again every `OVERDUE_EVERY_DAYS` days while it is, one mail listing
  all their overdue reviews (the milestone of the review that most recently reached one names the
  bucket, so a missed daily run still sends it the next day, and never twice).
- `digest:<coordinator account>:<ISO week>` — Monday morning (Lund), per department the account
  coordinates: reports waiting for an assessor, reviews overdue, reports whose reviews disagree
  and wait for the coordinator's decision, students whose deadline falls in the next
  `DIGEST_HORIZON_DAYS` days, and deregistrations and new registrations of the past seven days;
  counts and links only (no student names: the pages they link to show those, with their
  access rules and audit). A coordinator with nothing to report gets no digest that week.

The decisions (due dates, buckets, keys, "anything to say") are pure functions below; the
`remind_overdue_reviews` and `send_digests` services read the read models (indexed queries) and
the identity accounts (an erased, disabled or address-less account gets nothing), and enqueue.
"Today" is the date in Lund by the injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from assessment_service import queue_queries
from assessment_service.notifications import DEFAULT_LOCALE, LOCALES, Enqueue, Links, Notice, ReadModelRecipients
from shared.catalogue import Catalogue, Department

log = logging.getLogger(__name__)

LOCAL = ZoneInfo("Europe/Stockholm")
#: While a review stays overdue, its assessor is reminded again this many days after the last time.
OVERDUE_EVERY_DAYS = 7
#: The digest counts the students whose deadline falls within this many days from today.
DIGEST_HORIZON_DAYS = 30
#: The digest's "past week": deregistrations and registrations of the last this many days.
DIGEST_PAST_DAYS = 7


# -- the pure rules ------------------------------------------------------------------------------
def local_date(instant: str | datetime) -> date:
    """The date in Lund of an ISO instant (naive: UTC)."""
    moment = instant if isinstance(instant, datetime) else datetime.fromisoformat(instant)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LOCAL).date()


def review_due(assigned_at: str | datetime, review_days: int, round_since: str | datetime | None = None) -> date:
    """The day a review is due: `review_days` after the later of the assignment and the submission
    of the round under review (a resubmission gives the assessor the full period again)."""
    start = local_date(assigned_at)
    if round_since is not None:
        start = max(start, local_date(round_since))
    return start + timedelta(days=review_days)


def start_of_day(day: date) -> str:
    """Midnight in Lund at the start of `day`, as an ISO instant in UTC (what read models store)."""
    return datetime.combine(day, time(0), LOCAL).astimezone(UTC).isoformat()


def overdue_milestone(due: date, today: date) -> date | None:
    """The latest day on or before `today` on which a review due on `due` calls for a reminder:
    the first day overdue, then every OVERDUE_EVERY_DAYS days. None while it is not overdue."""
    late = (today - due).days
    if late < 1:
        return None
    return due + timedelta(days=1 + OVERDUE_EVERY_DAYS * ((late - 1) // OVERDUE_EVERY_DAYS))


def overdue_key(assessor_account_id: str, dues: Iterable[date], today: date) -> str | None:
    """The outbox key of the assessor's reminder today, or None if nothing of theirs is overdue.
    The same until one of their reviews reaches a new milestone: one mail per milestone."""
    milestones = [m for due in dues if (m := overdue_milestone(due, today)) is not None]
    if not milestones:
        return None
    return f"overdue-reviews:{assessor_account_id}:{max(milestones).isoformat()}"


def iso_week(day: date) -> str:
    """"2026-W49"."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def digest_key(account_id: str, today: date) -> str:
    return f"digest:{account_id}:{iso_week(today)}"


@dataclass(frozen=True)
class DepartmentDigest:
    """What one department's part of a digest counts."""

    code: str
    waiting: int
    overdue: int
    disagreements: int
    deadlines_soon: int
    deregistered: int
    registered: int

    @property
    def empty(self) -> bool:
        return not (self.waiting or self.overdue or self.disagreements or self.deadlines_soon
                    or self.deregistered or self.registered)


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Staff:
    """A member of staff who can be mailed: an account that is neither disabled nor erased and has
    an address, with the departments of the role asked for."""

    account_id: str
    name: str | None
    email: str
    departments: frozenset[str]


def staff_with_role(identity_engine: sa.Engine, role: str) -> dict[str, Staff]:
    """Every mailable account holding `role` (e.g. "coordinator"), with its departments."""
    from shared.identity.sql_store import accounts, role_grants

    found: dict[str, tuple[str | None, str, set[str]]] = {}
    with identity_engine.connect() as conn:
        rows = conn.execute(
            sa.select(accounts.c.id, accounts.c.display_name, accounts.c.email, role_grants.c.department)
            .select_from(role_grants.join(accounts, accounts.c.id == role_grants.c.account_id))
            .where(role_grants.c.role == role, accounts.c.disabled.is_(False), accounts.c.erased_at.is_(None),
                   accounts.c.email.is_not(None))
            .order_by(accounts.c.id)
        ).all()
    for row in rows:
        if row.department and row.email:
            found.setdefault(row.id, (row.display_name, row.email, set()))[2].add(row.department)
    return {a: Staff(a, name, email, frozenset(depts)) for a, (name, email, depts) in found.items()}


def overdue_reviews(conn: sa.Connection, dept: Department, today: date) -> list[dict[str, Any]]:
    """The department's open reviews past their due date, each with `due` and `days_overdue`.
    Reads the assignments started before `today - review_days` (an index range), not every one."""
    cutoff = start_of_day(today - timedelta(days=dept.review_days))
    out = []
    for row in queue_queries.reviews_not_given(conn, dept.code, started_before=cutoff):
        due = review_due(row["assigned_at"], dept.review_days, row["round_since"])
        if due < today:
            out.append({**row, "due": due, "days_overdue": (today - due).days})
    return out


def my_reviews_due(
    conn: sa.Connection, catalogue: Catalogue, account_id: str, departments: Iterable[str],
) -> dict[str, date]:
    """When each review the assessor still has to give (in `departments`) is due, by report id:
    what the review queue shows them beside their assignments."""
    out: dict[str, date] = {}
    for code in sorted(set(departments)):
        dept = catalogue.department(code)
        if dept is None:
            continue
        for row in queue_queries.reviews_not_given(conn, code, assessor=account_id):
            out[row["report_id"]] = review_due(row["assigned_at"], dept.review_days, row["round_since"])
    return out


def _department_name(catalogue: Catalogue, code: str) -> dict[str, str]:
    dept = catalogue.department(code)
    return {"en": dept.name.en, "sv": dept.name.sv or dept.name.en} if dept else {"en": code, "sv": code}


def _send(enqueue: Enqueue, notice: Notice, recipients: ReadModelRecipients | None = None) -> bool:
    """Enqueue `notice` in its recipient's language (their choice, else English)."""
    if recipients is not None:
        chosen = recipients.locale(notice.subject_id)
        notice = replace(notice, locale=chosen if chosen in LOCALES else DEFAULT_LOCALE)
    try:
        return enqueue(notice)
    except ValueError as exc:  # an address the outbox refuses: skip it, never retry it forever
        log.warning("staff mail refused: %s", exc, extra={"key": notice.key, "template": notice.template})
        return False


# -- the services --------------------------------------------------------------------------------
def remind_overdue_reviews(
    conn: sa.Connection, catalogue: Catalogue, today: date, identity_engine: sa.Engine | None,
    enqueue: Enqueue, links: Links,
) -> int:
    """Enqueue one reminder per assessor with overdue reviews whose bucket has no mail yet; answer
    how many new outbox rows. Reviews of an assessor in several departments share one mail."""
    by_assessor: dict[str, list[dict[str, Any]]] = {}
    for code in sorted(catalogue.departments):
        dept = catalogue.departments[code]
        for row in overdue_reviews(conn, dept, today):
            by_assessor.setdefault(row["assessor_account_id"], []).append(row)
    if not by_assessor or identity_engine is None:
        return 0
    recipients = ReadModelRecipients(identity_engine)
    added = 0
    for assessor, rows in sorted(by_assessor.items()):
        key = overdue_key(assessor, [r["due"] for r in rows], today)
        if key is None:
            continue
        found = recipients.account(assessor)
        if found is None:  # erased, disabled or without an address
            continue
        name, address = found
        rows.sort(key=lambda r: (r["due"], r["report_id"]))
        departments = {r["department"] for r in rows}
        reviews = [{
            "department": r["department"], "department_name": _department_name(catalogue, r["department"]),
            "round": r["round"], "due": r["due"].isoformat(), "days_overdue": r["days_overdue"],
            "review_url": links.report(r["report_id"]),
        } for r in rows]
        added += _send(enqueue, Notice(
            key, "reviews_overdue", address, name, DEFAULT_LOCALE,
            {"name": name or "", "reviews": reviews, "queue_url": f"{links.assessment_url}/queue?assessor=me"},
            assessor, next(iter(departments)) if len(departments) == 1 else None,
        ), recipients)
    return added


def department_digest(conn: sa.Connection, dept: Department, today: date) -> DepartmentDigest:
    """The counts of one department's part of the digest (indexed reads)."""
    from assessment_service.projections.deadlines import deadlines
    from assessment_service.projections.students import students

    horizon = (today + timedelta(days=DIGEST_HORIZON_DAYS)).isoformat()
    since = start_of_day(today - timedelta(days=DIGEST_PAST_DAYS))
    soon = conn.execute(
        sa.select(sa.func.count()).select_from(deadlines).where(
            deadlines.c.department == dept.code, deadlines.c.deadline >= today.isoformat(),
            deadlines.c.deadline <= horizon, deadlines.c.deregistered.is_(False), deadlines.c.approved.is_(False))
    ).scalar_one()
    deregistered = conn.execute(
        sa.select(sa.func.count()).select_from(deadlines).where(
            deadlines.c.department == dept.code, deadlines.c.deregistered.is_(True), deadlines.c.changed_at >= since)
    ).scalar_one()
    registered = conn.execute(
        sa.select(sa.func.count()).select_from(students).where(
            students.c.department == dept.code, students.c.registered_at >= since)
    ).scalar_one()
    disagreements = (len(queue_queries.disagreements(conn, dept.code))
                     if dept.on_disagreement == "coordinator" else 0)
    return DepartmentDigest(
        dept.code, queue_queries.waiting_for_assignment(conn, dept.code), len(overdue_reviews(conn, dept, today)),
        disagreements, int(soon), int(deregistered), int(registered),
    )


def send_digests(
    conn: sa.Connection, catalogue: Catalogue, today: date, coordinators: Mapping[str, Staff],
    enqueue: Enqueue, links: Links, identity_engine: sa.Engine | None = None,
) -> int:
    """Enqueue this ISO week's digest of each coordinator with something to report; answer how
    many new outbox rows (a second run in the same week: 0)."""
    parts: dict[str, DepartmentDigest] = {}
    recipients = ReadModelRecipients(identity_engine) if identity_engine is not None else None
    added = 0
    for staff in sorted(coordinators.values(), key=lambda s: s.account_id):
        codes: Sequence[str] = sorted(c for c in staff.departments if catalogue.department(c) is not None)
        for code in codes:
            if code not in parts:
                dept = catalogue.department(code)
                assert dept is not None
                parts[code] = department_digest(conn, dept, today)
        wanted = [parts[c] for c in codes if not parts[c].empty]
        if not wanted:
            continue  # nothing to report: no mail this week
        base = links.assessment_url
        added += _send(enqueue, Notice(
            digest_key(staff.account_id, today), "coordinator_digest", staff.email, staff.name, DEFAULT_LOCALE,
            {"name": staff.name or "", "week": iso_week(today), "since": (today - timedelta(days=DIGEST_PAST_DAYS))
             .isoformat(), "horizon_days": DIGEST_HORIZON_DAYS, "departments": [{
                 "code": p.code, "department_name": _department_name(catalogue, p.code), "waiting": p.waiting,
                 "overdue": p.overdue, "disagreements": p.disagreements, "deadlines_soon": p.deadlines_soon,
                 "deregistered": p.deregistered, "registered": p.registered,
             } for p in wanted],
             "queue_url": f"{base}/queue?state=waiting", "agenda_url": f"{base}/agenda",
             "deadlines_url": f"{base}/deadlines?show=close",
             "deregistered_url": f"{base}/deadlines?show=deregistered"},
            staff.account_id, wanted[0].code if len(wanted) == 1 else None,
        ), recipients)
    return added
