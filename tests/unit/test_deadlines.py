"""Deadlines: the term calendar, the pure rule (table-driven), and the sweep with the real apps —
a student completes studies, is reminded at each offset once, is deregistered the day after the
deadline once however often the sweep runs, and a coordinator reinstates them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from assessment_service import deadline_queries, deadline_services, deadlines
from assessment_service.deadlines import DEREGISTER, REMIND, Basis, Due, SweepFacts
from assessment_service.events import (
    DeadlineExtended,
    DeadlineReminderDue,
    DeadlineSet,
    StudentDeregistered,
    StudentReinstated,
)
from assessment_service.terms import TermCalendar, TermCalendarError, problems
from shared.catalogue import Catalogue
from shared.clock import FixedClock
from shared.config import ROOT, Settings
from shared.errors import RuleViolated, ValidationFailed
from tests.unit.test_assessment_access import World, build_world

CALENDAR = TermCalendar.load(ROOT / "config" / "terms.toml")
SID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
DEADLINE = date(2027, 1, 17)  # the end of HT2026
OFFSETS = (60, 14, 3)


# -- the term calendar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "term"),
    [
        (date(2026, 1, 19), "VT2026"),  # first day
        (date(2026, 6, 7), "VT2026"),  # last day
        (date(2026, 7, 15), "VT2026"),  # the summer belongs to the spring term before it
        (date(2026, 8, 31), "HT2026"),
        (date(2027, 1, 17), "HT2026"),  # HT ends in January of the next year
    ],
)
def test_a_day_falls_in_its_term(day: date, term: str) -> None:
    assert CALENDAR.term_of(day).code == term


@pytest.mark.parametrize(
    ("completed", "grace", "deadline"),
    [
        (date(2026, 3, 10), 1, date(2027, 1, 17)),  # VT2026 -> end of HT2026
        (date(2026, 3, 10), 0, date(2026, 6, 7)),  # no grace: the end of the term itself
        (date(2026, 10, 1), 1, date(2027, 6, 6)),  # HT2026 -> end of VT2027
        (date(2026, 10, 1), 2, date(2028, 1, 16)),
    ],
)
def test_the_deadline_is_the_end_of_the_term_grace_terms_after_completion(
    completed: date, grace: int, deadline: date
) -> None:
    assert deadlines.deadline_for(CALENDAR, completed, grace)[1] == deadline


def test_a_day_outside_the_calendar_is_refused() -> None:
    with pytest.raises(TermCalendarError):
        CALENDAR.term_of(date(2001, 1, 1))
    with pytest.raises(TermCalendarError):
        CALENDAR.end_of_term_after(CALENDAR.terms[-1].starts, 1)


def _terms(*blocks: tuple[str, Any, Any]) -> dict[str, Any]:
    return {"terms": [{"code": c, "starts": s, "ends": e} for c, s, e in blocks]}


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({}, "terms"),
        (_terms(("HX2025", date(2025, 9, 1), date(2026, 1, 18))), "code"),
        (_terms(("HT2025", date(2025, 9, 1), date(2025, 8, 1))), "ends"),
        (_terms(("HT2025", "2025-09-01", date(2026, 1, 18))), "starts"),
        (_terms(("HT2025", date(2025, 9, 1), date(2026, 1, 18)), ("HT2026", date(2026, 8, 31), date(2027, 1, 17))),
         "expected VT2026"),
        (_terms(("HT2025", date(2025, 9, 1), date(2026, 1, 18)), ("VT2026", date(2026, 1, 10), date(2026, 6, 7))),
         "overlaps"),
    ],
)
def test_a_broken_terms_file_is_refused_naming_the_term_and_field(data: dict[str, Any], names: str) -> None:
    found = problems(data)
    assert found, "the file should be refused"
    assert any(names in problem for problem in found), found
    with pytest.raises(TermCalendarError):
        TermCalendar.parse(data)


def test_the_shipped_terms_file_is_sound() -> None:
    assert CALENDAR.terms[0].code.startswith("HT")
    assert len(CALENDAR.terms) >= 20


# -- what is due on a day: the one rule ------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "reminded", "options", "due"),
    [
        (DEADLINE - timedelta(days=61), (), {}, None),
        (DEADLINE - timedelta(days=60), (), {}, Due(REMIND, DEADLINE, 60)),
        (DEADLINE - timedelta(days=59), (60,), {}, None),  # never twice for one offset
        (DEADLINE - timedelta(days=14), (60,), {}, Due(REMIND, DEADLINE, 14)),
        (DEADLINE - timedelta(days=10), (), {}, Due(REMIND, DEADLINE, 14)),  # a missed 60 is not sent late
        (DEADLINE - timedelta(days=10), (14,), {}, None),
        (DEADLINE - timedelta(days=3), (60, 14), {}, Due(REMIND, DEADLINE, 3)),
        (DEADLINE, (60, 14, 3), {}, None),  # the deadline day itself is still in time
        (DEADLINE + timedelta(days=1), (60, 14, 3), {}, Due(DEREGISTER, DEADLINE)),
        (DEADLINE + timedelta(days=1), (), {"clock_stopped": True}, None),  # a report under review
        (DEADLINE - timedelta(days=3), (), {"clock_stopped": True}, None),
        (DEADLINE + timedelta(days=1), (), {"deregistered": True}, None),
        (DEADLINE + timedelta(days=1), (), {"withdrawn": True}, None),
    ],
)
def test_what_is_due_on_a_day(
    today: date, reminded: tuple[int, ...], options: dict[str, bool], due: Due | None
) -> None:
    assert deadlines.due_action(DEADLINE, OFFSETS, reminded, today, **options) == due


@pytest.mark.parametrize(
    ("reminded", "deregistered", "next_due"),
    [
        ((), False, DEADLINE - timedelta(days=60)),
        ((60,), False, DEADLINE - timedelta(days=14)),
        ((14,), False, DEADLINE - timedelta(days=3)),  # 60 superseded by 14
        ((60, 14, 3), False, DEADLINE + timedelta(days=1)),
        ((), True, None),
    ],
)
def test_next_due_on_is_the_first_day_something_can_fall_due(
    reminded: tuple[int, ...], deregistered: bool, next_due: date | None
) -> None:
    assert deadlines.next_due_on(DEADLINE, OFFSETS, reminded, deregistered=deregistered) == next_due


# -- the deciders -----------------------------------------------------------------------------------

RULES = Catalogue.load(ROOT / "config" / "departments.toml").departments["SOCSW"]
BASIS = Basis(SID, "SOCSW", "SOCSW@1", date(2026, 3, 10), 7)
SET = DeadlineSet(SID, "SOCSW", DEADLINE, "SOCSW@1", date(2026, 3, 10), "VT2026", 1, [60, 14, 3], 7)
RUNNING = SweepFacts(clock_stopped=False, withdrawn=False)


def test_a_deadline_is_set_once_per_completion_date() -> None:
    assert deadlines.decide_set(deadlines.fold_deadline([]), BASIS, RULES, CALENDAR) == [SET]
    assert deadlines.decide_set(deadlines.fold_deadline([SET]), BASIS, RULES, CALENDAR) == []
    corrected = Basis(SID, "SOCSW", "SOCSW@1", date(2026, 10, 1), 9)
    (event,) = deadlines.decide_set(deadlines.fold_deadline([SET]), corrected, RULES, CALENDAR)
    assert event.deadline == date(2027, 6, 6)


def test_the_sweep_records_each_reminder_and_the_deregistration_once() -> None:
    history: list[Any] = [SET]
    recorded = []
    day = DEADLINE - timedelta(days=70)
    while day <= DEADLINE + timedelta(days=5):
        for _twice in range(2):  # a second beat on the same day records nothing
            events = deadlines.decide_sweep(deadlines.fold_deadline(history), SID, day, RUNNING)
            history += events
            recorded += [(day, e) for e in events]
        day += timedelta(days=1)
    assert recorded == [
        (DEADLINE - timedelta(days=60), DeadlineReminderDue(SID, "SOCSW", DEADLINE, 60)),
        (DEADLINE - timedelta(days=14), DeadlineReminderDue(SID, "SOCSW", DEADLINE, 14)),
        (DEADLINE - timedelta(days=3), DeadlineReminderDue(SID, "SOCSW", DEADLINE, 3)),
        (DEADLINE + timedelta(days=1),
         StudentDeregistered(SID, "SOCSW", DEADLINE, "deadline_passed", "SOCSW@1", "system:deadlines")),
    ]


def test_an_extension_moves_the_deadline_and_restarts_the_reminders() -> None:
    today = DEADLINE - timedelta(days=5)
    later = date(2027, 3, 1)
    state = deadlines.fold_deadline([SET, DeadlineReminderDue(SID, "SOCSW", DEADLINE, 60)])
    (event,) = deadlines.decide_extend(state, SID, later, "by_agreement", "coord", today, CALENDAR)
    assert event == DeadlineExtended(SID, "SOCSW", later, "by_agreement", "coord")
    after = deadlines.fold_deadline([SET, DeadlineReminderDue(SID, "SOCSW", DEADLINE, 60), event])
    assert (after.deadline, after.reminded, after.extended) == (later, frozenset(), True)
    # past the old deadline: not deregistered, but reminded of the new one
    assert deadlines.decide_sweep(after, SID, DEADLINE + timedelta(days=1), RUNNING) == [
        DeadlineReminderDue(SID, "SOCSW", later, 60)]
    # a corrected completion date with an earlier deadline does not undo the extension
    corrected = DeadlineSet(SID, "SOCSW", date(2026, 6, 7), "SOCSW@1", date(2026, 3, 10), "VT2026", 0, [3], 8)
    assert deadlines.fold_deadline([SET, event, corrected]).deadline == later


@pytest.mark.parametrize(
    ("history", "new", "reason", "error", "what"),
    [
        ([SET], DEADLINE + timedelta(days=9), "because", ValidationFailed, "reason_code"),
        ([SET], DEADLINE - timedelta(days=400), "by_agreement", ValidationFailed, "deadline"),  # not after today
        ([SET], None, "by_agreement", ValidationFailed, "deadline"),
        ([SET], DEADLINE - timedelta(days=1), "by_agreement", RuleViolated, "deadline_not_later"),
        ([], DEADLINE + timedelta(days=9), "by_agreement", RuleViolated, "no_deadline"),
        ([SET, StudentDeregistered(SID, "SOCSW", DEADLINE, "deadline_passed", "SOCSW@1", "system:deadlines")],
         DEADLINE + timedelta(days=90), "by_agreement", RuleViolated, "student_deregistered"),
        ([SET], date(2045, 1, 1), "by_agreement", ValidationFailed, "deadline"),  # too far
    ],
)
def test_an_extension_is_refused_with_its_reason(history: list[Any], new: date | None, reason: str,
                                                 error: type[Exception], what: str) -> None:
    with pytest.raises(error) as refused:
        deadlines.decide_extend(deadlines.fold_deadline(history), SID, new, reason, "coord", date(2026, 12, 1),
                                CALENDAR)
    if isinstance(refused.value, ValidationFailed):
        assert what in refused.value.problems
    else:
        assert refused.value.problem.code == what  # type: ignore[attr-defined]


def test_reinstatement_needs_a_deregistered_student_and_undoes_it() -> None:
    gone = StudentDeregistered(SID, "SOCSW", DEADLINE, "deadline_passed", "SOCSW@1", "system:deadlines")
    today = DEADLINE + timedelta(days=3)
    with pytest.raises(RuleViolated):
        deadlines.decide_reinstate(deadlines.fold_deadline([SET]), SID, date(2027, 6, 1), "by_agreement", "c", today)
    (event,) = deadlines.decide_reinstate(deadlines.fold_deadline([SET, gone]), SID, date(2027, 6, 1),
                                          "by_agreement", "c", today)
    assert event == StudentReinstated(SID, "SOCSW", date(2027, 6, 1), "by_agreement", "c")
    state = deadlines.fold_deadline([SET, gone, event])
    assert not state.deregistered
    assert deadlines.decide_sweep(state, SID, date(2027, 6, 2), RUNNING)[0].__class__ is StudentDeregistered


# -- the sweep with the real apps -------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")


@pytest.fixture
def world(settings: Settings, clock: FixedClock) -> World:
    """Students A and B (SOCSW) submitted reports (clock stopped); C (SOCSW) has none."""
    world = build_world(settings, clock)
    from tests.unit.test_assessment_access import register

    world.students["C"] = register(world.intake, "StudentC Exempel")
    for name in ("A", "C"):
        response = world.intake.post(f"/api/v1/students/{world.students[name]}/studies-completed",
                                     json={"completed_on": "2026-03-10", "term": "VT2026"})
        assert response.status_code in (200, 201), response.json
    world.catch_up()
    return world


def _at(clock: FixedClock, day: date) -> None:
    clock.set(datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC))


def _types(world: World, name: str) -> list[str]:
    return [e.type for e in world.ctx.store.read_stream(f"deadline-{world.students[name]}")]


def test_the_sweep_reminds_and_deregisters_only_the_student_without_a_report_each_fact_once(
    world: World, clock: FixedClock
) -> None:
    ctx = world.ctx
    counts = deadline_services.sweep(ctx)
    assert counts["deadlines_set"] == 2  # A and C completed studies; B did not
    with ctx.reader.connect() as conn:
        row = deadline_queries.deadline_of(conn, world.students["C"])
    assert row is not None
    assert row.deadline == DEADLINE
    assert row.next_due_on == (DEADLINE - timedelta(days=60)).isoformat()
    for day in (DEADLINE - timedelta(days=60), DEADLINE - timedelta(days=14), DEADLINE - timedelta(days=3),
                DEADLINE + timedelta(days=1)):
        _at(clock, day)
        deadline_services.sweep(ctx)
        deadline_services.sweep(ctx)  # beat twice by mistake
    assert _types(world, "C") == [
        "DeadlineSet", "DeadlineReminderDue", "DeadlineReminderDue", "DeadlineReminderDue", "StudentDeregistered",
    ]
    assert _types(world, "A") == ["DeadlineSet"]  # A's report is waiting: the clock is stopped
    with ctx.reader.connect() as conn:
        row = deadline_queries.deadline_of(conn, world.students["C"])
    assert row is not None
    assert (row.deregistered, row.reminded, row.next_due_on) == (True, (60, 14, 3), None)


def test_what_if_shows_what_the_sweep_would_record_and_records_nothing(world: World, clock: FixedClock) -> None:
    ctx = world.ctx
    deadline_services.set_deadlines(ctx)
    before = ctx.store.head()
    planned = deadline_services.plan(ctx, DEADLINE + timedelta(days=1))
    assert [(p.row.student_id, p.due.action) for p in planned] == [(world.students["C"], DEREGISTER)]
    assert ctx.store.head() == before
    assert [p.due.offset_days for p in deadline_services.plan(ctx, DEADLINE - timedelta(days=20))] == [60]


def test_the_sweep_reads_only_the_students_due(world: World, clock: FixedClock) -> None:
    deadline_services.set_deadlines(world.ctx)
    with world.ctx.reader.connect() as conn:
        assert deadline_queries.due_on(conn, DEADLINE - timedelta(days=61)) == []
        assert len(deadline_queries.due_on(conn, DEADLINE - timedelta(days=60))) == 2


def test_a_deregistered_student_is_refused_new_activities_and_reports_until_reinstated(
    world: World, clock: FixedClock
) -> None:
    from assessment_service import services as assessment_services
    from intake_service.assessment_view import build_view
    from shared.adapters.feed import FunctionFeed
    from tests.unit.test_assessment_access import ACTIVITY, ANSWERS

    ctx, intake_app, sid = world.ctx, world.intake.application, world.students["C"]
    view = build_view(
        ctx.settings, feed=FunctionFeed(lambda _a, _l: [], lambda: 0),
        own_events=FunctionFeed(lambda after, limit: assessment_services.own_feed(ctx, after, limit), ctx.store.head),
        vault=intake_app.extensions["cim.intake"].codec.vault,
    )
    intake_app.extensions["cim.intake.assessment_view"] = view
    deadline_services.set_deadlines(ctx)
    view.catch_up()
    assert view.decisions is not None
    from shared.identity.models import Role
    from tests.authkit import make_account, sign_in

    account = make_account(world.identity, "Student C", student_id=sid, grants=[(Role.STUDENT, "SOCSW")])

    def my_cim(lang: str = "en") -> str:
        browser = intake_app.test_client()
        sign_in(browser, world.identity, account)
        return browser.get(f"/students/{sid}?lang={lang}").text

    assert "Your deadline to submit your report: January 17, 2027." in my_cim()
    assert f"/students/{sid}/deadline" in my_cim()
    assert "Sista dag att lämna in din rapport: 17 januari 2027." in my_cim("sv")
    _at(clock, DEADLINE + timedelta(days=1))
    assert deadline_services.sweep(ctx)["deregistered"] == 1
    view.catch_up()
    assert "You were deregistered from CIM when your deadline, January 17, 2027, passed." in my_cim()
    refused = world.intake.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY["SOCSW"])
    assert refused.status_code == 409, refused.json
    assert "deregistered from CIM when your deadline passed" in refused.json["detail"]
    report = world.intake.post(f"/api/v1/students/{sid}/reports", json={"answers": ANSWERS["SOCSW"],
                                                                        "activity_ids": [SID]})
    assert report.status_code == 409
    assert "deregistered" in report.json["detail"]
    # a coordinator of the department reinstates them with a new deadline
    coordinator = world.accounts["coordinator"]
    from shared.application import RequestContext

    principal = world.identity.accounts.principal(coordinator.id)
    assert principal is not None
    deadline_services.reinstate(ctx, principal, sid, {"deadline": date(2027, 6, 1), "reason_code": "by_agreement"},
                                RequestContext(actor=coordinator.id, correlation_id="c-1"))
    view.catch_up()
    assert "Your deadline was extended to June 1, 2027." in my_cim()
    accepted = world.intake.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY["SOCSW"])
    assert accepted.status_code == 201, accepted.json
    assert _types(world, "C")[-1] == "StudentReinstated"


# -- the pages -------------------------------------------------------------------------------------


def test_the_coordinator_sees_the_deadlines_sorted_and_filtered(world: World, clock: FixedClock) -> None:
    deadline_services.set_deadlines(world.ctx)
    page = world.browser("coordinator").get("/deadlines?sort=name&dir=desc")
    assert page.status_code == 200
    assert "StudentC Exempel" in page.text
    assert "StudentA Exempel" in page.text
    assert page.text.index("StudentC") < page.text.index("StudentA")  # descending by name
    assert "Clock stopped" in page.text  # A's report waits
    assert "StudentC" not in world.browser("coordinator").get("/deadlines?show=deregistered").text
    _at(clock, DEADLINE - timedelta(days=10))
    assert "StudentC" in world.browser("coordinator").get("/deadlines?show=close").text
    assert "Sista dag" in world.browser("coordinator").get("/deadlines?lang=sv").text
    for who in ("assigned", "student_A"):
        assert world.browser(who).get("/deadlines").status_code == 404
    other = world.browser("other_coordinator").get("/deadlines")  # MED's coordinator: MED's students only
    assert other.status_code == 200
    assert "StudentC" not in other.text


def test_what_if_page_shows_who_would_be_deregistered_and_refuses_a_bad_day(world: World) -> None:
    deadline_services.set_deadlines(world.ctx)
    before = world.ctx.store.head()
    page = world.browser("coordinator").get(f"/deadlines/what-if?day={DEADLINE + timedelta(days=1)}")
    assert page.status_code == 200
    assert "StudentC Exempel" in page.text
    assert "Deregistration" in page.text
    assert "StudentA" not in page.text
    # nothing recorded on any deadline stream (only the audit of the coordinator seeing C's name)
    assert _types(world, "C") == ["DeadlineSet"]
    assert [e.type for e in world.ctx.store.read_all(after=before)] == ["PersonalDataViewed"]
    bad = world.browser("coordinator").get("/deadlines/what-if?day=tomorrow")
    assert bad.status_code == 422
    assert 'aria-invalid="true"' in bad.text


def test_the_coordinator_extends_then_reinstates_through_the_forms(world: World, clock: FixedClock) -> None:
    deadline_services.set_deadlines(world.ctx)
    sid = world.students["C"]
    coordinator = world.browser("coordinator")
    refused = coordinator.post(f"/students/{sid}/deadline/extend",
                               data={"deadline": "2026-01-01", "reason_code": "by_agreement", "form_token": str(SID)})
    assert refused.status_code == 422
    assert "Choose a date after today." in refused.text
    assert _types(world, "C") == ["DeadlineSet"]
    done = coordinator.post(f"/students/{sid}/deadline/extend",
                            data={"deadline": "2027-03-01", "reason_code": "illness"})
    assert done.status_code == 303
    assert _types(world, "C")[-1] == "DeadlineExtended"
    page = coordinator.get(f"/students/{sid}/deadline")
    assert "Deadline extended to" in page.text
    assert "Illness" in page.text
    _at(clock, date(2027, 3, 2))
    deadline_services.sweep(world.ctx)
    assert _types(world, "C")[-1] == "StudentDeregistered"
    coordinator = world.browser("coordinator")  # signed in again: the clock moved a year on
    page = coordinator.get(f"/students/{sid}/deadline")
    assert "Reinstate the student" in page.text
    back = coordinator.post(f"/students/{sid}/deadline/reinstate",
                            data={"deadline": "2027-06-01", "reason_code": "deregistered_in_error"})
    assert back.status_code == 303
    assert _types(world, "C")[-1] == "StudentReinstated"
    assert world.browser("other_coordinator").get(f"/students/{sid}/deadline").status_code == 404
    assert world.browser("other_coordinator").post(
        f"/students/{sid}/deadline/extend", data={"deadline": "2027-09-01", "reason_code": "other"}
    ).status_code == 404


def test_the_student_makes_a_calendar_link_with_the_deadline_and_revokes_it(world: World) -> None:
    import re

    deadline_services.set_deadlines(world.ctx)
    sid = world.students["A"]
    student = world.browser("student_A")
    assert "Your deadline" in student.get(f"/students/{sid}/deadline").text
    made = student.post(f"/students/{sid}/calendar", data={})
    assert made.status_code == 200
    link = re.search(r'value="http://[^/]+(/calendar/[A-Za-z0-9_-]+\.ics)"', made.text)
    assert link is not None
    feed = world.app.test_client().get(link.group(1))
    assert feed.status_code == 200
    assert feed.mimetype == "text/calendar"
    assert b"DTSTART;VALUE=DATE:20270117" in feed.data
    assert b"Exempel" not in feed.data  # no name in the feed
    assert student.post(f"/students/{sid}/calendar/revoke", data={}).status_code == 303
    assert world.app.test_client().get(link.group(1)).status_code == 404
    assert world.app.test_client().get("/calendar/not-a-token.ics").status_code == 404
    # another student cannot make or revoke A's link
    assert world.browser("student_B").post(f"/students/{sid}/calendar", data={}).status_code == 404


def test_the_clock_file_moves_the_clock_only_in_the_test_environment(tmp_path: Path) -> None:
    from shared.clock import OffsetFileClock, SystemClock, configured_clock

    moved = tmp_path / "clock"
    moved.write_text(str(400 * 86400))
    test = Settings.from_env({"CIM_ENV": "test", "CIM_CLOCK_FILE": str(moved), "CIM_DATA_DIR": str(tmp_path)})
    development = Settings.from_env({"CIM_CLOCK_FILE": str(moved), "CIM_DATA_DIR": str(tmp_path)})
    assert test.clock_file == moved
    assert development.clock_file is None
    assert isinstance(configured_clock(development.clock_file), SystemClock)
    clock = configured_clock(test.clock_file)
    assert isinstance(clock, OffsetFileClock)
    assert clock.now() - datetime.now(UTC) > timedelta(days=399)
    moved.write_text("")
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_staff_views_of_names_are_recorded_before_the_page_is_shown(world: World) -> None:
    deadline_services.set_deadlines(world.ctx)
    assert world.browser("coordinator").get("/deadlines").status_code == 200
    assert (world.accounts["coordinator"].id, "student_overview") in world.audit("C")


def test_rebuilding_the_deadline_read_models_equals_the_live_ones(world: World, clock: FixedClock) -> None:
    ctx = world.ctx
    deadline_services.sweep(ctx)
    coordinator = world.identity.accounts.principal(world.accounts["coordinator"].id)
    assert coordinator is not None
    from shared.application import RequestContext

    deadline_services.extend(ctx, coordinator, world.students["C"],
                             {"deadline": date(2027, 3, 1), "reason_code": "by_agreement"},
                             RequestContext(actor="c", correlation_id="c"))
    _at(clock, date(2027, 3, 2))
    deadline_services.sweep(ctx)
    ctx.own_runner.catch_up()
    ctx.runner.catch_up()
    live_own, live_intake = ctx.own_runner.digest(), ctx.runner.digest()
    ctx.own_runner.rebuild()
    ctx.runner.rebuild()
    assert ctx.own_runner.digest() == live_own
    assert ctx.runner.digest() == live_intake
    with ctx.reader.connect() as conn:
        row = deadline_queries.deadline_of(conn, world.students["C"])
    assert row is not None
    assert (row.deadline, row.extended, row.deregistered) == (date(2027, 3, 1), True, True)


def test_terms_check_lists_the_problems_of_a_broken_file_and_passes_the_shipped_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from assessment_service.cli import terms_cli

    ok = CliRunner().invoke(terms_cli, ["check", str(ROOT / "config" / "terms.toml")])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output
    broken = tmp_path / "terms.toml"
    broken.write_text('[[terms]]\ncode = "HT2025"\nstarts = 2025-09-01\nends = 2025-08-01\n')
    refused = CliRunner().invoke(terms_cli, ["check", str(broken)])
    assert refused.exit_code == 1
    assert "terms[0] (HT2025).ends" in refused.output


def test_the_deadline_json_for_the_student_and_their_coordinator_only(world: World, clock: FixedClock) -> None:
    deadline_services.set_deadlines(world.ctx)
    _at(clock, DEADLINE - timedelta(days=60))
    deadline_services.sweep(world.ctx)
    sid = world.students["A"]
    coordinator = world.token("coordinator", "assessment:presentations")
    body = coordinator.get(f"/api/v1/students/{world.students['C']}/deadline").json
    assert body["deadline"] == DEADLINE.isoformat()
    assert [h["type"] for h in body["history"]] == ["DeadlineSet", "DeadlineReminderDue"]
    assert body["history"][1]["offset_days"] == 60
    assert world.token("other_coordinator", "assessment:presentations").get(
        f"/api/v1/students/{sid}/deadline").status_code == 404
    assert world.token("student_B", "assessment:presentations").get(
        f"/api/v1/students/{sid}/deadline").status_code == 404
    assert world.token("student_A", "assessment:presentations").get(
        f"/api/v1/students/{sid}/deadline").json["deadline"] == DEADLINE.isoformat()


def test_a_completion_before_the_calendar_is_skipped_and_one_past_it_holds_the_rest_back(
    world: World, clock: FixedClock, tmp_path: Path
) -> None:
    from tests.unit.test_assessment_access import register

    early = register(world.intake, "StudentE Exempel")
    assert world.intake.post(f"/api/v1/students/{early}/studies-completed",
                             json={"completed_on": "2018-06-01", "term": "VT2018"}).status_code in (200, 201)
    world.catch_up()
    assert deadline_services.set_deadlines(world.ctx) == 2  # A and C; E's completion has no term
    assert world.ctx.store.read_stream(f"deadline-{early}") == []
    # a calendar that ends too soon: deadlines wait, none is skipped
    short = tmp_path / "terms.toml"
    short.write_text('[[terms]]\ncode = "HT2025"\nstarts = 2025-09-01\nends = 2026-01-18\n\n'
                     '[[terms]]\ncode = "VT2026"\nstarts = 2026-01-19\nends = 2026-06-07\n')
    late = register(world.intake, "StudentL Exempel")
    world.intake.post(f"/api/v1/students/{late}/studies-completed",
                      json={"completed_on": "2026-03-12", "term": "VT2026"})
    world.catch_up()
    world.ctx.settings = dataclasses.replace(world.ctx.settings, terms_file=short)
    assert deadline_services.set_deadlines(world.ctx) == 0
    assert world.ctx.store.read_stream(f"deadline-{late}") == []


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_sweep_on_each_backend_records_each_fact_once(
    backend: str, tmp_path: Path, clock: FixedClock, request: pytest.FixtureRequest
) -> None:
    from tests.unit.test_assessment_access import register

    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    if backend == "postgres":
        settings = settings.with_overrides(assessment_db_url=request.getfixturevalue("pg_database")())
    world = build_world(settings, clock)
    try:
        sid = register(world.intake, "StudentP Exempel")
        world.intake.post(f"/api/v1/students/{sid}/studies-completed",
                          json={"completed_on": "2026-03-10", "term": "VT2026"})
        world.catch_up()
        for day in (None, DEADLINE - timedelta(days=60), DEADLINE - timedelta(days=3), DEADLINE + timedelta(days=1)):
            if day is not None:
                _at(clock, day)
            deadline_services.sweep(world.ctx)
            deadline_services.sweep(world.ctx)
        assert [e.type for e in world.ctx.store.read_stream(f"deadline-{sid}")] == [
            "DeadlineSet", "DeadlineReminderDue", "DeadlineReminderDue", "StudentDeregistered"]
        with world.ctx.reader.connect() as conn:
            assert deadline_queries.due_on(conn, DEADLINE + timedelta(days=30)) == []
    finally:
        world.ctx.dispose()


# -- the read model says what the stream says ---------------------------------------------------------

_HISTORY_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(-40, 40)),
        st.tuples(st.just("extend"), st.integers(1, 200)),
        st.tuples(st.just("remind"), st.sampled_from(OFFSETS)),
        st.tuples(st.just("remind_old"), st.sampled_from(OFFSETS)),
        st.tuples(st.just("deregister"), st.just(0)),
        st.tuples(st.just("reinstate"), st.integers(1, 200)),
    ),
    max_size=12,
)


def _step(kind: str, amount: int, current: date) -> Any:
    """One event of a random deadline history, relative to the current deadline."""
    if kind == "set":
        return DeadlineSet(SID, "SOCSW", DEADLINE + timedelta(days=amount), "SOCSW@1", date(2026, 3, 10), "VT2026", 1,
                           list(OFFSETS), 7)
    if kind == "extend":
        return DeadlineExtended(SID, "SOCSW", current + timedelta(days=amount), "other", "c")
    if kind == "remind":
        return DeadlineReminderDue(SID, "SOCSW", current, amount)
    if kind == "remind_old":  # a reminder of an earlier deadline, arriving late: ignored
        return DeadlineReminderDue(SID, "SOCSW", current - timedelta(days=1), amount)
    if kind == "deregister":
        return StudentDeregistered(SID, "SOCSW", current, "deadline_passed", "SOCSW@1", "s")
    return StudentReinstated(SID, "SOCSW", current + timedelta(days=amount), "other", "c")


@given(_HISTORY_STEPS)
@hypothesis_settings(max_examples=150, deadline=None)
def test_the_deadlines_row_agrees_with_the_folded_stream(steps: list[tuple[str, int]]) -> None:
    import sqlalchemy as sa

    from assessment_service.events import REGISTRY
    from assessment_service.projections import deadlines as projection
    from shared.events import RecordedEvent

    history: list[Any] = [SET]
    for kind, amount in steps:
        history.append(_step(kind, amount, deadlines.fold_deadline(history).deadline or DEADLINE))
    engine = sa.create_engine("sqlite://")
    projection.deadlines.create(engine)
    at = datetime(2026, 3, 16, tzinfo=UTC)
    with engine.begin() as conn:
        for position, event in enumerate(history, 1):
            name, version, data = REGISTRY.encode(event)
            projection.PROJECTION.apply(conn, RecordedEvent(position, f"e{position}", f"deadline-{SID}", position,
                                                            name, version, data, {}, at, at))
    with engine.connect() as conn:
        row = deadline_queries.deadline_of(conn, SID)
    state = deadlines.fold_deadline(history)
    assert row is not None
    assert (row.deadline, row.extended, row.deregistered) == (state.deadline, state.extended, state.deregistered)
    assert set(row.reminded) == set(state.reminded)
    expected = deadlines.next_due_on(state.deadline, state.reminder_days, state.reminded,
                                     deregistered=state.deregistered)
    assert row.next_due_on == (expected.isoformat() if expected else None)
