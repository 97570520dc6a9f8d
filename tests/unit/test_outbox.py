"""The outbox (shared/outbox.py) and the mail templates (shared/mail_templates.py): one row per
cause, backoff by the injected clock, failures visible, leases that survive a dead worker, the
personal data scrubbed, every template rendered in English and Swedish."""

from __future__ import annotations

import threading
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.clock import FixedClock
from shared.mail import MailError, RecordingMailer, message_id
from shared.mail_templates import TEMPLATES, UnknownTemplate, render
from shared.outbox import (
    BACKOFF,
    CANCELLED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    DeliveryRefused,
    Message,
    Outbox,
    Row,
    outbox,
    smtp_sender,
)

SECRET = "outbox-test-secret-0123456789abcdef"


@pytest.fixture
def box(tmp_path: Path, clock: FixedClock) -> Outbox:
    made = Outbox.from_url(f"sqlite:///{tmp_path / 'identity.db'}", SECRET, clock=clock)
    made.create_schema()
    return made


def message(key: str = "event:e-1", **changes: object) -> Message:
    values: dict[str, object] = {
        "key": key, "template": "report_approved", "to_address": "alex@example.org", "to_name": "Alex Exempel",
        "locale": "sv", "context": dict(TEMPLATES["report_approved"].sample), "subject_id": "s-1",
    }
    values.update(changes)
    return Message(**values)  # type: ignore[arg-type]


class FlakySender:
    """Fails the first `failures` sends with MailError, then records."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, row: Row) -> str:
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                error = MailError("The e-mail could not be sent. Try again in a moment.")
                error.reason = "SMTPServerDisconnected"
                raise error
            self.sent.append(row.key)
        return message_id(row.key, "example.org")


# -- enqueue ----------------------------------------------------------------------------------------
def test_a_key_enqueues_once(box: Outbox) -> None:
    assert box.enqueue(message()) is True
    assert box.enqueue(message()) is False  # a retried cause
    assert box.enqueue(message(to_address="other@example.org")) is False  # the key decides, not the content
    assert len(box.rows()) == 1
    assert box.enqueue(message("event:e-1:offset:14")) is True
    assert len(box.rows()) == 2


def test_enqueue_in_the_callers_transaction_rolls_back_with_it(box: Outbox) -> None:
    def failing_use_case() -> None:
        with box.engine.begin() as conn:
            assert box.enqueue(message(), conn=conn) is True
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        failing_use_case()
    assert box.rows() == []


def test_unknown_template_and_bad_address_are_refused_at_enqueue(box: Outbox) -> None:
    with pytest.raises(ValueError, match="unknown mail template"):
        box.enqueue(message(template="no_such_thing"))
    with pytest.raises(ValueError, match="not a single e-mail address"):
        box.enqueue(message(to_address="a@example.org\r\nBcc: m@attacker.example"))
    assert box.rows() == []


def test_the_context_is_sealed_at_rest_and_scrubbed_once_sent(box: Outbox) -> None:
    box.enqueue(message(context={"name": "Canary Zebrafinch", "presentations_url": "https://x/y"}))
    with box.engine.connect() as conn:
        raw = conn.execute(sa.select(outbox.c.context)).scalar()
    assert raw is not None
    assert "Canary" not in raw
    assert box.rows()[0].context == {"name": "Canary Zebrafinch", "presentations_url": "https://x/y"}
    box.deliver_due(FlakySender())
    [row] = box.rows()
    assert row.status == SENT
    assert row.context is None
    with box.engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.context)).scalar() is None


# -- delivery, backoff, failure ---------------------------------------------------------------------
def test_a_sent_row_records_the_message_id_and_is_not_sent_again(box: Outbox) -> None:
    box.enqueue(message())
    sender = FlakySender()
    assert box.deliver_due(sender).sent == 1
    assert box.deliver_due(sender).sent == 0
    [row] = box.rows()
    assert row.status == SENT
    assert row.message_id == message_id("event:e-1", "example.org")
    assert sender.sent == ["event:e-1"]


def test_failures_back_off_by_the_schedule_then_fail_visibly(box: Outbox, clock: FixedClock) -> None:
    box.enqueue(message())
    sender = FlakySender(failures=len(BACKOFF) + 1)
    for attempt, wait in enumerate(BACKOFF, start=1):
        done = box.deliver_due(sender)
        assert done.retried == 1
        [row] = box.rows()
        assert (row.status, row.attempts) == (PENDING, attempt)
        assert row.next_attempt_at == clock.now() + wait
        assert row.last_error == "SMTPServerDisconnected"
        clock.advance(wait - timedelta(seconds=1))
        assert box.deliver_due(sender).retried == 0  # not due yet
        clock.advance(timedelta(seconds=1))
    assert box.deliver_due(sender).failed == 1
    [row] = box.rows()
    assert (row.status, row.attempts) == (FAILED, len(BACKOFF) + 1)
    assert row.last_error == "SMTPServerDisconnected"
    assert row.context is not None  # kept, so that it can be retried
    clock.advance(timedelta(days=30))
    assert box.deliver_due(sender).sent == 0  # a failed row waits for a person
    assert box.rows(statuses=[FAILED])[0].id == row.id
    assert box.retry_now(row.id) is True
    assert box.retry_now(row.id) is False  # no longer failed
    assert box.deliver_due(sender).sent == 1
    assert box.rows()[0].status == SENT


def test_a_refused_row_fails_at_once(box: Outbox) -> None:
    box.enqueue(message())

    def refuse(row: Row) -> str:
        raise DeliveryRefused("ValueError: not a single e-mail address")

    assert box.deliver_due(refuse).failed == 1
    [row] = box.rows()
    assert (row.status, row.attempts) == (FAILED, 1)
    assert "not a single" in (row.last_error or "")


def test_a_dead_workers_rows_are_claimed_again_after_the_lease(box: Outbox, clock: FixedClock) -> None:
    box.enqueue(message())
    _token, claimed = box.claim()  # ... and the worker dies here
    assert [r.status for r in claimed] == [SENDING]
    sender = FlakySender()
    assert box.deliver_due(sender).sent == 0  # held by the dead claimer
    clock.advance(timedelta(minutes=5, seconds=1))
    assert box.deliver_due(sender).sent == 1
    assert box.rows()[0].status == SENT


def test_a_late_claimer_cannot_overwrite_the_new_claimers_outcome(box: Outbox, clock: FixedClock) -> None:
    box.enqueue(message())
    old_token, _ = box.claim(lease=timedelta(seconds=10))
    clock.advance(timedelta(seconds=11))
    new_token, [row] = box.claim()
    assert box.mark_sent(row.id, old_token, "<x@example.org>") is False
    assert box.mark_sent(row.id, new_token, "<x@example.org>") is True


def test_an_expired_sign_in_link_is_dropped_not_sent(box: Outbox, clock: FixedClock) -> None:
    box.enqueue(message("sign-in:abc", template="sign_in_link", context=dict(TEMPLATES["sign_in_link"].sample),
                        not_after=clock.now() + timedelta(minutes=15)))
    clock.advance(timedelta(minutes=16))
    sender = FlakySender()
    assert box.deliver_due(sender).dropped == 1
    assert sender.sent == []
    [row] = box.rows()
    assert row.status == CANCELLED
    assert row.context is None


def test_two_runs_at_once_send_each_row_once(box: Outbox) -> None:
    for n in range(40):
        box.enqueue(message(f"event:e-{n}"))
    sender = FlakySender()
    runs = [threading.Thread(target=lambda: [box.deliver_due(sender, limit=3) for _ in range(30)]) for _ in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert sorted(sender.sent) == sorted(f"event:e-{n}" for n in range(40))
    assert {r.status for r in box.rows()} == {SENT}


def test_erasure_blanks_the_subjects_rows_and_cancels_what_was_not_sent(box: Outbox) -> None:
    box.enqueue(message("event:sent"))
    box.deliver_due(FlakySender())
    box.enqueue(message("event:pending"))
    box.enqueue(message("event:other", subject_id="s-2"))
    assert box.erase_subject(["s-1", "a-1"]) == 2
    rows = {r.key: r for r in box.rows()}
    assert rows["event:sent"].status == SENT
    assert rows["event:pending"].status == CANCELLED
    for key in ("event:sent", "event:pending"):
        assert (rows[key].to_address, rows[key].to_name, rows[key].context) == (None, None, None)
    assert rows["event:other"].to_address == "alex@example.org"
    assert box.deliver_due(FlakySender()).sent == 1  # only the other subject's mail


def test_the_smtp_sender_renders_builds_and_sends_with_the_keys_message_id(box: Outbox) -> None:
    mailer = RecordingMailer()
    box.enqueue(message("event:booked", template="presentation_booked",
                        context=dict(TEMPLATES["presentation_booked"].sample)))
    assert box.deliver_due(smtp_sender(mailer)).sent == 1
    [sent] = mailer.sent
    assert sent["Message-ID"] == message_id("event:booked", "example.org")
    assert sent["Subject"] == "Din CIM-presentation är bokad"
    assert box.rows()[0].message_id == sent["Message-ID"]
    parsed = message_from_bytes(sent.as_bytes(), policy=default_policy)
    [ics] = [part for part in parsed.iter_attachments() if part.get_content_type() == "text/calendar"]
    import icalendar

    calendar = icalendar.Calendar.from_ical(ics.get_content())
    [event] = calendar.walk("VEVENT")
    assert event.decoded("dtstart").isoformat() == "2027-02-10T13:15:00+01:00"
    assert str(event["location"]) == "Room G:323, Gamla kirurgen"


# -- templates --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TEMPLATES))
@pytest.mark.parametrize("locale", ["en", "sv"])
def test_every_template_renders_its_sample(name: str, locale: str) -> None:
    rendered = render(name, locale, TEMPLATES[name].sample)
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert "{{" not in rendered.text
    assert "{{" not in rendered.html
    assert f'<html lang="{locale}">' in rendered.html
    assert any(name in rendered.text for name in ("Alex Exempel", "Sam Granskare", "Kim Koordinator"))


def test_the_languages_differ() -> None:
    sample = TEMPLATES["deadline_reminder"].sample
    en, sv = render("deadline_reminder", "en", sample), render("deadline_reminder", "sv", sample)
    assert en.subject == "14 days left to submit your CIM report"
    assert sv.subject == "14 dagar kvar att lämna in din CIM-rapport"
    assert "30 June 2027" in en.text
    assert "30 juni 2027" in sv.text
    assert render("deadline_reminder", "de", sample).subject == en.subject  # unknown locale: English


def test_html_is_autoescaped_and_text_is_not() -> None:
    context = {**TEMPLATES["revision_requested"].sample, "name": "<b>Ann</b> & Co",
               "summary": '<script>alert("x")</script>'}
    rendered = render("revision_requested", "en", context)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; Co" in rendered.html
    assert "<b>Ann</b> & Co" in rendered.text  # plain text is not HTML


def test_an_unknown_template_is_refused() -> None:
    with pytest.raises(UnknownTemplate):
        render("../../etc/passwd", "en", {})
    with pytest.raises(UnknownTemplate):
        render("no_such_template", "en", {})


def test_a_missing_context_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(Exception, match="my_cim_url"):
        render("report_received", "en", {"name": "Alex", "round": 1})


def test_erasing_a_student_and_account_blanks_their_outbox_rows(tmp_path: Path, clock: FixedClock) -> None:
    from types import SimpleNamespace

    from intake_service.services import RequestContext, erase_student_and_account
    from shared.identity.wiring import build_identity
    from tests.authkit import FAST_HASHER, IDENTITY_KEY, make_account

    ERASED = "7d3c1f2a-5b6e-4c8d-9a0b-1c2d3e4f5a6b"
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    identity = build_identity(clock=clock, identity_key=IDENTITY_KEY, db_url=url, password_hasher=FAST_HASHER)
    identity.store.create_schema()
    account = make_account(identity, "Canary Zebrafinch", "canary@example.org", student_id=ERASED)
    box = Outbox.from_url(url, SECRET, clock=clock)
    box.create_schema()
    box.enqueue(message("sign-in:1", template="sign_in_link", to_address="canary@example.org",
                        context=dict(TEMPLATES["sign_in_link"].sample), subject_id=account.id))
    box.enqueue(message("event:2", to_address="canary@example.org", subject_id=ERASED))
    box.enqueue(message("event:3", to_address="someone@example.org", subject_id="s-kept"))
    intake = SimpleNamespace(erase_student=lambda *args: None)  # the intake side has its own tests
    erase_student_and_account(intake, identity, ERASED, "student request",  # type: ignore[arg-type]
                              RequestContext(actor="operator:test", correlation_id="c-erase"))
    rows = {r.key: r for r in box.rows()}
    assert {rows[k].status for k in ("sign-in:1", "event:2")} == {CANCELLED}
    assert all(rows[k].to_address is None and rows[k].context is None for k in ("sign-in:1", "event:2"))
    assert rows["event:3"].to_address == "someone@example.org"
    assert b"canary@example.org" not in (tmp_path / "identity.db").read_bytes()


def test_an_unforeseen_error_counts_as_a_failed_attempt_and_the_run_goes_on(box: Outbox) -> None:
    box.enqueue(message("event:a"))
    box.enqueue(message("event:b"))
    calls: list[str] = []

    def broken_then_fine(row: Row) -> str:
        calls.append(row.key)
        if row.key == "event:a":
            raise RuntimeError("a bug")
        return "<b@example.org>"

    done = box.deliver_due(broken_then_fine)
    assert (done.retried, done.sent) == (1, 1)
    row = box.by_key("event:a")
    assert row is not None
    assert (row.status, row.attempts, row.last_error) == (PENDING, 1, "RuntimeError")
