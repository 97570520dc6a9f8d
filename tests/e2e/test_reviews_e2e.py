"""The review workflow end to end, with the real parts: gunicorn-served apps, a Celery worker and
beat, a real redis-server (sessions, queue) and the embedded SQLite default. A student submits; a
coordinator assigns two assessors; both review through the API; they disagree and the coordinator
requests a revision with a summary; the student's My CIM shows "In review", then the revision
requested with its summary, delivered by the assessment service's own events through the workers;
the student resubmits over HTTP, round 2 reaches the same assessors (with round 1's reviews and
the page of what changed), both approve, and My CIM shows the approval; the coordinator publishes
a presentation occasion, the student books it, the coordinator records that they presented, and
My CIM shows the student eligible for the diploma — issue 12's "done when" path over HTTP."""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from shared.clock import SystemClock
from shared.identity.models import Role, RoleGrant
from shared.identity.wiring import build_identity
from tests.authkit import IDENTITY_KEY, SESSION_COOKIE
from tests.e2e.conftest import Pipeline, http, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CRITERIA = ("activities_meet_requirements", "reflection_compares_contexts", "reflection_relates_to_profession",
            "report_complete")
SUMMARY = "Relate the exchange term to social work in Sweden, and compare the two welfare systems."


def page(url: str, session: str) -> str:
    request = urllib.request.Request(url, headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_two_assessors_review_and_the_student_sees_the_revision_requested(pipeline: Pipeline) -> None:
    import redis

    status, body = pipeline.intake("POST", "/students", {
        "name": "Tekla Granskad", "email": "tekla.granskad@example.org", "university_id": "tg-0001",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2027"})
    assert status == 201, body
    sid = body["student_id"]
    status, body = pipeline.intake("POST", f"/students/{sid}/activities", {
        "kind": "exchange", "title": "Exchange term in Lyon", "organiser": "Université Lyon 2",
        "setting": "abroad", "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01"})
    assert status == 201, body
    status, body = pipeline.intake("POST", f"/students/{sid}/reports", {
        "answers": {"learning": "Working through an interpreter.", "profession": "It changes how I listen.",
                    "perspective": "Wider than before."}, "activity_ids": [body["activity_id"]]})
    assert status == 201, body
    rid = body["report_id"]
    wait_for(lambda: pipeline.assessment(f"/reports/{rid}")[0] == 200, 30, "the report on the assessment side")

    sessions = redis.Redis.from_url(pipeline.redis_url)
    identity = build_identity(clock=SystemClock(), identity_key=IDENTITY_KEY,
                              db_url=pipeline.env["CIM_IDENTITY_DB_URL"], redis=sessions)
    try:
        def person(name: str, role: Role) -> tuple[str, dict[str, str]]:
            account = identity.accounts.create_account(name, f"{name.split()[0].lower()}@example.org",
                                                       grants=[RoleGrant(role, "SOCSW")])
            token = identity.api_tokens.create(
                f"{name} token", ["assessment:read", "assessment:review", "assessment:presentations"],
                account_id=account.id).token
            sessions_of[account.id] = identity.sessions.create(account.id, auth_method="test")
            return account.id, {"Authorization": f"Bearer {token}"}

        sessions_of: dict[str, str] = {}
        _coordinator, coordinator = person("Cora Koordinator", Role.COORDINATOR)
        first_id, first = person("Assar Bedömare", Role.ASSESSOR)
        second_id, second = person("Berit Bedömare", Role.ASSESSOR)
        student_account = identity.accounts.create_account(
            "Tekla Granskad", "tekla.granskad@example.org", student_id=sid, grants=[RoleGrant(Role.STUDENT, "SOCSW")])
        student = identity.sessions.create(student_account.id, auth_method="test")
        student_token = identity.api_tokens.create("Tekla's token", ["assessment:presentations"],
                                                   account_id=student_account.id).token
        booker = {"Authorization": f"Bearer {student_token}"}
    finally:
        identity.store.dispose()  # type: ignore[attr-defined]

    api = f"{pipeline.assessment_url}/api/v1/reports/{rid}"
    for assessor in (first_id, second_id):
        status, body = http("POST", f"{api}/assessors", {"assessor_account_id": assessor}, coordinator)
        assert status == 201, body
    my_cim = f"{pipeline.intake_url}/students/{sid}"
    assert "Report submitted. It is waiting for review" in page(my_cim, student)

    verdicts = dict.fromkeys(CRITERIA, "met")
    status, body = http("POST", f"{api}/reviews", {"verdicts": verdicts, "recommendation": "approve"}, first)
    assert status == 201, body
    wait_for(lambda: "In review by the assessors." in page(my_cim, student), 30, "In review on My CIM")
    status, body = http("POST", f"{api}/reviews", {
        "verdicts": {**verdicts, "reflection_relates_to_profession": "not_met"},
        "comments": {"reflection_relates_to_profession": "Little about the profession."},
        "recommendation": "revise"}, second)
    assert status == 201, body
    status, body = http("POST", f"{api}/decision", {"outcome": "revise", "summary": SUMMARY}, coordinator)
    assert status == 201, body
    status, body = http("POST", f"{api}/decision", {"outcome": "approve"}, coordinator)
    assert status == 409, body  # the round is decided

    html = wait_for(lambda: (lambda h: h if SUMMARY in h else None)(page(my_cim, student)), 30,
                    "the revision requested on My CIM")
    assert "Revision requested. The assessors&#39; summary:" in html
    status, record = http("GET", f"{api}/reviews", headers=coordinator)
    assert status == 200
    (round_1,) = record["rounds"]
    assert round_1["decision"]["outcome"] == "RevisionRequested"
    assert round_1["decision"]["rests_on"] == sorted([first_id, second_id])
    status, history = http("GET", f"{api}/history", headers=coordinator)
    assert [h["type"] for h in history["history"]] == [
        "AssessorAssigned", "AssessorAssigned", "ReviewSubmitted", "ReviewSubmitted", "RevisionRequested"]

    # The student resubmits (over HTTP, as the intake learnt of the revision from the workers).
    status, events = pipeline.intake("GET", f"/students/{sid}/events")
    assert status == 200, events
    activity_id = next(e["data"]["activity_id"] for e in events["events"] if e["type"] == "ActivityLogged")
    revised = "Social work in Lyon and in Sweden compared: two welfare systems, two ways to listen."
    status, body = pipeline.intake("POST", f"/students/{sid}/reports/{rid}/resubmission", {
        "answers": {"learning": revised, "profession": "It changes how I listen.",
                    "perspective": "Wider than before."}, "activity_ids": [activity_id]})
    assert status == 201, body
    assert body["round"] == 2
    wait_for(lambda: http("GET", f"{api}/reviews", headers=first)[1].get("current_round") == 2, 30,
             "round 2 on the assessment side")
    status, record = http("GET", f"{api}/reviews", headers=first)
    assert [len(r["reviews"]) for r in record["rounds"]] == [2, 0]  # round 1's reviews stay, round 2 is new
    changes = page(f"{pipeline.assessment_url}/reports/{rid}/changes", sessions_of[first_id])
    assert revised in changes
    assert "Working through an interpreter." in changes
    assert 'class="mark mark-changed"' in changes
    for headers in (first, second):
        status, body = http("POST", f"{api}/reviews", {"verdicts": verdicts, "recommendation": "approve"}, headers)
        assert status == 201, body
        assert body["round"] == 2
    wait_for(lambda: "Approved." in page(my_cim, student), 30, "the approval on My CIM")
    assert "Report approved. Book an occasion to present it." in page(my_cim, student)

    # The coordinator publishes an occasion, the student books it, presents, and is eligible.
    starts = datetime.now(UTC) + timedelta(seconds=6)
    status, body = http("POST", f"{pipeline.assessment_url}/api/v1/occasions", {
        "department": "SOCSW", "kind": "international_cafe", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(), "place": "Allhelgona kyrkogata 8", "capacity": 12,
    }, coordinator)
    assert status == 201, body
    occasion = f"{pipeline.assessment_url}/api/v1/occasions/{body['occasion_id']}"
    status, body = http("POST", f"{occasion}/bookings", {"student_id": sid}, booker)
    assert status == 201, body
    status, body = http("POST", f"{occasion}/attendance", {"student_id": sid, "presented": True}, coordinator)
    assert status == 409, body  # not before it starts
    wait_for(lambda: "Report approved and presentation booked." in page(my_cim, student), 30,
             "the booking on My CIM")
    time.sleep(max((starts - datetime.now(UTC)).total_seconds(), 0) + 0.5)
    status, body = http("POST", f"{occasion}/attendance", {"student_id": sid, "presented": True}, coordinator)
    assert status == 201, body
    status, body = http("GET", f"{pipeline.assessment_url}/api/v1/students/{sid}/presentation", headers=booker)
    assert status == 200, body
    assert body["eligible"] is True
    html = wait_for(lambda: (lambda h: h if "Eligible for the diploma" in h else None)(page(my_cim, student)), 30,
                    "eligibility on My CIM")
    assert "You presented on " in html
