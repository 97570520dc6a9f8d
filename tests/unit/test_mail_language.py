"""Each person's language (issue 13): stored per account in the identity database — when they
switch the pages' language while signed in, at registration from the language then in use, and on
the account page's select — and every e-mail to them is written in it, sign-in links included;
a person who never chose gets English."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from assessment_service import notifications
from assessment_service.notifications import Links
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import ValidationFailed
from shared.identity.models import Role
from shared.identity.sql_store import SqlIdentityStore, preferred_locale
from shared.identity.store import InMemoryIdentityStore
from shared.identity.wiring import Identity, build_identity
from shared.mail import RecordingMailer
from shared.outbox import Outbox, smtp_sender
from tests.authkit import FAST_HASHER, IDENTITY_KEY, make_account, make_identity, student_account
from tests.authkit import sign_in as authkit_sign_in
from tests.unit.test_auth_pages import make_app, registered_student
from tests.unit.test_notifications import SID, _event, _intake_events, _own_events, _runner, engine

__all__ = ["engine"]  # the students read model fixture of the notification tests (SID, ERASED)

OTHER = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"  # a student with no account: no language known
LINKS = Links("https://intake.example.org", "https://assessment.example.org", "cim@example.org")
SECRET = "mail-language-secret-0123456789abcdef"


# -- the store ----------------------------------------------------------------------------------
@pytest.fixture(params=["memory", "sql"])
def any_identity(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock) -> Identity:
    if request.param == "memory":
        return make_identity(clock)
    made = build_identity(clock=clock, identity_key=IDENTITY_KEY, db_url=f"sqlite:///{tmp_path / 'identity.db'}",
                          password_hasher=FAST_HASHER)
    made.store.create_schema()
    return made


def test_an_account_keeps_the_language_it_chose_until_it_is_erased(any_identity: Identity) -> None:
    accounts = any_identity.accounts
    account = make_account(any_identity, "Siri Exempel", "siri@example.org")
    assert accounts.locale_of(account.id) is None  # never chosen
    assert accounts.set_locale(account.id, "sv") is True
    assert accounts.set_locale(account.id, "sv") is False  # unchanged
    assert accounts.locale_of(account.id) == "sv"
    assert accounts.set_locale(account.id, "en") is True
    assert accounts.locale_of(account.id) == "en"
    with pytest.raises(ValidationFailed):
        accounts.set_locale(account.id, "de")
    assert accounts.locale_of(account.id) == "en"  # a refused language stores nothing
    made = accounts.create_account("Nils Exempel", "nils@example.org", locale="sv")
    assert accounts.locale_of(made.id) == "sv"
    assert accounts.locale_of(accounts.create_account("Ada Exempel", None, locale="xx").id) is None
    accounts.erase_account(account.id)
    assert accounts.locale_of(account.id) is None


def test_the_language_is_found_by_student_id_or_account_id(tmp_path: Path, clock: FixedClock) -> None:
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    bare = sa.create_engine(url)
    assert preferred_locale(bare, SID) is None  # no identity tables yet: English, no error
    identity = build_identity(clock=clock, identity_key=IDENTITY_KEY, db_url=url, password_hasher=FAST_HASHER)
    identity.store.create_schema()
    student = student_account(identity, SID, email="alex@example.org")
    staff = make_account(identity, "Sam Granskare", "sam@example.org", grants=[(Role.ASSESSOR, "SOC")])
    identity.accounts.set_locale(student.id, "sv")
    identity.accounts.set_locale(staff.id, "sv")
    assert isinstance(identity.store, SqlIdentityStore)
    engine = identity.store.engine
    assert preferred_locale(engine, SID) == "sv"
    assert preferred_locale(engine, student.id) == "sv"
    assert preferred_locale(engine, staff.id) == "sv"
    assert preferred_locale(engine, OTHER) is None
    assert preferred_locale(engine, None) is None
    identity.accounts.erase_account(student.id)
    assert preferred_locale(engine, SID) is None


def test_the_in_memory_store_ignores_a_language_for_no_account(clock: FixedClock) -> None:
    store = InMemoryIdentityStore()
    assert store.set_locale("nobody", "sv", datetime(2026, 1, 1, tzinfo=UTC)) is False
    assert store.locale_of("nobody") is None


# -- notifications ----------------------------------------------------------------------------------
def test_every_notification_goes_out_in_the_recipients_language(
    engine: sa.Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """A Swedish-preferring student and assessor get every mail in Swedish (subject, body and
    Content-Language), the reason of an extension worded in Swedish too; a student without an
    account gets English."""
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    identity = build_identity(clock=clock, identity_key=IDENTITY_KEY, db_url=url, password_hasher=FAST_HASHER)
    identity.store.create_schema()
    student = student_account(identity, SID, email="alex.exempel@example.org")
    identity.accounts.set_locale(student.id, "sv")
    assessor = make_account(identity, "Sam Granskare", "sam.granskare@example.org", grants=[(Role.ASSESSOR, "SOC")])
    identity.accounts.set_locale(assessor.id, "sv")
    box = Outbox.from_url(url, SECRET, clock=clock)
    box.create_schema()
    with engine.begin() as conn:  # a second student, in the read model only (no account)
        row = conn.execute(sa.text("SELECT * FROM students WHERE student_id = :s"), {"s": SID}).mappings().one()
        conn.execute(sa.text("INSERT INTO students (" + ", ".join(row.keys()) + ") VALUES ("
                             + ", ".join(f":{k}" for k in row) + ")"),
                     {**row, "student_id": OTHER, "email": "olle.exempel@example.org", "name": "Olle Exempel"})

    recipients = notifications.ReadModelRecipients(box.engine)
    notes = notifications.build(recipients, notifications.outbox_enqueue(box), LINKS)
    own = [e for e in _own_events(SID) if e.type not in ("RevisionRequested", "ReportRejected")]
    own = [_event(e.position, e.type, {**e.data, "assessor_account_id": assessor.id}) if e.type == "AssessorAssigned"
           else e for e in own]
    other = [_event(100 + n, e.type, {**e.data, "student_id": OTHER}) for n, e in enumerate(_own_events(OTHER)[:1])]
    _runner(engine, notes.own, [*own, *other]).catch_up()
    intake = _intake_events(SID, "alex.exempel@example.org")
    _runner(engine, notes.intake, intake).catch_up()

    rows = box.rows(limit=100)
    by_subject: dict[str, set[str]] = {}
    for row in rows:
        by_subject.setdefault(str(row.subject_id), set()).add(row.locale)
    assert by_subject[SID] == {"sv"}
    assert by_subject[assessor.id] == {"sv"}
    assert by_subject[OTHER] == {"en"}
    templates = {r.template for r in rows if r.subject_id == SID}
    assert {"deadline_reminder", "deregistered", "deadline_extended", "reinstated", "report_approved",
            "presentation_booked", "activity_ruled", "registration_confirmed", "report_received"} <= templates
    extended = next(r for r in rows if r.template == "deadline_extended")
    assert extended.context is not None
    assert extended.context["reason"] == "Sjukdom."

    mailer = RecordingMailer()
    box.deliver_due(smtp_sender(mailer), limit=100)
    languages: dict[str, set[str]] = {}
    for message in mailer.sent:
        languages.setdefault(str(message["To"]), set()).add(str(message["Content-Language"]))
    assert languages["Alex Exempel <alex.exempel@example.org>"] == {"sv"}
    assert languages["Sam Granskare <sam.granskare@example.org>"] == {"sv"}
    assert languages["Olle Exempel <olle.exempel@example.org>"] == {"en"}
    subjects = {str(m["Subject"]) for m in mailer.sent if "alex" in str(m["To"])}
    assert "60 dagar kvar att lämna in din CIM-rapport" in subjects
    assigned = next(m for m in mailer.sent if "sam.granskare" in str(m["To"]))
    body = assigned.get_body(("plain",))
    assert body is not None
    assert str(assigned["Subject"]) == "En ny CIM-rapport att bedöma"
    assert body.get_content().startswith("Hej Sam Granskare!")


# -- the pages --------------------------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none", ratelimit_storage="memory://")


@pytest.fixture
def identity(clock: FixedClock) -> Identity:
    return make_identity(clock)


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def app(settings: Settings, clock: FixedClock, identity: Identity, mailer: RecordingMailer) -> Flask:
    return make_app(settings, InMemoryEventStore(), clock, identity, mailer)


def _signed_in(app: Flask, identity: Identity, **kwargs: Any) -> tuple[FlaskClient, Any]:
    account = student_account(identity, str(uuid.uuid4()), email=kwargs.get("email", "tova@example.org"))
    client = app.test_client()
    authkit_sign_in(client, identity, account)
    return client, account


def test_the_account_page_has_a_labelled_language_select_that_saves_the_choice(
    app: Flask, identity: Identity
) -> None:
    client = app.test_client()
    assert registered_student(client, InMemoryEventStore()).status_code == 303  # on English pages
    account = identity.store.find_account_by_email("astrid@example.com")
    assert account is not None
    assert identity.accounts.locale_of(account.id) == "en"  # the language then in use
    authkit_sign_in(client, identity, account)
    page = client.get("/auth/account")
    assert page.status_code == 200
    assert '<label for="locale">Language for CIM and its e-mail</label>' in page.text
    assert '<select class="input" id="locale" name="locale"' in page.text
    assert 'lang="sv"' in page.text
    assert "Svenska" in page.text
    assert "Saved: English." in page.text
    saved = client.post("/auth/language", data={"locale": "sv"})
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith("/auth/account")
    assert any(h.startswith("lang=sv;") for h in saved.headers.getlist("Set-Cookie"))
    assert identity.accounts.locale_of(account.id) == "sv"
    after = client.get("/auth/account")
    assert '<html lang="sv">' in after.text  # the pages follow (the cookie)
    assert "Ditt språk är sparat" in after.text  # said in the language just chosen
    assert '<option value="sv" lang="sv" selected>' in after.text
    # the right of access shows it, and leads to where it is changed
    mine = client.get(f"/students/{account.student_id}/my-data")
    assert mine.status_code == 200
    assert '<span lang="sv">Svenska</span>' in mine.text
    assert "/auth/account#language" in mine.text
    export = client.get(f"/students/{account.student_id}/my-data.json")
    assert export.json is not None
    assert export.json["account"]["language"] == "sv"


@pytest.mark.parametrize("value", ["de", "", "sv\r\nX-Evil: 1"])
def test_a_language_cim_does_not_speak_is_refused_beside_the_field_and_nothing_stored(
    app: Flask, identity: Identity, value: str
) -> None:
    client, account = _signed_in(app, identity)
    identity.accounts.set_locale(account.id, "en")
    answer = client.post("/auth/language", data={"locale": value})
    assert answer.status_code == 422
    assert 'id="locale-error"' in answer.text
    assert "Choose English or Svenska." in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert identity.accounts.locale_of(account.id) == "en"


def test_the_language_form_needs_a_signed_in_person(app: Flask) -> None:
    answer = app.test_client().post("/auth/language", data={"locale": "sv"})
    assert answer.status_code in (302, 303, 401)


def test_switching_the_pages_language_while_signed_in_chooses_the_mails_language(
    app: Flask, identity: Identity
) -> None:
    client, account = _signed_in(app, identity)
    assert client.get("/my-cim?lang=sv").status_code in (200, 303)
    assert identity.accounts.locale_of(account.id) == "sv"
    assert client.get("/?lang=en").status_code == 200
    assert identity.accounts.locale_of(account.id) == "en"
    assert client.get("/?lang=xx").status_code == 200  # not a language: nothing changes
    assert identity.accounts.locale_of(account.id) == "en"
    anonymous = app.test_client()
    assert anonymous.get("/?lang=sv").status_code == 200  # nobody to remember it for: no error


def test_registering_on_swedish_pages_makes_swedish_the_students_language(
    app: Flask, identity: Identity, mailer: RecordingMailer
) -> None:
    client = app.test_client()
    client.set_cookie("lang", "sv")
    answer = registered_student(client, InMemoryEventStore())
    assert answer.status_code == 303
    account = identity.store.find_account_by_email("astrid@example.com")
    assert account is not None
    assert identity.accounts.locale_of(account.id) == "sv"
    (link_mail,) = mailer.sent
    assert link_mail["Content-Language"] == "sv"


def test_a_sign_in_link_is_written_in_the_persons_language_not_the_pages(
    app: Flask, identity: Identity, mailer: RecordingMailer
) -> None:
    """Swedish pages: the Swedish-preferring student's link is Swedish, the English-preferring
    one's English; a student who never chose gets the language of the page they asked on."""
    swedish = student_account(identity, str(uuid.uuid4()), email="siv@example.org")
    identity.accounts.set_locale(swedish.id, "sv")
    english = student_account(identity, str(uuid.uuid4()), email="ellen@example.org")
    identity.accounts.set_locale(english.id, "en")
    student_account(identity, str(uuid.uuid4()), email="ulla@example.org")  # never chose
    on_swedish_pages = app.test_client()
    on_swedish_pages.set_cookie("lang", "sv")
    for email in ("siv@example.org", "ellen@example.org"):
        assert on_swedish_pages.post("/auth/link", data={"link-email": email}).status_code == 303
    assert app.test_client().post("/auth/link", data={"link-email": "ulla@example.org"}).status_code == 303
    languages = {str(m["To"]).split("<")[-1].rstrip(">"): str(m["Content-Language"]) for m in mailer.sent}
    assert languages == {"siv@example.org": "sv", "ellen@example.org": "en", "ulla@example.org": "en"}
    swedish_mail = next(m for m in mailer.sent if "siv@" in str(m["To"]))
    assert str(swedish_mail["Subject"]) == "Din inloggningslänk till CIM"


def test_staff_choose_their_language_on_the_assessment_service_too(tmp_path: Path, clock: FixedClock) -> None:
    """An assessor who switches the assessment pages to Swedish gets Swedish mail; one who never
    chose has none stored (English); an API token's request stores nothing."""
    from tests.unit.test_assessment_access import build_world

    world = build_world(Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://"),
                        clock)
    assessor = world.accounts["assigned"]
    assert world.identity.accounts.locale_of(assessor.id) is None
    browser = world.browser("assigned")
    assert browser.get("/auth/account?lang=sv").status_code == 200
    assert world.identity.accounts.locale_of(assessor.id) == "sv"
    saved = browser.post("/auth/language", data={"locale": "en"})
    assert saved.status_code == 303
    assert world.identity.accounts.locale_of(assessor.id) == "en"
    coordinator = world.accounts["coordinator"]
    world.token("coordinator").get("/auth/account?lang=sv")
    assert world.identity.accounts.locale_of(coordinator.id) is None


def test_pages_follow_the_signed_in_person_s_saved_language_on_both_services(tmp_path: Path) -> None:
    """Issue 17: staff who chose Swedish read Swedish on the assessment service too, in any
    browser, without a `lang` cookie; `?lang=` and the cookie still win."""
    from assessment_service import create_app as create_assessment_app
    from shared.adapters.feed import StoreEventFeed
    from shared.adapters.memory_store import InMemoryEventStore
    from shared.clock import FixedClock
    from shared.config import Settings
    from shared.identity.models import Role
    from tests.authkit import make_account, make_identity, sign_in
    from tests.conftest import CLOCK_START

    clock = FixedClock(CLOCK_START)
    identity = make_identity(clock)
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    app = create_assessment_app(settings, feed=StoreEventFeed(InMemoryEventStore(clock)), clock=clock,
                                identity=identity)
    account = make_account(identity, "Sam Granskare", "sam@example.org", grants=[(Role.ASSESSOR, "SOCSW")])
    client = app.test_client()
    sign_in(client, identity, account)
    headers = {"Accept-Language": "en"}
    assert 'lang="en"' in client.get("/queue", headers=headers).text
    identity.accounts.set_locale(account.id, "sv")
    assert 'lang="sv"' in client.get("/queue", headers=headers).text
    assert 'lang="en"' in client.get("/queue?lang=en", headers=headers).text
