"""The outbox with real processes: a `celery beat` and `celery worker` (the pipeline fixture),
Redis, and the SMTP sink of scripts/test.sh. Mails enqueued in the identity database arrive once
each, with the key's Message-ID, also when the worker is SIGKILLed while delivering."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.clock import SystemClock
from shared.mail_templates import TEMPLATES
from shared.outbox import SENT, Message, Outbox
from tests.authkit import IDENTITY_KEY
from tests.e2e.conftest import Pipeline
from tests.e2e.test_sign_in_e2e import SmtpSink
from tests.integration.test_outbox_smtp import received

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_the_workers_deliver_each_mail_once_even_when_killed(pipeline: Pipeline) -> None:
    port, directory = os.environ.get("CIM_TEST_SMTP_PORT"), os.environ.get("CIM_TEST_SMTP_DIR")
    if not (port and directory):
        pytest.skip("CIM_TEST_SMTP_PORT/CIM_TEST_SMTP_DIR are needed (scripts/test.sh sets them)")
    sink = SmtpSink(int(port), Path(directory))
    box = Outbox.from_url(pipeline.env["CIM_IDENTITY_DB_URL"], IDENTITY_KEY, clock=SystemClock())
    box.create_schema()
    domain = f"e2e-{os.getpid()}-{int(time.time())}.example"
    for n in range(25):
        box.enqueue(Message(key=f"event:{domain}:{n}", template="report_approved", locale="sv",
                            to_address=f"s{n}@{domain}", context=dict(TEMPLATES["report_approved"].sample)))
    deadline = time.monotonic() + 30
    while not received(sink, domain) and time.monotonic() < deadline:
        time.sleep(0.05)
    pipeline.kill_pool_child()  # mid-delivery, if it is still going
    deadline = time.monotonic() + 420  # a claimed batch waits out its 5-minute lease
    while time.monotonic() < deadline and {r.status for r in box.rows()} != {SENT}:
        time.sleep(0.5)
    assert {r.status for r in box.rows()} == {SENT}
    time.sleep(0.5)
    got = received(sink, domain)
    per_recipient = Counter(to for to, _mid in got)
    assert len(per_recipient) == 25
    assert sum(per_recipient.values()) - 25 <= 1  # at most the one in flight at the kill
    assert len({mid for _to, mid in got}) == 25
