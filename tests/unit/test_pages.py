"""The student pages: the newcomer journey, re-shown forms, double submits, access, language, a11y."""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from shared.identity.wiring import Identity
from shared.mail import RecordingMailer
from tests.authkit import bearer, make_account, make_identity, sign_in, sign_in_student
from tests.factories import STUDENT, blank_pdf

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

BERLIN = {
    "kind": "exchange",
    "title": "Exchange in Berlin",
    "organiser": "Humboldt-Universität",
    "setting": "abroad",
    "country_code": "DE",
    "start_date": "2026-01-10",
    "end_date": "2026-06-01",
    "hours": "",
    "description": "",
}
CAFE = {
    "kind": "international-cafe",
    "title": "International café, autumn",
    "organiser": "School of Social Work",
    "setting": "at_home",
    "country_code": "",
    "start_date": "2026-09-15",
    "end_date": "2026-09-15",
    "hours": "3",
    "description": "Talked with exchange students\nabout welfare systems.",
}



@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def app(tmp_path: Path, store: InMemoryEventStore) -> Flask:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://")
    clock = FixedClock(NOW)
    app = create_app(settings, store=store, clock=clock, identity=make_identity(clock))
    app.config["WTF_CSRF_ENABLED"] = False
    app.extensions["cim.mailer"] = RecordingMailer()  # the register page e-mails a sign-in link
    return app


def identity_of(app: Flask) -> Identity:
    return app.extensions["cim.identity"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# -- helpers -------------------------------------------------------------------------------------
def hidden(html: str, name: str) -> str | None:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    return match.group(1) if match else None


def send(client: FlaskClient, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """Open the form like a browser, then post it with the token the page gave."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    body = {"form_token": hidden(page.text, "form_token"), **data}
    return client.post(path, data=body, **kwargs)


def register(client: FlaskClient, **changes: str) -> str:
    """A registered student whose own account `client` is signed in as. Registered through the
    API by an integration (the register page has tests of its own), so these tests do not hang
    on how the page signs a newcomer in."""
    identity = identity_of(client.application)
    response = client.post("/api/v1/students", json={**STUDENT, **changes}, headers=bearer(identity, "intake:register"))
    assert response.status_code == 201, response.json
    student_id = response.json["student_id"]
    sign_in_student(client, identity, student_id)
    return student_id


def registered_id(store: InMemoryEventStore) -> str:
    """The id of the one student registered so far (from the event log, not from the page)."""
    (stream,) = {e.stream_id for e in store.read_all() if e.type == "StudentRegistered"}
    return stream.removeprefix("student-")


def log(client: FlaskClient, student_id: str, activity: dict[str, str]) -> Any:
    return send(client, f"/students/{student_id}/activities/new", activity)


def events(store: InMemoryEventStore) -> list[str]:
    return [e.type for e in store.read_all()]


def activity_ids(html: str) -> list[str]:
    return re.findall(r"/activities/([0-9a-f-]{36})/edit", html)


def without_language_link(html: str) -> str:
    return re.sub(r'href="[^"]*\?lang=\w+"', "", html)


def answers(text: str = "I learned a lot.") -> dict[str, str]:
    return {"answer_0": text, "answer_1": text, "answer_2": text}


# -- the journey ---------------------------------------------------------------------------------
def test_newcomer_registers_logs_two_activities_and_submits_a_report(
    client: FlaskClient, store: InMemoryEventStore
) -> None:
    home = client.get("/")
    assert 'href="/register"' in home.text
    assert "My CIM" not in home.text

    response = send(client, "/register", STUDENT)
    assert response.status_code == 303
    student_id = registered_id(store)
    # register page: owned by the sign-in work -- these asserts replace the old flow's
    # `Location == /students/<id>` and `session["student_id"] == <id>` (the registering browser
    # was the student): now registration makes the student's account and e-mails a sign-in link.
    assert response.headers["Location"] == "/auth/check-email"
    identity = identity_of(client.application)
    account = identity.accounts.account_for_student(student_id)
    assert account is not None
    assert client.get(f"/students/{student_id}").status_code == 303  # not signed in until the link is used
    sign_in(client, identity, account)  # as following the e-mailed link does
    assert f'href="/students/{student_id}"' in client.get("/").text

    assert log(client, student_id, BERLIN).status_code == 303
    assert log(client, student_id, CAFE).status_code == 303

    report_page = client.get(f"/students/{student_id}/report")
    assert "What did you learn from your international activities" in report_page.text
    ids = re.findall(r'name="activities"[^>]*value="([0-9a-f-]{36})"', report_page.text)
    assert len(ids) == 2
    response = client.post(
        f"/students/{student_id}/report",
        data={
            "form_token": hidden(report_page.text, "form_token"),
            **answers(),
            "activities": ids,
            "attachment": (io.BytesIO(blank_pdf()), "my-cim-report.pdf", "application/pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, response.text
    assert response.headers["Location"] == f"/students/{student_id}"

    assert events(store) == [
        "StudentRegistered",
        "ActivityLogged",
        "ActivityLogged",
        "AttachmentUploaded",
        "ReportSubmitted",
    ]
    page = client.get(f"/students/{student_id}")
    assert page.status_code == 200
    text = page.text
    assert "Your CIM report is submitted." in text
    assert "Activity logged: Exchange in Berlin (Germany), Jan 10\u2009–\u2009Jun 1, 2026" in text
    assert "Activity logged: International café, autumn, Sep 15, 2026" in text
    assert "CIM report submitted, covering 2 activities" in text
    assert "PDF: my-cim-report.pdf" in text
    assert "Social Work Programme, School of Social Work" in text
    # newest first
    assert text.index("CIM report submitted") < text.index("Activity logged: Exchange") < text.index(
        "Registered for CIM"
    )
    assert len(activity_ids(text)) == 2
    assert "{% block" not in text
    assert 'aria-labelledby="status-heading"' in text


def test_amend_is_prefilled_and_withdraw_asks_first(client: FlaskClient, store: InMemoryEventStore) -> None:
    student_id = register(client)
    log(client, student_id, BERLIN)
    (activity_id,) = activity_ids(client.get(f"/students/{student_id}").text)

    edit = client.get(f"/students/{student_id}/activities/{activity_id}/edit")
    assert 'value="Exchange in Berlin"' in edit.text
    assert '<option selected value="DE">' in edit.text
    changed = {**BERLIN, "title": "Exchange at Humboldt, Berlin"}
    response = send(client, f"/students/{student_id}/activities/{activity_id}/edit", changed)
    assert response.status_code == 303
    assert "Activity amended: Exchange at Humboldt, Berlin" in client.get(f"/students/{student_id}").text

    confirm = client.get(f"/students/{student_id}/activities/{activity_id}/withdraw")
    assert "Exchange at Humboldt, Berlin" in confirm.text
    assert 'for="reason"' in confirm.text
    response = send(client, f"/students/{student_id}/activities/{activity_id}/withdraw", {"reason": "Cancelled"})
    assert response.status_code == 303
    page = client.get(f"/students/{student_id}").text
    assert "Activity withdrawn: Exchange at Humboldt, Berlin" in page
    assert activity_ids(page) == []
    assert client.get(f"/students/{student_id}/activities/{activity_id}/edit").status_code == 404
    assert events(store)[-2:] == ["ActivityAmended", "ActivityWithdrawn"]


def test_studies_completed_and_registration_withdrawn(client: FlaskClient, store: InMemoryEventStore) -> None:
    student_id = register(client)
    ended = {"completed_on": "2026-06-05", "term": "vt2026"}
    response = send(client, f"/students/{student_id}/studies-completed", ended)
    assert response.status_code == 303
    assert "Your studies ended on June 5, 2026 (VT2026)." in client.get(f"/students/{student_id}").text

    response = send(client, f"/students/{student_id}/withdraw", {"reason": ""})
    assert response.status_code == 303
    page = client.get(f"/students/{student_id}").text
    assert "Registration for CIM withdrawn" in page
    assert f"/students/{student_id}/activities/new" not in page
    # the forms are closed now: back to My CIM with a note
    closed = client.get(f"/students/{student_id}/activities/new")
    assert closed.status_code == 303
    assert events(store) == ["StudentRegistered", "StudiesCompleted", "RegistrationWithdrawn"]


def test_posting_to_a_withdrawn_registration_is_refused_on_the_form(
    client: FlaskClient, store: InMemoryEventStore
) -> None:
    student_id = register(client)
    page = client.get(f"/students/{student_id}/activities/new")
    send(client, f"/students/{student_id}/withdraw", {})
    before = store.count()
    response = client.post(
        f"/students/{student_id}/activities/new", data={"form_token": hidden(page.text, "form_token"), **BERLIN}
    )
    assert response.status_code == 422
    assert "This registration has been withdrawn; nothing more can be recorded." in response.text
    assert store.count() == before


# -- refused forms -------------------------------------------------------------------------------
def test_invalid_registration_is_shown_again_beside_the_field_and_stores_nothing(
    client: FlaskClient, store: InMemoryEventStore
) -> None:
    response = send(client, "/register", {**STUDENT, "email": "not-an-address", "programme": "MALAK"})
    assert response.status_code == 422
    html = response.text
    assert "There is a problem" in html
    assert '<a href="#email">Enter an email address such as name@example.com.</a>' in html
    assert '<a href="#programme">Choose a programme of the department you chose.</a>' in html
    email_input = re.search(r"<input[^>]*id=\"email\"[^>]*>", html)
    assert email_input is not None
    assert 'aria-invalid="true"' in email_input.group(0)
    assert 'aria-describedby="email-error"' in email_input.group(0)
    assert 'id="email-error"' in html
    assert 'value="Astrid Lindqvist"' in html  # what was typed is kept
    assert store.count() == 0


def test_a_rule_of_the_domain_is_shown_beside_its_field(client: FlaskClient, store: InMemoryEventStore) -> None:
    student_id = register(client)
    before = store.count()

    # the catalogue says exchange studies are abroad only: the domain refuses, the page shows it
    response = log(client, student_id, {**BERLIN, "setting": "digital", "country_code": ""})
    assert response.status_code == 422
    assert '<a href="#setting-0">This kind of activity can only take place abroad.</a>' in response.text
    assert 'id="setting-error"' in response.text

    response = send(
        client, f"/students/{student_id}/studies-completed", {"completed_on": "2027-01-01", "term": "HT2026"}
    )
    assert response.status_code == 422
    assert '<a href="#completed_on">Must not be after today.</a>' in response.text
    assert store.count() == before


def test_contradictions_are_refused_where_they_are_typed(client: FlaskClient, store: InMemoryEventStore) -> None:
    student_id = register(client)
    before = store.count()
    response = send(
        client, f"/students/{student_id}/studies-completed", {"completed_on": "2026-03-10", "term": "HT2026"}
    )
    assert response.status_code == 422
    assert ('<a href="#completed_on">This date is not in HT2026: a day of HT2026 lies between 2026-08-01 and '
            '2027-01-31.</a>') in response.text
    response = log(client, student_id, {**BERLIN, "kind": "seminar", "setting": "at_home", "country_code": "DE"})
    assert response.status_code == 422
    assert 'id="country_code-error"' in response.text
    assert "An activity at home takes place in Sweden" in response.text
    assert store.count() == before


def test_a_report_without_answers_or_with_a_bad_file_is_refused(
    client: FlaskClient, store: InMemoryEventStore
) -> None:
    student_id = register(client)
    log(client, student_id, BERLIN)
    before = store.count()
    page = client.get(f"/students/{student_id}/report").text
    (activity_id,) = re.findall(r'name="activities"[^>]*value="([0-9a-f-]{36})"', page)

    response = client.post(
        f"/students/{student_id}/report",
        data={"form_token": hidden(page, "form_token"), **answers(""), "activities": []},
    )
    assert response.status_code == 422
    assert '<a href="#answer_0">Answer this question.</a>' in response.text
    assert '<a href="#activities-0">Choose at least one of your activities.</a>' in response.text

    response = client.post(
        f"/students/{student_id}/report",
        data={
            "form_token": hidden(page, "form_token"),
            **answers(),
            "activities": [activity_id],
            "attachment": (io.BytesIO(b"GIF89a not a pdf"), "photo.pdf", "application/pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert '<a href="#attachment">The file is not a PDF.</a>' in response.text
    assert store.count() == before


# -- double submits ------------------------------------------------------------------------------
def test_double_clicked_form_stores_one_event(client: FlaskClient, store: InMemoryEventStore) -> None:
    student_id = register(client)
    path = f"/students/{student_id}/activities/new"
    token = hidden(client.get(path).text, "form_token")
    first = client.post(path, data={"form_token": token, **BERLIN})
    second = client.post(path, data={"form_token": token, **BERLIN})
    assert first.status_code == second.status_code == 303
    assert events(store).count("ActivityLogged") == 1


def test_double_clicked_registration_stores_one_student(app: Flask, store: InMemoryEventStore) -> None:
    token = hidden(app.test_client().get("/register").text, "form_token")
    # both clicks leave the browser before the first answer arrives: same cookies, same token
    first = app.test_client().post("/register", data={"form_token": token, **STUDENT})
    second = app.test_client().post("/register", data={"form_token": token, **STUDENT})
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    # and the same browser sending it again after the answer goes to the same page
    # register page: owned by the sign-in work -- this part (and the Location compared above)
    # depends on the old flow: the Flask session remembering the form token and student id.
    browser = app.test_client()
    browser.post("/register", data={"form_token": token, **STUDENT})
    again = browser.post("/register", data={"form_token": token, **STUDENT})
    assert again.headers["Location"] == first.headers["Location"]
    assert events(store) == ["StudentRegistered"]


def test_double_submitted_report_with_pdf_stores_one_report(client: FlaskClient, store: InMemoryEventStore) -> None:
    student_id = register(client)
    log(client, student_id, BERLIN)
    page = client.get(f"/students/{student_id}/report").text
    ids = re.findall(r'name="activities"[^>]*value="([0-9a-f-]{36})"', page)
    for _ in range(2):
        response = client.post(
            f"/students/{student_id}/report",
            data={
                "form_token": hidden(page, "form_token"),
                **answers(),
                "activities": ids,
                "attachment": (io.BytesIO(blank_pdf()), "report.pdf", "application/pdf"),
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 303
    assert events(store).count("AttachmentUploaded") == 1
    assert events(store).count("ReportSubmitted") == 1


def test_a_form_sent_again_with_other_values_gets_a_new_token(
    client: FlaskClient, store: InMemoryEventStore
) -> None:
    student_id = register(client)
    path = f"/students/{student_id}/activities/new"
    token = hidden(client.get(path).text, "form_token")
    assert client.post(path, data={"form_token": token, **BERLIN}).status_code == 303
    # back button, change the title, send the same form again
    again = client.post(path, data={"form_token": token, **BERLIN, "title": "Exchange in Munich"})
    assert again.status_code == 422
    assert "This form was already sent with other values." in again.text
    fresh = hidden(again.text, "form_token")
    assert fresh != token
    assert client.post(path, data={"form_token": fresh, **BERLIN, "title": "Exchange in Munich"}).status_code == 303
    assert events(store).count("ActivityLogged") == 2


def test_my_cim_after_erasure_shows_no_personal_data(client: FlaskClient, app: Flask) -> None:
    from intake_service.services import RequestContext

    student_id = register(client)
    app.extensions["cim.intake"].erase_student(student_id, "asked", RequestContext("staff:test", "c-1"))
    page = client.get(f"/students/{student_id}")
    assert page.status_code == 200
    assert STUDENT["name"] not in page.text
    assert "None" not in page.text
    assert "Your personal data was erased" in page.text


# -- access --------------------------------------------------------------------------------------
def test_another_browser_gets_404_for_my_cim(app: Flask, store: InMemoryEventStore) -> None:
    """Someone else, signed in, gets for this student's pages exactly the 404 of an unknown
    student (no enumeration); nobody signed in is sent to sign in; nothing is stored."""
    owner = app.test_client()
    student_id = register(owner)
    log(owner, student_id, BERLIN)
    (activity_id,) = activity_ids(owner.get(f"/students/{student_id}").text)
    identity = identity_of(app)
    another_student = app.test_client()
    register(another_student, university_id="ot5678ex", email="other@example.com")
    before = store.count()
    paths = (
        f"/students/{student_id}",
        f"/students/{student_id}/activities/new",
        f"/students/{student_id}/activities/{activity_id}/edit",
        f"/students/{student_id}/activities/{activity_id}/withdraw",
        f"/students/{student_id}/report",
        f"/students/{student_id}/studies-completed",
        f"/students/{student_id}/withdraw",
    )

    coordinator_elsewhere = app.test_client()
    sign_in(coordinator_elsewhere, identity,
            make_account(identity, "Coordinator", grants=[(Role.COORDINATOR, "MED")]))
    for other in (another_student, coordinator_elsewhere):
        unknown = other.get("/students/00000000-0000-4000-8000-000000000000")
        assert unknown.status_code == 404
        for path in paths:
            response = other.get(path)
            assert response.status_code == 404, path
            assert without_language_link(response.text) == without_language_link(unknown.text)
            if path != f"/students/{student_id}":  # My CIM is read-only
                assert other.post(path, data={"form_token": "x", **BERLIN, "reason": "x"}).status_code == 404
        assert "Astrid" not in other.get(f"/students/{student_id}").text

    anonymous = app.test_client()
    for path in paths:
        response = anonymous.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"].startswith("/auth/sign-in?next=")
        assert "Astrid" not in response.text
        if path != f"/students/{student_id}":  # My CIM is read-only
            posted = anonymous.post(path, data={"form_token": "x", **BERLIN, "reason": "x"})
            assert posted.status_code == 303, path
    assert store.count() == before


def test_csrf_token_is_required(app: Flask, store: InMemoryEventStore) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    page = client.get("/register").text
    csrf = hidden(page, "csrf_token")
    assert csrf
    token = hidden(page, "form_token")

    missing = client.post("/register", data={"form_token": token, **STUDENT})
    assert missing.status_code == 400
    assert 'lang="en"' in missing.text
    wrong = client.post("/register", data={"csrf_token": "forged", "form_token": token, **STUDENT})
    assert wrong.status_code == 400
    assert store.count() == 0

    ok = client.post("/register", data={"csrf_token": csrf, "form_token": token, **STUDENT})
    assert ok.status_code == 303
    assert store.count() == 1


# -- language ------------------------------------------------------------------------------------
def test_swedish_pages_speak_swedish_and_remember_the_choice(client: FlaskClient) -> None:
    home = client.get("/?lang=sv")
    assert '<html lang="sv">' in home.text
    assert "Anmäl dig till CIM" in home.text
    assert 'href="/?lang=en"' in home.text
    assert "lang=sv" in home.headers.get("Set-Cookie", "")

    form = client.get("/register")  # the cookie keeps Swedish
    assert "Fullständigt namn" in form.text
    assert "Socialhögskolan" in form.text
    assert "Socionomprogrammet" in form.text

    refused = send(client, "/register", {**STUDENT, "expected_end_term": "spring 2028"})
    assert refused.status_code == 422
    assert "Det finns ett problem" in refused.text
    assert "Ange en termin som HT2026 (hösten) eller VT2027 (våren)." in refused.text

    student_id = register(client)
    log(client, student_id, BERLIN)
    page = client.get(f"/students/{student_id}").text
    assert "Mitt CIM" in page
    assert "Aktivitet registrerad: Exchange in Berlin (Tyskland)" in page
    assert "Utbytesstudier" in page
    assert "Socionomprogrammet, Socialhögskolan" in page

    report = client.get(f"/students/{student_id}/report").text
    assert "Vad lärde du dig av dina internationella aktiviteter" in report

    english = client.get(f"/students/{student_id}?lang=en")
    assert '<html lang="en">' in english.text
    assert "My CIM" in english.text


# -- accessibility -------------------------------------------------------------------------------
class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.html_lang: str | None = None
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.ids: set[str] = set()
        self.skip_link = False
        self.styles: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if a.get("style") is not None:
            self.styles.append(tag)
        if tag == "script":
            self.scripts += 1
        if tag == "html":
            self.html_lang = a.get("lang")
        if tag == "label" and a.get("for"):
            self.label_for.add(str(a["for"]))
        if tag == "a" and a.get("href") == "#main":
            self.skip_link = True
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append(a)


def every_page(client: FlaskClient) -> list[str]:
    student_id = register(client)
    log(client, student_id, BERLIN)
    (activity_id,) = activity_ids(client.get(f"/students/{student_id}").text)
    base = f"/students/{student_id}"
    return [
        "/",
        "/register",
        base,
        f"{base}/activities/new",
        f"{base}/activities/{activity_id}/edit",
        f"{base}/activities/{activity_id}/withdraw",
        f"{base}/report",
        f"{base}/studies-completed",
        f"{base}/withdraw",
        "/no-such-page",
        "/students/not-an-id",
    ]


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_every_page_has_a_language_a_skip_link_and_a_label_for_each_input(
    client: FlaskClient, app: Flask, lang: str
) -> None:
    anonymous = app.test_client()
    anonymous.get(f"/?lang={lang}")
    client.get(f"/?lang={lang}")
    # The public pages as a newcomer sees them, then every page as the signed-in student does.
    visits = [(anonymous, path) for path in ("/", "/register", "/no-such-page")]
    visits += [(client, path) for path in every_page(client)]
    for browser, path in visits:
        response = browser.get(path, follow_redirects=True)
        assert response.status_code in (200, 404), path
        parsed = _Page()
        parsed.feed(response.text)
        assert parsed.html_lang == lang, path
        assert parsed.skip_link, path
        assert "main" in parsed.ids, path
        assert (parsed.styles, parsed.scripts) == ([], 0), path  # the CSP allows neither inline
        for control in parsed.controls:
            assert control.get("id") in parsed.label_for, (path, control)


def test_every_error_summary_link_points_at_a_field(client: FlaskClient) -> None:
    student_id = register(client)
    response = send(client, f"/students/{student_id}/activities/new", {"setting": "", "start_date": "2026-13-01"})
    assert response.status_code == 422
    parsed = _Page()
    parsed.feed(response.text)
    anchors = re.findall(r'<li><a href="#([^"]+)">', response.text)
    assert {"kind", "title", "organiser", "setting-0", "start_date", "end_date"} <= set(anchors)
    assert set(anchors) <= parsed.ids


def test_what_students_type_is_shown_as_text_never_as_markup(client: FlaskClient) -> None:
    student_id = register(client)
    log(client, student_id, {**BERLIN, "title": "<script>alert(1)</script>"})
    for path in (f"/students/{student_id}", f"/students/{student_id}/report"):
        html = client.get(path).text
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_stylesheet_is_served(client: FlaskClient) -> None:
    response = client.get("/static/cim.css")
    assert response.status_code == 200
    assert b":focus-visible" in response.data


def test_no_personal_data_in_logs(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    student_id = register(client)
    log(client, student_id, BERLIN)
    client.get(f"/students/{student_id}")
    for secret in (STUDENT["name"], STUDENT["email"], STUDENT["university_id"]):
        assert secret not in caplog.text


def test_an_activity_of_a_kind_the_catalogue_lacks_is_logged_as_another_kind(
    client: FlaskClient, store: InMemoryEventStore
) -> None:
    """It waits for the assessor group's ruling (docs/rulings.md); any setting is allowed."""
    student_id = register(client)
    form = client.get(f"/students/{student_id}/activities/new").text
    assert '<option value="other">Another kind (the assessor group decides whether it counts)</option>' in form
    response = log(client, student_id, {**BERLIN, "kind": "other", "title": "Model UN in Geneva"})
    assert response.status_code == 303
    [logged] = [e for e in store.read_all() if e.type == "ActivityLogged"]
    assert logged.data["kind"] == "other"
