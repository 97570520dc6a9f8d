"""The outbox against a real SMTP server (the aiosmtpd sink scripts/test.sh starts,
CIM_TEST_SMTP_PORT/CIM_TEST_SMTP_DIR; else one started here): two delivery runs at once send each
mail once; a delivery process killed mid-run loses nothing; and the one window where a mail goes out
twice (after the server's 250, before `sent` is committed) sends the same Message-ID again."""

from __future__ import annotations

import mailbox
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_binary_file
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from shared.clock import FixedClock, SystemClock
from shared.mail import Mailer
from shared.mail_templates import TEMPLATES
from shared.outbox import SENDING, SENT, Message, Outbox, Row, smtp_sender
from tests.e2e.test_sign_in_e2e import SmtpSink

SECRET = "outbox-smtp-test-secret-0123456789abcdef"


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
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
    controller = Controller(Mailbox(tmp_path / "maildir"), hostname="127.0.0.1", port=free)
    controller.start()
    try:
        yield SmtpSink(free, tmp_path / "maildir")
    finally:
        controller.stop()


def received(sink: SmtpSink, domain: str) -> list[tuple[str, str]]:
    """(To, Message-ID) of every mail in the sink to `domain` (each test has its own domain)."""
    found = []
    box = mailbox.Maildir(str(sink.maildir), factory=None, create=False)
    for key in box.iterkeys():
        with box.get_file(key) as handle:
            message = message_from_binary_file(handle, policy=default_policy)  # type: ignore[call-overload]
        if str(message.get("To", "")).endswith(f"@{domain}>") or str(message.get("To", "")).endswith(f"@{domain}"):
            found.append((str(message["To"]), str(message["Message-ID"])))
    return found


def fill(box: Outbox, domain: str, count: int) -> None:
    for n in range(count):
        assert box.enqueue(Message(key=f"event:{domain}:{n}", template="report_received", locale="en",
                                   to_address=f"student{n}@{domain}", to_name=f"Student {n}",
                                   context=dict(TEMPLATES["report_received"].sample), subject_id=f"s-{n}"))


def wait_for(sink: SmtpSink, domain: str, count: int, timeout: float = 15.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = received(sink, domain)
        if len(got) >= count:
            time.sleep(0.3)  # anything more would arrive now
            return received(sink, domain)
        time.sleep(0.05)
    raise AssertionError(f"only {len(received(sink, domain))} of {count} mails arrived")


def test_two_delivery_runs_at_once_send_each_mail_once(tmp_path: Path, sink: SmtpSink) -> None:
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    first = Outbox.from_url(url, SECRET, clock=SystemClock())
    first.create_schema()
    second = Outbox.from_url(url, SECRET, clock=SystemClock())  # a second worker: its own engine
    domain = "two-runs.example"
    fill(first, domain, 30)
    mailer = Mailer("127.0.0.1", sink.port, "CIM <cim@example.org>", timeout=5)
    runs = [threading.Thread(target=lambda b=b: [b.deliver_due(smtp_sender(mailer), limit=4) for _ in range(20)])
            for b in (first, second)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    got = wait_for(sink, domain, 30)
    assert len(got) == 30
    assert len({mid for _to, mid in got}) == 30
    assert {r.status for r in first.rows()} == {SENT}


def test_a_crash_between_the_servers_250_and_the_commit_sends_the_same_message_id_again(
    tmp_path: Path, sink: SmtpSink
) -> None:
    """The one window (docs/mail.md): the server has the mail, the row is still `sending`."""
    clock = FixedClock(SystemClock().now())
    box = Outbox.from_url(f"sqlite:///{tmp_path / 'identity.db'}", SECRET, clock=clock)
    box.create_schema()
    domain = "crash-window.example"
    fill(box, domain, 1)
    real = smtp_sender(Mailer("127.0.0.1", sink.port, "CIM <cim@example.org>", timeout=5))

    class Crash(BaseException):
        """The process dies here (SIGKILL, power): nothing after this line runs."""

    def send_then_crash(row: Row) -> str:
        real(row)  # the server answered 250 ...
        raise Crash  # ... and the worker died before `sent` was committed

    with pytest.raises(Crash):
        box.deliver_due(send_then_crash)
    [row] = box.rows()
    assert row.status == SENDING
    assert box.deliver_due(real).sent == 0  # the dead claimer's lease still holds it
    clock.advance(timedelta(minutes=5, seconds=1))  # the lease runs out
    assert box.deliver_due(real).sent == 1
    got = wait_for(sink, domain, 2)
    assert len(got) == 2  # sent twice: the window is real ...
    assert len({mid for _to, mid in got}) == 1  # ... and the duplicate carries the same Message-ID
    assert box.rows()[0].message_id == got[0][1]


def _deliver_then_hang(url: str, port: int, sent_five: Any) -> None:
    """A delivery process that sends five mails, then hangs on the sixth until the test kills it."""
    box = Outbox.from_url(url, SECRET, clock=SystemClock())
    send = smtp_sender(Mailer("127.0.0.1", port, "CIM <cim@example.org>", timeout=5))
    sent = 0

    def hang_on_the_sixth(row: Row) -> str:
        nonlocal sent
        if sent == 5:
            sent_five.set()
            time.sleep(120)  # killed here: the sixth and the rest are claimed by a dead process
        sent += 1
        return send(row)

    box.deliver_due(hang_on_the_sixth, limit=100, lease=timedelta(seconds=2))


def test_a_delivery_process_killed_mid_run_loses_nothing(tmp_path: Path, sink: SmtpSink) -> None:
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    box = Outbox.from_url(url, SECRET, clock=SystemClock())
    box.create_schema()
    domain = "killed.example"
    fill(box, domain, 20)
    context = multiprocessing.get_context("fork")
    sent_five = context.Event()
    child = context.Process(target=_deliver_then_hang, args=(url, sink.port, sent_five))
    child.start()
    assert sent_five.wait(timeout=60)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)  # mid-run: five sent, the rest claimed by a dead process
    child.join()
    assert len(wait_for(sink, domain, 5)) == 5
    assert {r.status for r in box.rows()} >= {SENDING}
    time.sleep(2.1)  # its lease runs out
    box.deliver_due(smtp_sender(Mailer("127.0.0.1", sink.port, "CIM <cim@example.org>", timeout=5)))
    got = wait_for(sink, domain, 20)
    per_recipient = Counter(to for to, _mid in got)
    assert len(per_recipient) == 20  # nothing lost
    # At most the one mail in flight at the kill went twice, with its Message-ID unchanged.
    assert sum(per_recipient.values()) - 20 <= 1
    assert len({mid for _to, mid in got}) == 20
    assert {r.status for r in box.rows()} == {SENT}


@pytest.mark.postgres
def test_two_delivery_runs_on_postgresql_skip_each_others_rows(pg_url: str, sink: SmtpSink) -> None:
    """FOR UPDATE SKIP LOCKED: two workers' runs on one PostgreSQL database send each mail once."""
    first = Outbox.from_url(pg_url, SECRET, clock=SystemClock())
    first.create_schema()
    second = Outbox.from_url(pg_url, SECRET, clock=SystemClock())
    domain = "two-runs-pg.example"
    fill(first, domain, 30)
    assert first.enqueue(Message(key=f"event:{domain}:0", template="report_received", to_address=f"x@{domain}",
                                 context=dict(TEMPLATES["report_received"].sample))) is False
    mailer = Mailer("127.0.0.1", sink.port, "CIM <cim@example.org>", timeout=5)
    runs = [threading.Thread(target=lambda b=b: [b.deliver_due(smtp_sender(mailer), limit=4) for _ in range(20)])
            for b in (first, second)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    got = wait_for(sink, domain, 30)
    assert len(got) == 30
    assert len({mid for _to, mid in got}) == 30
    assert {r.status for r in first.rows()} == {SENT}
