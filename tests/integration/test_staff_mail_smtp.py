"""The staff mails through the real outbox and a real SMTP server (the aiosmtpd sink of
tests/integration/test_outbox_smtp.py): the overdue reminder and the weekly digest, each task run
twice (two beats) and delivered twice, arrive once each, rendered, with one Message-ID each."""

from __future__ import annotations

import mailbox
from datetime import timedelta
from email import message_from_binary_file
from email.message import EmailMessage
from email.policy import default as default_policy

import sqlalchemy as sa

from shared.catalogue import Catalogue
from shared.clock import FixedClock
from shared.identity.sql_store import accounts
from shared.mail import Mailer
from shared.outbox import SENT, Outbox, smtp_sender
from tests.e2e.test_sign_in_e2e import SmtpSink
from tests.integration.test_outbox_smtp import sink
from tests.unit.test_staff_mail import (
    ASSESSOR,
    COORDINATOR,
    R_LATE,
    _digest,
    _remind,
    catalogue,
    clock,
    identity,
    outbox,
    reader,
)

__all__ = ["catalogue", "clock", "identity", "outbox", "reader", "sink"]  # fixtures
DOMAIN = "staff-mail.example"


def _mails(sink: SmtpSink) -> list[EmailMessage]:
    found = []
    box = mailbox.Maildir(str(sink.maildir), factory=None, create=False)
    for key in box.iterkeys():
        with box.get_file(key) as handle:
            message = message_from_binary_file(handle, policy=default_policy)  # type: ignore[call-overload]
        if str(message.get("To", "")).rstrip(">").endswith(f"@{DOMAIN}"):
            found.append(message)
    return found


def test_the_overdue_reminder_and_the_digest_arrive_once_each(
    reader: sa.Engine, catalogue: Catalogue, clock: FixedClock, outbox: Outbox, identity: sa.Engine,
    sink: SmtpSink,
) -> None:
    with identity.begin() as conn:  # this test's own domain in a sink other tests share
        conn.execute(accounts.update().values(email=accounts.c.id + f"@{DOMAIN}"))
    mailer = Mailer("127.0.0.1", sink.port, "CIM <cim@example.org>", timeout=5)
    clock.advance(timedelta(days=3))  # Monday 18 January 2027: R_LATE three days overdue
    for _beat in range(2):
        _remind(reader, catalogue, clock, outbox)
        _digest(reader, catalogue, clock, outbox)
        outbox.deliver_due(smtp_sender(mailer))
    assert [r.status for r in outbox.rows()] == [SENT, SENT]
    # The 16th's milestone was missed (no run): today's run sends it, once.
    mails = _mails(sink)
    by_to = {str(m["To"]): m for m in mails}
    assert len(mails) == 2 == len({str(m["Message-ID"]) for m in mails})
    overdue = next(m for to, m in by_to.items() if ASSESSOR in to)
    digest = next(m for to, m in by_to.items() if COORDINATOR in to)
    assert str(overdue["Subject"]) == "A CIM review is overdue"
    text = overdue.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "15 January 2027" in text
    assert R_LATE in text
    assert str(digest["Subject"]) == "CIM this week (2027-W03): what waits for you"
    html = digest.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "/agenda" in html
    assert "Alex Exempel" not in html
