"""Reviews and decisions through the assessment API, with the real apps (in-memory intake store,
SQLite assessment database): two assessors review, the policy or the coordinator decides, the
comments are sealed at rest and gone after the student's erasure, bad input stores nothing."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from assessment_service.reviews import CRITERIA
from intake_service.services import RequestContext, erase_student_and_account
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from tests.authkit import make_account
from tests.unit.test_assessment_access import World, assign, build_world

MET = dict.fromkeys(CRITERIA, "met")
SECRET_COMMENT = "The interview with the host family is described vividly."


def two_assessors(tmp_path: Any, clock: FixedClock) -> World:
    """Report A with two assessors assigned (`assigned` and `second`); report B with none."""
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    world = build_world(settings, clock)
    world.accounts["second"] = make_account(world.identity, "Staff second", grants=[(Role.ASSESSOR, "SOCSW")])
    assign(world, "A", "assigned")
    assign(world, "A", "second")
    return world


@pytest.fixture
def world(tmp_path: Any, clock: FixedClock) -> World:
    return two_assessors(tmp_path, clock)


def reviewer(world: World, who: str) -> FlaskClient:
    return world.token(who, "assessment:read", "assessment:review")


def review(world: World, who: str, recommendation: str = "approve", report: str = "A", **body: Any) -> Any:
    payload = {"verdicts": MET, "comments": {"report_complete": SECRET_COMMENT}, "recommendation": recommendation,
               **body}
    return reviewer(world, who).post(f"/api/v1/reports/{world.reports[report]}/reviews", json=payload,
                                     headers={"Idempotency-Key": str(uuid.uuid4())})


def test_two_approvals_approve_the_report_by_the_rule_sets_policy(world: World) -> None:
    first = review(world, "assigned")
    assert first.status_code == 201, first.json
    assert first.json["round"] == 1
    assert world.report_events("A")[-1] == "ReviewSubmitted"
    assert review(world, "second").status_code == 201
    assert world.report_events("A")[-2:] == ["ReviewSubmitted", "ReportApproved"]
    record = reviewer(world, "coordinator").get(f"/api/v1/reports/{world.reports['A']}/reviews").json
    (round_1,) = record["rounds"]
    assert round_1["decision"]["outcome"] == "ReportApproved"
    assert round_1["decision"]["decided_by"] == "policy"
    assert round_1["decision"]["rests_on"] == sorted([world.accounts["assigned"].id, world.accounts["second"].id])
    assert {r["comments"]["report_complete"] for r in round_1["reviews"]} == {SECRET_COMMENT}
    again = review(world, "second")
    assert again.status_code == 409
    assert again.json["detail"] == "This round of the report has already been decided."


def test_on_disagreement_the_coordinator_requests_a_revision_with_a_summary(world: World) -> None:
    review(world, "assigned", "approve")
    review(world, "second", "revise")
    coordinator = reviewer(world, "coordinator")
    url = f"/api/v1/reports/{world.reports['A']}/decision"
    assert coordinator.post(url, json={"outcome": "revise"}).status_code == 422  # a summary for the student
    decided = coordinator.post(url, json={"outcome": "revise", "summary": "Relate the exchange to your profession."})
    assert decided.status_code == 201, decided.json
    assert world.report_events("A")[-1] == "RevisionRequested"
    assert coordinator.post(url, json={"outcome": "approve"}).status_code == 409  # the round is decided
    history = coordinator.get(f"/api/v1/reports/{world.reports['A']}/history").json["history"]
    assert [h["type"] for h in history] == ["AssessorAssigned", "AssessorAssigned", "ReviewSubmitted",
                                            "ReviewSubmitted", "RevisionRequested"]
    assert all("summary" not in h and "comments" not in h for h in history)


def test_a_reviewer_sees_the_other_review_only_after_submitting_their_own(world: World) -> None:
    review(world, "assigned", "revise")
    url = f"/api/v1/reports/{world.reports['A']}/reviews"
    before = reviewer(world, "second").get(url).json
    assert before["rounds"][0]["reviews"] == []
    assert before["rounds"][0]["reviewed_by"] == [world.accounts["assigned"].id]  # that one exists, not what it says
    review(world, "second", "revise")
    after = reviewer(world, "second").get(url).json
    assert len(after["rounds"][0]["reviews"]) == 2


@pytest.mark.parametrize(
    ("who", "report", "status"),
    [
        ("unassigned", "A", 404),  # an assessor of the department, not assigned: like an unknown report
        ("coordinator", "A", 403),  # may read it, does not review it
        ("med_assessor", "A", 404),
        ("assigned", "B", 404),  # assigned to A, not B
    ],
)
def test_who_may_not_review(world: World, who: str, report: str, status: int) -> None:
    assert review(world, who, report=report).status_code == status
    assert "ReviewSubmitted" not in world.report_events(report)


def test_an_assessor_may_not_decide_and_an_integration_may_not_review(world: World) -> None:
    review(world, "assigned")
    url = f"/api/v1/reports/{world.reports['A']}/decision"
    assert reviewer(world, "assigned").post(url, json={"outcome": "approve"}).status_code == 403
    integration = world.token(None, "assessment:read", "assessment:review")
    assert integration.post(f"/api/v1/reports/{world.reports['A']}/reviews",
                            json={"verdicts": MET, "recommendation": "approve"}).status_code == 403
    no_scope = world.token("second", "assessment:read")
    assert no_scope.post(f"/api/v1/reports/{world.reports['A']}/reviews",
                         json={"verdicts": MET, "recommendation": "approve"}).status_code == 403
    assert world.report_events("A").count("ReviewSubmitted") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"verdicts": {"report_complete": "met"}, "recommendation": "approve"},
        {"verdicts": MET, "recommendation": "maybe"},
        {"verdicts": "all met", "recommendation": "approve"},
        {"verdicts": MET, "comments": {"report_complete": 5}, "recommendation": "approve"},
        {"verdicts": MET},
        [],
    ],
)
def test_bad_reviews_are_refused_and_store_nothing(world: World, body: Any) -> None:
    before = world.report_events("A")
    response = reviewer(world, "assigned").post(f"/api/v1/reports/{world.reports['A']}/reviews", json=body)
    assert response.status_code == 422, response.json
    assert world.report_events("A") == before


def test_a_repeated_request_stores_once(world: World) -> None:
    client = reviewer(world, "assigned")
    headers = {"Idempotency-Key": "review-once"}
    body = {"verdicts": MET, "recommendation": "revise"}
    url = f"/api/v1/reports/{world.reports['A']}/reviews"
    assert client.post(url, json=body, headers=headers).status_code == 201
    assert client.post(url, json=body, headers=headers).status_code == 200
    assert world.report_events("A").count("ReviewSubmitted") == 1
    assert client.post(url, data="{", content_type="application/json").status_code == 400
    assert client.post(url, data="verdicts=met").status_code == 415


def test_comments_are_sealed_at_rest_and_unreadable_after_the_students_erasure(world: World) -> None:
    review(world, "assigned", "revise")
    review(world, "second", "revise")
    reviewer(world, "coordinator").post(f"/api/v1/reports/{world.reports['A']}/decision",
                                        json={"outcome": "revise", "summary": "Compare the two welfare systems."})
    db = world.ctx.settings.assessment_db_url.removeprefix("sqlite:///")
    world.ctx.store.compact()
    with open(db, "rb") as handle:
        raw = handle.read()
    assert SECRET_COMMENT.encode() not in raw
    assert b"Compare the two welfare systems." not in raw
    sid = world.students["A"]
    erase_student_and_account(world.intake.application.extensions["cim.intake"], world.identity, sid,
                              "student request", RequestContext(actor="operator:test", correlation_id="c-erase"))
    world.catch_up()
    record = reviewer(world, "coordinator").get(f"/api/v1/reports/{world.reports['A']}/reviews").json
    assert {r["comments"] for r in record["rounds"][0]["reviews"]} == {None}
    assert record["rounds"][0]["decision"]["summary"] is None
    with sqlite3.connect(db) as conn:
        (wrapped,) = conn.execute("SELECT wrapped_key FROM subject_keys WHERE subject_id = ?", (sid,)).fetchone()
    assert wrapped is None
    assert review(world, "assigned", "approve").status_code in (404, 409)  # nothing new is written about them


def test_assignment_still_works_on_a_report_with_sealed_reviews(world: World) -> None:
    review(world, "assigned", "revise")
    assign(world, "A", "unassigned")  # reads the stream with a sealed review in it
    assert world.report_events("A")[-1] == "AssessorAssigned"


# -- the reviews page ------------------------------------------------------------------------------
def review_form(**changes: str) -> dict[str, str]:
    form = {f"verdict_{c}": "met" for c in CRITERIA}
    form.update({"comment_report_complete": SECRET_COMMENT, "recommendation": "revise",
                 "form_token": str(uuid.uuid4())})
    form.update(changes)
    return form


def test_on_the_page_two_assessors_review_and_the_coordinator_requests_a_revision(world: World) -> None:
    url = f"/reports/{world.reports['A']}/reviews"
    first = world.browser("assigned")
    page = first.get(url)
    assert page.status_code == 200
    assert "Your review of round 1" in page.text
    assert 'name="verdict_report_complete"' in page.text
    assert first.post(url, data=review_form()).status_code == 303
    after = first.get(url).text
    assert SECRET_COMMENT in after
    assert "Your review of round 1" not in after  # once per round
    second = world.browser("second")
    assert SECRET_COMMENT not in second.get(url).text  # not before their own review
    assert "1 review(s) are in." in second.get(url).text
    assert second.post(url, data=review_form(recommendation="approve")).status_code == 303
    coordinator = world.browser("coordinator")
    page = coordinator.get(url).text
    assert "Decide round 1" in page
    decided = coordinator.post(f"/reports/{world.reports['A']}/decision", data={
        "outcome": "revise", "summary": "Relate the exchange to social work in Sweden.",
        "form_token": str(uuid.uuid4())})
    assert decided.status_code == 303
    page = coordinator.get(url).text
    assert "Revision requested" in page
    assert "Relate the exchange to social work in Sweden." in page
    assert "Decide round 1" not in page
    assert world.report_events("A")[-1] == "RevisionRequested"
    assert ("viewer", "reviews") not in world.audit("A")
    assert (world.accounts["coordinator"].id, "reviews") in world.audit("A")


def test_an_incomplete_review_is_shown_again_beside_its_fields_and_stores_nothing(world: World) -> None:
    url = f"/reports/{world.reports['A']}/reviews"
    response = world.browser("assigned").post(url, data=review_form(verdict_report_complete="", recommendation=""))
    assert response.status_code == 422
    assert 'href="#verdict_report_complete' in response.text
    assert "Say whether this criterion is met." in response.text
    assert "Choose a recommendation." in response.text
    assert "ReviewSubmitted" not in world.report_events("A")
    summary_missing = world.browser("coordinator").post(
        f"/reports/{world.reports['A']}/decision",
        data={"outcome": "revise", "summary": "", "form_token": str(uuid.uuid4())})
    assert summary_missing.status_code == 422
    assert "The reviews this decision rests on are not all in yet." in summary_missing.text


def test_the_reviews_page_in_swedish(world: World) -> None:
    page = world.browser("assigned").get(f"/reports/{world.reports['A']}/reviews?lang=sv").text
    assert '<html lang="sv">' in page
    assert "Din granskning av omgång 1" in page
    assert "Uppfyllt" in page


# -- the student's side: My CIM learns each step from the assessment service's own events ----------
def test_my_cim_shows_the_revision_requested_with_its_summary_and_forgets_it_on_erasure(world: World) -> None:
    from assessment_service import services as assessment_services
    from intake_service.assessment_view import build_view
    from shared.adapters.feed import FunctionFeed
    from tests.authkit import sign_in

    intake_app = world.intake.application
    settings = world.ctx.settings
    ctx = world.ctx
    view = build_view(
        settings, feed=FunctionFeed(lambda _a, _l: [], lambda: 0),
        own_events=FunctionFeed(lambda after, limit: assessment_services.own_feed(ctx, after, limit), ctx.store.head),
        vault=intake_app.extensions["cim.intake"].codec.vault,
    )
    intake_app.extensions["cim.intake.assessment_view"] = view
    sid = world.students["A"]
    student = intake_app.test_client()
    sign_in(student, world.identity, world.accounts["student_A"])
    review(world, "assigned", "revise")
    view.catch_up()
    assert "In review by the assessors." in student.get(f"/students/{sid}").text
    review(world, "second", "revise")
    reviewer(world, "coordinator").post(f"/api/v1/reports/{world.reports['A']}/decision",
                                        json={"outcome": "revise", "summary": "Compare the two welfare systems."})
    view.catch_up()
    page = student.get(f"/students/{sid}").text
    assert "Revision requested. The assessors&#39; summary:" in page
    assert "Compare the two welfare systems." in page
    assert "Komplettering begärd" in student.get(f"/students/{sid}?lang=sv").text
    assert view.catch_up() == 0  # nothing twice
    # The rows hold the summary sealed; the intake's erasure destroys the key it is sealed with.
    with view.reader.connect() as conn:
        (stored,) = conn.exec_driver_sql("SELECT summary FROM intake_report_decisions WHERE state = "
                                         "'revision_requested'").one()
    assert "Compare" not in stored
    erase_student_and_account(intake_app.extensions["cim.intake"], world.identity, sid, "student request",
                              RequestContext(actor="operator:test", correlation_id="c-erase"))
    assert view.decisions_for(sid)[world.reports["A"]]["summary"] is None


def test_a_coordinator_assigns_through_the_api(world: World) -> None:
    url = f"/api/v1/reports/{world.reports['B']}/assessors"
    body = {"assessor_account_id": world.accounts["assigned"].id}
    assert reviewer(world, "coordinator").post(url, json=body).status_code == 201
    assert reviewer(world, "coordinator").post(url, json=body).status_code in (200, 201)
    assert world.report_events("B") == ["AssessorAssigned"]
    assert reviewer(world, "assigned").post(url, json=body).status_code == 403  # its assessor, not coordinator
    outsider = {"assessor_account_id": world.accounts["med_assessor"].id}
    assert reviewer(world, "coordinator").post(url, json=outsider).status_code == 409
    assert reviewer(world, "coordinator").post(url, json={"assessor_account_id": 7}).status_code == 422


def test_the_report_page_says_where_the_review_stands(world: World) -> None:
    # Found by the browser walk (tests/e2e/test_workflow_walk.py): the page said "Waiting for
    # review" after the assessors were assigned, and still after the approval.
    page = world.browser("coordinator")
    url = f"/reports/{world.reports['A']}"
    assert "<dd>In review" in page.get(url).text
    assert "<dd>Waiting for review" in page.get(f"/reports/{world.reports['B']}").text  # none assigned
    assert review(world, "assigned").status_code == 201
    assert review(world, "second").status_code == 201
    assert "<dd>Approved" in page.get(url).text
