"""Right of access, the assessment part: the student's "My data" on the assessment service (page
and JSON) shows the reviews of their reports with each criterion's verdict and comment, what was
decided (with the summary written for them), their presentation bookings and the rulings on their
activities — staff by role, never by account id — and, after their erasure, the comments and
summaries read as erased."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from assessment_service.reviews import CRITERIA
from intake_service.services import RequestContext, erase_student_and_account
from shared.clock import FixedClock
from tests.unit.test_assessment_access import World
from tests.unit.test_reviews_api import two_assessors
from tests.unit.test_rulings_api import OTHER, RULING

COMMENT = "The host-family interview is compared with a Swedish case."
SUMMARY = "Relate the exchange to your future profession."


@pytest.fixture
def world(tmp_path: Path, clock: FixedClock) -> World:
    return two_assessors(tmp_path, clock)


def review(world: World, who: str, recommendation: str) -> None:
    verdicts = {**dict.fromkeys(CRITERIA, "met"), "report_complete": "not_met"}
    response = world.token(who, "assessment:read", "assessment:review").post(
        f"/api/v1/reports/{world.reports['A']}/reviews",
        json={"verdicts": verdicts, "comments": {"report_complete": COMMENT}, "recommendation": recommendation},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.json


def revision_requested(world: World) -> None:
    review(world, "assigned", "approve")
    review(world, "second", "revise")
    decided = world.token("coordinator", "assessment:read", "assessment:review").post(
        f"/api/v1/reports/{world.reports['A']}/decision", json={"outcome": "revise", "summary": SUMMARY})
    assert decided.status_code == 201, decided.json


def my_data(world: World, who: str = "student_A", lang: str = "en") -> tuple[str, dict[str, Any]]:
    client = world.browser(who)
    sid = world.students["A"]
    page = client.get(f"/students/{sid}/my-data?lang={lang}")
    download = client.get(f"/students/{sid}/my-data.json")
    assert page.status_code == download.status_code == 200
    return page.get_data(as_text=True), json.loads(download.get_data(as_text=True))


def section(html: str, heading_id: str) -> str:
    found = re.search(rf'<section aria-labelledby="{heading_id}">(.*?)</section>', html, re.S)
    assert found is not None, heading_id
    return found.group(1)


def staff_ids(world: World) -> list[str]:
    return [world.accounts[who].id for who in ("assigned", "second", "coordinator")]


def test_my_data_shows_the_reviews_and_the_decision_with_staff_by_role(world: World) -> None:
    revision_requested(world)
    html, data = my_data(world)
    reviews = section(html, "reviews-heading")
    assert reviews.count("Review by an assessor") == 2
    assert "The report is complete" in reviews
    assert "Not met" in reviews
    assert COMMENT in reviews
    assert "Recommendation: Ask for a revision" in reviews
    decided = section(html, "review-decisions-heading")
    assert "Revision requested" in decided
    assert "Decided by: The coordinator" in decided
    assert SUMMARY in decided
    assert not any(account in reviews + decided for account in staff_ids(world))

    assert [r["recommendation"] for r in data["reviews"]] == ["approve", "revise"]
    assert {r["by"] for r in data["reviews"]} == {"assessor"}
    complete = next(c for c in data["reviews"][0]["criteria"] if c["criterion"] == "report_complete")
    assert complete == {"criterion": "report_complete", "verdict": "not_met", "comment": COMMENT}
    [decision] = data["review_decisions"]
    assert (decision["outcome"], decision["decided_by"], decision["summary"]) == (
        "revision_requested", "coordinator", SUMMARY)
    new = json.dumps([data["reviews"], data["review_decisions"], data["activity_rulings"], data["presentation"]])
    assert not any(account in new for account in staff_ids(world))

    swedish, _ = my_data(world, lang="sv")
    assert "Bedömningar av dina rapporter" in swedish
    assert "Bedömning av en bedömare" in swedish
    assert "Beslutat av: Samordnaren" in swedish


def test_after_erasure_the_comments_and_summary_read_as_erased(world: World) -> None:
    revision_requested(world)
    sid = world.students["A"]
    erase_student_and_account(world.intake.application.extensions["cim.intake"], world.identity, sid,
                              "student request", RequestContext(actor="operator:test", correlation_id="c-erase"))
    world.catch_up()
    html, data = my_data(world, "coordinator")  # the student's account is gone; the coordinator's look is recorded
    assert COMMENT not in html
    assert SUMMARY not in html
    assert "Personal data erased" in section(html, "reviews-heading")
    assert "Personal data erased" in section(html, "review-decisions-heading")
    assert "Not met" in section(html, "reviews-heading")  # the verdicts are codes, not free text
    assert all(r["comments_erased"] and all(c["comment"] is None for c in r["criteria"]) for r in data["reviews"])
    assert data["review_decisions"][0]["summary"] is None
    assert data["review_decisions"][0]["summary_erased"] is True
    assert COMMENT not in json.dumps(data)


def test_my_data_shows_the_presentation_booking(world: World, clock: FixedClock) -> None:
    review(world, "assigned", "approve")
    review(world, "second", "approve")
    html, _ = my_data(world)
    assert "You have not booked a presentation." in html
    starts = clock.now() + timedelta(days=7)
    coordinator = world.token("coordinator", "assessment:presentations")
    occasion = coordinator.post("/api/v1/occasions", json={
        "department": "SOCSW", "kind": "international_cafe", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(), "place": "Allhelgona kyrkogata 8, room 128",
        "capacity": 5}).json["occasion_id"]
    booked = world.token("student_A", "assessment:presentations").post(
        f"/api/v1/occasions/{occasion}/bookings", json={"student_id": world.students["A"]})
    assert booked.status_code == 201, booked.json
    html, data = my_data(world)
    presentation = section(html, "presentation-heading")
    assert "International café" in presentation
    assert "Allhelgona kyrkogata 8, room 128" in presentation
    assert "Booked" in presentation
    assert [b["status"] for b in data["presentation"]["bookings"]] == ["booked"]


def test_my_data_shows_the_rulings_on_the_students_activities(world: World) -> None:
    html, data = my_data(world)
    assert "No ruling has been recorded on your activities." in html
    logged = world.intake.post(f"/api/v1/students/{world.students['A']}/activities", json=OTHER)
    world.catch_up()
    ruled = world.token("coordinator", "assessment:read").post(
        f"/api/v1/activities/{logged.json['activity_id']}/ruling", json=RULING)
    assert ruled.status_code == 201, ruled.json
    world.ctx.own_runner.catch_up()
    html, data = my_data(world)
    rulings = section(html, "rulings-heading")
    assert "by the assessor group: “Model UN conference”" in rulings
    assert RULING["rationale"] in rulings
    assert "counted as International seminar or webinar" in rulings
    [ruling] = data["activity_rulings"]
    assert (ruling["activity_id"], ruling["ruled_by"]) == (logged.json["activity_id"], "assessor_group")
    assert world.accounts["coordinator"].id not in json.dumps(ruling)
    other = world.browser("student_B").get(f"/students/{world.students['B']}/my-data.json")
    assert json.loads(other.get_data(as_text=True))["activity_rulings"] == []  # not another student's
