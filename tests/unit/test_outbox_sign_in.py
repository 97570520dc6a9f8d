"""Sign-in links through the outbox: the request enqueues (keyed by the link) and the answer takes
the same time whether or not the address is known; with workers (CIM_WAKEUP=celery) the web
process sends nothing itself, it queues the delivery task."""

from __future__ import annotations

import time
from pathlib import Path
from statistics import median

import pytest

from shared import task_names
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.wiring import Identity
from shared.mail import RecordingMailer
from shared.outbox import PENDING, SENT
from tests.authkit import make_identity
from tests.unit.test_auth_pages import make_app, student


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def identity(clock: FixedClock) -> Identity:
    return make_identity(clock)


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


def test_a_link_request_takes_as_long_for_a_known_address_as_for_an_unknown_one(
    tmp_path: Path, store: InMemoryEventStore, clock: FixedClock, identity: Identity, mailer: RecordingMailer
) -> None:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://", ratelimit_signin="1000 per minute")
    app = make_app(settings, store, clock, identity, mailer)
    student(identity)
    client = app.test_client()

    def timed(email: str) -> float:
        started = time.perf_counter()
        assert client.post("/auth/link", data={"link-email": email}).status_code == 303
        return time.perf_counter() - started

    timed("tova@example.org")  # warm up: the outbox table is made on first use
    known = [timed("tova@example.org") for _ in range(7)]
    unknown = [timed(f"nobody{n}@example.org") for n in range(7)]
    assert min(known + unknown) >= 0.1
    assert abs(median(known) - median(unknown)) < 0.02, (median(known), median(unknown))
    outbox = app.extensions["cim.outbox"]
    rows = outbox.rows()
    assert len(rows) == 8  # one row per link, each sent
    assert {r.status for r in rows} == {SENT}
    assert all(r.key.startswith("sign-in:") and r.context is None for r in rows)
    assert len(mailer.sent) == 8


class FakeKick:
    def __init__(self) -> None:
        self.kicks = 0

    def after_commit(self, correlation_id: str | None = None) -> None:
        self.kicks += 1


def test_with_workers_the_web_process_enqueues_and_kicks_but_sends_nothing(
    tmp_path: Path, store: InMemoryEventStore, clock: FixedClock, identity: Identity, mailer: RecordingMailer
) -> None:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="celery",
                        ratelimit_storage="memory://")
    from intake_service import create_app

    app = create_app(settings, store=store, clock=clock, identity=identity)
    app.config["WTF_CSRF_ENABLED"] = False
    app.config["CIM_LINK_REQUEST_MIN_SECONDS"] = 0
    app.extensions["cim.mailer"] = mailer
    kick = FakeKick()
    app.extensions["cim.outbox_kick"] = kick
    student(identity)
    assert app.test_client().post("/auth/link", data={"link-email": "tova@example.org"}).status_code == 303
    assert mailer.sent == []  # the workers send
    assert kick.kicks == 1
    [row] = app.extensions["cim.outbox"].rows()
    assert (row.template, row.status, row.to_address) == ("sign_in_link", PENDING, "tova@example.org")
    assert "/auth/link/" in row.context["url"]
    assert row.subject_id is not None
    assert task_names.DELIVER_OUTBOX == "cim.mail.deliver_outbox"
