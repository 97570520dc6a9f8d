"""The outbox's staff pages on the assessment service: `/outbox` (administrators every mail,
coordinators their departments', with the error, the next attempt and "retry now"), and
`/mail-templates` (every template with sample data, English and Swedish, text and HTML)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.adapters.wakeup import RecordingWakeUp
from shared.clock import FixedClock
from shared.config import Settings
from shared.mail import MailError
from shared.mail_templates import TEMPLATES
from shared.outbox import BACKOFF, FAILED, PENDING, Message, Outbox, Row
from tests.unit.test_assessment_access import World, build_world


@pytest.fixture
def world(tmp_path: Path, clock: FixedClock) -> World:
    return build_world(Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://"),
                       clock)


@pytest.fixture
def box(world: World, tmp_path: Path, clock: FixedClock) -> Outbox:
    made = Outbox.from_url(f"sqlite:///{tmp_path / 'outbox.db'}", "mail-pages-secret-0123456789abcdef", clock=clock)
    made.create_schema()
    world.app.extensions["cim.outbox"] = made
    world.app.extensions["cim.outbox_kick"] = RecordingWakeUp()
    return made


def fail_everything(row: Row) -> str:
    error = MailError("The e-mail could not be sent. Try again in a moment.")
    error.reason = "ConnectionRefusedError"
    raise error


def failed_mail(box: Outbox, clock: FixedClock, key: str, department: str | None, email: str) -> int:
    box.enqueue(Message(key=key, template="report_approved", to_address=email, to_name="Alex Exempel",
                        context=dict(TEMPLATES["report_approved"].sample), department=department))
    for wait in (*BACKOFF, BACKOFF[-1]):
        box.deliver_due(fail_everything)
        clock.advance(wait)
    row = box.by_key(key)
    assert row is not None
    assert row.status == FAILED
    return row.id


def test_the_outbox_shows_failures_with_their_error_and_retries_them(world: World, box: Outbox,
                                                                     clock: FixedClock) -> None:
    row_id = failed_mail(box, clock, "event:socsw", "SOCSW", "alva.socsw@example.org")
    page = world.browser("administrator").get("/outbox")
    assert page.status_code == 200
    assert "ConnectionRefusedError" in page.text
    assert "a…@example.org" in page.text
    assert "alva.socsw@example.org" not in page.text  # masked: not a list of students' addresses
    assert "Retry now" in page.text
    answer = world.browser("administrator").post(f"/outbox/{row_id}/retry")
    assert answer.status_code == 303
    row = box.get(row_id)
    assert row is not None
    assert (row.status, row.attempts) == (PENDING, 0)
    assert world.app.extensions["cim.outbox_kick"].sent  # the delivery was kicked
    again = world.browser("administrator").post(f"/outbox/{row_id}/retry")  # no longer failed: says so
    assert again.status_code == 303


def test_a_coordinator_sees_and_retries_only_their_departments_mails(world: World, box: Outbox,
                                                                     clock: FixedClock) -> None:
    mine = failed_mail(box, clock, "event:socsw", "SOCSW", "socsw@example.org")
    theirs = failed_mail(box, clock, "event:med", "MED", "med@example.org")
    box.enqueue(Message(key="sign-in:x", template="sign_in_link", to_address="link@example.org",
                        context=dict(TEMPLATES["sign_in_link"].sample)))
    page = world.browser("coordinator").get("/outbox")
    assert page.status_code == 200
    assert "s…@example.org" in page.text
    assert "m…@example.org" not in page.text
    assert "l…@example.org" not in page.text  # sign-in links: administrators only
    assert world.browser("coordinator").post(f"/outbox/{theirs}/retry").status_code == 404
    assert world.browser("coordinator").post("/outbox/999999/retry").status_code == 404
    assert box.get(theirs).status == FAILED  # type: ignore[union-attr]
    assert world.browser("coordinator").post(f"/outbox/{mine}/retry").status_code == 303
    assert box.get(mine).status == PENDING  # type: ignore[union-attr]


@pytest.mark.parametrize(("who", "status"), [("assigned", 403), ("student_A", 403), (None, 303)])
def test_others_do_not_see_the_outbox(world: World, box: Outbox, who: str | None, status: int) -> None:
    assert world.browser(who).get("/outbox").status_code == status


def test_the_template_previews_show_every_template_in_both_languages(world: World) -> None:
    page = world.browser("assigned").get("/mail-templates")
    assert page.status_code == 200
    for name in TEMPLATES:
        assert f'id="{name}"' in page.text
    assert "Your CIM report is approved" in page.text
    assert "Din CIM-rapport är godkänd" in page.text
    assert "presentation.ics" in page.text
    html = world.browser("assigned").get("/mail-templates/revision_requested/sv.html")
    assert html.status_code == 200
    assert '<html lang="sv">' in html.text
    assert "sandbox" in html.headers["Content-Security-Policy"]
    assert world.browser("assigned").get("/mail-templates/nope/sv.html").status_code == 404
    assert world.browser("assigned").get("/mail-templates/sign_in_link/de.html").status_code == 404
    assert world.browser("student_A").get("/mail-templates").status_code == 403
    swedish = world.browser("assigned").get("/mail-templates?lang=sv")
    assert "E-postmallar" in swedish.text


def test_every_template_has_its_purpose_in_words() -> None:
    from assessment_service.web.mail_pages import PURPOSES

    assert set(PURPOSES) == set(TEMPLATES)


def test_a_mail_the_server_refused_for_good_shows_failed_at_once_with_the_servers_answer(
    world: World, box: Outbox
) -> None:
    """A 5xx reply (shared.mail.classify) fails the row after one attempt; /outbox shows the
    reply code and the server's words, the address in them masked."""
    import smtplib

    from shared.mail import classify

    def refuse(row: Row) -> str:
        error = MailError("The e-mail could not be sent. Try again in a moment.")
        error.permanent, error.reason = classify(smtplib.SMTPRecipientsRefused(
            {row.to_address: (550, f"5.1.1 <{row.to_address}>: Recipient address rejected: User unknown".encode())}))
        raise error

    box.enqueue(Message(key="event:refused", template="report_approved", to_address="vera.gone@example.org",
                        to_name="Vera Exempel", context=dict(TEMPLATES["report_approved"].sample), department="SOCSW"))
    assert box.deliver_due(refuse).failed == 1
    row = box.by_key("event:refused")
    assert row is not None
    assert (row.status, row.attempts) == (FAILED, 1)
    page = world.browser("administrator").get("/outbox")
    assert "SMTPRecipientsRefused (SMTP 550)" in page.text
    assert "Recipient address rejected: User unknown" in page.text
    assert "vera.gone@example.org" not in page.text
    assert "Retry now" in page.text


def test_a_clock_guard_hold_shows_on_the_outbox_and_the_accounts_page_until_confirmed(
    world: World, box: Outbox, clock: FixedClock
) -> None:
    from datetime import date

    from shared.clock_guard import SWEEP_DEADLINES, ClockGuard

    assert "Scheduled work is paused" not in world.browser("administrator").get("/outbox").text
    guard = ClockGuard(box.engine, clock=clock)
    guard.create_schema()
    guard.record(SWEEP_DEADLINES, date(2027, 3, 1))
    assert not guard.admit(SWEEP_DEADLINES, date(2027, 4, 10)).admitted
    for who, path in (("administrator", "/outbox"), ("coordinator", "/outbox"), ("administrator", "/admin/accounts")):
        page = world.browser(who).get(path)
        assert page.status_code == 200
        assert "Scheduled work is paused: the date jumped ahead." in page.text, (who, path)
        assert "Today is 2027-04-10 but the scheduled work last ran on 2027-03-01" in page.text
        assert "<code>sweep-deadlines</code>" in page.text
        assert "clock confirm --operator" in page.text
    guard.confirm("ops")
    assert "Scheduled work is paused" not in world.browser("administrator").get("/outbox").text
