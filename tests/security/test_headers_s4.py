"""Sessions and headers (bar S4; the key is in tests/README.md).

Headers: every kind of response of both apps (pages, API, errors of every class, redirects,
static files, HEAD/OPTIONS, 413, 429, 500) carries the security headers; HSTS under https and
always in production; no-store on everything but static files. The CSP (no inline script or style)
is honoured by every template and by the rendered pages.

Sessions: a new session id at sign-in (a planted or previous one is never adopted, and is
revoked); a cookie replayed after sign-out, sign-out-everywhere or an account's disabling is
refused; idle and absolute timeouts hold on a moved FixedClock.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from intake_service import create_app as create_intake_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import ROOT, Settings
from shared.web.access import PUBLIC, access
from shared.web.headers import CONTENT_SECURITY_POLICY, content_security_policy
from tests.authkit import SESSION_COOKIE, authed_client, bearer, make_identity, sign_in
from tests.conftest import CLOCK_START
from tests.security.world import World, csrf_token_of, make_world

REQUIRED = {
    # form-action also names both apps' origins: a sign-in form's redirect crosses to the other.
    "Content-Security-Policy": content_security_policy(Settings()),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
STRONG_KEY = "k" * 40


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("s4"))


def assert_secure_headers(response: TestResponse, what: str, *, static: bool = False) -> None:
    for name, value in REQUIRED.items():
        assert response.headers.get(name) == value, (what, name, response.headers.get(name))
    assert "camera=()" in response.headers.get("Permissions-Policy", ""), what
    assert response.headers.get("X-Correlation-ID"), what
    if not static:
        assert response.headers.get("Cache-Control") == "no-store", (what, response.headers.get("Cache-Control"))


def small_intake(tmp_path: Path, **changes: object) -> tuple[Flask, FixedClock]:
    """A fresh intake app (routes may still be added to it)."""
    clock = FixedClock(CLOCK_START)
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://", **changes)  # type: ignore[arg-type]
    app = create_intake_app(settings, store=InMemoryEventStore(clock), clock=clock, identity=make_identity(clock))
    return app, clock


# -- headers -------------------------------------------------------------------------------------
def test_every_kind_of_response_of_both_apps_carries_the_security_headers(world: World) -> None:
    s = world.students[0]
    student = world.browser(world.intake, s.account)
    anonymous_intake = world.browser(world.intake, None)
    coordinator = world.browser(world.assessment, world.staff["coordinator"])
    anonymous_assessment = world.browser(world.assessment, None)
    intake_api = authed_client(world.intake, bearer(world.identity))
    assessment_api = authed_client(world.assessment, bearer(world.identity, "assessment:read"))
    cases: list[tuple[str, TestResponse, int | None]] = [
        ("intake home", anonymous_intake.get("/"), 200),
        ("intake register page", anonymous_intake.get("/register"), 200),
        ("student page", student.get(f"/students/{s.student_id}"), 200),
        ("sign-in page", anonymous_intake.get("/auth/sign-in"), 200),
        ("redirect to sign-in", anonymous_intake.get(f"/students/{s.student_id}"), 303),
        ("foreign student (404 page)", student.get(f"/students/{world.students[1].student_id}"), 404),
        ("unknown page", anonymous_intake.get("/no/such/page"), 404),
        ("405 page", anonymous_intake.delete("/register"), 405),
        ("CSRF refusal", student.post(f"/students/{s.student_id}/withdraw", data={}), 400),
        ("form re-shown (422)", anonymous_intake.post(
            "/register", data={"csrf_token": csrf_token_of(anonymous_intake.get("/register").get_data(as_text=True))}),
         422),
        ("HEAD", anonymous_intake.head("/"), 200),
        ("OPTIONS", anonymous_intake.options("/register"), 200),
        ("openapi", intake_api.get("/api/v1/openapi.json"), 200),
        ("API 422", intake_api.post(f"/api/v1/students/{s.student_id}/activities", json={}), 422),
        ("API 401", anonymous_intake.get(f"/api/v1/students/{s.student_id}/events"), 401),
        ("API bad token", anonymous_intake.get("/api/v1/events", headers={"Authorization": "Bearer nope"}), 401),
        ("API 404", intake_api.get("/api/v1/nothing"), 404),
        ("API 405", intake_api.delete("/api/v1/students"), 405),
        ("API 400", intake_api.post("/api/v1/students", data="{", content_type="application/json"), 400),
        ("API 415", intake_api.post("/api/v1/students", data="x", content_type="text/plain"), 415),
        ("download", student.get(f"/students/{s.student_id}/attachments/{s.attachment_id}"), 200),
        ("review queue", coordinator.get("/review-queue"), 200),
        ("report page", coordinator.get(f"/reports/{s.report_id}"), 200),
        ("assessment 403/redirect", anonymous_assessment.get("/review-queue"), 303),
        ("assessment 404", coordinator.get("/no/such/page"), 404),
        ("assessment API", assessment_api.get("/api/v1/review-queue"), 200),
        ("assessment API 403", assessment_api.get("/api/v1/projections"), 403),
    ]
    for what, response, status in cases:
        if status is not None:
            assert response.status_code == status, (what, response.status_code)
        assert_secure_headers(response, what)
    for name, client in (("intake", anonymous_intake), ("assessment", anonymous_assessment)):
        css = client.get("/static/cim.css")
        assert css.status_code == 200
        assert_secure_headers(css, f"{name} static", static=True)
        assert client.get("/static/nothing.css").status_code == 404


def test_downloads_are_attachments_with_nosniff(world: World) -> None:
    s = world.students[0]
    response = world.browser(world.intake, s.account).get(f"/students/{s.student_id}/attachments/{s.attachment_id}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/pdf"


def test_413_429_and_500_carry_the_headers_too(tmp_path: Path) -> None:
    app, _clock = small_intake(tmp_path, ratelimit_post="2 per minute", max_request_bytes=1000)

    @access(PUBLIC)
    def boom() -> str:
        raise RuntimeError("a bug")

    app.add_url_rule("/boom", "boom", boom)
    client = app.test_client()
    crash = client.get("/boom")
    assert crash.status_code == 500
    assert_secure_headers(crash, "500")
    assert "a bug" not in crash.get_data(as_text=True)
    big = client.post("/register", data={"x": "y" * 5000})
    assert big.status_code == 413
    assert_secure_headers(big, "413")
    client.post("/register", data={})
    limited = client.post("/register", data={})
    assert limited.status_code == 429
    assert_secure_headers(limited, "429")
    assert limited.headers["Retry-After"]
    api_limited = client.post("/api/v1/students", json={})
    assert api_limited.status_code == 429
    assert_secure_headers(api_limited, "API 429")


def test_hsts_under_https_and_not_over_plain_http_in_development(world: World) -> None:
    for app in world.apps.values():
        client = app.test_client()
        assert "Strict-Transport-Security" not in client.get("/auth/sign-in").headers
        secure = client.get("/auth/sign-in", base_url="https://cim.example.org")
        assert secure.headers["Strict-Transport-Security"].startswith("max-age=63072000")


def test_hsts_always_in_production(tmp_path: Path) -> None:
    clock = FixedClock(CLOCK_START)
    settings = Settings(env="production", secret_key="s" * 40, vault_key="v" * 40, identity_key="i" * 40,
                        intake_db_url="postgresql://cim@db.invalid/intake",
                        assessment_db_url="postgresql://cim@db.invalid/assessment",
                        identity_db_url="postgresql://cim@db.invalid/identity",
                        data_dir=tmp_path, wakeup="none", ratelimit_storage="redis")
    app = create_intake_app(settings, store=InMemoryEventStore(clock), clock=clock, identity=make_identity(clock))
    response = app.test_client().get("/")
    assert response.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"


# -- the CSP is honoured -------------------------------------------------------------------------
INLINE = re.compile(r"""(<script\b(?![^>]*\bsrc=)|<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:)""", re.I)


def templates() -> list[Path]:
    """The pages' templates. Not the mail templates (templates/mail): mail clients need inline
    styles, and a mail's HTML part is served only on the staff preview's own URL, under a CSP of
    `default-src 'none'; style-src 'unsafe-inline'; sandbox` (tests/unit/test_mail_pages.py)."""
    mail = ROOT / "templates" / "mail"
    return sorted(p for p in ROOT.rglob("*.html")
                  if ".venv" not in p.parts and "node_modules" not in p.parts and mail not in p.parents)


def test_no_template_of_either_app_has_inline_script_style_or_handlers() -> None:
    found = templates()
    assert len(found) >= 10
    offenders = [(str(p.relative_to(ROOT)), m.group(0)) for p in found for m in INLINE.finditer(p.read_text())]
    assert not offenders, offenders


def test_rendered_pages_need_nothing_the_csp_forbids(world: World) -> None:
    s = world.students[0]
    pages = [
        (world.intake, None, "/"), (world.intake, None, "/register"), (world.intake, None, "/auth/sign-in"),
        (world.intake, s.account, f"/students/{s.student_id}"),
        (world.intake, s.account, f"/students/{s.student_id}/activities/new"),
        (world.intake, s.account, f"/students/{s.student_id}/report"),
        (world.intake, s.account, "/auth/account"),
        (world.assessment, world.staff["coordinator"], "/review-queue"),
        (world.assessment, world.staff["coordinator"], f"/reports/{s.report_id}"),
    ]
    for app, account, path in pages:
        html = world.browser(app, account).get(path).get_data(as_text=True)
        assert "<html" in html, path
        assert not INLINE.findall(html), (path, INLINE.findall(html))
        # Every script, stylesheet and image comes from this origin.
        for src in re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png|svg|woff2?))"', html):
            assert src.startswith("/"), (path, src)


# -- sessions ------------------------------------------------------------------------------------
def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE)
    return cookie.value if cookie else None


def signed_in_page(client: FlaskClient) -> bool:
    response = client.get("/auth/account")
    if response.status_code == 200:
        return True
    assert response.status_code == 303, response.status_code
    assert "/auth/sign-in" in response.headers["Location"]
    return False


def sign_in_by_link(world: World, client: FlaskClient, email: str) -> TestResponse:
    # A link issued in the same instant as one already used is dead (a used link kills the older
    # and equally old ones): let the fixed clock move on as a real one would.
    world.clock.advance(timedelta(seconds=1))
    issued = world.identity.links.request_link(email)
    assert issued is not None
    page = client.get(f"/auth/link/{issued.token}")
    token = csrf_token_of(page.get_data(as_text=True))
    return client.post(f"/auth/link/{issued.token}", data={"csrf_token": token})


def test_sign_in_issues_a_new_session_id_and_never_adopts_one(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    account = world.students[0].account
    client = world.browser(world.intake, None)
    # An attacker plants a cookie (session fixation): a value of their choosing, and a live
    # session of their own.
    client.set_cookie(SESSION_COOKIE, "planted-by-an-attacker-" + "x" * 20, path="/", secure=True)
    done = sign_in_by_link(world, client, account.email or "")
    assert done.status_code == 303, done.status_code
    first = session_cookie(client)
    assert first
    assert not first.startswith("planted")
    set_cookie = done.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in set_cookie, set_cookie
    assert "Domain=" not in set_cookie
    assert signed_in_page(client)
    # Signing in again (e.g. another account on a shared computer) rotates again; the old id dies.
    again = sign_in_by_link(world, client, account.email or "")
    assert again.status_code == 303
    second = session_cookie(client)
    assert second
    assert second != first
    assert world.identity.sessions.get(first) is None
    attacker_session = world.identity.sessions.create(world.students[1].account.id)
    victim = world.browser(world.intake, None)
    victim.set_cookie(SESSION_COOKIE, attacker_session, path="/", secure=True)
    assert sign_in_by_link(world, victim, account.email or "").status_code == 303
    assert session_cookie(victim) != attacker_session
    assert world.identity.sessions.get(attacker_session) is None


@pytest.mark.parametrize("how", ["sign-out", "sign-out-everywhere", "account disabled"])
def test_a_cookie_replayed_after_sign_out_or_disable_is_refused(world: World, how: str) -> None:
    account = world.staff["assessor"] if how == "account disabled" else world.students[0].account
    client = world.browser(world.intake, account)
    stolen = session_cookie(client)
    assert stolen
    assert signed_in_page(client)
    if how == "account disabled":
        world.identity.accounts.disable_account(account.id)
    else:
        token = csrf_token_of(client.get("/auth/account").get_data(as_text=True))
        response = client.post(f"/auth/{how}", data={"csrf_token": token})
        assert response.status_code == 303
        assert session_cookie(client) is None  # the browser was told to drop it
    try:
        for app in world.apps.values():  # one session serves both apps: refused by both
            replay = app.test_client()
            replay.set_cookie(SESSION_COOKIE, stolen, path="/", secure=True)
            assert not signed_in_page(replay)
        assert world.identity.sessions.get(stolen) is None
    finally:
        if how == "account disabled":
            world.identity.accounts.enable_account(account.id)


def _signed_in(tmp_path: Path, name: str, email: str) -> tuple[FlaskClient, FixedClock]:
    """A browser signed in to a small intake app as a new account, and the app's clock."""
    app, clock = small_intake(tmp_path)
    identity = app.extensions["cim.identity"]
    account = identity.accounts.create_account(name, email)
    client = app.test_client()
    sign_in(client, identity, account)
    return client, clock


def test_idle_timeout_slides_with_use_and_ends_a_quiet_session(tmp_path: Path) -> None:
    client, clock = _signed_in(tmp_path, "Idle Tester", "idle@example.org")
    for _ in range(4):  # 4 x 29 min of activity: past the 30 min idle limit in total, still in
        clock.advance(timedelta(minutes=29))
        assert signed_in_page(client)
    clock.advance(timedelta(minutes=31))
    assert not signed_in_page(client)


def test_absolute_timeout_ends_even_a_busy_session(tmp_path: Path) -> None:
    client, clock = _signed_in(tmp_path, "Busy Tester", "busy@example.org")
    elapsed = timedelta(0)
    while elapsed < timedelta(hours=12) - timedelta(minutes=20):
        clock.advance(timedelta(minutes=20))
        elapsed += timedelta(minutes=20)
        assert signed_in_page(client), elapsed
    clock.advance(timedelta(minutes=25))
    assert not signed_in_page(client)


def test_settings_set_the_timeouts(tmp_path: Path) -> None:
    """CIM_SESSION_IDLE_MINUTES reaches the session store (identity_from_settings)."""
    from shared.web.auth import identity_from_settings

    clock = FixedClock(CLOCK_START)
    import fakeredis

    settings = Settings(data_dir=tmp_path, session_idle_minutes=5, session_absolute_hours=1)
    identity = identity_from_settings(settings, clock, redis=fakeredis.FakeRedis())
    account = identity.accounts.create_account("Short Tester", "short@example.org")
    session_id = identity.sessions.create(account.id)
    clock.advance(timedelta(minutes=4))
    assert identity.sessions.get(session_id) is not None
    clock.advance(timedelta(minutes=6))
    assert identity.sessions.get(session_id) is None


def test_form_action_allows_both_apps_and_nothing_else() -> None:
    policy = content_security_policy(Settings(intake_url="https://cim.example.org",
                                              assessment_url="https://assess.cim.example.org/"))
    assert "form-action 'self' https://assess.cim.example.org https://cim.example.org;" in policy
    assert policy.replace(" https://assess.cim.example.org https://cim.example.org", "") == CONTENT_SECURITY_POLICY
