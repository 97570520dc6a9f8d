"""The kernel's application layer: commands run once per idempotency key, and a policy turns an
event into a command exactly once however often the runner replays the event."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from marshmallow import validate

from intake_service.events import REGISTRY as INTAKE_REGISTRY
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.application import Application, RequestContext, policy, policy_context
from shared.clock import FixedClock
from shared.errors import ConcurrencyConflict
from shared.events import EventRegistry, NewEvent, RecordedEvent, rules
from shared.projection import ProjectionRunner

T0 = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class WelcomeQueued:
    """A welcome was queued for a newly registered student (a test event)."""

    student_id: str = field(metadata=rules(validate.Length(1, 64)))


REGISTRY = EventRegistry()
REGISTRY.register(WelcomeQueued)


@dataclass(frozen=True)
class QueueWelcome:
    student_id: str


class Welcomes:
    """A tiny service with one command, run through the application layer."""

    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.wakeups: list[str | None] = []
        self.app = Application(self.store, REGISTRY, FixedClock(T0), after_commit=self.wakeups.append)

    def handle(self, command: Any, ctx: RequestContext) -> object:
        assert isinstance(command, QueueWelcome)
        stream = f"welcome-{command.student_id}"
        return self.app.execute(
            stream, ctx, scope=stream, request=(command.student_id,),
            load=lambda: (None, self.store.stream_version(stream)),
            decide=lambda _state: [WelcomeQueued(command.student_id)],
            result={"student_id": command.student_id},
        )

    def queued(self) -> list[RecordedEvent]:
        return [e for e in self.store.read_all(limit=1000) if e.type == "WelcomeQueued"]


def registered(student_id: str) -> NewEvent:
    data = {
        "student_id": student_id, "name": "Tova Exempel", "email": "tova@example.org", "university_id": "ab-1",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028", "rules": "SOCSW@1",
    }
    return NewEvent("StudentRegistered", 1, data, {"actor": "test", "correlation_id": "c-reg"}, T0)


def on_student_registered(conn: sa.Connection, event: RecordedEvent) -> Iterator[QueueWelcome]:
    yield QueueWelcome(event.data["student_id"])


@pytest.fixture
def intake() -> InMemoryEventStore:
    store = InMemoryEventStore()
    for _ in range(3):
        sid = str(uuid.uuid4())
        store.append(f"student-{sid}", [registered(sid)], expected_version=0)
    return store


def runner_for(tmp_path: Path, intake: InMemoryEventStore, welcomes: Welcomes, **kw: Any) -> ProjectionRunner:
    welcome_policy = policy("welcome", {"StudentRegistered": kw.pop("reaction", on_student_registered)},
                            kw.pop("dispatch", welcomes.handle), tables=kw.pop("tables", ()))
    runner = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / 'policies.db'}", immediate=True),
                              StoreEventFeed(intake, INTAKE_REGISTRY), [welcome_policy], batch_size=2)
    runner.create_schema()
    return runner


def test_a_policy_issues_each_command_once_however_often_it_runs(tmp_path: Path, intake: InMemoryEventStore) -> None:
    welcomes = Welcomes()
    runner = runner_for(tmp_path, intake, welcomes)
    assert runner.catch_up() == 3
    assert runner.catch_up() == 0
    runner.rebuild()  # the checkpoint back at 0: every reaction runs again
    queued = welcomes.queued()
    assert len(queued) == 3
    assert len(welcomes.wakeups) == 3  # the replays stored nothing, so woke nobody
    causes = {e.event_id for e in intake.read_all(limit=100)}
    assert {e.metadata["causation_id"] for e in queued} == causes
    assert {e.metadata["actor"] for e in queued} == {"policy:welcome"}
    assert {e.metadata["correlation_id"] for e in queued} == {"c-reg"}


def test_a_crash_before_the_checkpoint_moves_does_not_issue_the_command_twice(
    tmp_path: Path, intake: InMemoryEventStore
) -> None:
    welcomes = Welcomes()
    crashes = [True]

    def dispatch(command: Any, ctx: RequestContext) -> object:
        outcome = welcomes.handle(command, ctx)
        if crashes:  # the command is stored, then the process dies before the checkpoint commits
            crashes.pop()
            raise RuntimeError("worker lost")
        return outcome

    runner = runner_for(tmp_path, intake, welcomes, dispatch=dispatch)
    with pytest.raises(RuntimeError):
        runner.catch_up()
    assert runner.checkpoints() == {"welcome": 0}
    assert runner.catch_up() == 3
    assert len(welcomes.queued()) == 3


def test_side_effects_recorded_by_a_policy_commit_with_its_checkpoint(
    tmp_path: Path, intake: InMemoryEventStore
) -> None:
    ledger = sa.Table("test_sent", sa.MetaData(), sa.Column("caused_by", sa.String(64), primary_key=True))
    failures = [2]  # the second event's side effect fails once, after the first one's is recorded

    def record_sent(conn: sa.Connection, event: RecordedEvent) -> list[Any]:
        failures[0] -= 1
        if failures[0] == 0:
            raise RuntimeError("relay down")
        conn.execute(ledger.insert(), {"caused_by": event.event_id})
        return []

    runner = runner_for(tmp_path, intake, Welcomes(), reaction=record_sent, tables=(ledger,))
    with pytest.raises(RuntimeError):
        runner.catch_up()
    with runner.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ledger)).scalar_one() == 0
    assert runner.catch_up() == 3
    with runner.engine.connect() as conn:
        rows = set(conn.execute(sa.select(ledger.c.caused_by)).scalars())
    assert rows == {e.event_id for e in intake.read_all(limit=100)}


def test_policy_keys_differ_per_command_and_per_cause() -> None:
    event = intake_event = RecordedEvent(1, "e-1", "s", 1, "StudentRegistered", 1, {}, {}, T0, T0)
    other = intake_event._replace(event_id="e-2", metadata={"correlation_id": "c-9"})
    keys = {policy_context("p", event, 0).idempotency_key, policy_context("p", event, 1).idempotency_key,
            policy_context("p", other, 0).idempotency_key, policy_context("q", event, 0).idempotency_key}
    assert len(keys) == 4
    assert policy_context("p", other).correlation_id == "c-9"


def test_a_named_version_that_moved_is_a_conflict_and_stores_nothing() -> None:
    welcomes = Welcomes()
    welcomes.handle(QueueWelcome("s-1"), RequestContext("test", "c-1"))
    with pytest.raises(ConcurrencyConflict):
        welcomes.handle(QueueWelcome("s-1"), RequestContext("test", "c-2", expected_version=0))
    assert len(welcomes.queued()) == 1
