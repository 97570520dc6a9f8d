"""The staff mails no single event causes (assessment_service/staff_mail.py): an assessor's
overdue reviews (first day overdue, then weekly) and a coordinator's weekly digest. Who gets what,
exactly once through the real outbox, nothing for a disabled or erased account, the clock moved
across a due date; the templates in both languages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assessment_service import staff_mail
from assessment_service.notifications import Links, outbox_enqueue
from assessment_service.projections.assignments import assignments
from assessment_service.projections.base import metadata
from assessment_service.projections.deadlines import deadlines
from assessment_service.projections.reports import reports
from assessment_service.projections.review_queue import review_queue
from assessment_service.projections.review_states import review_marks, review_states
from assessment_service.projections.students import students
from shared import mail_templates
from shared.catalogue import Catalogue, CatalogueError
from shared.clock import FixedClock
from shared.config import ROOT
from shared.identity.sql_store import account_locales, accounts, identity_metadata, role_grants
from shared.outbox import Outbox

LINKS = Links("https://intake.example.org", "https://assessment.example.org", "cim@example.org")
DEPT = "SOCSW"  # review_days = 14, disagreements decided by the coordinator
OTHER = "MED"

ASSESSOR, DISABLED, ERASED, SECOND = "acct-assessor-1", "acct-assessor-2", "acct-assessor-3", "acct-assessor-4"
COORDINATOR, COORD_DISABLED, COORD_QUIET = "acct-coord-1", "acct-coord-2", "acct-coord-3"


def _uuid(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-000000000000"


#: Report -> (student, assessors assigned and when, who has reviewed round 1 and how, decided?)
R_LATE, R_REVIEWED, R_DISABLED, R_ERASED, R_DECIDED, R_WAITING, R_DISAGREE, R_LATER = (_uuid(i) for i in range(1, 9))
ASSIGNED = datetime(2027, 1, 1, 10, 0, tzinfo=UTC)  # due 15 January 2027 with 14 days
LATER = datetime(2027, 1, 10, 10, 0, tzinfo=UTC)  # due 24 January 2027


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.load(ROOT / "config" / "departments.toml")


@pytest.fixture
def reader(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'assessment.db'}")
    metadata.create_all(engine)
    student = {
        "department": DEPT, "programme": "SSASK", "expected_end_term": "VT2027", "rules": f"{DEPT}@1",
        "registered_at": "2026-09-01T08:00:00+00:00", "status": "report_submitted", "status_rank": 1,
        "status_position": 1, "status_changed_at": "2026-12-01T00:00:00+00:00", "studies_completed_on": None,
        "reports_submitted": 1, "name": "Alex Exempel", "email": "alex.exempel@example.org",
    }
    reports_ = [R_LATE, R_REVIEWED, R_DISABLED, R_ERASED, R_DECIDED, R_WAITING, R_DISAGREE, R_LATER]
    with engine.begin() as conn:
        for i, report_id in enumerate(reports_, start=1):
            sid = _uuid(100 + i)
            conn.execute(students.insert(), {**student, "student_id": sid})
            conn.execute(reports.insert(), {
                "report_id": report_id, "student_id": sid, "submitted_at": "2026-12-20T09:00:00+00:00",
                "position": i, "answers": None, "activity_ids": "[]", "rules": f"{DEPT}@1", "round": 1,
                "round_submitted_at": "2026-12-20T09:00:00+00:00"})
            conn.execute(review_queue.insert(), {
                "report_id": report_id, "student_id": sid, "submitted_at": "2026-12-20T09:00:00+00:00",
                "position": i})
        # A new registration in the week before Monday 18 January 2027, and one long ago.
        conn.execute(students.insert(), {**student, "student_id": _uuid(200),
                                         "registered_at": "2027-01-14T12:00:00+00:00"})

        def assign(report_id: str, assessor: str, at: datetime = ASSIGNED) -> None:
            sid = conn.execute(sa.select(reports.c.student_id).where(reports.c.report_id == report_id)).scalar()
            conn.execute(assignments.insert(), {"report_id": report_id, "assessor_account_id": assessor,
                                                "student_id": sid, "department": DEPT,
                                                "assigned_at": at.isoformat(), "position": 1})

        def review(report_id: str, assessor: str, recommendation: str = "approve") -> None:
            sid = conn.execute(sa.select(reports.c.student_id).where(reports.c.report_id == report_id)).scalar()
            conn.execute(review_marks.insert(), {"report_id": report_id, "assessor_account_id": assessor, "round": 1,
                                                 "student_id": sid, "department": DEPT,
                                                 "recommendation": recommendation,
                                                 "reviewed_at": "2027-01-05T10:00:00+00:00", "position": 2})

        assign(R_LATE, ASSESSOR)
        assign(R_REVIEWED, ASSESSOR)
        review(R_REVIEWED, ASSESSOR)
        assign(R_DISABLED, DISABLED)
        assign(R_ERASED, ERASED)
        assign(R_DECIDED, ASSESSOR)
        conn.execute(review_states.insert(), {
            "report_id": R_DECIDED, "student_id": _uuid(105), "department": DEPT, "decided_round": 1,
            "outcome": "approved", "decided_at": "2027-01-06T10:00:00+00:00", "position": 3})
        assign(R_DISAGREE, ASSESSOR)
        assign(R_DISAGREE, SECOND)
        review(R_DISAGREE, ASSESSOR, "approve")
        review(R_DISAGREE, SECOND, "reject")
        assign(R_LATER, SECOND, LATER)
        # Deadlines: one within 30 days of 18 January 2027, one deregistered on 14 January.
        row = {"rule_set": f"{DEPT}@1", "completed_on": "2026-06-01", "term": "VT2026", "extended": False,
               "approved": False, "reminder_days": "[60, 14, 3]", "reminded": "[]", "next_due_on": None,
               "basis_position": 1, "position": 1}
        conn.execute(deadlines.insert(), [
            {**row, "student_id": _uuid(101), "department": DEPT, "deadline": "2027-02-01", "deregistered": False,
             "changed_at": "2026-12-01T00:00:00+00:00"},
            {**row, "student_id": _uuid(102), "department": DEPT, "deadline": "2027-01-13", "deregistered": True,
             "changed_at": "2027-01-14T03:30:00+00:00"},
        ])
    return engine


@pytest.fixture
def identity(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'identity.db'}")
    identity_metadata.create_all(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    people = [
        (ASSESSOR, "Sam Granskare", "assessor", DEPT, False, None),
        (SECOND, "Robin Bedömare", "assessor", DEPT, False, None),
        (DISABLED, "Kai Avstängd", "assessor", DEPT, True, None),
        (ERASED, "Erased", "assessor", DEPT, False, now),
        (COORDINATOR, "Kim Koordinator", "coordinator", DEPT, False, None),
        (COORD_DISABLED, "Lo Avstängd", "coordinator", DEPT, True, None),
        (COORD_QUIET, "Mio Lugn", "coordinator", OTHER, False, None),
    ]
    with engine.begin() as conn:
        for account_id, name, role, dept, disabled, erased in people:
            conn.execute(accounts.insert(), {
                "id": account_id, "display_name": name, "email": f"{account_id}@example.org", "student_id": None,
                "created_at": now, "disabled": disabled, "erased_at": erased})
            conn.execute(role_grants.insert(), {"account_id": account_id, "role": role, "department": dept,
                                                "granted_at": now})
    return engine


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2027, 1, 15, 5, 0, tzinfo=UTC))


@pytest.fixture
def outbox(identity: sa.Engine, clock: FixedClock) -> Outbox:
    box = Outbox(identity, "x" * 32, clock=clock)
    box.create_schema()
    return box


def _lund_today(clock: FixedClock) -> date:
    return clock.now().astimezone(staff_mail.LOCAL).date()


def _remind(reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox) -> int:
    with reader.connect() as conn:
        return staff_mail.remind_overdue_reviews(conn, catalogue, _lund_today(clock), outbox.engine,
                                                 outbox_enqueue(outbox), LINKS)


def _digest(reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox) -> int:
    coordinators = staff_mail.staff_with_role(outbox.engine, "coordinator")
    with reader.connect() as conn:
        return staff_mail.send_digests(conn, catalogue, _lund_today(clock), coordinators, outbox_enqueue(outbox),
                                       LINKS, outbox.engine)


def test_staff_mails_are_written_in_each_person_s_chosen_language(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox, identity: sa.Engine,
) -> None:
    with identity.begin() as conn:
        for account_id in (ASSESSOR, COORDINATOR):
            conn.execute(account_locales.insert(), {"account_id": account_id, "locale": "sv",
                                                    "updated_at": datetime(2026, 6, 1, tzinfo=UTC)})
    clock.advance(timedelta(days=3))  # Monday 18 January: the reminder's milestone has passed, a digest is due
    assert _remind(reader, catalogue, clock, outbox) == 1
    assert _digest(reader, catalogue, clock, outbox) == 1
    assert {(r.template, r.locale) for r in outbox.rows()} == {("reviews_overdue", "sv"), ("coordinator_digest", "sv")}


# -- the pure rules ------------------------------------------------------------------------------
def test_a_review_is_due_review_days_after_the_later_of_assignment_and_round() -> None:
    assert staff_mail.review_due("2027-01-01T10:00:00+00:00", 14) == date(2027, 1, 15)
    # 23:30 UTC on 31 December is 00:30 on 1 January in Lund: the day counts in Lund.
    assert staff_mail.review_due("2026-12-31T23:30:00+00:00", 14) == date(2027, 1, 15)
    # A resubmission after the assignment gives the full period again.
    assert staff_mail.review_due("2027-01-01T10:00:00+00:00", 14, "2027-02-01T10:00:00+00:00") == date(2027, 2, 15)
    assert staff_mail.review_due("2027-01-01T10:00:00+00:00", 14, "2026-12-01T10:00:00+00:00") == date(2027, 1, 15)


@pytest.mark.parametrize(("days_after_due", "milestone_after_due"), [
    (-3, None), (0, None), (1, 1), (2, 1), (7, 1), (8, 8), (14, 8), (15, 15), (22, 22),
])
def test_an_overdue_review_calls_for_a_reminder_on_its_first_day_then_weekly(
    days_after_due: int, milestone_after_due: int | None,
) -> None:
    due = date(2027, 1, 15)
    got = staff_mail.overdue_milestone(due, due + timedelta(days=days_after_due))
    assert got == (None if milestone_after_due is None else due + timedelta(days=milestone_after_due))


def test_the_key_of_an_assessors_reminder_is_their_latest_milestone() -> None:
    today = date(2027, 1, 20)
    # One review due 10 January (milestones 11, 18), one due 18 January (milestone 19): the 19th.
    assert staff_mail.overdue_key("a", [date(2027, 1, 10), date(2027, 1, 18)], today) == "overdue-reviews:a:2027-01-19"
    assert staff_mail.overdue_key("a", [date(2027, 1, 20), date(2027, 1, 25)], today) is None


def test_the_digest_is_keyed_by_iso_week() -> None:
    assert staff_mail.iso_week(date(2027, 1, 4)) == "2027-W01"
    assert staff_mail.iso_week(date(2027, 1, 3)) == "2026-W53"
    assert staff_mail.digest_key("c", date(2027, 1, 18)) == staff_mail.digest_key("c", date(2027, 1, 24))
    assert staff_mail.digest_key("c", date(2027, 1, 18)) != staff_mail.digest_key("c", date(2027, 1, 25))


def test_review_days_defaults_to_14_and_is_validated(catalogue: Catalogue) -> None:
    assert catalogue.department(DEPT).review_days == 14  # type: ignore[union-attr]
    base = Catalogue.load(ROOT / "config" / "departments.toml")
    assert all(d.review_days >= 1 for d in base.departments.values())
    raw = (ROOT / "config" / "departments.toml").read_text()
    import tomllib

    body = tomllib.loads(raw)
    for bad in (0, -1, 366, "14", True):
        body["departments"][DEPT]["review_days"] = bad
        with pytest.raises(CatalogueError, match=f"departments.{DEPT}.review_days"):
            Catalogue.parse(body)
    body["departments"][DEPT]["review_days"] = 21
    assert Catalogue.parse(body).department(DEPT).review_days == 21  # type: ignore[union-attr]
    del body["departments"][DEPT]["review_days"]
    assert Catalogue.parse(body).department(DEPT).review_days == 14  # type: ignore[union-attr]


# -- overdue reviews ---------------------------------------------------------------------------------
def test_nothing_is_overdue_on_the_due_date(reader: sa.Engine, catalogue: Catalogue, clock: FixedClock,
                                            outbox: Outbox) -> None:
    assert _remind(reader, catalogue, clock, outbox) == 0  # 15 January: due today, not overdue
    assert outbox.rows() == []


def test_the_day_after_the_due_date_each_assessor_gets_one_mail_listing_their_overdue_reviews(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox,
) -> None:
    clock.advance(timedelta(days=1))  # 16 January in Lund
    assert _remind(reader, catalogue, clock, outbox) == 1
    [row] = outbox.rows()
    assert (row.template, row.to_address, row.key) == (
        "reviews_overdue", f"{ASSESSOR}@example.org", f"overdue-reviews:{ASSESSOR}:2027-01-16")
    assert row.subject_id == ASSESSOR
    assert row.department == DEPT
    assert row.context is not None
    # Only the late one: not the reviewed one, not the decided one, not the disagreement it reviewed.
    assert [(r["review_url"], r["due"], r["days_overdue"]) for r in row.context["reviews"]] == [
        (f"https://assessment.example.org/reports/{R_LATE}", "2027-01-15", 1)]
    # The disabled and the erased assessors' late reviews mail no one; SECOND's is due on the 24th.
    assert {r.to_address for r in outbox.rows()} == {f"{ASSESSOR}@example.org"}
    for locale in ("en", "sv"):
        rendered = mail_templates.render(row.template, locale, row.context)
        assert "15 January 2027" in rendered.text or "15 januari 2027" in rendered.text
        assert R_LATE in rendered.html


def test_the_reminder_goes_out_once_per_milestone_however_often_the_task_runs(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox,
) -> None:
    sent: list[str] = []
    for _day in range(16):  # 16 to 31 January, the task run twice each day (two beats)
        clock.advance(timedelta(days=1))
        _remind(reader, catalogue, clock, outbox)
        _remind(reader, catalogue, clock, outbox)
    sent = sorted(r.key for r in outbox.rows())
    assert sent == sorted([
        f"overdue-reviews:{ASSESSOR}:2027-01-16", f"overdue-reviews:{ASSESSOR}:2027-01-23",
        f"overdue-reviews:{ASSESSOR}:2027-01-30",
        f"overdue-reviews:{SECOND}:2027-01-25",  # assigned 10 January: due the 24th
    ])


def test_a_missed_day_still_sends_the_reminder_the_next_day(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox,
) -> None:
    clock.advance(timedelta(days=2))  # the run of the 16th never happened
    assert _remind(reader, catalogue, clock, outbox) == 1
    assert [r.key for r in outbox.rows()] == [f"overdue-reviews:{ASSESSOR}:2027-01-16"]


def test_a_review_given_stops_the_reminders(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox,
) -> None:
    with reader.begin() as conn:
        conn.execute(review_marks.insert(), {"report_id": R_LATE, "assessor_account_id": ASSESSOR, "round": 1,
                                             "student_id": _uuid(101), "department": DEPT,
                                             "recommendation": "approve",
                                             "reviewed_at": "2027-01-14T10:00:00+00:00", "position": 9})
    clock.advance(timedelta(days=1))
    assert _remind(reader, catalogue, clock, outbox) == 0


# -- the coordinator's digest ---------------------------------------------------------------------
def test_each_coordinator_gets_one_digest_a_week_with_what_waits(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox,
) -> None:
    clock.advance(timedelta(days=3))  # Monday 18 January 2027
    assert _digest(reader, catalogue, clock, outbox) == 1
    [row] = outbox.rows()
    assert (row.template, row.to_address, row.key) == (
        "coordinator_digest", f"{COORDINATOR}@example.org", f"digest:{COORDINATOR}:2027-W03")
    assert row.context is not None
    [part] = row.context["departments"]
    assert part == {
        "code": DEPT, "department_name": {"en": "School of Social Work", "sv": "Socialhögskolan"},
        "waiting": 1,  # R_WAITING: nobody assigned
        # R_LATE, and those of the disabled and the erased assessors: the coordinator acts on them.
        "overdue": 3,
        "disagreements": 1,  # R_DISAGREE
        "deadlines_soon": 1, "deregistered": 1, "registered": 1,
    }
    assert row.context["agenda_url"] == "https://assessment.example.org/agenda"
    for locale in ("en", "sv"):
        rendered = mail_templates.render(row.template, locale, row.context)
        assert "Alex Exempel" not in rendered.text  # counts and links, no student names
        assert "2027-W03" in rendered.subject
    # The same week again (a second beat, Wednesday after an outage): nothing new. Next Monday: one more.
    clock.advance(timedelta(days=2))
    assert _digest(reader, catalogue, clock, outbox) == 0
    clock.advance(timedelta(days=5))
    assert _digest(reader, catalogue, clock, outbox) == 1
    assert sorted(r.key for r in outbox.rows()) == [f"digest:{COORDINATOR}:2027-W03", f"digest:{COORDINATOR}:2027-W04"]


def test_no_digest_for_a_disabled_coordinator_or_one_with_nothing_to_report(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox, identity: sa.Engine,
) -> None:
    coordinators = staff_mail.staff_with_role(identity, "coordinator")
    assert set(coordinators) == {COORDINATOR, COORD_QUIET}  # the disabled one is not mailable
    clock.advance(timedelta(days=3))
    _digest(reader, catalogue, clock, outbox)
    assert {r.subject_id for r in outbox.rows()} == {COORDINATOR}  # MED has nothing: no mail


def test_staff_templates_render_their_samples_in_both_languages() -> None:
    for name in ("reviews_overdue", "coordinator_digest", "booking_cancelled"):
        en = mail_templates.render(name, "en", mail_templates.TEMPLATES[name].sample)
        sv = mail_templates.render(name, "sv", mail_templates.TEMPLATES[name].sample)
        assert en.subject != sv.subject
        assert "Socialhögskolan" in sv.text or name == "booking_cancelled"
        assert "School of Social Work" in en.text or name == "booking_cancelled"
    overdue = mail_templates.render("reviews_overdue", "sv", mail_templates.TEMPLATES["reviews_overdue"].sample)
    assert overdue.subject == "2 CIM-bedömningar är försenade"
    assert "8 dagar sen" in overdue.text
    assert "1 dag sen" in overdue.text
    one: dict[str, Any] = dict(mail_templates.TEMPLATES["reviews_overdue"].sample)
    one["reviews"] = one["reviews"][:1]
    assert mail_templates.render("reviews_overdue", "en", one).subject == "A CIM review is overdue"
    coordinator = {**mail_templates.TEMPLATES["booking_cancelled"].sample, "occasion_cancelled": False}
    assert "The coordinator has cancelled" in mail_templates.render("booking_cancelled", "en", coordinator).text
    html = mail_templates.render("booking_cancelled", "en", {**coordinator, "location": "<b>Room</b>"}).html
    assert "&lt;b&gt;Room&lt;/b&gt;" in html


# -- the workers' wiring ---------------------------------------------------------------------------
def test_the_beat_tasks_read_the_injected_clock_enqueue_once_and_kick_the_delivery_once(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, identity: sa.Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from shared.config import Settings
    from workers.tasks import projections as projection_tasks
    from workers.tasks import staff_mail as tasks

    settings = Settings(data_dir=tmp_path)  # its identity database is the `identity` fixture's file
    assert settings.identity_db_url == str(identity.url)
    ctx = SimpleNamespace(reader=reader, catalogue=catalogue, clock=clock, settings=settings)
    kicks: list[str | None] = []

    class Kick:
        def after_commit(self, correlation_id: str | None = None) -> None:
            kicks.append(correlation_id)

    monkeypatch.setattr(tasks, "assessment_context", lambda: ctx)
    monkeypatch.setattr(projection_tasks, "outbox_kick", lambda: Kick())
    assert tasks.remind_overdue_reviews() == 0  # 15 January: due today
    assert tasks.send_coordinator_digests() == 1  # a Friday: this ISO week's digest, late but once
    clock.advance(timedelta(days=1))
    assert tasks.remind_overdue_reviews() == 1
    assert tasks.remind_overdue_reviews() == 0  # the second beat
    assert tasks.send_coordinator_digests() == 0  # Saturday, the same week
    assert len(kicks) == 2
    box = Outbox(identity, settings.identity_secret)
    assert sorted(r.key for r in box.rows()) == [
        f"digest:{COORDINATOR}:2027-W02", f"overdue-reviews:{ASSESSOR}:2027-01-16"]
    assert {r.created_at for r in box.rows()} <= {datetime(2027, 1, 15, 5, 0, tzinfo=UTC),
                                                  datetime(2027, 1, 16, 5, 0, tzinfo=UTC)}  # the injected clock


def test_the_overdue_query_reads_an_index_range_not_every_assignment(reader: sa.Engine) -> None:
    from assessment_service import queue_queries

    statements: list[Any] = []
    with reader.connect() as conn:
        original = conn.execute

        def capture(statement: Any, *args: Any, **kwargs: Any) -> Any:
            statements.append(statement)
            return original(statement, *args, **kwargs)

        conn.execute = capture  # type: ignore[method-assign]
        queue_queries.reviews_not_given(conn, DEPT, started_before="2027-01-01T00:00:00+00:00")
        sql = str(statements[0].compile(dialect=reader.dialect, compile_kwargs={"literal_binds": True}))
        plan = " | ".join(str(row[3]) for row in original(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "SEARCH assignments USING INDEX ix_assignments_department_assigned (department=? AND assigned_at<?)" in plan
    assert "SCAN assignments" not in plan


def test_the_beat_tasks_hold_a_jumped_date_act_after_confirm_and_repeat_nothing_when_the_clock_goes_back(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, identity: sa.Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The clock guard (shared/clock_guard.py) on the real task adapters, with a fake clock."""
    from types import SimpleNamespace

    from shared.clock_guard import ClockGuard
    from shared.config import Settings
    from workers.tasks import projections as projection_tasks
    from workers.tasks import staff_mail as tasks

    settings = Settings(data_dir=tmp_path)
    ctx = SimpleNamespace(reader=reader, catalogue=catalogue, clock=clock, settings=settings)

    class Kick:
        def after_commit(self, correlation_id: str | None = None) -> None:
            pass

    monkeypatch.setattr(tasks, "assessment_context", lambda: ctx)
    monkeypatch.setattr(projection_tasks, "outbox_kick", lambda: Kick())
    box = Outbox(identity, settings.identity_secret)
    clock.advance(timedelta(days=1))  # 16 January: the first overdue day
    assert tasks.remind_overdue_reviews() == 1
    assert tasks.send_coordinator_digests() == 1
    keys = sorted(r.key for r in box.rows())

    # The clock jumps 40 days ahead: nothing is enqueued, the hold is stored.
    clock.advance(timedelta(days=40))
    assert tasks.remind_overdue_reviews() == 0
    assert tasks.send_coordinator_digests() == 0
    assert sorted(r.key for r in box.rows()) == keys
    guard = ClockGuard(identity)
    assert {h.job for h in guard.holds()} == {"remind-overdue-reviews", "send-coordinator-digests"}

    # Back to the right date (the jump was the clock's mistake): the same day again sends nothing twice.
    clock.advance(timedelta(days=-40))
    assert tasks.remind_overdue_reviews() == 0
    assert tasks.send_coordinator_digests() == 0
    # ... and a day earlier than the last run neither.
    clock.advance(timedelta(days=-1))
    assert tasks.remind_overdue_reviews() == 0
    assert tasks.send_coordinator_digests() == 0
    assert sorted(r.key for r in box.rows()) == keys

    # A real jump, confirmed by an operator: the tasks act.
    clock.advance(timedelta(days=41))
    assert tasks.remind_overdue_reviews() == 0
    guard.confirm("ops on duty")
    reminded = tasks.remind_overdue_reviews()
    assert reminded == 2  # by 25 February both assessors are overdue
    assert tasks.send_coordinator_digests() == 1  # the confirmed date counts for every guarded job
    assert len(box.rows()) == len(keys) + 3
