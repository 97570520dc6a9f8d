"""Presentations: the pure deciders (table-driven), then the API and pages with the real apps — a
coordinator publishes an occasion, a student with an approved report books it, the coordinator
records that they presented, and the student is eligible for the diploma."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from assessment_service import presentation_queries, presentations
from assessment_service.events import (
    BookingCancelled,
    OccasionCancelled,
    OccasionPublished,
    PresentationBooked,
    PresentationHeld,
    PresentationMissed,
)
from assessment_service.presentations import PublishOccasion, StudentFacts
from assessment_service.reviews import CRITERIA
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import NotFound, RuleViolated, ValidationFailed
from shared.identity.models import Role
from tests.authkit import make_account
from tests.unit.test_assessment_access import World, assign, build_world

NOW = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)
OCC = "11111111-1111-4111-8111-111111111111"
ALICE, BOB = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
REPORT = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"


def published(capacity: int = 2, starts: timedelta = timedelta(days=7), department: str = "SOCSW") -> OccasionPublished:
    return OccasionPublished(OCC, department, "international_cafe", NOW + starts, NOW + starts + timedelta(hours=2),
                             "Room 101", capacity, "coordinator")


def student(sid: str = ALICE, *, approved: bool = True, elsewhere: str | None = None, presented: bool = False,
            withdrawn: bool = False, department: str = "SOCSW") -> StudentFacts:
    return StudentFacts(sid, department, REPORT if approved else None, elsewhere, presented, withdrawn)


def booked(sid: str = ALICE) -> PresentationBooked:
    return PresentationBooked(OCC, sid, "SOCSW", REPORT, sid)


# -- the deciders --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "party"}, "kind"),
        ({"starts_at": NOW - timedelta(minutes=1)}, "starts_at"),
        ({"starts_at": NOW + timedelta(days=800), "ends_at": NOW + timedelta(days=800, hours=1)}, "starts_at"),
        ({"ends_at": NOW + timedelta(days=1)}, "ends_at"),  # before it starts
        ({"ends_at": NOW + timedelta(days=1, hours=15)}, "ends_at"),  # longer than 12 hours
        ({"place": "   "}, "place"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": 1001}, "capacity"),
    ],
)
def test_an_incomplete_occasion_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    fields = {"occasion_id": OCC, "department": "SOCSW", "kind": "lecture",
              "starts_at": NOW + timedelta(days=1, hours=1), "ends_at": NOW + timedelta(days=1, hours=2),
              "place": "Room 101", "capacity": 5, "published_by": "coordinator", **change}
    with pytest.raises(ValidationFailed) as refused:
        presentations.decide_publish(PublishOccasion(**fields), NOW)
    assert field in refused.value.problems


def test_a_complete_occasion_is_published_with_its_place_trimmed() -> None:
    command = PublishOccasion(OCC, "SOCSW", "web_seminar", NOW + timedelta(days=3), NOW + timedelta(days=3, hours=1),
                              "  https://example.org/seminar  ", 30, "coordinator")
    (event,) = presentations.decide_publish(command, NOW)
    assert event == OccasionPublished(OCC, "SOCSW", "web_seminar", command.starts_at, command.ends_at,
                                      "https://example.org/seminar", 30, "coordinator")


@pytest.mark.parametrize(
    ("history", "facts", "now", "refusal"),
    [
        ([published(), OccasionCancelled(OCC, "SOCSW", "c")], student(), NOW, "occasion_cancelled"),
        ([published(starts=timedelta(hours=1))], student(), NOW + timedelta(hours=1), "occasion_started"),
        ([published(capacity=1), booked(BOB)], student(), NOW, "occasion_full"),
        ([published(capacity=1), booked(BOB), PresentationHeld(OCC, BOB, "SOCSW", "c")], student(),
         NOW, "occasion_full"),  # who presented keeps the place: the occasion may already be under way
        ([published()], student(approved=False), NOW, "report_not_approved"),
        ([published()], student(elsewhere="22222222-2222-4222-8222-222222222222"), NOW, "booked_elsewhere"),
        ([published(), booked()], student(), NOW, "already_booked"),
        ([published()], student(presented=True), NOW, "already_presented"),
        ([published()], student(withdrawn=True), NOW, "student_withdrawn"),
    ],
)
def test_a_booking_is_refused_with_its_reason(history: list[Any], facts: StudentFacts, now: datetime,
                                              refusal: str) -> None:
    state = presentations.fold_occasion(history)
    with pytest.raises(RuleViolated) as refused:
        presentations.decide_book(state, facts, ALICE, now)
    assert refused.value.problem.code == refusal


def test_a_place_freed_by_a_cancellation_or_a_no_show_can_be_booked() -> None:
    for freed in (BookingCancelled(OCC, BOB, "SOCSW", "student_cancelled", BOB),
                  PresentationMissed(OCC, BOB, "SOCSW", "c")):
        state = presentations.fold_occasion([published(capacity=1), booked(BOB), freed])
        assert presentations.decide_book(state, student(), ALICE, NOW) == [booked()]


def test_another_departments_occasion_is_not_offered() -> None:
    state = presentations.fold_occasion([published()])
    with pytest.raises(NotFound):
        presentations.decide_book(state, student(department="MED"), ALICE, NOW)
    with pytest.raises(NotFound):
        presentations.decide_book(presentations.fold_occasion([]), student(), ALICE, NOW)


def test_cancelling_an_occasion_cancels_its_standing_bookings() -> None:
    state = presentations.fold_occasion([published(), booked(ALICE), booked(BOB)])
    events = presentations.decide_cancel_occasion(state, "c", NOW)
    assert events == [OccasionCancelled(OCC, "SOCSW", "c"),
                      BookingCancelled(OCC, ALICE, "SOCSW", "occasion_cancelled", "c"),
                      BookingCancelled(OCC, BOB, "SOCSW", "occasion_cancelled", "c")]
    with pytest.raises(RuleViolated):  # not twice
        presentations.decide_cancel_occasion(presentations.fold_occasion([published(), *events]), "c", NOW)


@pytest.mark.parametrize(
    ("history", "who", "now", "refusal"),
    [
        ([published()], ALICE, NOW + timedelta(days=8), "not_booked"),
        ([published(), booked()], ALICE, NOW, "occasion_not_started"),
        ([published(), booked(), PresentationHeld(OCC, ALICE, "SOCSW", "c")], ALICE, NOW + timedelta(days=8),
         "attendance_recorded"),
    ],
)
def test_attendance_is_recorded_once_for_booked_students_after_the_start(
    history: list[Any], who: str, now: datetime, refusal: str
) -> None:
    with pytest.raises(RuleViolated) as refused:
        presentations.decide_attendance(presentations.fold_occasion(history), who, True, "c", now)
    assert refused.value.problem.code == refusal


def test_attendance_after_the_start() -> None:
    state = presentations.fold_occasion([published(), booked(ALICE), booked(BOB)])
    later = NOW + timedelta(days=7, minutes=5)
    held = presentations.decide_attendance(state, ALICE, True, "c", later)
    assert held == [PresentationHeld(OCC, ALICE, "SOCSW", "c")]
    missed = presentations.decide_attendance(state, BOB, False, "c", later)
    assert missed == [PresentationMissed(OCC, BOB, "SOCSW", "c")]


def test_a_booking_is_cancelled_only_before_the_start() -> None:
    state = presentations.fold_occasion([published(), booked()])
    assert presentations.decide_cancel_booking(state, ALICE, ALICE, NOW, reason_code="student_cancelled") == [
        BookingCancelled(OCC, ALICE, "SOCSW", "student_cancelled", ALICE)]
    with pytest.raises(RuleViolated):
        presentations.decide_cancel_booking(state, ALICE, ALICE, NOW + timedelta(days=8),
                                            reason_code="student_cancelled")
    with pytest.raises(RuleViolated):
        presentations.decide_cancel_booking(state, BOB, BOB, NOW, reason_code="student_cancelled")


# -- through the apps --------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Any, clock: FixedClock) -> World:
    """Report A approved by two assessors; report B submitted, not decided."""
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    world = build_world(settings, clock)
    world.accounts["second"] = make_account(world.identity, "Staff second", grants=[(Role.ASSESSOR, "SOCSW")])
    world.accounts["student_M"] = make_account(world.identity, "Student M", student_id=world.students["M"],
                                               grants=[(Role.STUDENT, "MED")])
    assign(world, "A", "assigned")
    assign(world, "A", "second")
    for who in ("assigned", "second"):
        response = world.token(who, "assessment:review").post(
            f"/api/v1/reports/{world.reports['A']}/reviews",
            json={"verdicts": dict.fromkeys(CRITERIA, "met"), "recommendation": "approve"})
        assert response.status_code == 201, response.json
    assert world.report_events("A")[-1] == "ReportApproved"
    return world


def reason(code: str) -> str:
    return next(r for r in presentations.REASONS if r.code == code)().message


def person(world: World, who: str) -> FlaskClient:
    return world.token(who, "assessment:presentations")


def publish(world: World, capacity: int = 2, days: int = 7, department: str = "SOCSW", **change: Any) -> Any:
    starts = world.ctx.clock.now() + timedelta(days=days)
    body = {"department": department, "kind": "international_cafe", "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=2)).isoformat(), "place": "Allhelgona kyrkogata 8, room 128",
            "capacity": capacity, **change}
    return person(world, "coordinator").post("/api/v1/occasions", json=body)


def occasion_events(world: World, occasion_id: str) -> list[str]:
    return [e.type for e in world.ctx.store.read_stream(f"presentation-occasion-{occasion_id}")]


def test_the_whole_path_to_eligibility_over_the_api(world: World, clock: FixedClock) -> None:
    created = publish(world)
    assert created.status_code == 201, created.json
    occasion_id = created.json["occasion_id"]
    sid = world.students["A"]
    listed = person(world, "student_A").get("/api/v1/departments/SOCSW/occasions").json
    assert [o["occasion_id"] for o in listed["items"]] == [occasion_id]
    booking = person(world, "student_A").post(f"/api/v1/occasions/{occasion_id}/bookings", json={"student_id": sid})
    assert booking.status_code == 201, booking.json
    mine = person(world, "student_A").get(f"/api/v1/students/{sid}/presentation").json
    assert mine["booking"]["occasion_id"] == occasion_id
    assert mine["eligible"] is False
    attendance = f"/api/v1/occasions/{occasion_id}/attendance"
    early = person(world, "coordinator").post(attendance, json={"student_id": sid, "presented": True})
    assert early.status_code == 409
    assert early.json["detail"] == reason("occasion_not_started")
    clock.advance(timedelta(days=7, minutes=10))
    held = person(world, "coordinator").post(attendance, json={"student_id": sid, "presented": True})
    assert held.status_code == 201, held.json
    assert occasion_events(world, occasion_id) == ["OccasionPublished", "PresentationBooked", "PresentationHeld"]
    mine = person(world, "coordinator").get(f"/api/v1/students/{sid}/presentation").json
    assert mine["eligible"] is True
    assert mine["presented_at"] == mine["eligible_since"]
    with world.ctx.reader.connect() as conn:
        assert [e["student_id"] for e in presentation_queries.eligible_students(conn, "SOCSW")] == [sid]
    detail = person(world, "coordinator").get(f"/api/v1/occasions/{occasion_id}").json
    assert [(b["student_id"], b["status"]) for b in detail["bookings"]] == [(sid, "held")]


def test_who_may_book_and_what_is_refused(world: World) -> None:
    occasion_id = publish(world, capacity=1).json["occasion_id"]
    url = f"/api/v1/occasions/{occasion_id}/bookings"
    not_approved = person(world, "student_B").post(url, json={"student_id": world.students["B"]})
    assert not_approved.status_code == 409
    assert not_approved.json["detail"] == reason("report_not_approved")
    for who, sid in (("student_B", world.students["A"]), ("assigned", world.students["A"]),
                     ("other_coordinator", world.students["A"]), ("student_M", world.students["M"])):
        assert person(world, who).post(url, json={"student_id": sid}).status_code == 404, who
    assert person(world, "coordinator").post(url, json={"student_id": world.students["A"]}).status_code == 201
    assert occasion_events(world, occasion_id) == ["OccasionPublished", "PresentationBooked"]
    integration = world.token(None, "assessment:presentations")
    assert integration.post(url, json={"student_id": world.students["A"]}).status_code == 403
    no_scope = world.token("student_A", "assessment:read")
    assert no_scope.get(f"/api/v1/students/{world.students['A']}/presentation").status_code == 403


@pytest.mark.parametrize(
    "change",
    [
        {"capacity": "ten"}, {"capacity": 0}, {"kind": "party"}, {"starts_at": "tomorrow"},
        {"starts_at": "2027-03-01T10:00:00"},  # no offset: which time zone?
        {"place": ""}, {"department": "MED"}, {"days": -1},
    ],
)
def test_bad_occasions_are_refused_and_store_nothing(world: World, change: dict[str, Any]) -> None:
    before = world.ctx.store.head()
    days = change.pop("days", 7)
    response = publish(world, days=days, **change)
    assert response.status_code in (404, 422), response.json
    assert world.ctx.store.head() == before


def test_a_repeated_booking_stores_once_and_capacity_holds(world: World) -> None:
    occasion_id = publish(world, capacity=1).json["occasion_id"]
    client = person(world, "student_A")
    headers = {"Idempotency-Key": "book-once"}
    url = f"/api/v1/occasions/{occasion_id}/bookings"
    first = client.post(url, json={"student_id": world.students["A"]}, headers=headers)
    again = client.post(url, json={"student_id": world.students["A"]}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert occasion_events(world, occasion_id).count("PresentationBooked") == 1
    with world.ctx.reader.connect() as conn:
        assert presentation_queries.occasion(conn, occasion_id)["taken"] == 1


def test_cancelling_the_occasion_frees_the_student_to_book_another(world: World) -> None:
    first = publish(world).json["occasion_id"]
    second = publish(world, days=9).json["occasion_id"]
    sid = world.students["A"]
    student_client = person(world, "student_A")
    assert student_client.post(f"/api/v1/occasions/{first}/bookings", json={"student_id": sid}).status_code == 201
    refused = student_client.post(f"/api/v1/occasions/{second}/bookings", json={"student_id": sid})
    assert refused.json["detail"] == reason("booked_elsewhere")
    assert person(world, "coordinator").post(f"/api/v1/occasions/{first}/cancellation").status_code == 201
    assert occasion_events(world, first)[-2:] == ["OccasionCancelled", "BookingCancelled"]
    assert student_client.post(f"/api/v1/occasions/{second}/bookings", json={"student_id": sid}).status_code == 201
    listed = student_client.get("/api/v1/departments/SOCSW/occasions").json["items"]
    assert [o["occasion_id"] for o in listed] == [second]  # not the cancelled one


def test_the_pages_from_publishing_to_presented(world: World, clock: FixedClock) -> None:
    coordinator = world.browser("coordinator")
    page = coordinator.get("/presentations")
    assert page.status_code == 200
    assert "Publish an occasion" in page.text
    day = (clock.now() + timedelta(days=10)).date().isoformat()
    form = {"department": "SOCSW", "kind": "lecture", "day": day, "starts": "15:00", "ends": "16:30",
            "place": "Room 128", "capacity": "5", "form_token": str(uuid.uuid4())}
    bad = coordinator.post("/presentations", data={**form, "ends": "14:00"})
    assert bad.status_code == 422
    assert "The occasion must end after it starts." in bad.text
    made = coordinator.post("/presentations", data=form)
    assert made.status_code == 303
    occasion_url = made.headers["Location"]
    occasion_id = occasion_url.rsplit("/", 1)[-1]
    with world.ctx.reader.connect() as conn:
        stored = presentation_queries.occasion(conn, occasion_id)
    assert stored["starts_at"] == f"{day}T14:00:00+00:00"  # 15:00 in Lund in March is 14:00 UTC
    student_page = world.browser("student_A").get(f"/students/{world.students['A']}/presentation")
    assert student_page.status_code == 200
    assert "Book this occasion" in student_page.text
    assert "Review queue" not in student_page.text  # a student's header offers their own pages
    assert '/my-cim">My CIM' in student_page.text
    assert "15:00" in student_page.text
    booked_response = world.browser("student_A").post(
        f"/students/{world.students['A']}/presentation",
        data={"occasion": occasion_id, "form_token": str(uuid.uuid4())})
    assert booked_response.status_code == 303
    clock.advance(timedelta(days=11))
    coordinator = world.browser("coordinator")  # the earlier session has timed out
    detail = coordinator.get(occasion_url)
    assert "Presented" in detail.text
    assert "StudentA Exempel" in detail.text
    held = coordinator.post(f"{occasion_url}/attendance",
                            data={"student": world.students["A"], "outcome": "held", "form_token": str(uuid.uuid4())})
    assert held.status_code == 303
    after = world.browser("student_A").get(f"/students/{world.students['A']}/presentation")
    assert "Eligible for the diploma" in after.text
    swedish = world.browser("student_A").get(f"/students/{world.students['A']}/presentation?lang=sv")
    assert "Behörig för diplomet" in swedish.text


def test_pages_answer_404_to_those_who_may_not_see(world: World) -> None:
    occasion_id = publish(world).json["occasion_id"]
    assert world.browser("student_B").get(f"/students/{world.students['A']}/presentation").status_code == 404
    assert world.browser("assigned").get(f"/presentations/{occasion_id}").status_code == 404
    assert world.browser("other_coordinator").get(f"/presentations/{occasion_id}").status_code == 404
    assert world.browser("assigned").get("/presentations").status_code == 404
    assert world.browser("coordinator").get("/presentations/not-a-uuid").status_code == 404


def test_my_cim_offers_booking_then_shows_the_booking_and_the_presentation(world: World, clock: FixedClock) -> None:
    from assessment_service import services as assessment_services
    from intake_service.assessment_view import build_view
    from shared.adapters.feed import FunctionFeed
    from tests.authkit import sign_in

    intake_app = world.intake.application
    ctx = world.ctx
    view = build_view(
        ctx.settings, feed=FunctionFeed(lambda _a, _l: [], lambda: 0),
        own_events=FunctionFeed(lambda after, limit: assessment_services.own_feed(ctx, after, limit), ctx.store.head),
        vault=intake_app.extensions["cim.intake"].codec.vault,
    )
    intake_app.extensions["cim.intake.assessment_view"] = view
    sid = world.students["A"]

    def my_cim(lang: str = "en") -> str:
        student = intake_app.test_client()
        sign_in(student, world.identity, world.accounts["student_A"])
        return student.get(f"/students/{sid}?lang={lang}").text

    view.catch_up()
    page = my_cim()
    assert "Your report is approved: book an occasion" in page
    assert f"/students/{sid}/presentation\">Book a presentation" in page
    occasion_id = publish(world).json["occasion_id"]
    person(world, "student_A").post(f"/api/v1/occasions/{occasion_id}/bookings", json={"student_id": sid})
    view.catch_up()
    assert "Booked: " in my_cim()
    assert "Allhelgona kyrkogata 8, room 128" in my_cim()
    clock.advance(timedelta(days=7, hours=1))
    person(world, "coordinator").post(f"/api/v1/occasions/{occasion_id}/attendance",
                                      json={"student_id": sid, "presented": True})
    view.catch_up()
    assert "You presented on " in my_cim()
    assert "Eligible for the diploma: your report is approved and your presentation held." in my_cim()
    assert "Du presenterade " in my_cim("sv")
    assert view.catch_up() == 0


@pytest.mark.parametrize(
    ("state", "booking", "required", "step"),
    [
        (None, None, True, None),
        ("in_review", None, True, "in_review"),
        ("revision_requested", None, True, "revision_requested"),
        ("resubmitted", None, True, "resubmitted"),
        ("rejected", None, True, "rejected"),
        ("approved", None, True, "approved"),
        ("approved", {"status": "booked", "cancelled": False}, True, "presentation_booked"),
        ("approved", {"status": "booked", "cancelled": True}, True, "approved"),
        ("approved", {"status": "missed", "cancelled": False}, True, "approved"),
        ("approved", {"status": "held", "cancelled": False}, True, "eligible"),
        ("approved", None, False, "eligible_without_presentation"),
    ],
)
def test_my_cims_status_is_the_students_latest_step(
    state: str | None, booking: dict[str, Any] | None, required: bool, step: str | None
) -> None:
    from types import SimpleNamespace

    from intake_service.web.pages import workflow_step

    student: Any = SimpleNamespace(
        active=True, reports=[SimpleNamespace(report_id="r1")],
        department=SimpleNamespace(presentation_required=required),
    )
    decisions = {"r1": {"state": state}} if state else {}
    assert workflow_step(student, decisions, booking) == step
    withdrawn: Any = SimpleNamespace(**{**vars(student), "active": False})
    assert workflow_step(withdrawn, decisions, booking) is None


def test_my_cim_without_an_id_takes_a_student_to_their_own_page(world: World) -> None:
    from tests.authkit import sign_in

    intake_app = world.intake.application
    student = intake_app.test_client()
    sign_in(student, world.identity, world.accounts["student_A"])
    answer = student.get("/my-cim")
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/students/{world.students['A']}"
    staff = intake_app.test_client()
    sign_in(staff, world.identity, world.accounts["coordinator"])
    assert staff.get("/my-cim").headers["Location"] == "/"
    assert intake_app.test_client().get("/my-cim").status_code == 303  # to sign in


def test_staff_see_a_students_my_cim_as_staff_without_the_students_own_actions(world: World) -> None:
    from tests.authkit import sign_in

    intake_app = world.intake.application
    sid = world.students["A"]
    coordinator = intake_app.test_client()
    sign_in(coordinator, world.identity, world.accounts["coordinator"])
    page = coordinator.get(f"/students/{sid}").text
    assert "CIM of StudentA Exempel" in page
    assert "page as staff" in page
    for own_action in ("Log an activity", "Withdraw from CIM", "Tell us your studies have ended", ">Amend<"):
        assert own_action not in page
    # the page speaks about the student, not to them: no "you" but the notice addressed to the staff member
    import re

    main = page.split("<main", 1)[1].split("</main>", 1)[0]
    main = main.replace("You are looking at this student's page as staff.", "")
    assert re.findall(r"\b[Yy]ou(?:r)?\b[^<]{0,60}", main) == []
    assert "Report submitted. It is waiting for review" in page or "in review" in page.lower()
    student = intake_app.test_client()
    sign_in(student, world.identity, world.accounts["student_A"])
    own = student.get(f"/students/{sid}").text
    assert "<h1>My CIM</h1>" in own
    assert "Log an activity" in own
    assert "as staff" not in own


def test_the_assessment_error_pages_speak_the_pages_language(world: World) -> None:
    client = world.browser("coordinator")
    missing = client.get("/no-such-page?lang=sv")
    assert missing.status_code == 404
    assert "Sidan finns inte" in missing.text
    assert "Not Found" not in missing.text
    refused = world.browser("student_A").get("/review-queue?lang=sv")
    assert refused.status_code == 403
    assert "You do not have access" not in refused.text
    unknown = world.browser("coordinator").get("/presentations/00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404
    assert "Page not found" in unknown.text
    assert "Go to the review queue" in unknown.text
