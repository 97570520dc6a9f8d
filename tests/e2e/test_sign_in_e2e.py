"""Sign-in end to end with real parts: the intake app with CSRF on, sessions in a real redis-server
(CIM_TEST_REDIS_URL), accounts in SQLite, mail over SMTP to a real aiosmtpd server (the sink
scripts/test.sh starts, CIM_TEST_SMTP_PORT/CIM_TEST_SMTP_DIR, else one started here), and the local
OpenID Connect provider of tests/integration/test_oidc_provider.py.

One student registers and signs in with the link read from the mail the SMTP server received;
another signs in with the university account; both land on their own My CIM."""

from __future__ import annotations

import mailbox
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import SystemClock
from shared.config import Settings
from shared.identity.oidc import OidcClientConfig, UrllibHttpClient
from shared.identity.sessions import RedisSessionStore
from shared.identity.wiring import Identity, build_identity
from tests.authkit import FAST_HASHER, IDENTITY_KEY, SESSION_COOKIE
from tests.integration.test_oidc_provider import CLIENT_ID, CLIENT_SECRET, LocalOidcProvider

pytestmark = pytest.mark.redis

INTAKE = "http://127.0.0.1:8000"
CALLBACK = f"{INTAKE}/auth/oidc/callback"


@dataclass
class SmtpSink:
    port: int
    maildir: Path

    def wait_for(self, recipient: str, timeout: float = 10.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            box = mailbox.Maildir(str(self.maildir), factory=None, create=False)
            for key in box.iterkeys():
                with box.get_file(key) as handle:
                    from email import message_from_binary_file

                    message = message_from_binary_file(handle, policy=default_policy)
                if recipient in str(message.get("To", "")):
                    assert isinstance(message, EmailMessage)
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no mail to {recipient} within {timeout} s")


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpSink]:
    port, directory = os.environ.get("CIM_TEST_SMTP_PORT"), os.environ.get("CIM_TEST_SMTP_DIR")
    if port and directory:
        yield SmtpSink(int(port), Path(directory))
        return
    import socket

    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    maildir = tmp_path / "maildir"
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=free)
    controller.start()
    try:
        yield SmtpSink(free, maildir)
    finally:
        controller.stop()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("CIM_TEST_REDIS_URL")
    if not url:
        pytest.skip("CIM_TEST_REDIS_URL is not set: run `make test` (scripts/test.sh starts redis-server)")
    return url


@pytest.fixture
def provider() -> Iterator[LocalOidcProvider]:
    running = LocalOidcProvider(SystemClock(), redirect_uri=CALLBACK, subject=f"stud-{uuid.uuid4().hex[:8]}").start()
    yield running
    running.stop()


def make_identity(tmp_path: Path, redis_url: str, provider: LocalOidcProvider | None) -> Identity:
    """Accounts in SQLite, sessions in the real Redis; with SSO when `provider` is given."""
    from redis import Redis

    redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    config = None
    if provider is not None:
        config = OidcClientConfig(issuer=provider.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                  redirect_uri=CALLBACK)
    ident = build_identity(clock=SystemClock(), identity_key=IDENTITY_KEY,
                           db_url=f"sqlite:///{tmp_path / f'id-{uuid.uuid4().hex[:6]}.db'}",
                           redis=redis, password_hasher=FAST_HASHER, oidc=config,
                           oidc_http=UrllibHttpClient(timeout=5, allow_http=True))
    ident.store.create_schema()  # type: ignore[attr-defined]
    assert isinstance(ident.sessions, RedisSessionStore)
    return ident


def make_app(tmp_path: Path, redis_url: str, smtp: SmtpSink, identity: Identity) -> Flask:
    # per-app counters: the limits (S5) have their own tests; here they would count across runs
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none", redis_url=redis_url,
                        ratelimit_storage="memory://",
                        smtp_host="127.0.0.1", smtp_port=smtp.port, intake_url=INTAKE)
    app = create_app(settings, store=InMemoryEventStore(), clock=SystemClock(), identity=identity)
    assert app.config.get("WTF_CSRF_ENABLED", True)  # CSRF stays on: every form below carries its token
    return app


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    assert found, f"no hidden field {name}"
    return found.group(1)


def register(client: FlaskClient, name: str, email: str) -> TestResponse:
    page = client.get("/register")
    assert page.status_code == 200, page.text
    answer = client.post("/register", data={
        "csrf_token": hidden(page.text, "csrf_token"),
        "form_token": hidden(page.text, "form_token"),
        "name": name,
        "email": email,
        "university_id": "ab1234cd-s",
        "department": "SOCSW",
        "programme": "SSASK",
        "expected_end_term": "VT2028",
    })
    assert answer.status_code == 303, answer.text
    return answer


def session_id(client: FlaskClient) -> str:
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    return cookie.value


def test_a_student_registers_and_signs_in_with_the_mailed_link(tmp_path: Path, redis_url: str,
                                                                smtp: SmtpSink) -> None:
    identity = make_identity(tmp_path, redis_url, None)  # the embedded default: no SSO
    app = make_app(tmp_path, redis_url, smtp, identity)
    email = f"tova.{uuid.uuid4().hex[:8]}@example.org"
    client = app.test_client()
    answer = register(client, "Tova Exempel", email)
    assert client.get_cookie(SESSION_COOKIE) is None  # registering does not sign in

    mail = smtp.wait_for(email)
    assert mail["Subject"] == "Your sign-in link for CIM"
    assert re.fullmatch(r"<[0-9a-f]{40}@example\.org>", mail["Message-ID"])
    body = mail.get_body(("plain",))
    assert body is not None
    link = re.search(r"http://127\.0\.0\.1:8000(/auth/link/\S+)", body.get_content())
    assert link, body.get_content()
    assert mail.get_body(("html",)) is not None

    confirm = client.get(link.group(1))  # a mail scanner's GET would stop here
    assert confirm.status_code == 200
    assert client.get_cookie(SESSION_COOKIE) is None
    done = client.post(link.group(1), data={"csrf_token": hidden(confirm.text, "csrf_token")})
    assert done.status_code == 303
    account = identity.store.find_account_by_email(email)
    assert account is not None
    assert done.headers["Location"] == f"/students/{account.student_id}"
    my_cim = client.get(done.headers["Location"])
    assert my_cim.status_code == 200
    assert "Tova Exempel" in my_cim.text

    live = identity.sessions.get(session_id(client))  # the session lives in Redis
    assert live is not None
    assert live.account_id == account.id
    assert live.auth_method == "email-link"

    # the link is single use, also from another browser
    other = app.test_client()
    second = other.get(link.group(1))
    again = other.post(link.group(1), data={"csrf_token": hidden(second.text, "csrf_token")})
    assert again.status_code == 410
    assert other.get_cookie(SESSION_COOKIE) is None
    assert answer.headers["Location"] == "/auth/check-email?registered=1"


def test_a_student_signs_in_with_the_university_account(tmp_path: Path, redis_url: str, smtp: SmtpSink,
                                                        provider: LocalOidcProvider) -> None:
    identity = make_identity(tmp_path, redis_url, provider)
    app = make_app(tmp_path, redis_url, smtp, identity)
    assert app.test_client().get("/register").status_code == 303  # with SSO: sign in first

    def through_provider(client: FlaskClient) -> str:
        assert "Sign in with university account" in client.get("/auth/sign-in").text
        begun = client.get("/auth/oidc/start")
        assert begun.status_code == 303
        answer = requests.get(begun.headers["Location"], allow_redirects=False, timeout=5)
        assert answer.status_code == 302
        callback = urllib.parse.urlsplit(answer.headers["Location"])
        done = client.get(f"{callback.path}?{callback.query}")
        assert done.status_code == 303, done.text
        return str(done.headers["Location"])

    first = app.test_client()
    assert through_provider(first) == "/register"  # a new account, no student record yet
    register(first, "Alva Provnamn", f"alva.{uuid.uuid4().hex[:8]}@example.org")
    live = identity.sessions.get(session_id(first))
    assert live is not None
    assert live.auth_method == "oidc"
    account = identity.store.get_account(live.account_id)
    assert account is not None
    assert account.student_id

    # the next sign-in, in a fresh browser, lands on My CIM
    browser = app.test_client()
    landing = through_provider(browser)
    assert landing == f"/students/{account.student_id}"
    page = browser.get(landing)
    assert page.status_code == 200
    assert "Alva Provnamn" in page.text
    # and the first browser's session is still its own, apart from the second one
    assert session_id(browser) != session_id(first)
