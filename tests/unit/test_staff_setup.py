"""The set-up link (shared/web/staff_setup.py, shared/identity/setup_links.py): an administrator
sends it, the mail goes through the outbox in the recipient's language, and the person chooses a
password and enrols an authenticator on the assessment service, then signs in with them. A used,
expired, replaced or forged link stores nothing; a student account never gets one."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from click.testing import Result
from flask.testing import FlaskClient

from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.crypto import token_hash
from shared.identity.errors import LinkAlreadyUsed, LinkExpired, LinkInvalid
from shared.identity.models import Account, Role
from shared.identity.setup_links import SetupLinkRefused
from shared.mail import RecordingMailer
from shared.outbox import Row
from tests.authkit import SESSION_COOKIE, make_account
from tests.unit.test_assessment_access import World, build_world

PASSWORD = "correct horse battery staple"


@pytest.fixture
def world(tmp_path: Path, clock: FixedClock) -> World:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://",
                        ratelimit_signin="1000 per minute", wakeup="none")
    built = build_world(settings, clock)
    built.app.extensions["cim.mailer"] = RecordingMailer()
    return built


def mailer(world: World) -> RecordingMailer:
    return world.app.extensions["cim.mailer"]


def new_staff(world: World, email: str = "nova@example.org") -> Account:
    return make_account(world.identity, "Nova Granskare", email, grants=[(Role.ASSESSOR, "SOCSW")])


def setup_rows(world: World) -> list[Row]:
    box = world.app.extensions.get("cim.outbox")
    return [r for r in box.rows() if r.template == "staff_setup_link"] if box else []


def send(world: World, account: Account) -> str:
    """The administrator presses "Send a set-up link"; the path of the link mailed."""
    answer = world.browser("administrator").post(f"/admin/accounts/{account.id}/setup-link")
    assert answer.status_code == 303, answer.text
    assert setup_rows(world), "no set-up mail in the outbox"
    body = mailer(world).sent[-1].get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+(/auth/setup/[A-Za-z0-9._-]+)", body)
    assert match, body
    return match.group(1)


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', page)
    assert match, f"no {name} field"
    return html.unescape(match.group(1))


def start(client: FlaskClient, path: str) -> tuple[str, str, str]:
    """Press the button: (page, secret shown, sealed pending field)."""
    answer = client.post(path)
    assert answer.status_code == 200, answer.text
    page = answer.text
    secret = re.search(r'<code class="secret" id="totp-secret">([A-Z2-7 ]+)</code>', page)
    assert secret, "the secret is not shown as text"
    return page, secret.group(1).replace(" ", ""), hidden(page, "pending")


def code_now(world: World, secret: str) -> str:
    return pyotp.TOTP(secret).at(world.identity.accounts.clock.now())


def finish(client: FlaskClient, path: str, pending: str, code: str, password: str = PASSWORD,
           again: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(f"{path}/finish", data={"password": password, "password_again": password if again is None
                                               else again, "code": code, "pending": pending})


def has_credentials(world: World, account: Account) -> bool:
    store = world.identity.store
    return store.password_hash(account.id) is not None or store.totp_state(account.id) is not None


# -- the done-when: sent, followed, set up, signed in, and later signs in with password + code --------
def test_the_whole_flow_from_the_administrator_to_a_later_sign_in(world: World, clock: FixedClock) -> None:
    account = new_staff(world)
    page = world.browser("administrator").get(f"/admin/accounts/{account.id}").text
    assert "Send a set-up link" in page
    assert "no password and authenticator yet" in page
    path = send(world, account)
    row = setup_rows(world)[-1]
    assert (row.to_address, row.locale, row.subject_id) == ("nova@example.org", "en", account.id)
    sent = mailer(world).sent[-1]
    assert sent["To"].addresses[0].addr_spec == "nova@example.org"
    assert sent["Subject"] == "Set up your sign-in to CIM"
    body = sent.get_body(("plain",)).get_content()
    assert world.app.config["CIM_SETTINGS"].assessment_url.rstrip("/") + path in body
    assert "works once and for 72 hours" in body

    client = world.app.test_client()
    confirm = client.get(path)  # what a mail scanner fetches: a button, nothing else
    assert confirm.status_code == 200
    assert "Set up my sign-in" in confirm.text
    assert "totp-secret" not in confirm.text
    assert not has_credentials(world, account)

    answer = client.post(path)
    assert answer.headers["Cache-Control"] == "no-store"
    page, secret, pending = start(client, path)
    assert 'src="data:image/svg+xml' in page  # the QR code
    for label in ('for="code"', 'for="password"', 'for="password_again"'):
        assert label in page
    assert not has_credentials(world, account)  # nothing stored until a code confirms the secret

    done = finish(client, path, pending, code_now(world, secret))
    assert done.status_code == 303, done.text
    assert done.headers["Location"] == "/queue"  # their work (shared/web/workspace.py)
    assert client.get("/queue").status_code == 200  # signed in
    assert has_credentials(world, account)

    # Later: signs in with the password and a new code (the confirming code is spent).
    later = world.app.test_client()
    replay = later.post("/auth/staff", data={"staff-email": "nova@example.org", "staff-password": PASSWORD,
                                            "staff-code": code_now(world, secret)})
    assert replay.status_code == 401
    clock.advance(timedelta(seconds=60))
    signed = later.post("/auth/staff", data={"staff-email": "nova@example.org", "staff-password": PASSWORD,
                                            "staff-code": code_now(world, secret)})
    assert signed.status_code == 303
    assert later.get_cookie(SESSION_COOKIE) is not None
    assert later.get("/queue").status_code == 200


def test_a_used_link_is_refused_and_an_older_one_died_with_it(world: World) -> None:
    account = new_staff(world)
    older = send(world, account)
    path = send(world, account)
    assert older != path
    client = world.app.test_client()
    _page, secret, pending = start(client, path)
    assert finish(client, path, pending, code_now(world, secret)).status_code == 303
    stored = world.identity.store.password_hash(account.id)

    again = world.app.test_client()
    used = again.post(path)
    assert used.status_code == 410
    assert "already been used" in used.text
    assert finish(again, path, pending, code_now(world, secret), password="another long passphrase").status_code == 410
    replaced = again.post(older)  # the credentials it would replace changed: not valid any more
    assert replaced.status_code == 400
    assert "not valid" in replaced.text
    assert world.identity.store.password_hash(account.id) == stored
    with pytest.raises(LinkAlreadyUsed):
        world.identity.setup_links.check(path[len("/auth/setup/"):])


def test_an_expired_link_stores_nothing(world: World, clock: FixedClock) -> None:
    account = new_staff(world)
    path = send(world, account)
    client = world.app.test_client()
    _page, secret, pending = start(client, path)
    clock.advance(timedelta(hours=72))
    answer = finish(client, path, pending, code_now(world, secret))
    assert answer.status_code == 410
    assert "expired" in answer.text
    assert client.post(path).status_code == 410
    assert not has_credentials(world, account)
    with pytest.raises(LinkExpired):
        world.identity.setup_links.check(path[len("/auth/setup/"):])


def test_a_forged_link_or_a_forged_secret_field_stores_nothing(world: World) -> None:
    account = new_staff(world)
    path = send(world, account)
    token = path[len("/auth/setup/"):]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    client = world.app.test_client()
    for bad in (forged, "not-a-real-link", "v1.e30." + "A" * 43):
        answer = client.post(f"/auth/setup/{bad}")
        assert answer.status_code == 400, bad
        assert "not valid" in answer.text
    # A sign-in link's token is not a set-up link (another key).
    assert client.post(f"/auth/setup/{world.identity.links.issue(account).token}").status_code == 400
    _page, secret, pending = start(client, path)
    other = send(world, new_staff(world, "otto@example.org"))
    _p, other_secret, other_pending = start(client, other)
    # The secret field sealed for another link does not open for this one.
    assert finish(client, path, other_pending, code_now(world, other_secret)).status_code == 400
    assert finish(client, path, "garbage", code_now(world, secret)).status_code == 400
    assert not has_credentials(world, account)
    assert finish(client, path, pending, code_now(world, secret)).status_code == 303  # the control
    with pytest.raises(LinkInvalid):
        world.identity.setup_links.check(forged)


def test_a_wrong_code_reshows_the_form_naming_the_field_and_the_link_still_works(world: World) -> None:
    account = new_staff(world)
    path = send(world, account)
    client = world.app.test_client()
    _page, secret, pending = start(client, path)
    wrong = f"{(int(code_now(world, secret)) + 1) % 1_000_000:06d}"
    answer = finish(client, path, pending, wrong)
    assert answer.status_code == 422
    assert 'id="code-error"' in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert "This code does not match the secret" in answer.text
    assert "Error:" in answer.text.split("</title>")[0]
    assert hidden(answer.text, "pending") == pending  # the same secret, so the app need not change
    assert not has_credentials(world, account)
    assert finish(client, path, pending, code_now(world, secret)).status_code == 303


def test_a_weak_or_mistyped_password_is_refused_beside_its_field(world: World) -> None:
    account = new_staff(world)
    path = send(world, account)
    client = world.app.test_client()
    _page, secret, pending = start(client, path)
    weak = finish(client, path, pending, code_now(world, secret), password="short")
    assert weak.status_code == 422
    assert 'id="password-error"' in weak.text
    assert "at least 12 characters" in weak.text
    spaced = finish(client, path, pending, code_now(world, secret), password=" " + PASSWORD)
    assert spaced.status_code == 422
    assert 'id="password-error"' in spaced.text
    mistyped = finish(client, path, pending, code_now(world, secret), again=PASSWORD + "!")
    assert mistyped.status_code == 422
    assert 'id="password_again-error"' in mistyped.text
    assert "not the same" in mistyped.text
    assert not has_credentials(world, account)


def test_a_student_account_never_gets_a_set_up_link(world: World) -> None:
    student = world.accounts["student_A"]
    browser = world.browser("administrator")
    page = browser.get(f"/admin/accounts/{student.id}").text
    assert "Send a set-up link" not in page
    assert "gets no set-up link" in page
    answer = browser.post(f"/admin/accounts/{student.id}/setup-link")
    assert answer.status_code == 422
    assert "gets no set-up link" in answer.text
    assert setup_rows(world) == []
    with pytest.raises(SetupLinkRefused):
        world.identity.setup_links.issue(student)


def test_a_disabled_account_gets_no_link_and_a_link_sent_before_stops(world: World) -> None:
    account = new_staff(world)
    path = send(world, account)
    world.identity.accounts.disable_account(account.id)
    assert world.app.test_client().post(path).status_code == 400
    assert world.browser("administrator").post(f"/admin/accounts/{account.id}/setup-link").status_code == 422


def test_only_an_administrator_sends_one(world: World) -> None:
    account = new_staff(world)
    assert world.browser("coordinator").post(f"/admin/accounts/{account.id}/setup-link").status_code == 403
    assert setup_rows(world) == []


def test_the_mail_is_in_the_recipients_language(world: World) -> None:
    account = new_staff(world)
    world.identity.accounts.set_locale(account.id, "sv")
    send(world, account)
    row = setup_rows(world)[-1]
    assert row.locale == "sv"
    sent = mailer(world).sent[-1]
    assert sent["Subject"] == "Ställ in din inloggning till CIM"
    assert "72 timmar" in sent.get_body(("plain",)).get_content()


def test_a_lost_phone_a_new_link_replaces_the_credentials_and_ends_the_sessions(world: World,
                                                                               clock: FixedClock) -> None:
    account = new_staff(world)
    first = send(world, account)
    client = world.app.test_client()
    _page, old_secret, pending = start(client, first)
    assert finish(client, first, pending, code_now(world, old_secret)).status_code == 303
    old_session = client.get_cookie(SESSION_COOKIE)
    assert old_session is not None
    page = world.browser("administrator").get(f"/admin/accounts/{account.id}").text
    assert "lost their phone" in page
    second = send(world, account)
    other = world.app.test_client()
    _p, new_secret, new_pending = start(other, second)
    clock.advance(timedelta(seconds=60))
    answer = finish(other, second, new_pending, code_now(world, new_secret), password="a new long passphrase")
    assert answer.status_code == 303
    assert world.identity.sessions.get(old_session.value) is None  # whoever has the phone is out
    assert world.identity.store.totp_state(account.id) is not None
    clock.advance(timedelta(seconds=60))
    old = world.app.test_client().post("/auth/staff", data={
        "staff-email": "nova@example.org", "staff-password": PASSWORD, "staff-code": code_now(world, old_secret)})
    assert old.status_code == 401


def test_forged_csrf_tokens_are_refused_and_nothing_is_sent_or_stored(world: World) -> None:
    account = new_staff(world)
    path = send(world, account)
    client = world.app.test_client()
    _page, secret, pending = start(client, path)
    world.app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert world.browser("administrator").post(f"/admin/accounts/{account.id}/setup-link",
                                                   data={"csrf_token": "forged"}).status_code == 400
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 400
        answer = client.post(f"{path}/finish", data={"password": PASSWORD, "password_again": PASSWORD,
                                                     "code": code_now(world, secret), "pending": pending,
                                                     "csrf_token": "forged"})
        assert answer.status_code == 400
    finally:
        world.app.config["WTF_CSRF_ENABLED"] = False
    assert len(setup_rows(world)) == 1
    assert not has_credentials(world, account)


def test_the_posts_count_against_the_sign_in_limit(tmp_path: Path, clock: FixedClock) -> None:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://",
                        ratelimit_signin="3 per minute", wakeup="none")
    limited = build_world(settings, clock)
    client = limited.app.test_client()
    statuses = [client.post("/auth/setup/not-a-real-link").status_code for _ in range(5)]
    assert statuses[:3] == [400, 400, 400]
    assert statuses[3:] == [429, 429]


def cli(world: World, *args: str) -> Result:
    return world.app.test_cli_runner().invoke(args=["accounts", "send-setup-link", *args])


def test_the_cli_sends_the_same_link(world: World) -> None:
    account = new_staff(world)
    result = cli(world, "nova@example.org")
    assert result.exit_code == 0, result.output
    assert "in the outbox" in result.output
    assert "v1." not in result.output  # the link goes to the person only
    rows = setup_rows(world)
    assert len(rows) == 1
    assert rows[0].subject_id == account.id
    make_account(world.identity, "Tova Student", "tova@example.org", grants=[(Role.STUDENT, "SOCSW")])
    refused = cli(world, "tova@example.org")
    assert refused.exit_code != 0
    assert len(setup_rows(world)) == 1
    assert cli(world, "nobody@example.org").exit_code != 0


def test_the_set_up_pages_speak_swedish(world: World) -> None:
    path = send(world, new_staff(world))
    client = world.app.test_client()
    assert "Ställ in min inloggning" in client.get(f"{path}?lang=sv").text
    page = client.post(f"{path}?lang=sv").text
    assert "Välj ett lösenord" in page
    assert "QR-kod med autentiseringshemligheten för CIM" in page


def test_the_links_on_the_sql_store_are_single_use(tmp_path: Path, clock: FixedClock) -> None:
    """The used-link record and the credentials' fingerprint in the SQL identity store (SQLite here;
    the same statements run on PostgreSQL)."""
    from shared.identity.wiring import build_identity
    from tests.authkit import FAST_HASHER, IDENTITY_KEY

    ident = build_identity(clock=clock, identity_key=IDENTITY_KEY, db_url=f"sqlite:///{tmp_path / 'id.db'}",
                           password_hasher=FAST_HASHER)
    ident.store.create_schema()
    account = ident.accounts.create_account("Nova Granskare", "nova@example.org")
    older = ident.setup_links.issue(account).token
    token = ident.setup_links.issue(account).token
    assert ident.setup_links.check(token).id == account.id
    assert not ident.store.is_used(token_hash(token))
    ident.setup_links.spend(token)
    assert ident.store.is_used(token_hash(token))
    with pytest.raises(LinkAlreadyUsed):
        ident.setup_links.spend(token)
    enrolment = ident.staff.new_enrolment("nova@example.org")
    step = ident.staff.confirming_step(enrolment.secret, pyotp.TOTP(enrolment.secret).at(clock.now()))
    assert step is not None
    ident.staff.set_up(account.id, PASSWORD, enrolment.secret, step)
    with pytest.raises(LinkInvalid):  # the credentials it would replace are gone
        ident.setup_links.check(older)
    clock.advance(timedelta(seconds=30))
    signed = ident.staff.sign_in("nova@example.org", PASSWORD, pyotp.TOTP(enrolment.secret).at(clock.now()))
    assert signed.id == account.id
