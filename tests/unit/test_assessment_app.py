"""The assessment app: review queue, student overview, projection status, status feed, CLI, logs."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from assessment_service import create_app as create_assessment_app
from intake_service import assessment_view
from intake_service import create_app as create_intake_app
from shared.adapters.feed import FunctionFeed, StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.wakeup import RecordingWakeUp
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from shared.identity.wiring import Identity
from shared.logs import JsonFormatter
from tests.authkit import authed_client, bearer, make_account, make_identity, sign_in

ANSWERS = {"learning": "I learnt a lot.", "profession": "It matters.", "perspective": "Wider."}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def identity(clock: FixedClock) -> Identity:
    """One identity for both apps, as in production (one session store, one token table)."""
    return make_identity(clock)


@pytest.fixture
def intake(settings: Settings, store: InMemoryEventStore, clock: FixedClock, identity: Identity) -> FlaskClient:
    """An integration calling the intake API with every intake scope."""
    app = create_intake_app(settings, store=store, clock=clock, wakeup=RecordingWakeUp(), identity=identity)
    return authed_client(app, bearer(identity))


@pytest.fixture
def app(settings: Settings, store: InMemoryEventStore, intake: FlaskClient, clock: FixedClock,
        identity: Identity) -> Flask:
    """The assessment app reading the intake feed in-process, exactly as GET /api/v1/events serves it."""
    opener = intake.application.extensions["cim.intake"].open_events
    return create_assessment_app(settings, feed=StoreEventFeed(store, opener=opener), batch_size=2,
                                 clock=clock, identity=identity)


def api(app: Flask, *scopes: str) -> FlaskClient:
    """A client of the assessment API with a token of `scopes` (default: every assessment scope)."""
    identity = app.extensions["cim.identity"]
    return authed_client(app, bearer(identity, *(scopes or ("assessment:read", "feed:read", "ops:read"))))


def reviewer(app: Flask, department: str = "SOCSW") -> FlaskClient:
    """A browser signed in as a coordinator of `department` (who sees every report of it in the
    review queue; assessors see the ones assigned to them)."""
    identity = app.extensions["cim.identity"]
    client = app.test_client()
    sign_in(client, identity, make_account(identity, "Coordinator", grants=[(Role.COORDINATOR, department)]))
    return client


def catch_up(app: Flask) -> int:
    return app.extensions["cim.assessment"].runner.catch_up()


def register(intake: FlaskClient, name: str = "Tova Exempel") -> str:
    response = intake.post("/api/v1/students", json={
        "name": name, "email": "tova@example.org", "university_id": "ab-123", "department": "SOCSW",
        "programme": "SSASK", "expected_end_term": "VT2028",
    })
    assert response.status_code == 201, response.json
    return response.json["student_id"]


def log_activity(intake: FlaskClient, sid: str, title: str = "Exchange in Lyon") -> str:
    response = intake.post(f"/api/v1/students/{sid}/activities", json={
        "kind": "exchange", "title": title, "organiser": "Université Lyon 2", "setting": "abroad",
        "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01",
    })
    assert response.status_code == 201, response.json
    return response.json["activity_id"]


def submit(intake: FlaskClient, sid: str, activity_ids: list[str], cid: str = "corr-1") -> str:
    response = intake.post(f"/api/v1/students/{sid}/reports", json={"answers": ANSWERS, "activity_ids": activity_ids},
                           headers={"X-Correlation-ID": cid})
    assert response.status_code == 201, response.json
    return response.json["report_id"]


def test_submitted_report_waits_in_the_review_queue_with_activities_and_answers(
    intake: FlaskClient, app: Flask, clock: FixedClock
) -> None:
    first = register(intake, "Tova Exempel")
    report = submit(intake, first, [log_activity(intake, first)])
    second = register(intake, "Måns Provsson")
    submit(intake, second, [log_activity(intake, second, "Summer school")])
    catch_up(app)
    body = api(app, "assessment:read").get("/api/v1/review-queue").json
    assert body["count"] == 2
    oldest = body["items"][0]
    assert (oldest["report_id"], oldest["name"], oldest["department"], oldest["programme"]) == (
        report, "Tova Exempel", "SOCSW", "SSASK")
    assert oldest["answers"] == ANSWERS
    assert [a["title"] for a in oldest["activities"]] == ["Exchange in Lyon"]
    assert body["items"][1]["name"] == "Måns Provsson"


def test_withdrawn_student_leaves_the_queue_and_a_new_report_replaces_the_waiting_one(
    intake: FlaskClient, app: Flask
) -> None:
    sid = register(intake)
    aid = log_activity(intake, sid)
    first = submit(intake, sid, [aid])
    # The intake takes a new report once the first is rejected (as the assessment side's events
    # tell it); the queue replaces the earlier report with it.
    rejected = {first: {"round": 1, "state": "rejected"}}
    intake.application.extensions["cim.intake"].report_steps = lambda _sid: rejected
    newer = submit(intake, sid, [aid], "corr-2")
    catch_up(app)
    items = api(app, "assessment:read").get("/api/v1/review-queue").json["items"]
    assert [i["report_id"] for i in items] == [newer]
    intake.post(f"/api/v1/students/{sid}/withdrawal")
    catch_up(app)
    assert api(app, "assessment:read").get("/api/v1/review-queue").json["count"] == 0


def test_student_overview_shows_status_activities_and_reports(intake: FlaskClient, app: Flask) -> None:
    sid = register(intake)
    aid = log_activity(intake, sid)
    catch_up(app)
    client = api(app, "assessment:read")
    assert client.get(f"/api/v1/students/{sid}").json["status"] == "registered"
    intake.post(f"/api/v1/students/{sid}/activities/{aid}/withdrawal")
    intake.post(f"/api/v1/students/{sid}/studies-completed", json={"completed_on": "2026-01-15", "term": "HT2025"})
    catch_up(app)
    body = client.get(f"/api/v1/students/{sid}").json
    assert body["status"] == "studies completed"
    assert body["studies_completed_on"] == "2026-01-15"
    assert body["activities"][0]["withdrawn"] is True


@pytest.mark.parametrize("student_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_student_is_a_404_problem(app: Flask, student_id: str) -> None:
    response = api(app, "assessment:read").get(f"/api/v1/students/{student_id}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 404


def test_projections_endpoint_shows_checkpoints_and_lag(intake: FlaskClient, app: Flask) -> None:
    register(intake)
    register(intake)
    client = api(app, "ops:read")
    before = client.get("/api/v1/projections").json["projections"]
    assert {(p["checkpoint"], p["head"], p["lag"]) for p in before} == {(0, 2, 2)}
    catch_up(app)
    after = client.get("/api/v1/projections").json["projections"]
    assert {p["name"] for p in after} == {"students", "activities", "reports", "review_queue", "report_rounds",
                                          "deadline_basis", "statistics_facts"}
    assert {p["lag"] for p in after} == {0}


def test_status_feed_serves_each_students_latest_status_as_events(intake: FlaskClient, app: Flask) -> None:
    a = register(intake)
    b = register(intake)
    submit(intake, a, [log_activity(intake, a)])
    catch_up(app)
    client = api(app, "feed:read")
    page = client.get("/api/v1/status-feed?after=0").json
    assert [(e["type"], e["data"]["student_id"], e["data"]["status"]) for e in page["events"]] == [
        ("StudentStatusChanged", b, "registered"), ("StudentStatusChanged", a, "report submitted")]
    assert page["next_after"] == page["head"] == page["events"][-1]["position"]
    assert client.get(f"/api/v1/status-feed?after={page['next_after']}").json["events"] == []
    assert client.get("/api/v1/status-feed?after=-1").status_code == 422


def test_status_reaches_the_intake_side_by_events(
    intake: FlaskClient, app: Flask, settings: Settings
) -> None:
    sid = register(intake)
    client = api(app, "feed:read")

    def read(after: int, limit: int):  # type: ignore[no-untyped-def]
        from shared.adapters.feed import event_from_json

        page = client.get(f"/api/v1/status-feed?after={after}&limit={limit}").json
        return [event_from_json(e) for e in page["events"]]

    view = assessment_view.build_view(settings, feed=FunctionFeed(read, lambda: 0))
    intake.application.extensions["cim.intake.assessment_view"] = view
    assert assessment_view.status_for(intake.application, sid) is None
    catch_up(app)
    view.catch_up()
    assert assessment_view.status_for(intake.application, sid) == "registered"
    intake.post(f"/api/v1/students/{sid}/withdrawal")
    catch_up(app)
    view.catch_up()
    view.catch_up()
    assert assessment_view.status_for(intake.application, sid) == "withdrawn"


def test_review_queue_page_is_semantic_and_escapes_names(intake: FlaskClient, app: Flask) -> None:
    sid = register(intake, "Tova <b>Exempel</b>")
    submit(intake, sid, [log_activity(intake, sid)])
    catch_up(app)
    html = reviewer(app).get("/review-queue").get_data(as_text=True)
    assert "<h1>Review queue</h1>" in html
    assert "<main" in html
    assert '<table class="queue-table"' in html  # one row per report; the whole report on its own page
    assert "Tova &lt;b&gt;Exempel&lt;/b&gt;</a></th>" in html
    assert "Exchange in Lyon" not in html


def test_cli_rebuild_and_status(intake: FlaskClient, app: Flask) -> None:
    sid = register(intake)
    submit(intake, sid, [log_activity(intake, sid)])
    catch_up(app)
    runner = app.extensions["cim.assessment"].runner
    live = runner.digest()
    cli = app.test_cli_runner()
    result = cli.invoke(args=["projections", "rebuild", "review_queue"])
    assert result.exit_code == 0, result.output
    assert "Rebuilding review_queue" in result.output
    assert runner.digest() == live
    result = cli.invoke(args=["projections", "rebuild"])
    assert result.exit_code == 0, result.output
    assert runner.digest() == live
    status = cli.invoke(args=["projections", "status"])
    assert "students" in status.output
    assert "lag=0" in status.output
    bad = cli.invoke(args=["projections", "rebuild", "nope"])
    assert bad.exit_code != 0


def test_logs_are_json_lines_with_the_correlation_id_of_the_request(
    intake: FlaskClient, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    sid = register(intake)
    submit(intake, sid, [log_activity(intake, sid)], cid="trace-42")
    with caplog.at_level(logging.INFO, logger="shared.projection"):
        catch_up(app)
    records = [r for r in caplog.records if r.getMessage() == "projected batch"]
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    assert any("trace-42" in line["correlation_ids"] for line in lines)
    response = api(app, "assessment:read").get("/api/v1/review-queue", headers={"X-Correlation-ID": "abc-1"})
    assert response.headers["X-Correlation-ID"] == "abc-1"


def test_review_queue_page_names_kinds_and_questions_from_the_catalogue_in_both_languages(
    intake: FlaskClient, app: Flask
) -> None:
    sid = register(intake)
    report = submit(intake, sid, [log_activity(intake, sid)])
    catch_up(app)
    # The queue is a table; the whole report is on its own page.
    english = reviewer(app).get(f"/reports/{report}?lang=en").get_data(as_text=True)
    assert "Exchange studies" in english
    assert "What did you learn from your international activities" in english
    assert "School of Social Work" in english
    # Answers follow the catalogue's question order (learning, profession, perspective), not the codes'.
    assert english.index("What did you learn") < english.index("future profession") < english.index("welfare system")
    swedish = reviewer(app).get(f"/reports/{report}?lang=sv").get_data(as_text=True)
    assert '<html lang="sv">' in swedish
    assert "Utbytesstudier" in swedish
    assert "Granskningskö" in swedish  # the menu
    assert "Socialhögskolan" in swedish


def test_review_queue_shows_the_stored_rule_checklist_on_the_page_and_in_json(intake: FlaskClient, app: Flask) -> None:
    sid = register(intake)
    report = submit(intake, sid, [log_activity(intake, sid, "Exchange in Lyon")])
    catch_up(app)
    [item] = api(app, "assessment:read").get("/api/v1/review-queue").json["items"]
    assert (item["rules"], item["checklist_summary"]) == ("SOCSW@1", {"met": 1, "total": 2})
    assert [line["met"] for line in item["checklist"]["items"]] == [False, True]
    detail = api(app, "assessment:read").get(f"/api/v1/reports/{report}").json
    assert detail["checklist"] == item["checklist"]
    english = reviewer(app).get(f"/reports/{report}?lang=en").get_data(as_text=True)
    assert "Rule checklist" in english
    assert "1 of 2 requirements met (SOCSW@1)" in english
    assert "At least one activity abroad: yes — Exchange in Lyon, 2025-01" in english
    assert "At least three activities: no — Exchange in Lyon, 2025-01" in english
    swedish = reviewer(app).get(f"/reports/{report}?lang=sv").get_data(as_text=True)
    assert "Regelkontroll" in swedish
    assert "1 av 2 krav uppfyllda" in swedish
    assert "Minst en aktivitet utomlands: ja — Exchange in Lyon, 2025-01" in swedish
    table = reviewer(app).get("/review-queue?lang=en").get_data(as_text=True)
    assert "1 of 2 met" in table
    assert "Not met: At least three activities" in table


# -- authentication and scopes (issue 4) ---------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/api/v1/review-queue", "assessment:read"),
        ("/api/v1/projections", "ops:read"),
        ("/api/v1/status-feed?after=0", "feed:read"),
    ],
)
def test_assessment_api_needs_a_token_with_the_operations_scope(
    intake: FlaskClient, app: Flask, path: str, scope: str
) -> None:
    register(intake)
    catch_up(app)
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert app.test_client().get(path, headers={"Authorization": "Bearer cim_" + "x" * 43}).status_code == 401
    others = {"assessment:read", "feed:read", "ops:read"} - {scope}
    refused = api(app, *sorted(others)).get(path)
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert api(app, scope).get(path).status_code == 200


def test_review_queue_page_is_for_signed_in_reviewers_only(intake: FlaskClient, app: Flask) -> None:
    sid = register(intake, "Tova Exempel")
    submit(intake, sid, [log_activity(intake, sid)])
    catch_up(app)
    anonymous = app.test_client().get("/review-queue")
    assert anonymous.status_code == 303
    assert anonymous.headers["Location"].startswith("/auth/sign-in?next=")
    identity = app.extensions["cim.identity"]
    student = app.test_client()
    sign_in(student, identity, make_account(identity, "Student", student_id=sid, grants=[(Role.STUDENT, "SOCSW")]))
    refused = student.get("/review-queue")
    assert refused.status_code == 403
    assert "Tova Exempel" not in refused.get_data(as_text=True)
    assert "Tova Exempel" in reviewer(app).get("/review-queue").get_data(as_text=True)
