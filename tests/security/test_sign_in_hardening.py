"""Issue 18 (items 1, 6, 7): a forged or real e-mail link never signs in staff; staff code
guessing is limited per account with a short backoff and the holder is told; /register answers
in the same time whether the address is known, and its mails share the sign-in limits."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.crypto import derive_key
from shared.identity.models import Role
from shared.identity.wiring import Identity
from shared.mail import RecordingMailer
from tests.authkit import IDENTITY_KEY
from tests.unit.test_auth_pages import make_app, redeem, session_cookie, staff
from tests.unit.test_identity_email_links import forged_link


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


# -- 7: /register takes as long for a known address as for a new one ----------------------------------
REGISTRANT = {
    "name": "Wilma Exempelsson",
    "department": "SOCSW",
    "programme": "SSASK",
    "expected_end_term": "VT2028",
}


def form_token(client: FlaskClient) -> str:
    import re

    page = client.get("/register")
    found = re.search(r'name="form_token"[^>]*value="([^"]*)"', page.text)
    assert found
    return found.group(1)


def timed_registration(app: Flask, email: str, university_id: str) -> float:
    import time

    client = app.test_client()  # a fresh browser: no remembered form
    data = {"form_token": form_token(client), **REGISTRANT, "email": email, "university_id": university_id}
    started = time.perf_counter()
    answer = client.post("/register", data=data)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/auth/check-email?registered=1"
    return elapsed


def test_register_takes_the_same_time_for_a_known_and_a_new_address(
    tmp_path: Path, clock: FixedClock, identity: Identity, mailer: RecordingMailer
) -> None:
    from statistics import median

    from intake_service import create_app

    # The embedded default's SQLite event store and key vault, as `make run` has them.
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://", ratelimit_signin="1000 per minute")
    app = create_app(settings, clock=clock, identity=identity)
    app.config["WTF_CSRF_ENABLED"] = False
    app.extensions["cim.mailer"] = mailer
    timed_registration(app, "known@example.org", "kn0000wn-s")  # now a known address
    known: list[float] = []
    new: list[float] = []
    for i in range(15):
        known.append(timed_registration(app, "known@example.org", "kn0000wn-s"))
        new.append(timed_registration(app, f"new{i}@example.org", f"nw{i:04d}ew-s"))
    # Before the fix the known address answered in about half the time (here 9-12 ms against
    # 22-25 ms; the audit saw 12 and 23 ms). What may remain is the scheduler's noise on a busy
    # machine: a few milliseconds on answers of ~300 ms.
    gap = abs(median(known) - median(new))
    assert gap < max(0.006, 0.03 * min(median(known), median(new))), (median(known), median(new))
    assert len(mailer.sent) == 1 + 15 + 15  # every request mailed a link: the same work, too


def limited_app(tmp_path: Path, store: InMemoryEventStore, clock: FixedClock, identity: Identity,
                mailer: RecordingMailer) -> Flask:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://", ratelimit_signin="3 per minute")
    app = make_app(settings, store, clock, identity, mailer)
    app.config["CIM_REGISTER_MIN_SECONDS"] = 0  # timing is the test above's business
    return app


def browser_at(app: Flask, client_ip: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = client_ip
    return client


def register_from(app: Flask, client_ip: str, email: str, university_id: str) -> int:
    client = browser_at(app, client_ip)
    data = {"form_token": form_token(client), **REGISTRANT, "email": email, "university_id": university_id}
    return client.post("/register", data=data).status_code


def test_register_shares_the_sign_in_limit_per_client(
    tmp_path: Path, store: InMemoryEventStore, clock: FixedClock, identity: Identity, mailer: RecordingMailer
) -> None:
    app = limited_app(tmp_path, store, clock, identity, mailer)
    assert [register_from(app, "192.0.2.7", f"r{i}@example.org", f"rr{i:04d}rr-s") for i in range(2)] == [303, 303]
    browser = browser_at(app, "192.0.2.7")
    assert browser.post("/auth/link", data={"link-email": "r0@example.org"}).status_code == 303  # the 3rd
    assert register_from(app, "192.0.2.7", "r9@example.org", "rr0009rr-s") == 429
    assert browser.post("/auth/link", data={"link-email": "r0@example.org"}).status_code == 429
    assert browser.get("/register").status_code == 200  # showing the form costs nothing
    assert register_from(app, "192.0.2.8", "r8@example.org", "rr0008rr-s") == 303  # another client


def test_link_mails_to_one_address_are_limited_whoever_asks(
    tmp_path: Path, store: InMemoryEventStore, clock: FixedClock, identity: Identity, mailer: RecordingMailer
) -> None:
    app = limited_app(tmp_path, store, clock, identity, mailer)
    assert register_from(app, "198.51.100.1", "target@example.org", "tg0000tg-s") == 303  # mail 1
    answers = [register_from(app, f"198.51.100.{i}", "target@example.org", "tg0000tg-s") for i in range(2, 5)]
    for i in range(5, 12):
        client = browser_at(app, f"198.51.100.{i}")
        answers.append(client.post("/auth/link", data={"link-email": "target@example.org"}).status_code)
    # Every client is answered alike ("check your e-mail"), but the address got its share only.
    assert answers == [303] * 10
    assert len(mailer.sent) == 3
    assert all("target@example.org" in str(m["To"]) for m in mailer.sent)


# -- 6: staff code guessing is limited per account, not only per client ------------------------------
def test_ninety_wrong_codes_from_ten_addresses_lock_the_account_briefly_and_tell_its_holder(
    app: Flask, identity: Identity, clock: FixedClock, mailer: RecordingMailer
) -> None:
    from datetime import timedelta

    import pyotp

    from tests.unit.test_auth_pages import PASSWORD, staff_form

    _account, secret = staff(identity, "assessor@example.org", role=Role.ASSESSOR)
    right = pyotp.TOTP(secret).at(clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    statuses = []
    pages = set()
    for address in range(10):
        attacker = browser_at(app, f"203.0.113.{address + 1}")
        for _ in range(9):
            answer = attacker.post("/auth/staff", data=staff_form("assessor@example.org", PASSWORD, wrong))
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                pages.add(answer.text)
                assert 0 < int(answer.headers["Retry-After"]) <= 300
    assert statuses[:4] == [401] * 4
    assert statuses[4:] == [429] * 86
    [page] = pages  # one page whatever was wrong, naming no factor
    assert "Too many failed sign-in attempts for this account" in page
    assert "password or code is not right" not in page
    # The holder is told once, in English and Swedish.
    [notice] = mailer.sent
    assert "assessor@example.org" in str(notice["To"])
    text = notice.get_body(("plain",)).get_content()
    assert "paused for 1 minute" in text
    assert "pausade i 1 minut" in text
    # Locked: the right password and code are refused too, from a fresh address ...
    owner = browser_at(app, "198.18.0.1")
    assert owner.post("/auth/staff", data=staff_form("assessor@example.org", PASSWORD, right)).status_code == 429
    # ... but only briefly: after the lock the holder signs in.
    clock.advance(timedelta(seconds=31))
    fresh = pyotp.TOTP(secret).at(clock.now())
    assert owner.post("/auth/staff", data=staff_form("assessor@example.org", PASSWORD, fresh)).status_code == 303
