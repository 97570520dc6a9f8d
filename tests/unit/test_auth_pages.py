"""The sign-in pages (/auth) of both apps, registration with accounts, and the outgoing mail:
every sign-in path with its refusals, no open redirect, session rotation and revocation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import requests
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from assessment_service import create_app as create_assessment_app
from intake_service import create_app
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import ROOT, Settings
from shared.identity.models import Account, Role, RoleGrant
from shared.identity.oidc import OidcClientConfig, UrllibHttpClient
from shared.identity.wiring import Identity, build_identity
from shared.mail import Mail, RecordingMailer, address, build_message, message_id, sign_in_link_mail
from tests.authkit import FAST_HASHER, IDENTITY_KEY, SESSION_COOKIE, make_account, make_identity, student_account
from tests.authkit import sign_in as authkit_sign_in
from tests.factories import STUDENT
from tests.integration.test_oidc_provider import CLIENT_ID, CLIENT_SECRET, LocalOidcProvider

INTAKE = "http://127.0.0.1:8000"
ASSESSMENT = "http://127.0.0.1:8001"
CALLBACK = f"{INTAKE}/auth/oidc/callback"
PASSWORD = "correct horse battery staple 42"
GENERIC_REFUSAL = "The e-mail address, password or code is not right. Try again."


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def identity(clock: FixedClock) -> Identity:
    return make_identity(clock)


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none", ratelimit_storage="memory://")


def make_app(settings: Settings, store: InMemoryEventStore, clock: FixedClock, identity: Identity,
             mailer: RecordingMailer, *, csrf: bool = False) -> Flask:
    app = create_app(settings, store=store, clock=clock, identity=identity)
    app.config["WTF_CSRF_ENABLED"] = csrf
    app.extensions["cim.mailer"] = mailer
    return app


@pytest.fixture
def app(settings: Settings, store: InMemoryEventStore, clock: FixedClock, identity: Identity,
        mailer: RecordingMailer) -> Flask:
    return make_app(settings, store, clock, identity, mailer)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# -- helpers ---------------------------------------------------------------------------------------
def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE)
    return cookie.value if cookie else None


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"https?://\S+/auth/link/\S+", body.get_content())
    assert found, body.get_content()
    return found.group(0)


def path_of(url: str) -> str:
    """The path and query of `url` (what the test client asks for)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    assert match, f"no hidden {name}"
    return match.group(1)


def registered_student(client: FlaskClient, store: InMemoryEventStore, **changes: str) -> Any:
    page = client.get("/register")
    return client.post("/register", data={"form_token": hidden(page.text, "form_token"), **STUDENT, **changes})


def student(identity: Identity, email: str = "tova@example.org", student_id: str | None = None) -> Account:
    import uuid

    return student_account(identity, student_id or str(uuid.uuid4()), email=email)


def staff(identity: Identity, email: str = "coordinator@example.org", *, role: Role = Role.COORDINATOR,
          department: str | None = "SOCSW") -> tuple[Account, str]:
    account = make_account(identity, "Cora Samordnare", email, grants=[(role, department)])
    identity.staff.set_password(account.id, PASSWORD)
    enrolment = identity.staff.enrol_totp(account.id, email)
    return account, enrolment.secret


def code(secret: str, clock: FixedClock) -> str:
    return pyotp.TOTP(secret).at(clock.now())


def staff_form(email: str, password: str, totp: str, **extra: str) -> dict[str, str]:
    return {"staff-email": email, "staff-password": password, "staff-code": totp, **extra}


def redeem(client: FlaskClient, url: str, **data: str) -> Any:
    return client.post(path_of(url), data=data)


def events(store: InMemoryEventStore) -> list[str]:
    return [e.type for e in store.read_all()]


# -- the chooser -----------------------------------------------------------------------------------
def test_chooser_offers_email_link_and_staff_forms_but_no_sso_without_oidc(client: FlaskClient) -> None:
    page = client.get("/auth/sign-in")
    assert page.status_code == 200
    assert 'action="/auth/link"' in page.text
    assert 'action="/auth/staff"' in page.text
    assert "university account" not in page.text
    assert len(set(re.findall(r'id="([^"]+)"', page.text))) == len(re.findall(r'id="([^"]+)"', page.text))
    for field in ("link-email", "staff-email", "staff-password", "staff-code"):
        assert f'<label for="{field}">' in page.text


def test_pages_send_anonymous_visitors_to_sign_in_and_the_header_links_to_it(client: FlaskClient) -> None:
    answer = client.get("/auth/account")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/auth/sign-in?next=%2Fauth%2Faccount"
    assert 'href="/auth/sign-in?next=/"' in client.get("/").text


# -- students: e-mail links ------------------------------------------------------------------------
def test_student_signs_in_with_an_emailed_link(
    client: FlaskClient, identity: Identity, mailer: RecordingMailer
) -> None:
    account = student(identity)
    answer = client.post("/auth/link", data={"link-email": "Tova@Example.org "})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/auth/check-email"
    assert "Check your e-mail" in client.get("/auth/check-email").text
    [mail] = mailer.sent
    assert mail["To"].addresses[0].addr_spec == "tova@example.org"
    url = link_in(mail)
    assert url.startswith(f"{INTAKE}/auth/link/v1.")

    confirm = client.get(path_of(url))  # what a mail scanner would fetch: signs nobody in
    assert confirm.status_code == 200
    assert "<form method=\"post\"" in confirm.text
    assert session_cookie(client) is None

    done = redeem(client, url)
    assert done.status_code == 303
    assert done.headers["Location"] == f"/students/{account.student_id}"
    cookie = session_cookie(client)
    assert cookie
    assert identity.sessions.get(cookie).auth_method == "email-link"
    assert client.get("/auth/account").status_code == 200


def test_unknown_staff_and_disabled_addresses_get_the_same_answer_and_no_mail(
    client: FlaskClient, identity: Identity, mailer: RecordingMailer
) -> None:
    staff(identity, "cora@example.org")
    disabled = student(identity, "gone@example.org")
    identity.accounts.disable_account(disabled.id)
    known = student(identity, "tova@example.org")
    answers = [
        client.post("/auth/link", data={"link-email": email})
        for email in ("nobody@example.org", "cora@example.org", "gone@example.org", "tova@example.org")
    ]
    assert {(a.status_code, a.headers["Location"], a.data) for a in answers} == {
        (303, "/auth/check-email", answers[0].data)
    }
    assert [m["To"].addresses[0].addr_spec for m in mailer.sent] == [known.email]


def test_a_malformed_address_is_shown_again_with_the_field_named(client: FlaskClient,
                                                                 mailer: RecordingMailer) -> None:
    answer = client.post("/auth/link", data={"link-email": "not an address"})
    assert answer.status_code == 422
    assert 'id="link-email-error"' in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert mailer.sent == []


def test_mail_server_down_still_answers_alike(settings: Settings, store: InMemoryEventStore, clock: FixedClock,
                                             identity: Identity) -> None:
    app = make_app(settings, store, clock, identity, RecordingMailer(fail=True))
    student(identity)
    answer = app.test_client().post("/auth/link", data={"link-email": "tova@example.org"})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/auth/check-email"


def test_used_expired_and_forged_links_get_a_clear_page(
    client: FlaskClient, identity: Identity, mailer: RecordingMailer, clock: FixedClock
) -> None:
    student(identity)
    client.post("/auth/link", data={"link-email": "tova@example.org"})
    used = link_in(mailer.sent[-1])
    assert redeem(client, used).status_code == 303
    again = redeem(app_client := client.application.test_client(), used)
    assert again.status_code == 410
    assert "already been used" in again.text
    assert session_cookie(app_client) is None

    client.post("/auth/link", data={"link-email": "tova@example.org"})
    late = link_in(mailer.sent[-1])
    clock.advance(timedelta(minutes=16))
    expired = redeem(app_client, late)
    assert expired.status_code == 410
    assert "expired" in expired.text

    for forged in (used[:-2] + "AA", used.replace("v1.", "v2."), "nonsense", "v1." + "A" * 999):
        answer = redeem(app_client, forged)
        assert answer.status_code in (400, 404), forged
    assert redeem(app_client, used[:-2] + "AA").status_code == 400
    assert session_cookie(app_client) is None


def test_a_link_of_a_disabled_account_does_not_sign_in(
    client: FlaskClient, identity: Identity, mailer: RecordingMailer
) -> None:
    account = student(identity)
    client.post("/auth/link", data={"link-email": "tova@example.org"})
    identity.accounts.disable_account(account.id)
    answer = redeem(client, link_in(mailer.sent[-1]))
    assert answer.status_code == 400
    assert session_cookie(client) is None


def test_next_travels_in_the_link_and_is_honoured(client: FlaskClient, identity: Identity,
                                                   mailer: RecordingMailer) -> None:
    account = student(identity)
    target = f"/students/{account.student_id}/report"
    client.post("/auth/link", data={"link-email": "tova@example.org", "link-next": target})
    url = link_in(mailer.sent[-1])
    assert url.endswith("?next=%2Fstudents%2F" + str(account.student_id) + "%2Freport")
    confirm = client.get(path_of(url))
    answer = redeem(client, url, next=hidden(confirm.text, "next"))
    assert answer.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "http://127.0.0.1:8000.evil.example/",
        "http://user@127.0.0.1:8000/",
        "/students\r\nSet-Cookie: x=1",
        "evil.example",
    ],
)
def test_next_never_leads_off_the_site(client: FlaskClient, identity: Identity, mailer: RecordingMailer,
                                       target: str) -> None:
    account = student(identity)
    client.post("/auth/link", data={"link-email": "tova@example.org", "link-next": target})
    url = link_in(mailer.sent[-1])
    assert "next=" not in url
    answer = redeem(client, url, next=target)
    assert answer.headers["Location"] == f"/students/{account.student_id}"


def test_next_may_lead_to_the_other_app(client: FlaskClient, identity: Identity, clock: FixedClock) -> None:
    _, secret = staff(identity)
    answer = client.post("/auth/staff", data=staff_form(
        "coordinator@example.org", PASSWORD, code(secret, clock), **{"staff-next": f"{ASSESSMENT}/review-queue"}))
    assert answer.headers["Location"] == f"{ASSESSMENT}/review-queue"


# -- staff: password + TOTP ------------------------------------------------------------------------
def test_staff_signs_in_with_password_and_code(client: FlaskClient, identity: Identity, clock: FixedClock) -> None:
    _, secret = staff(identity)
    answer = client.post("/auth/staff", data=staff_form("coordinator@example.org", PASSWORD, code(secret, clock)))
    assert answer.status_code == 303
    # A coordinator signing in on the intake lands on their work: the assessment service's queue.
    assert answer.headers["Location"] == "http://127.0.0.1:8001/queue"
    account_page = client.get("/auth/account").text
    assert "Cora Samordnare" in account_page
    assert "Coordinator in SOCSW" in account_page
    assert "password and authenticator code" in account_page
    assert "Signed in as Cora Samordnare" in account_page


@pytest.mark.parametrize(("role", "department", "landing"), [
    (Role.ASSESSOR, "SOCSW", "http://127.0.0.1:8001/queue"),
    (Role.ADMINISTRATOR, None, "http://127.0.0.1:8001/admin/accounts"),
])
def test_each_staff_role_lands_where_its_work_is(client: FlaskClient, identity: Identity, clock: FixedClock,
                                                 role: Role, department: str | None, landing: str) -> None:
    _, secret = staff(identity, "staff@example.org", role=role, department=department)
    answer = client.post("/auth/staff", data=staff_form("staff@example.org", PASSWORD, code(secret, clock)))
    assert answer.headers["Location"] == landing


def test_the_intake_header_carries_the_staff_menu_for_the_person_s_roles(
    client: FlaskClient, identity: Identity, clock: FixedClock
) -> None:
    assert "http://127.0.0.1:8001/queue" not in client.get("/auth/sign-in").text  # nobody signed in
    _, secret = staff(identity, "admin@example.org", role=Role.ADMINISTRATOR, department=None)
    client.post("/auth/staff", data=staff_form("admin@example.org", PASSWORD, code(secret, clock)))
    header = client.get("/auth/account").text
    assert 'href="http://127.0.0.1:8001/outbox"' in header
    assert 'href="http://127.0.0.1:8001/admin/accounts"' in header  # the administrators' pages
    assert 'href="http://127.0.0.1:8001/rules"' in header
    assert "http://127.0.0.1:8001/queue" not in header  # an administrator has no queue: no 403 link


def test_every_staff_refusal_reads_the_same(client: FlaskClient, identity: Identity, clock: FixedClock) -> None:
    _account, secret = staff(identity)
    other, other_secret = staff(identity, "off@example.org")
    identity.accounts.disable_account(other.id)
    good = code(secret, clock)
    wrong_code = f"{(int(good) + 1) % 1_000_000:06d}"
    cases = [
        staff_form("coordinator@example.org", "wrong password", good),
        staff_form("coordinator@example.org", PASSWORD, wrong_code),
        staff_form("nobody@example.org", PASSWORD, good),
        staff_form("off@example.org", PASSWORD, code(other_secret, clock)),
    ]
    for data in cases:
        answer = client.post("/auth/staff", data=data)
        assert answer.status_code == 401, data
        assert GENERIC_REFUSAL in answer.text
        assert PASSWORD not in answer.text  # the password is not echoed back
        assert session_cookie(client) is None
    # the right code works once; the same code again is a replay
    assert client.post("/auth/staff", data=staff_form("coordinator@example.org", PASSWORD, good)).status_code == 303
    replay = client.application.test_client().post(
        "/auth/staff", data=staff_form("coordinator@example.org", PASSWORD, good))
    assert replay.status_code == 401
    assert GENERIC_REFUSAL in replay.text


def test_missing_staff_fields_are_named(client: FlaskClient) -> None:
    answer = client.post("/auth/staff", data=staff_form("", "", ""))
    assert answer.status_code == 422
    for field in ("staff-email", "staff-password", "staff-code"):
        assert f'id="{field}-error"' in answer.text


# -- sessions: rotation, sign-out, revocation ------------------------------------------------------
def test_sign_in_rotates_the_session(client: FlaskClient, identity: Identity, clock: FixedClock) -> None:
    account, secret = staff(identity)
    before = authkit_sign_in(client, identity, account)
    assert client.get("/auth/account").status_code == 200
    client.post("/auth/staff", data=staff_form("coordinator@example.org", PASSWORD, code(secret, clock)))
    after = session_cookie(client)
    assert after
    assert after != before
    assert identity.sessions.get(before) is None
    assert identity.sessions.get(after) is not None


def test_sign_out_kills_the_session_and_a_replayed_cookie_is_refused(
    client: FlaskClient, identity: Identity
) -> None:
    account = student(identity)
    session_id = authkit_sign_in(client, identity, account)
    answer = client.post("/auth/sign-out")
    assert answer.status_code == 303
    assert session_cookie(client) is None
    assert identity.sessions.get(session_id) is None
    replay = client.application.test_client()
    replay.set_cookie(SESSION_COOKIE, session_id, path="/", secure=True)
    refused = replay.get("/auth/account")
    assert refused.status_code == 303
    assert refused.headers["Location"].startswith("/auth/sign-in")
    assert replay.get(f"/students/{account.student_id}").status_code == 303


def test_sign_out_everywhere_ends_every_session(app: Flask, identity: Identity) -> None:
    account = student(identity)
    laptop, phone = app.test_client(), app.test_client()
    authkit_sign_in(laptop, identity, account)
    authkit_sign_in(phone, identity, account)
    assert laptop.post("/auth/sign-out-everywhere").status_code == 303
    assert phone.get("/auth/account").status_code == 303


def test_a_disabled_account_is_anonymous_on_its_next_request(client: FlaskClient, identity: Identity) -> None:
    account = student(identity)
    authkit_sign_in(client, identity, account)
    assert client.get("/auth/account").status_code == 200
    identity.accounts.disable_account(account.id)
    assert client.get("/auth/account").status_code == 303
    assert "Signed in as" not in client.get("/").text


def test_sign_out_needs_the_csrf_token(settings: Settings, store: InMemoryEventStore, clock: FixedClock,
                                       identity: Identity, mailer: RecordingMailer) -> None:
    client = make_app(settings, store, clock, identity, mailer, csrf=True).test_client()
    account = student(identity)
    session_id = authkit_sign_in(client, identity, account)
    assert client.post("/auth/sign-out").status_code == 400
    assert identity.sessions.get(session_id) is not None
    token = hidden(client.get("/auth/account").text, "csrf_token")
    assert client.post("/auth/sign-out", data={"csrf_token": token}).status_code == 303
    assert identity.sessions.get(session_id) is None


def test_sign_in_forms_need_the_csrf_token(settings: Settings, store: InMemoryEventStore, clock: FixedClock,
                                           identity: Identity, mailer: RecordingMailer) -> None:
    client = make_app(settings, store, clock, identity, mailer, csrf=True).test_client()
    student(identity)
    assert client.post("/auth/link", data={"link-email": "tova@example.org"}).status_code == 400
    assert mailer.sent == []
    token = hidden(client.get("/auth/sign-in").text, "link-csrf_token")
    answer = client.post("/auth/link", data={"link-email": "tova@example.org", "link-csrf_token": token})
    assert answer.status_code == 303
    assert len(mailer.sent) == 1


# -- registration ----------------------------------------------------------------------------------
def test_anonymous_registration_makes_the_account_and_mails_a_link(
    client: FlaskClient, identity: Identity, mailer: RecordingMailer, store: InMemoryEventStore
) -> None:
    answer = registered_student(client, store)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/auth/check-email?registered=1"
    assert events(store) == ["StudentRegistered"]
    account = identity.store.find_account_by_email("astrid@example.com")
    assert account is not None
    assert account.student_id
    assert identity.store.grants_of(account.id) == {RoleGrant(Role.STUDENT, "SOCSW")}
    assert session_cookie(client) is None  # not signed in until the link is used
    [mail] = mailer.sent
    done = redeem(client, link_in(mail))
    assert done.headers["Location"] == f"/students/{account.student_id}"
    assert client.get(done.headers["Location"]).status_code == 200


def test_registering_a_known_address_again_only_mails_a_link(
    app: Flask, identity: Identity, mailer: RecordingMailer, store: InMemoryEventStore
) -> None:
    first = registered_student(app.test_client(), store)
    second = registered_student(app.test_client(), store, name="Someone Else", university_id="zz9999zz-s")
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert events(store) == ["StudentRegistered"]
    assert len(mailer.sent) == 2
    assert all("/auth/link/" in link_in(m) for m in mailer.sent)
    # what happens next, in the same words whether or not the address had an account
    pages = [client.get(answer.headers["Location"]).text for client, answer in
             ((app.test_client(), first), (app.test_client(), second))]
    assert pages[0] == pages[1]
    steps = pages[0].split("<ol")[1].split("</ol>")[0]
    assert "follow its link within" in steps
    assert steps.index("signs you in to My CIM") < steps.index("log your international activities")
    swedish = app.test_client().get(f"{first.headers['Location']}&lang=sv").text
    assert "Vad händer nu" in swedish
    assert "loggar in dig på Mitt CIM" in swedish


def test_double_submitted_registration_stores_one_student(
    app: Flask, identity: Identity, store: InMemoryEventStore, mailer: RecordingMailer
) -> None:
    browser = app.test_client()
    token = hidden(browser.get("/register").text, "form_token")
    answers = [browser.post("/register", data={"form_token": token, **STUDENT}) for _ in range(3)]
    other = app.test_client().post("/register", data={"form_token": token, **STUDENT})
    assert {a.headers["Location"] for a in [*answers, other]} == {"/auth/check-email?registered=1"}
    assert events(store) == ["StudentRegistered"]


def test_a_refused_registration_is_shown_again(client: FlaskClient, store: InMemoryEventStore,
                                               mailer: RecordingMailer) -> None:
    answer = registered_student(client, store, email="not-an-address")
    assert answer.status_code == 422
    assert events(store) == []
    assert mailer.sent == []


def test_a_signed_in_student_goes_to_my_cim(client: FlaskClient, identity: Identity) -> None:
    account = student(identity)
    authkit_sign_in(client, identity, account)
    answer = client.get("/register")
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/students/{account.student_id}"


def test_a_signed_in_account_without_a_record_registers_and_is_linked(
    client: FlaskClient, identity: Identity, store: InMemoryEventStore, mailer: RecordingMailer
) -> None:
    account = make_account(identity, "Sso Person", None)
    before = authkit_sign_in(client, identity, account)
    answer = registered_student(client, store)
    assert answer.status_code == 303
    linked = identity.store.get_account(account.id)
    assert linked is not None
    assert linked.student_id
    assert answer.headers["Location"] == f"/students/{linked.student_id}"
    assert identity.accounts.principal(account.id).has_role(Role.STUDENT, "SOCSW")  # type: ignore[union-attr]
    assert mailer.sent == []
    assert session_cookie(client) != before  # privilege change: rotated
    assert client.get(answer.headers["Location"]).status_code == 200


# -- OpenID Connect --------------------------------------------------------------------------------
@pytest.fixture
def provider(clock: FixedClock) -> Iterator[LocalOidcProvider]:
    running = LocalOidcProvider(clock, redirect_uri=CALLBACK).start()
    yield running
    running.stop()


@pytest.fixture
def sso_identity(clock: FixedClock, provider: LocalOidcProvider) -> Identity:
    config = OidcClientConfig(issuer=provider.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                              redirect_uri=CALLBACK)
    return build_identity(clock=clock, identity_key=IDENTITY_KEY, password_hasher=FAST_HASHER, oidc=config,
                          oidc_http=UrllibHttpClient(timeout=5, allow_http=True))


@pytest.fixture
def sso_client(settings: Settings, store: InMemoryEventStore, clock: FixedClock, sso_identity: Identity,
               mailer: RecordingMailer) -> FlaskClient:
    return make_app(settings, store, clock, sso_identity, mailer).test_client()


def through_provider(client: FlaskClient, start: str = "/auth/oidc/start") -> str:
    """Start at the app, let the provider answer, and give back the callback path."""
    begun = client.get(start)
    assert begun.status_code == 303, begun.text
    answer = requests.get(begun.headers["Location"], allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return location[len(INTAKE):]


def test_first_sso_sign_in_makes_an_account_without_roles(
    sso_client: FlaskClient, sso_identity: Identity, provider: LocalOidcProvider
) -> None:
    assert "Sign in with university account" in sso_client.get("/auth/sign-in").text
    done = sso_client.get(through_provider(sso_client))
    assert done.status_code == 303
    assert done.headers["Location"] == "/register"
    session_id = session_cookie(sso_client)
    assert session_id
    live = sso_identity.sessions.get(session_id)
    assert live is not None
    assert live.auth_method == "oidc"
    principal = sso_identity.accounts.principal(live.account_id)
    assert principal is not None
    assert principal.grants == frozenset()
    assert principal.account.email == "ada@student.lu.se"
    assert principal.account.display_name == "Alva Provnamn"


def test_sso_then_registration_links_the_student(
    sso_client: FlaskClient, sso_identity: Identity, provider: LocalOidcProvider, store: InMemoryEventStore
) -> None:
    assert sso_client.get("/register").status_code == 303  # anonymous, with SSO: sign in first
    sso_client.get(through_provider(sso_client))
    answer = registered_student(sso_client, store)
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/students/")
    # the next sign-in of the same person lands on My CIM
    fresh = sso_client.application.test_client()
    again = fresh.get(through_provider(fresh))
    assert again.headers["Location"] == answer.headers["Location"]


def test_sso_identity_is_issuer_and_subject_never_the_email(
    sso_client: FlaskClient, sso_identity: Identity, provider: LocalOidcProvider
) -> None:
    existing = student(sso_identity, "ada@student.lu.se")  # an e-mail-link account with the same address
    sso_client.get(through_provider(sso_client))
    first = sso_identity.sessions.get(session_cookie(sso_client) or "")
    assert first is not None
    assert first.account_id != existing.id
    assert sso_identity.store.get_account(first.account_id).email is None  # type: ignore[union-attr]

    provider.email = "ada.new@student.lu.se"  # same subject, new address: same account
    other = sso_client.application.test_client()
    other.get(through_provider(other))
    assert sso_identity.sessions.get(session_cookie(other) or "").account_id == first.account_id  # type: ignore[union-attr]


def test_sso_refusals_are_clear_pages(sso_client: FlaskClient, provider: LocalOidcProvider) -> None:
    callback = through_provider(sso_client)
    stranger = sso_client.application.test_client()  # the callback in a browser that did not start it
    assert stranger.get(callback).status_code == 400
    tampered = re.sub(r"state=[^&]+", "state=forged", callback)
    assert sso_client.get(tampered).status_code == 401
    assert session_cookie(sso_client) is None
    through_provider(sso_client)
    assert sso_client.get("/auth/oidc/callback?error=access_denied&state=x").status_code == 401
    provider.claim_overrides["aud"] = "someone-else"
    assert sso_client.get(through_provider(sso_client)).status_code == 401
    assert session_cookie(sso_client) is None


def test_sso_of_a_disabled_account_is_refused(sso_client: FlaskClient, sso_identity: Identity) -> None:
    sso_client.get(through_provider(sso_client))
    account_id = sso_identity.sessions.get(session_cookie(sso_client) or "").account_id  # type: ignore[union-attr]
    sso_identity.accounts.disable_account(account_id)
    fresh = sso_client.application.test_client()
    assert fresh.get(through_provider(fresh)).status_code == 403
    assert session_cookie(fresh) is None


def test_sso_start_without_oidc_or_with_the_provider_down(client: FlaskClient, settings: Settings,
                                                          store: InMemoryEventStore, clock: FixedClock,
                                                          mailer: RecordingMailer) -> None:
    assert client.get("/auth/oidc/start").status_code == 404
    config = OidcClientConfig(issuer="http://127.0.0.1:9", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                              redirect_uri=CALLBACK)
    down = build_identity(clock=clock, identity_key=IDENTITY_KEY, oidc=config,
                          oidc_http=UrllibHttpClient(timeout=2, allow_http=True))
    answer = make_app(settings, store, clock, down, mailer).test_client().get("/auth/oidc/start")
    assert answer.status_code == 503


# -- the assessment app ----------------------------------------------------------------------------
def test_assessment_app_serves_the_same_sign_in(
    settings: Settings, store: InMemoryEventStore, clock: FixedClock, identity: Identity, mailer: RecordingMailer
) -> None:
    intake = make_app(settings, store, clock, identity, mailer)
    feed = StoreEventFeed(store, opener=intake.extensions["cim.intake"].open_events)
    app = create_assessment_app(settings, feed=feed, clock=clock, identity=identity)
    app.config["WTF_CSRF_ENABLED"] = False
    app.extensions["cim.mailer"] = mailer
    client = app.test_client()
    first = client.get("/review-queue")
    assert first.status_code == 303
    assert first.headers["Location"] == "/auth/sign-in?next=%2Freview-queue"
    page = client.get(first.headers["Location"])
    assert page.status_code == 200
    assert "Certificate of International Merits" in page.text  # one product name on both services
    _, secret = staff(identity, role=Role.ASSESSOR)
    answer = client.post("/auth/staff", data=staff_form(
        "coordinator@example.org", PASSWORD, code(secret, clock), **{"staff-next": "/review-queue"}))
    assert answer.headers["Location"] == "/review-queue"
    queue = client.get("/review-queue")
    assert queue.status_code == 200
    assert "Signed in as Cora Samordnare" in queue.text
    # a student's link from the assessment app leads to My CIM on the intake app
    account = student(identity)
    client.post("/auth/link", data={"link-email": "tova@example.org"})
    url = link_in(mailer.sent[-1])
    assert url.startswith(f"{ASSESSMENT}/auth/link/")
    assert redeem(app.test_client(), url).headers["Location"] == f"{INTAKE}/students/{account.student_id}"


# -- outgoing mail ---------------------------------------------------------------------------------
def test_names_cannot_inject_headers() -> None:
    for name in ("Eve\r\nBcc: victim@example.org", "=?utf-8?q?Eve=0D=0ABcc:_victim@example.org?=",
                 "Eve\nX-Injected: yes"):
        mail = sign_in_link_mail(to_email="eve@example.org", to_name=name, url="http://x/auth/link/t",
                                 minutes=15, locale="en", key="k")
        raw = build_message(mail, "CIM <cim@example.org>").as_bytes()
        parsed = message_from_bytes(raw)
        assert parsed.get("Bcc") is None
        assert parsed.get("X-Injected") is None
        assert len(parsed.get_all("To") or []) == 1
    with pytest.raises(ValueError, match="not a single e-mail address"):
        address("Eve", "eve@example.org\r\nBcc: victim@example.org")
    with pytest.raises(ValueError, match="not a single e-mail address"):
        address("Eve", "eve@example.org, victim@example.org")


def test_message_id_is_deterministic_and_the_body_has_both_parts() -> None:
    assert message_id("k1", "example.org") == message_id("k1", "example.org") != message_id("k2", "example.org")
    mail = Mail("a@example.org", "Å Ö", "Subject", "text", "<p>html</p>", "key-1")
    message = build_message(mail, "CIM <cim@example.org>")
    assert message["Message-ID"] == message_id("key-1", "example.org")
    assert message.get_body(("plain",)) is not None
    assert message.get_body(("html",)) is not None
    assert message["Content-Language"] == "en"


def test_the_mail_is_in_the_recipients_language() -> None:
    swedish = sign_in_link_mail(to_email="a@example.org", to_name="Åsa", url="http://x/auth/link/t",
                                minutes=15, locale="sv", key="k")
    english = sign_in_link_mail(to_email="a@example.org", to_name="Åsa", url="http://x/auth/link/t",
                                minutes=15, locale="en", key="k")
    assert swedish.subject != english.subject
    assert swedish.locale == "sv"
    assert "15" in swedish.text
    assert "http://x/auth/link/t" in swedish.text


# -- translations ----------------------------------------------------------------------------------
def test_sign_in_texts_have_swedish_translations() -> None:
    files = [
        (ROOT / "shared" / "web" / "auth_pages.py", "python"),
        (ROOT / "shared" / "mail.py", "python"),
        *[(path, "jinja2") for path in (ROOT / "shared" / "web" / "templates" / "auth").glob("*.html")],
        *[(ROOT / app / "templates" / "base.html", "jinja2") for app in ("intake_service", "assessment_service")],
        (ROOT / "intake_service" / "templates" / "register.html", "jinja2"),
        (ROOT / "intake_service" / "templates" / "home.html", "jinja2"),
    ]
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}
    found = {message for path, method in files
             for _line, message, _comments, _context in extract_from_file(method, str(path), keywords=keywords)}
    assert len(found) > 40
    with open(ROOT / "translations" / "sv" / "LC_MESSAGES" / "messages.po", "rb") as handle:
        catalog = read_po(handle, locale="sv")
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    assert sorted(str(m) for m in found if m not in translated) == []


# -- attaching a student to an account (both stores) -----------------------------------------------
@pytest.mark.parametrize("backend", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_attach_student_links_once_and_refuses_a_second_owner(
    backend: str, tmp_path: Path, clock: FixedClock, request: pytest.FixtureRequest
) -> None:
    import uuid

    from shared.identity.errors import IdentityConflict

    db_url = {
        "memory": None,
        "sqlite": f"sqlite:///{tmp_path / 'identity.db'}",
    }.get(backend) or (request.getfixturevalue("pg_database")() if backend == "postgres" else None)
    ident = build_identity(clock=clock, identity_key=IDENTITY_KEY, db_url=db_url, password_hasher=FAST_HASHER)
    ident.store.create_schema()  # type: ignore[attr-defined]
    first = make_account(ident, "Sso One", None)
    second = make_account(ident, "Sso Two", None)
    sid = str(uuid.uuid4())
    linked = ident.accounts.attach_student(first.id, sid, "SOCSW")
    assert linked.student_id == sid
    assert ident.accounts.account_for_student(sid).id == first.id  # type: ignore[union-attr]
    assert RoleGrant(Role.STUDENT, "SOCSW") in ident.store.grants_of(first.id)
    assert ident.accounts.attach_student(first.id, sid, "SOCSW").student_id == sid  # idempotent
    with pytest.raises(IdentityConflict):
        ident.accounts.attach_student(second.id, sid)  # the student has an account already
    with pytest.raises(IdentityConflict):
        ident.accounts.attach_student(first.id, str(uuid.uuid4()))  # the account has a student already
    assert ident.store.get_account(second.id).student_id is None  # type: ignore[union-attr]


def test_the_header_sign_out_link_leads_to_a_button(client: FlaskClient, identity: Identity) -> None:
    session_id = authkit_sign_in(client, identity, student(identity))
    home = client.get("/").text
    assert 'href="/auth/account#sign-out"' in home
    assert "csrf_token" not in home  # pages stay the same for everyone: no per-render token
    page = client.get("/auth/account")
    assert page.status_code == 200
    assert 'action="/auth/sign-out"' in page.text
    assert identity.sessions.get(session_id) is not None  # a GET signs nobody out


def test_the_assessment_app_sends_sso_through_the_intake_callback(
    settings: Settings, store: InMemoryEventStore, clock: FixedClock, sso_identity: Identity,
    mailer: RecordingMailer, provider: LocalOidcProvider
) -> None:
    intake = make_app(settings, store, clock, sso_identity, mailer)
    feed = StoreEventFeed(store, opener=intake.extensions["cim.intake"].open_events)
    app = create_assessment_app(settings, feed=feed, clock=clock, identity=sso_identity)
    page = app.test_client().get("/auth/sign-in?next=/review-queue").text
    start = f"{INTAKE}/auth/oidc/start?next=http%3A%2F%2F127.0.0.1%3A8001%2Freview-queue"
    assert f'href="{start}"' in page.replace("&amp;", "&")
    # the intake app honours that next: one sign-in, back on the assessment app
    client = intake.test_client()
    begun = client.get(start[len(INTAKE):])
    answer = requests.get(begun.headers["Location"], allow_redirects=False, timeout=5)
    done = client.get(answer.headers["Location"][len(INTAKE):])
    assert done.headers["Location"] == f"{ASSESSMENT}/review-queue"


def test_sso_registration_form_starts_from_the_account(sso_client: FlaskClient) -> None:
    sso_client.get(through_provider(sso_client))
    page = sso_client.get("/register").text
    assert 'value="Alva Provnamn"' in page
    assert 'value="ada@student.lu.se"' in page


def test_a_mail_server_that_is_down_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from shared.mail import Mailer

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailer = Mailer("127.0.0.1", port, "CIM <cim@example.org>", timeout=2)
    mail = Mail("a@example.org", "A", "Subject", "text", "<p>html</p>", "key-down")
    with caplog.at_level("ERROR", logger="shared.mail"):
        message = mailer.deliver_later(mail)  # returns at once
        assert message["Message-ID"] == message_id("key-down", "example.org")
        assert mailer._pool is not None
        mailer._pool.shutdown(wait=True)
    assert any("mail not sent" in r.getMessage() for r in caplog.records)
