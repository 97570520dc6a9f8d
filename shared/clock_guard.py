"""The clock guard: date-driven work refuses a date that jumped far ahead of its last run.

The scheduled jobs that act on "today" (retention's disposal, the deadline sweep's reminders and
deregistrations, the overdue-review mails, the coordinators' digests) do what is due *by the
date*. A clock set wrongly forward (a bad NTP answer, a restored VM with a wrong RTC, a typo in a
test clock) would make them erase, deregister and mail in one run what is due weeks from now,
and none of that can be taken back. So each such job first asks `ClockGuard.admit(job, today)`:

- the first run ever, or a date at most `max_jump_days` after the latest date any guarded job
  ran on (or an operator accepted), is admitted; the job runs and `record(job, today)` stores
  the date;
- a date further ahead is *held*: the job does nothing, the hold is stored on the job's row
  (shown on the staff outbox page and as the `cim_clock_guard_held` metric) and logged, until an
  operator confirms the jump (`python -m assessment_service.cli clock confirm --operator WHO`),
  which accepts the held dates; the next run acts;
- a date *before* the last run (the clock went back) is admitted and leaves the stored date
  where it was: every guarded job is idempotent by its own keys (the deadline streams' versions,
  the outbox keys of recipient + date bucket, retention's "already disposed of" candidates), so
  running a day again sends and records nothing new (tests/unit/test_clock_guard.py shows it).

The reference is the latest date over *all* guarded jobs, not the job's own: the digest runs once
a week, but the daily jobs keep the reference within a day of today. The table lives in the
identity database (CIM_IDENTITY_DB_URL), beside the outbox: the one database both apps and the
workers share, so the worker that refuses, the page that shows it and the command that confirms
it see the same rows. Dates are Lund dates (the deadlines' days)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from shared.adapters.sql import make_engine, write_lock_for
from shared.clock import Clock, SystemClock

log = logging.getLogger(__name__)

LOCAL = ZoneInfo("Europe/Stockholm")

#: The guarded jobs (their beat entries: workers/schedule.py).
RETENTION = "dispose-due-records"
SWEEP_DEADLINES = "sweep-deadlines"
OVERDUE_REVIEWS = "remind-overdue-reviews"
DIGESTS = "send-coordinator-digests"
JOBS = (RETENTION, SWEEP_DEADLINES, OVERDUE_REVIEWS, DIGESTS)

DEFAULT_MAX_JUMP_DAYS = 3

guard_metadata = sa.MetaData()

clock_guard = sa.Table(
    "clock_guard",
    guard_metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("last_date", sa.Date, nullable=True),  # the latest Lund date the job acted on
    sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("held_date", sa.Date, nullable=True),  # the date it refused (NULL: not held)
    sa.Column("held_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("accepted_date", sa.Date, nullable=True),  # a held date an operator confirmed
    sa.Column("accepted_by", sa.String(200), nullable=True),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class Verdict:
    job: str
    today: date
    #: The latest date a guarded job ran on or an operator accepted (None: never ran).
    reference: date | None
    admitted: bool

    @property
    def days_ahead(self) -> int | None:
        return None if self.reference is None else (self.today - self.reference).days


@dataclass(frozen=True)
class Hold:
    job: str
    held_date: date
    held_at: datetime | None
    reference: date | None


def local_date(moment: datetime) -> date:
    """The Lund date of a tz-aware moment."""
    return moment.astimezone(LOCAL).date()


class ClockGuard:
    """The guard's table over one engine (the identity database)."""

    def __init__(self, engine: sa.Engine, *, max_jump_days: int = DEFAULT_MAX_JUMP_DAYS,
                 clock: Clock | None = None) -> None:
        if max_jump_days < 1:
            raise ValueError("max_jump_days must be at least 1")
        self.engine = engine
        self.max_jump_days = max_jump_days
        self.clock = clock or SystemClock()
        self._lock = write_lock_for(str(engine.url.render_as_string(hide_password=False)))

    @classmethod
    def from_url(cls, url: str, *, max_jump_days: int = DEFAULT_MAX_JUMP_DAYS,
                 clock: Clock | None = None) -> ClockGuard:
        guard = cls(make_engine(url, immediate=True, pool_size=2), max_jump_days=max_jump_days, clock=clock)
        guard.create_schema()
        return guard

    def create_schema(self) -> None:
        guard_metadata.create_all(self.engine)

    def today(self) -> date:
        return local_date(self.clock.now())

    # -- the jobs' side ----------------------------------------------------------------------------
    def admit(self, job: str, today: date | None = None) -> Verdict:
        """May `job` act on `today` (default: the clock's Lund date)? A refusal is stored as a
        hold on the job's row and logged; the caller then does nothing."""
        today = today or self.today()
        with self._lock, self.engine.begin() as conn:
            reference = _reference(conn)
            if reference is None or (today - reference).days <= self.max_jump_days:
                if reference is not None and today < reference:
                    log.warning("clock guard: %s runs on %s, before the last run on %s (the clock went back); "
                                "its keys keep it from repeating anything", job, today, reference,
                                extra={"job": job, "today": today.isoformat(), "last_run": reference.isoformat()})
                return Verdict(job, today, reference, admitted=True)
            _upsert(conn, job, held_date=today, held_at=self.clock.now())
        verdict = Verdict(job, today, reference, admitted=False)
        log.error(
            "clock guard: refusing %s on %s: %s days after the last run on %s (limit %s, CIM_CLOCK_JUMP_DAYS); "
            "if the date is right, confirm with `python -m assessment_service.cli clock confirm --operator WHO`",
            job, today, verdict.days_ahead, reference, self.max_jump_days,
            extra={"job": job, "today": today.isoformat(), "last_run": reference.isoformat(),
                   "days_ahead": verdict.days_ahead, "limit_days": self.max_jump_days},
        )
        return verdict

    def record(self, job: str, today: date) -> None:
        """`job` acted on `today`: store it (never moving the date back) and clear its hold."""
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(sa.select(clock_guard.c.last_date).where(clock_guard.c.job == job)).first()
            last = today if row is None or row.last_date is None else max(row.last_date, today)
            _upsert(conn, job, last_date=last, last_run_at=self.clock.now(), held_date=None, held_at=None)

    # -- the operator's side -----------------------------------------------------------------------
    def holds(self) -> list[Hold]:
        with self.engine.connect() as conn:
            reference = _reference(conn)
            rows = conn.execute(sa.select(clock_guard).where(clock_guard.c.held_date.is_not(None))
                                .order_by(clock_guard.c.job)).all()
        return [Hold(r.job, r.held_date, r.held_at, reference) for r in rows]

    def status(self) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(clock_guard).order_by(clock_guard.c.job)).all())

    def confirm(self, operator: str) -> list[Hold]:
        """Accept every held date (the operator checked the clock is right): the held jobs act
        on their next run. Returns what was confirmed (empty: nothing was held)."""
        if not operator.strip():
            raise ValueError("say who confirms (the operator)")
        now = self.clock.now()
        with self._lock, self.engine.begin() as conn:
            reference = _reference(conn)
            rows = conn.execute(sa.select(clock_guard).where(clock_guard.c.held_date.is_not(None))).all()
            for r in rows:
                _upsert(conn, r.job, accepted_date=r.held_date, accepted_by=operator.strip()[:200],
                        accepted_at=now, held_date=None, held_at=None)
        confirmed = [Hold(r.job, r.held_date, r.held_at, reference) for r in rows]
        for hold in confirmed:
            log.warning("clock guard: %s confirmed the jump of %s to %s (last run %s)", operator, hold.job,
                        hold.held_date, reference, extra={"job": hold.job, "operator": operator})
        return confirmed


def _reference(conn: sa.Connection) -> date | None:
    row = conn.execute(sa.select(sa.func.max(clock_guard.c.last_date), sa.func.max(clock_guard.c.accepted_date))).one()
    found = [d for d in row if d is not None]
    return max(found) if found else None


def _upsert(conn: sa.Connection, job: str, **values: object) -> None:
    updated = conn.execute(sa.update(clock_guard).where(clock_guard.c.job == job).values(**values))
    if not updated.rowcount:
        conn.execute(sa.insert(clock_guard).values(job=job, **values))
