"""Issue 18 (items 1, 6, 7): a forged or real e-mail link never signs in staff; staff code
guessing is limited per account with a short backoff and the holder is told; /register answers
in the same time whether the address is known, and its mails share the sign-in limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.crypto import derive_key
from shared.identity.models import Role
from shared.identity.wiring import Identity
from shared.mail import RecordingMailer
from tests.authkit import IDENTITY_KEY, make_identity
from tests.unit.test_auth_pages import make_app, redeem, session_cookie, staff
from tests.unit.test_identity_email_links import forged_link
from tests.unit.test_pages import compile_swedish


@pytest.fixture(scope="module", autouse=True)
def _compiled_swedish() -> None:
    compile_swedish()


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


@pytest.fixture
def app(settings: Settings, store: InMemoryEventStore, clock: FixedClock, identity: Identity,
        mailer: RecordingMailer) -> Flask:
    return make_app(settings, store, clock, identity, mailer)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_a_forged_link_for_an_assessor_does_not_sign_them_in(
    client: FlaskClient, identity: Identity, clock: FixedClock
) -> None:
    # The attacker knows the link key (the old repository default) and the assessor's account id.
    assessor, _secret = staff(identity, "assessor@example.org", role=Role.ASSESSOR)
    forged = forged_link(assessor.id, clock, assessor.email, key=derive_key(IDENTITY_KEY, "email-link"))
    answer = redeem(client, f"/auth/link/{forged}")
    assert answer.status_code == 400
    assert "not valid" in answer.text
    assert session_cookie(client) is None
    assert client.get("/auth/account").status_code in (302, 303)  # still anonymous
