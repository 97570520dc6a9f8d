"""Revision rounds on the intake side: the pure rules (a table), the JSON API and the pages.

What the assessors decided reaches the intake as events (`intake_report_decisions`); here a fake
view stands in for that read model, so each test says what the assessment side has decided."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake_service import create_app, domain
from intake_service.events import (
    ActivityLogged,
    ActivityWithdrawn,
    RegistrationWithdrawn,
    ReportResubmitted,
    ReportSubmitted,
    StudentErased,
)
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import NotFound, RuleViolated, ValidationFailed
from shared.events import fields_of
from tests.authkit import bearer, make_identity, sign_in_student
from tests.unit.test_intake_api import ACTIVITY, ANSWERS, NOW, STUDENT
from tests.unit.test_intake_domain import REGISTERED, SOCSW, details

# -- the pure rules ------------------------------------------------------------------------------
LOGGED = [ActivityLogged(a, **fields_of(domain.ActivityDetails, details(title=a))) for a in ("a1", "a2")]
SUBMITTED = ReportSubmitted("r1", ANSWERS, ["a1"], None, "SOCSW@1")
RESUBMITTED = ReportResubmitted("r1", 2, {**ANSWERS, "learning": "More."}, ["a1", "a2"], None, "SOCSW@1")
NEW_ANSWERS = {**ANSWERS, "learning": "Compared the welfare systems of both countries."}


def step(round_: int, state: str) -> domain.AssessmentStep:
    return domain.AssessmentStep(round_, state)


@pytest.mark.parametrize(
    ("history", "latest", "expected"),
    [
        pytest.param([SUBMITTED], step(1, "revision_requested"), 2, id="revision-requested-round-1"),
        pytest.param([SUBMITTED, RESUBMITTED], step(2, "revision_requested"), 3, id="revision-requested-round-2"),
        pytest.param([SUBMITTED], None, "no_revision_requested", id="nothing-decided-yet"),
        pytest.param([SUBMITTED], step(1, "in_review"), "no_revision_requested", id="in-review"),
        pytest.param([SUBMITTED], step(1, "approved"), "no_revision_requested", id="approved"),
        pytest.param([SUBMITTED], step(1, "rejected"), "no_revision_requested", id="rejected"),
        pytest.param([SUBMITTED, RESUBMITTED], step(1, "revision_requested"), "already_resubmitted",
                     id="already-resubmitted-for-that-round"),
        pytest.param([SUBMITTED, RESUBMITTED], step(2, "in_review"), "no_revision_requested",
                     id="round-2-in-review"),
        pytest.param([], step(1, "revision_requested"), NotFound, id="unknown-report"),
        pytest.param([SUBMITTED, RegistrationWithdrawn("moved")], step(1, "revision_requested"),
                     "registration_withdrawn", id="withdrawn-student"),
        pytest.param([SUBMITTED, StudentErased("request")], step(1, "revision_requested"), NotFound,
                     id="erased-student"),
    ],
)
def test_a_report_is_resubmitted_only_after_a_revision_of_its_current_round_was_requested(
    history: list[Any], latest: domain.AssessmentStep | None, expected: int | str | type
) -> None:
    state = domain.fold([REGISTERED, *LOGGED, *history])
    command = domain.ResubmitReport("r1", NEW_ANSWERS, ["a1", "a2"], None)
    if isinstance(expected, int):
        [event] = domain.decide_resubmit_report(state, command, SOCSW, latest)
        assert isinstance(event, ReportResubmitted)
        assert (event.report_id, event.round, event.rules) == ("r1", expected, SOCSW.rules_ref)
        assert (event.answers, event.activity_ids) == (NEW_ANSWERS, ["a1", "a2"])
        assert domain.evolve(state, event).report_rounds["r1"] == expected
    elif isinstance(expected, str):
        with pytest.raises(RuleViolated) as refused:
            domain.decide_resubmit_report(state, command, SOCSW, latest)
        assert refused.value.problem.code == expected
    else:
        with pytest.raises(expected):
            domain.decide_resubmit_report(state, command, SOCSW, latest)


def test_a_resubmission_is_checked_like_a_submission() -> None:
    state = domain.fold([REGISTERED, *LOGGED, SUBMITTED, ActivityWithdrawn("a2", None)])
    bad = domain.ResubmitReport("r1", {"learning": " "}, ["a2", "nope"], "missing")
    with pytest.raises(ValidationFailed) as err:
        domain.decide_resubmit_report(state, bad, SOCSW, step(1, "revision_requested"))
    assert set(err.value.fields) == {"answers", "activity_ids", "attachment_id"}


@pytest.mark.parametrize(
    ("history", "steps", "refusal"),
    [
        pytest.param([], {}, None, id="first-report"),
        pytest.param([SUBMITTED], {}, "report_waiting", id="waiting-for-review"),
        pytest.param([SUBMITTED], {"r1": step(1, "in_review")}, "report_waiting", id="in-review"),
        pytest.param([SUBMITTED], {"r1": step(1, "revision_requested")}, "revision_requested_resubmit",
                     id="revision-requested"),
        pytest.param([SUBMITTED, RESUBMITTED], {"r1": step(1, "revision_requested")}, "report_waiting",
                     id="resubmitted-waiting"),
        pytest.param([SUBMITTED], {"r1": step(1, "approved")}, "report_already_approved", id="approved"),
        pytest.param([SUBMITTED], {"r1": step(1, "rejected")}, None, id="rejected-makes-room"),
        pytest.param([SUBMITTED, RESUBMITTED], {"r1": step(2, "rejected")}, None, id="rejected-in-round-2"),
    ],
)
def test_a_new_report_only_when_none_waits_or_is_approved(
    history: list[Any], steps: dict[str, domain.AssessmentStep], refusal: str | None
) -> None:
    state = domain.fold([REGISTERED, *LOGGED, *history])
    command = domain.SubmitReport("r2", ANSWERS, ["a1"], None)
    if refusal is None:
        [event] = domain.decide_submit_report(state, command, SOCSW, steps)
        assert event.report_id == "r2"
        return
    with pytest.raises(RuleViolated) as refused:
        domain.decide_submit_report(state, command, SOCSW, steps)
    assert refused.value.problem.code == refusal


# -- the API and the pages ---------------------------------------------------------------------
@dataclass
class FakeDecisionsView:
    """Stands in for the intake's view of the assessment side's events (assessment_view)."""

    decisions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def decide(self, student_id: str, report_id: str, round_: int, state: str, summary: str | None = None) -> None:
        self.decisions.setdefault(student_id, {})[report_id] = {
            "round": round_, "state": state, "summary": summary, "changed_at": NOW.isoformat()}

    def decisions_for(self, student_id: str) -> dict[str, dict[str, Any]]:
        return {rid: dict(d) for rid, d in self.decisions.get(student_id, {}).items()}

    def status_for(self, student_id: str) -> str | None:
        return None


@dataclass
class Setup:
    app: Flask
    store: InMemoryEventStore
    view: FakeDecisionsView
    api: dict[str, str]

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def register_with_report(self) -> tuple[str, str, list[str]]:
        client = self.client()
        sid = client.post("/api/v1/students", json=STUDENT, headers=self.api).json["student_id"]
        aids = [client.post(f"/api/v1/students/{sid}/activities", json={**ACTIVITY, "title": t},
                            headers=self.api).json["activity_id"] for t in ("Exchange in Berlin", "Webinar on care")]
        report = client.post(f"/api/v1/students/{sid}/reports", headers=self.api,
                             json={"answers": ANSWERS, "activity_ids": [aids[0]]})
        assert report.status_code == 201, report.json
        return sid, report.json["report_id"], aids

    def types(self, sid: str) -> list[str]:
        return [e.type for e in self.store.read_stream(f"student-{sid}")]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://")
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    store = InMemoryEventStore()
    app = create_app(settings, store=store, clock=clock, identity=identity)
    app.config["WTF_CSRF_ENABLED"] = False
    view = FakeDecisionsView()
    app.extensions["cim.intake.assessment_view"] = view
    return Setup(app, store, view, bearer(identity))


def resubmission(setup: Setup, sid: str, rid: str, body: dict[str, Any], **headers: str) -> Any:
    return setup.client().post(f"/api/v1/students/{sid}/reports/{rid}/resubmission", json=body,
                               headers={**setup.api, **headers})


def test_the_api_records_a_new_round_once_a_revision_is_requested(setup: Setup) -> None:
    sid, rid, aids = setup.register_with_report()
    body = {"answers": NEW_ANSWERS, "activity_ids": aids}
    refused = resubmission(setup, sid, rid, body)
    assert refused.status_code == 409
    assert refused.mimetype == "application/problem+json"
    assert "No revision of this report has been requested." in refused.json["detail"]
    setup.view.decide(sid, rid, 1, "revision_requested", "Compare the two countries.")
    done = resubmission(setup, sid, rid, body, **{"Idempotency-Key": "resubmit-1"})
    assert done.status_code == 201, done.json
    assert (done.json["report_id"], done.json["round"]) == (rid, 2)
    again = resubmission(setup, sid, rid, body, **{"Idempotency-Key": "resubmit-1"})
    assert (again.status_code, again.json["round"]) == (200, 2)  # a retry stores once, answers the same
    twice = resubmission(setup, sid, rid, body)
    assert twice.status_code == 409
    assert "already been resubmitted" in twice.json["detail"]
    assert setup.types(sid).count("ReportResubmitted") == 1
    (event,) = [e for e in setup.store.read_stream(f"student-{sid}") if e.type == "ReportResubmitted"]
    assert (event.data["round"], event.data["activity_ids"]) == (2, aids)


def test_the_api_answers_404_for_an_unknown_report_and_422_for_a_bad_body(setup: Setup) -> None:
    sid, rid, aids = setup.register_with_report()
    setup.view.decide(sid, rid, 1, "revision_requested", "More, please.")
    before = setup.store.count()
    unknown = resubmission(setup, sid, "7d0e4bd5-52d8-4d8e-9a39-0e3c3c1a7f11", {"answers": ANSWERS,
                                                                                 "activity_ids": aids})
    assert unknown.status_code == 404
    assert resubmission(setup, sid, "not-an-id", {"answers": ANSWERS, "activity_ids": aids}).status_code == 404
    missing = resubmission(setup, sid, rid, {"answers": {"learning": "Only one."}, "activity_ids": aids})
    assert missing.status_code == 422
    assert "answers" in missing.json["errors"]
    malformed = resubmission(setup, sid, rid, {"answers": ANSWERS})
    assert malformed.status_code == 422
    assert "activity_ids" in malformed.json["errors"]
    assert setup.store.count() == before


def test_a_second_plain_report_is_refused_while_the_first_waits_and_taken_after_a_rejection(setup: Setup) -> None:
    sid, rid, aids = setup.register_with_report()
    url, body = f"/api/v1/students/{sid}/reports", {"answers": ANSWERS, "activity_ids": [aids[1]]}
    waiting = setup.client().post(url, json=body, headers=setup.api)
    assert waiting.status_code == 409
    assert "waiting for review" in waiting.json["detail"]
    setup.view.decide(sid, rid, 1, "approved")
    assert setup.client().post(url, json=body, headers=setup.api).status_code == 409
    setup.view.decide(sid, rid, 1, "rejected", "Not international enough.")
    assert setup.client().post(url, json=body, headers=setup.api).status_code == 201
    assert setup.types(sid).count("ReportSubmitted") == 2


def test_my_cim_offers_revise_and_resubmit_then_shows_the_new_round(setup: Setup) -> None:
    sid, rid, _aids = setup.register_with_report()
    student = setup.client()
    sign_in_student(student, setup.app.extensions["cim.identity"], sid)
    waiting = student.get(f"/students/{sid}").text
    assert "Submit your CIM report" not in waiting  # a report waits: no second one offered
    assert "Revise and resubmit" not in waiting
    setup.view.decide(sid, rid, 1, "revision_requested", "Compare the two welfare systems.")
    page = student.get(f"/students/{sid}").text
    assert "Compare the two welfare systems." in page
    assert f'href="/students/{sid}/reports/{rid}/resubmit"' in page
    assert "Revise and resubmit" in page
    assert "Komplettera och skicka in igen" in student.get(f"/students/{sid}?lang=sv").text
    done = resubmission(setup, sid, rid, {"answers": NEW_ANSWERS, "activity_ids": _aids})
    assert done.status_code == 201
    after = student.get(f"/students/{sid}?lang=en").text  # the language chosen sticks: back to English
    assert "Resubmitted. It is waiting for review by the assessors." in after
    assert "(round 2)" in after
    assert "Revise and resubmit" not in after
    assert "CIM report resubmitted (round 2), covering 2 activities" in after
    assert "Skickad igen" in student.get(f"/students/{sid}?lang=sv").text
    assert "Report resubmitted (a new round)" in student.get(f"/students/{sid}/my-data?lang=en").text
    setup.view.decide(sid, rid, 2, "rejected", "Still missing.")
    assert "Submit your CIM report" in student.get(f"/students/{sid}?lang=en").text  # a rejection makes room


def hidden(html: str, name: str) -> str | None:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    return match.group(1) if match else None


def test_the_resubmit_page_is_prefilled_reshows_errors_and_records_the_round(setup: Setup) -> None:
    sid, rid, aids = setup.register_with_report()
    student = setup.client()
    sign_in_student(student, setup.app.extensions["cim.identity"], sid)
    url = f"/students/{sid}/reports/{rid}/resubmit"
    not_yet = student.get(url)
    assert not_yet.status_code == 303  # nothing to revise yet: back to My CIM, saying why
    assert "No revision of this report has been requested." in student.get(not_yet.headers["Location"]).text
    setup.view.decide(sid, rid, 1, "revision_requested", "Relate it to your profession.")
    page = student.get(url)
    assert page.status_code == 200
    html = page.text
    assert "Relate it to your profession." in html
    assert ">\r\nMuch.</textarea>" in html  # the earlier answers
    assert ">\r\nA lot.</textarea>" in html
    ticked = re.findall(r'<input checked id="activities-\d+" name="activities"[^>]*value="([^"]+)"', html)
    assert ticked == [aids[0]]  # the activities ticked as in the earlier round
    assert '<label for="answer_0"' in html
    before = setup.store.count()
    blank = student.post(url, data={"form_token": hidden(html, "form_token"), "answer_0": "", "answer_1": "B",
                                    "answer_2": "C", "activities": [aids[0]]})
    assert blank.status_code == 422
    assert '<a href="#answer_0">Answer this question.</a>' in blank.text
    assert setup.store.count() == before
    data = {"form_token": hidden(blank.text, "form_token"), "answer_0": "Compared both systems.",
            "answer_1": "B", "answer_2": "C", "activities": aids}
    done = student.post(url, data=data)
    assert done.status_code == 303, done.text
    assert student.post(url, data=data).status_code in (303, 422)  # a double click stores once
    assert setup.types(sid).count("ReportResubmitted") == 1
    swedish = student.get(f"/students/{sid}?lang=sv").text
    assert "Skickad igen" in swedish


def test_the_plain_report_page_sends_a_waiting_student_back_with_the_reason(setup: Setup) -> None:
    sid, _rid, _aids = setup.register_with_report()
    student = setup.client()
    sign_in_student(student, setup.app.extensions["cim.identity"], sid)
    back = student.get(f"/students/{sid}/report")
    assert back.status_code == 303
    assert "you cannot submit another one now" in student.get(back.headers["Location"]).text
    # A form sent all the same (an old tab) is refused beside it, and nothing is stored.
    before = setup.store.count()
    sent = student.post(f"/students/{sid}/report", data={
        "form_token": "7d0e4bd5-52d8-4d8e-9a39-0e3c3c1a7f12", "answer_0": "A", "answer_1": "B", "answer_2": "C",
        "activities": [_aids[1]]})
    assert sent.status_code == 422
    assert "you cannot submit another one now" in sent.text
    assert setup.store.count() == before


def test_the_report_form_warns_of_unmet_requirements_before_submitting(setup: Setup) -> None:
    """Issue 17: a School of Social Work report covering one activity was accepted without a word."""
    client = setup.client()
    sid = client.post("/api/v1/students", json=STUDENT, headers=setup.api).json["student_id"]
    client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY, headers=setup.api)  # one, abroad
    student = setup.client()
    sign_in_student(student, setup.app.extensions["cim.identity"], sid)
    page = student.get(f"/students/{sid}/report").text
    assert "requirements</h2>" in page
    assert "do not yet meet every requirement" in page
    assert "At least three activities:</strong> not yet met" in page
    assert "At least one activity abroad:</strong> met" in page
    swedish = student.get(f"/students/{sid}/report?lang=sv").text
    assert "inte ännu uppfyllt" in swedish


def test_a_pdf_far_over_the_limit_keeps_the_typed_answers(setup: Setup) -> None:
    """Issue 17: a 413 page used to discard the whole report form. A 20 MB file (over the 12 MB
    request limit of other forms) now comes back beside its field, the answers still typed."""
    import io

    client = setup.client()
    sid = client.post("/api/v1/students", json=STUDENT, headers=setup.api).json["student_id"]
    aid = client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY, headers=setup.api).json["activity_id"]
    student = setup.client()
    sign_in_student(student, setup.app.extensions["cim.identity"], sid)
    url = f"/students/{sid}/report"
    token = hidden(student.get(url).text, "form_token")
    big = io.BytesIO(b"%PDF-1.4\n" + b"0" * (20 * 1024 * 1024))
    answer = student.post(url, content_type="multipart/form-data", data={
        "form_token": token, "answer_0": "Working through an interpreter, I learnt to listen.",
        "answer_1": "B", "answer_2": "C", "activities": [aid], "attachment": (big, "report.pdf")})
    assert answer.status_code == 422, answer.status_code
    assert "Working through an interpreter, I learnt to listen." in answer.text
    assert 'id="attachment-error"' in answer.text
    assert "ReportSubmitted" not in setup.types(sid)


def test_my_cim_lists_activities_latest_first_offers_resubmit_and_marks_a_replaced_report(setup: Setup) -> None:
    from datetime import timedelta

    from tests.authkit import sign_in

    sid, rid, aids = setup.register_with_report()
    later = {**ACTIVITY, "title": "Summer school in Tartu", "start_date": "2026-07-01", "end_date": "2026-07-20"}
    earlier = {**ACTIVITY, "title": "Study visit to Oslo", "start_date": "2025-10-01", "end_date": "2025-10-03"}
    for body in (later, earlier):
        logged = setup.client().post(f"/api/v1/students/{sid}/activities", json=body, headers=setup.api)
        assert logged.status_code == 201
    student = setup.client()
    account = sign_in_student(student, setup.app.extensions["cim.identity"], sid)
    page = student.get(f"/students/{sid}").text
    titles = re.findall(r"<h3>([^<]+)</h3>", page.split('id="activities-heading"')[1].split("</section>")[0])
    # by when they took place, the latest first (the three logged on 10 Jan: by title, reversed)
    assert titles == ["Summer school in Tartu", "Webinar on care", "Exchange in Berlin", "Study visit to Oslo"]
    setup.view.decide(sid, rid, 1, "revision_requested", "Say more.")
    actions = student.get(f"/students/{sid}").text.split('class="actions"')[1].split("</nav>")[0]
    assert f'/students/{sid}/reports/{rid}/resubmit">Resubmit your CIM report' in actions
    assert "Submit your CIM report" not in actions.replace("Resubmit your CIM report", "")
    assert "Lämna in din CIM-rapport igen" in student.get(f"/students/{sid}?lang=sv").text
    setup.view.decide(sid, rid, 1, "rejected", "Not international enough.")
    setup.app.extensions["cim.intake"].clock.advance(timedelta(days=10))  # 8 December
    second = setup.client().post(f"/api/v1/students/{sid}/reports", headers=setup.api,
                                 json={"answers": ANSWERS, "activity_ids": [aids[1]]})
    assert second.status_code == 201, second.json
    student = setup.client()  # ten days on: a new session
    sign_in(student, setup.app.extensions["cim.identity"], account)
    page = student.get(f"/students/{sid}?lang=en").text
    reports = page.split('id="reports-heading"')[1].split("</section>")[0]
    assert reports.index("Submitted 8 December 2026") < reports.index("Submitted 28 November 2026")
    assert reports.count("Replaced by your report of 8 December 2026.") == 1
    assert "Ersatt av din rapport från 8 december 2026." in student.get(f"/students/{sid}?lang=sv").text
    actions = page.split('class="actions"')[1].split("</nav>")[0]
    assert "Submit your CIM report" not in actions  # the new one waits
