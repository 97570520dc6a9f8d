"""The intake JSON API on an in-memory store: the happy path, idempotency, concurrency, bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.api_tokens import IssuedApiToken
from shared.identity.wiring import Identity
from tests.authkit import authed_client, bearer, integration_token, make_identity, student_account
from tests.factories import blank_pdf

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

STUDENT = {
    "name": "Tova Exempel",
    "email": "tova.exempel@example.org",
    "university_id": "tx1234ex",
    "department": "SOCSW",
    "programme": "SSASK",
    "expected_end_term": "VT2028",
}
ACTIVITY = {
    "kind": "exchange",
    "title": "Exchange semester in Berlin",
    "organiser": "A university in Berlin",
    "setting": "abroad",
    "country_code": "DE",
    "start_date": "2026-01-10",
    "end_date": "2026-06-01",
    "hours": 400,
    "description": "Courses on comparative social policy.",
}


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def now() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def identity(now: FixedClock) -> Identity:
    return make_identity(now)


@pytest.fixture
def token(identity: Identity) -> IssuedApiToken:
    """An integration's token with every intake scope: what the client below sends."""
    return integration_token(identity)[0]


@pytest.fixture
def app(tmp_path, store, now, identity):
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    return create_app(settings, store=store, clock=now, identity=identity)


@pytest.fixture
def client(app, token):
    return authed_client(app, {"Authorization": f"Bearer {token.token}"})


def register(client, **changes) -> str:
    response = client.post("/api/v1/students", json={**STUDENT, **changes})
    assert response.status_code == 201, response.json
    return response.json["student_id"]


def log(client, sid: str, **changes) -> str:
    response = client.post(f"/api/v1/students/{sid}/activities", json={**ACTIVITY, **changes})
    assert response.status_code == 201, response.json
    return response.json["activity_id"]


ANSWERS = {"learning": "Much.", "profession": "A lot.", "perspective": "It changed."}


def test_newcomer_journey_through_the_api_is_recorded_as_events(client, store, token):
    sid = register(client)
    first = log(client, sid)
    second = log(client, sid, kind="seminar", setting="digital", country_code=None, title="Webinar")
    upload = client.post(
        f"/api/v1/students/{sid}/attachments", data=blank_pdf(), content_type="application/pdf",
        headers={"X-Filename": "my report.pdf"},
    )
    assert upload.status_code == 201, upload.json
    report = client.post(
        f"/api/v1/students/{sid}/reports",
        json={"answers": ANSWERS, "activity_ids": [first, second], "attachment_id": upload.json["attachment_id"]},
    )
    assert report.status_code == 201, report.json
    stream = client.get(f"/api/v1/students/{sid}/events").json
    assert [e["type"] for e in stream["events"]] == [
        "StudentRegistered", "ActivityLogged", "ActivityLogged", "AttachmentUploaded", "ReportSubmitted",
    ]
    assert stream["events"][-1]["data"]["rules"] == "SOCSW@1"
    # Every event records who acted: here the integration's token (never the token itself).
    assert all(e["metadata"]["actor"] == f"token:{token.record.id}" for e in stream["events"])
    assert token.token not in str(stream)
    feed = client.get("/api/v1/events?after=2&limit=2").json
    assert [e["position"] for e in feed["events"]] == [3, 4]
    assert feed["next_after"] == 4
    assert feed["head"] == 5


def test_retried_post_with_same_idempotency_key_stores_one_event_and_answers_the_same(client, store):
    first = client.post("/api/v1/students", json=STUDENT, headers={"Idempotency-Key": "k-1"})
    again = client.post("/api/v1/students", json=STUDENT, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json["student_id"] == first.json["student_id"]
    assert store.count() == 1


def test_same_idempotency_key_with_a_different_body_is_refused(client, store):
    client.post("/api/v1/students", json=STUDENT, headers={"Idempotency-Key": "k-2"})
    other = client.post("/api/v1/students", json={**STUDENT, "name": "Other"}, headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 422
    assert other.json["type"] == "idempotency_key_reused"
    assert store.count() == 1


def test_if_match_with_a_stale_version_is_a_409_and_stores_nothing(client, store):
    sid = register(client)
    log(client, sid)
    stale = client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    assert stale.json["type"] == "version_conflict"
    fresh = client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY, headers={"If-Match": '"2"'})
    assert fresh.status_code == 201
    assert store.count() == 3


def test_amend_and_withdraw_an_activity(client, store):
    sid = register(client)
    aid = log(client, sid)
    amended = client.post(
        f"/api/v1/students/{sid}/activities/{aid}/amendments", json={**ACTIVITY, "hours": 380}
    )
    assert amended.status_code == 200
    withdrawn = client.post(f"/api/v1/students/{sid}/activities/{aid}/withdrawal", json={"reason": "wrong term"})
    assert withdrawn.status_code == 200
    again = client.post(f"/api/v1/students/{sid}/activities/{aid}/withdrawal")
    assert again.status_code == 200
    types = [e["type"] for e in client.get(f"/api/v1/students/{sid}/events").json["events"]]
    assert types == ["StudentRegistered", "ActivityLogged", "ActivityAmended", "ActivityWithdrawn"]
    refused = client.post(f"/api/v1/students/{sid}/activities/{aid}/amendments", json=ACTIVITY)
    assert refused.status_code == 409


def test_report_must_cover_own_non_withdrawn_activities(client, store):
    sid = register(client)
    other = register(client, university_id="ot5678ex")
    foreign = log(client, other)
    aid = log(client, sid)
    client.post(f"/api/v1/students/{sid}/activities/{aid}/withdrawal")
    before = store.count()
    for ids in ([foreign], [aid]):
        response = client.post(f"/api/v1/students/{sid}/reports", json={"answers": ANSWERS, "activity_ids": ids})
        assert response.status_code == 422
        assert "activity_ids" in response.json["errors"]
    missing = client.post(
        f"/api/v1/students/{sid}/reports", json={"answers": {"learning": "x"}, "activity_ids": [aid]}
    )
    assert "answers" in missing.json["errors"]
    assert store.count() == before


def test_withdrawn_student_can_record_nothing_more(client, store):
    sid = register(client)
    assert client.post(f"/api/v1/students/{sid}/withdrawal", json={"reason": "changed plans"}).status_code == 200
    before = store.count()
    assert client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY).status_code == 409
    assert store.count() == before


def test_studies_completed_cannot_lie_in_the_future(client, store):
    sid = register(client)
    future = client.post(
        f"/api/v1/students/{sid}/studies-completed", json={"completed_on": "2027-01-10", "term": "HT2026"}
    )
    assert future.status_code == 422
    assert "completed_on" in future.json["errors"]
    done = client.post(
        f"/api/v1/students/{sid}/studies-completed", json={"completed_on": "2026-11-01", "term": "HT2026"}
    )
    assert done.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"completed_on": "2026-03-10", "term": "HT2026"}, "completed_on"),  # spring, said autumn
        ({"completed_on": "2026-10-01", "term": "VT2026"}, "completed_on"),
        ({"completed_on": "2026-10-01", "term": "HT2062"}, "term"),  # decades away
        ({"completed_on": "2008-05-01", "term": "VT2008"}, "term"),
    ],
)
def test_a_completion_that_contradicts_itself_names_the_field_and_stores_nothing(client, store, body, field):
    sid = register(client)
    before = store.count()
    response = client.post(f"/api/v1/students/{sid}/studies-completed", json=body)
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]
    assert store.count() == before


@pytest.mark.parametrize("term", ["HT2062", "VT2001"])
def test_registration_for_a_term_decades_away_is_refused(client, store, term):
    before = store.count()
    response = client.post("/api/v1/students", json={**STUDENT, "expected_end_term": term})
    assert response.status_code == 422, response.json
    assert response.json["errors"]["expected_end_term"] == ["Give a term at most 8 years before or after today."]
    assert store.count() == before


def test_department_without_required_abroad_rules_come_from_the_catalogue(client):
    sid = register(client, department="MED", programme="MALAK")
    aid = log(client, sid, kind="buddy-programme", setting="at_home", country_code="SE", title="Buddy")
    wrong = client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY)
    assert wrong.status_code == 422
    assert "kind" in wrong.json["errors"]
    assert aid


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ACTIVITY, "end_date": "2025-01-01"}, "end_date"),
        ({**ACTIVITY, "country_code": "XX"}, "country_code"),
        ({**ACTIVITY, "title": "a\x00b"}, "title"),
        ({**ACTIVITY, "title": "x" * 201}, "title"),
        ({**ACTIVITY, "hours": "12"}, "hours"),
        ({**ACTIVITY, "surprise": 1}, "surprise"),
        ({**ACTIVITY, "setting": "at_home", "kind": "exchange"}, "setting"),
        ({**ACTIVITY, "country_code": None}, "country_code"),
        ({**ACTIVITY, "country_code": "XA"}, "country_code"),  # a pseudo-region, not a country
        # a country that contradicts the setting is refused, not silently dropped (issue 17)
        ({**ACTIVITY, "kind": "seminar", "setting": "at_home", "country_code": "DE"}, "country_code"),
        ({**ACTIVITY, "kind": "seminar", "setting": "digital", "country_code": "DE"}, "country_code"),
        ({k: v for k, v in ACTIVITY.items() if k != "title"}, "title"),
    ],
)
def test_invalid_activity_names_the_field_and_stores_nothing(client, store, body, field):
    sid = register(client)
    before = store.count()
    response = client.post(f"/api/v1/students/{sid}/activities", json=body)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert field in response.json["errors"]
    assert store.count() == before


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400),
        ({"data": "[1, 2]", "content_type": "application/json"}, 422),
        ({"data": "name=x", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"data": "x" * (13 * 1024 * 1024), "content_type": "application/json"}, 413),
    ],
)
def test_malformed_requests_get_a_clear_4xx_and_store_nothing(client, store, kwargs, status):
    response = client.post("/api/v1/students", **kwargs)
    assert response.status_code == status
    assert response.json["status"] == status
    assert store.count() == 0


@pytest.mark.parametrize("sid", ["nope", "00000000-0000-0000-0000-000000000000", "1 OR 1=1"])
def test_unknown_and_malformed_student_ids_answer_alike(client, sid):
    for response in (
        client.get(f"/api/v1/students/{sid}/events"),
        client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY),
    ):
        assert response.status_code == 404
        assert response.json["detail"] == "No such student."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"<html>not a pdf</html>", "not a PDF"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>", "scripts"),
        (b"%PDF-1.4 garbage that does not parse", "could not be read"),
    ],
)
def test_bad_uploads_are_refused_and_leave_no_file(client, store, tmp_path, content, message):
    sid = register(client)
    response = client.post(f"/api/v1/students/{sid}/attachments", data=content, content_type="application/pdf")
    assert response.status_code == 422
    assert message.lower() in " ".join(response.json["errors"]["attachment"]).lower()
    assert store.count() == 1
    assert not list((tmp_path / "uploads").glob("*.pdf")) if (tmp_path / "uploads").exists() else True


def test_oversized_upload_is_refused(tmp_path, store, now, identity):
    app = create_app(Settings(data_dir=tmp_path, wakeup="none", max_upload_bytes=1000,
                              ratelimit_storage="memory://"), store=store,
                     clock=now, identity=identity)
    client = authed_client(app, bearer(identity))
    sid = register(client)
    response = client.post(
        f"/api/v1/students/{sid}/attachments", data=blank_pdf() + b" " * 1000, content_type="application/pdf"
    )
    assert response.status_code == 422
    assert store.count() == 1


def test_bad_headers_are_refused(client, store):
    assert client.post("/api/v1/students", json=STUDENT, headers={"Idempotency-Key": "a b"}).status_code == 422
    sid = register(client)
    bad = client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY, headers={"If-Match": "soon"})
    assert bad.status_code == 422
    assert store.count() == 1


def test_openapi_document_lists_every_operation(client):
    spec = client.get("/api/v1/openapi.json").json
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert operations == {
        "registerStudent", "logActivity", "amendActivity", "withdrawActivity", "uploadAttachment",
        "submitReport", "resubmitReport", "completeStudies", "withdrawRegistration", "studentEvents", "eventFeed",
    }
    assert "SOCSW" in spec["components"]["schemas"]["RegisterStudentRequest"]["properties"]["department"]["enum"]
    # Every operation needs a bearer token (the document itself is public and not an operation).
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "security" not in spec  # no global default: each operation says what it needs
    scopes = {}
    for path in spec["paths"].values():
        for op in path.values():
            (requirement,) = op["security"]
            scopes[op["operationId"]] = requirement["bearerAuth"]
            assert {"401", "403"} <= set(op["responses"]), op["operationId"]
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
    assert scopes["registerStudent"] == ["intake:register"]
    assert scopes["studentEvents"] == ["intake:read"]
    assert scopes["eventFeed"] == ["feed:read"]
    assert {tuple(v) for k, v in scopes.items() if k not in ("registerStudent", "studentEvents", "eventFeed")} == {
        ("intake:write",)}


def test_feed_refuses_repeated_or_unknown_query_parameters(client):
    assert client.get("/api/v1/events?after=1&after=2").status_code == 422
    assert client.get("/api/v1/events?limit=1&limit=2").json["errors"] == {"limit": ["Give this parameter once."]}
    assert client.get("/api/v1/events?surprise=1").status_code == 422
    assert client.get("/api/v1/events?limit=5001").status_code == 422


# -- authentication and scopes (issue 4) ---------------------------------------------------------
def _operations(sid: str, aid: str) -> list[tuple[str, str, dict]]:
    """Every intake API operation but the (public) OpenAPI document, with a valid request."""
    return [
        ("POST", "/api/v1/students", {"json": STUDENT}),
        ("POST", f"/api/v1/students/{sid}/activities", {"json": ACTIVITY}),
        ("POST", f"/api/v1/students/{sid}/activities/{aid}/amendments", {"json": ACTIVITY}),
        ("POST", f"/api/v1/students/{sid}/activities/{aid}/withdrawal", {"json": {"reason": "x"}}),
        ("POST", f"/api/v1/students/{sid}/attachments", {"data": blank_pdf(), "content_type": "application/pdf"}),
        ("POST", f"/api/v1/students/{sid}/reports", {"json": {"answers": ANSWERS, "activity_ids": [aid]}}),
        ("POST", f"/api/v1/students/{sid}/studies-completed",
         {"json": {"completed_on": "2026-11-01", "term": "HT2026"}}),
        ("POST", f"/api/v1/students/{sid}/withdrawal", {"json": {"reason": "x"}}),
        ("GET", f"/api/v1/students/{sid}/events", {}),
        ("GET", "/api/v1/events?after=0&limit=10", {}),
    ]


def test_every_operation_refuses_a_missing_or_invalid_token_with_401(app, client, identity, store):
    sid = register(client)
    aid = log(client, sid)
    revoked = integration_token(identity)[0]
    identity.api_tokens.revoke(revoked.record.id)
    before = store.count()
    wrong = [
        None,  # no Authorization header at all
        "Bearer cim_" + "x" * 43,  # well-formed, unknown
        "Bearer not-a-cim-token",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        f"Bearer {revoked.token}",
        f"Token {revoked.token}",
    ]
    for method, path, kwargs in _operations(sid, aid):
        for header in wrong:
            headers = {} if header is None else {"Authorization": header}
            response = app.test_client().open(path, method=method, headers=headers, **kwargs)
            assert response.status_code == 401, (method, path, header, response.json)
            assert response.mimetype == "application/problem+json"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.json["status"] == 401
    assert store.count() == before
    # The document describing the API stays public.
    assert app.test_client().get("/api/v1/openapi.json").status_code == 200


def test_a_session_cookie_does_not_authenticate_the_api(app, identity, store):
    """API calls authenticate by bearer token only: a signed-in browser's cookie alone is refused
    (so a cross-site form cannot act through the API)."""
    from tests.authkit import sign_in

    browser = app.test_client()
    sid = authed_client(app, bearer(identity)).post("/api/v1/students", json=STUDENT).json["student_id"]
    sign_in(browser, identity, student_account(identity, sid))
    before = store.count()
    assert browser.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY).status_code == 401
    assert browser.get(f"/api/v1/students/{sid}/events").status_code == 401
    assert store.count() == before


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (("intake:register",), {"registerStudent"}),
        (("intake:write",), {"logActivity"}),
        (("intake:read",), {"studentEvents"}),
        (("feed:read",), {"eventFeed"}),
    ],
)
def test_a_token_may_do_only_what_its_scopes_say(app, client, identity, store, scopes, allowed):
    sid = register(client)
    other = authed_client(app, bearer(identity, *scopes))
    calls = {
        "registerStudent": lambda: other.post("/api/v1/students", json={**STUDENT, "university_id": "zz9999zz"}),
        "logActivity": lambda: other.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY),
        "studentEvents": lambda: other.get(f"/api/v1/students/{sid}/events"),
        "eventFeed": lambda: other.get("/api/v1/events?after=0&limit=10"),
    }
    for name, call in calls.items():
        before = store.count()
        response = call()
        if name in allowed:
            assert response.status_code in (200, 201), (name, response.json)
        else:
            assert response.status_code == 403, (name, response.json)
            assert response.mimetype == "application/problem+json"
            assert store.count() == before


def test_the_feed_refuses_a_token_without_feed_read(app, client, identity):
    register(client)
    without_feed = ("intake:register", "intake:write", "intake:read")
    refused = authed_client(app, bearer(identity, *without_feed)).get("/api/v1/events?after=0&limit=10")
    assert refused.status_code == 403
    assert refused.json["status"] == 403
    assert "events" not in refused.json
    allowed = authed_client(app, bearer(identity, "feed:read")).get("/api/v1/events?after=0&limit=10")
    assert allowed.status_code == 200
    assert [e["type"] for e in allowed.json["events"]] == ["StudentRegistered"]


def test_a_students_own_token_reaches_only_their_own_record(app, client, identity, store):
    mine = register(client)
    theirs = register(client, university_id="ot5678ex")
    account = student_account(identity, mine)
    student = authed_client(app, bearer(identity, "intake:write", "intake:read", account_id=account.id))
    assert student.post(f"/api/v1/students/{mine}/activities", json=ACTIVITY).status_code == 201
    events = student.get(f"/api/v1/students/{mine}/events").json["events"]
    assert events[-1]["metadata"]["actor"] == f"account:{account.id}"
    before = store.count()
    unknown = "00000000-0000-4000-8000-000000000000"
    for sid in (theirs, unknown):  # a foreign student answers exactly as an unknown one
        read = student.get(f"/api/v1/students/{sid}/events")
        write = student.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY)
        assert (read.status_code, read.json["detail"]) == (404, "No such student.")
        assert (write.status_code, write.json["detail"]) == (404, "No such student.")
    assert store.count() == before
