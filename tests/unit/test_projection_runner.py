"""The projection runner: checkpoint in the same transaction, idempotent catch-up, safe concurrency."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assessment_service import projections
from intake_service.events import REGISTRY
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.events import NewEvent, RecordedEvent
from shared.projection import Projection, ProjectionRunner

#: How many read models each event of the intake feed is applied to.
N = len(projections.ALL)

T0 = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


def _event(type_: str, data: dict, n: int = 0, version: int = 1) -> NewEvent:
    return NewEvent(type_, version, data, {"actor": "test", "correlation_id": f"c-{n}"}, T0 + timedelta(seconds=n))


def registered(sid: str, n: int = 0) -> NewEvent:
    return _event(
        "StudentRegistered",
        {
            "student_id": sid, "name": "Tova Exempel", "email": "tova@example.org", "university_id": "ab-1",
            "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028", "rules": "SOCSW@1",
        },
        n,
    )


def report(n: int = 0, activity_ids: list[str] | None = None) -> NewEvent:
    return _event(
        "ReportSubmitted",
        {"report_id": str(uuid.uuid4()), "answers": {"learning": "x"}, "activity_ids": activity_ids or [],
         "attachment_id": None, "rules": "SOCSW@1"},
        n,
    )


def seed(store: InMemoryEventStore, students: int) -> list[str]:
    ids = []
    for i in range(students):
        sid = str(uuid.uuid4())
        store.append(f"student-{sid}", [registered(sid, i), report(i)], expected_version=None)
        ids.append(sid)
    return ids


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'assessment.db'}"


def seeded_runner(db_url: str, students: int, **options: Any) -> tuple[InMemoryEventStore, ProjectionRunner]:
    """A store seeded with `students` and a runner over it (nothing projected yet)."""
    store = InMemoryEventStore()
    seed(store, students)
    return store, runner_for(db_url, store, **options)


def runner_for(url: str, store: InMemoryEventStore, batch_size: int = 7,
               projs: tuple[Projection, ...] = projections.ALL) -> ProjectionRunner:
    runner = ProjectionRunner(make_engine(url, immediate=True), StoreEventFeed(store, REGISTRY), projs,
                              batch_size=batch_size)
    runner.create_schema()
    return runner


def test_catch_up_applies_every_event_and_moves_each_checkpoint(db_url: str) -> None:
    _store, runner = seeded_runner(db_url, 10)
    assert runner.catch_up() == N * 20
    assert set(runner.checkpoints().values()) == {20}
    assert [s.lag for s in runner.status()] == [0] * N


def test_duplicate_wake_ups_change_nothing(db_url: str) -> None:
    _store, runner = seeded_runner(db_url, 5)
    runner.catch_up()
    before = runner.digest()
    assert runner.catch_up() == 0
    assert runner.catch_up() == 0
    assert runner.digest() == before


def test_a_failing_handler_rolls_back_rows_and_checkpoint_together(db_url: str, tmp_path: Path) -> None:
    store = InMemoryEventStore()
    seed(store, 3)
    calls = {"n": 0}
    table = projections.students.students

    def flaky(conn: sa.Connection, event: RecordedEvent) -> None:
        projections.students.on_student_registered(conn, event)
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker died mid-batch")

    projection = Projection("students", (table,), {**projections.students.HANDLERS, "StudentRegistered": flaky})
    runner = runner_for(db_url, store, batch_size=100, projs=(projection,))
    with pytest.raises(RuntimeError):
        runner.catch_up()
    assert runner.checkpoints() == {"students": 0}
    with runner.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    assert runner.catch_up() == 6
    clean = runner_for(f"sqlite:///{tmp_path / 'clean.db'}", store, projs=(projections.students.PROJECTION,))
    clean.catch_up()
    assert runner.digest() == clean.digest()


def test_concurrent_runners_never_apply_an_event_twice(db_url: str) -> None:
    store = InMemoryEventStore()
    seed(store, 60)
    runners = [runner_for(db_url, store, batch_size=5) for _ in range(4)]
    applied: list[int] = []
    errors: list[BaseException] = []

    def run(r: ProjectionRunner) -> None:
        try:
            applied.append(r.catch_up())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(applied) == N * 120  # every (event, projection) applied exactly once in total
    with runners[0].engine.connect() as conn:
        total = sa.select(sa.func.sum(projections.students.students.c.reports_submitted))
        assert conn.execute(total).scalar_one() == 60


def test_rebuild_of_one_projection_equals_the_live_read_model(db_url: str) -> None:
    _store, runner = seeded_runner(db_url, 8)
    runner.catch_up()
    live = runner.digest()
    progress: list[int] = []
    runner.rebuild(["review_queue"], on_batch=lambda _n, pos: progress.append(pos))
    assert runner.digest() == live
    assert progress[-1] == 16
    assert progress == sorted(progress)


def test_unknown_projection_name_is_refused(db_url: str) -> None:
    runner = runner_for(db_url, InMemoryEventStore())
    with pytest.raises(KeyError, match="nope"):
        runner.rebuild(["nope"])


def test_time_budget_leaves_the_rest_for_the_next_run(db_url: str) -> None:
    _store, runner = seeded_runner(db_url, 10, batch_size=3)
    first = runner.catch_up(time_budget=0.0)
    assert first == N * 3
    assert runner.catch_up() == N * 17


def test_old_schema_versions_arrive_upcast(db_url: str) -> None:
    store = InMemoryEventStore()
    sid = str(uuid.uuid4())
    v1 = {"activity_id": str(uuid.uuid4()), "kind": "exchange", "title": "Lyon", "organiser": "U",
          "abroad": True, "country": "FR", "start_date": "2025-01-01", "end_date": "2025-02-01",
          "description": ""}
    store.append(f"student-{sid}", [registered(sid), _event("ActivityLogged", v1, 1, version=1)],
                 expected_version=0)
    runner = runner_for(db_url, store)
    runner.catch_up()
    with runner.engine.connect() as conn:
        row = conn.execute(sa.select(projections.activities.activities)).one()
    assert (row.setting, row.country_code, row.hours) == ("abroad", "FR", None)


def test_a_rebuild_started_while_a_batch_was_in_flight_skips_no_event(db_url: str, tmp_path: Path) -> None:
    store, runner = seeded_runner(db_url, 10, batch_size=5)
    runner.catch_up()
    seed(store, 2)
    other = runner_for(db_url, store, batch_size=50)
    real_read = other.feed.read

    resets: list[int] = []

    def read_then_reset(after: int, limit: int) -> list[RecordedEvent]:
        events = real_read(after, limit)
        if not resets:
            runner.reset(["students"])  # a rebuild begins between our read and our apply
            resets.append(after)
        return events

    other.feed.read = read_then_reset  # type: ignore[method-assign]
    other.catch_up()
    other.feed.read = real_read  # type: ignore[method-assign]
    other.catch_up()
    assert set(other.checkpoints().values()) == {24}
    clean = runner_for(f"sqlite:///{tmp_path / 'clean.db'}", store)
    clean.catch_up()
    assert other.digest() == clean.digest()


def test_a_wake_up_starts_from_the_checkpoints_this_process_committed(db_url: str) -> None:
    """After its first catch-up a runner does not read the checkpoints again before reading the
    feed: it starts where its own last batch left them (the batch locks the real ones)."""
    store, runner = seeded_runner(db_url, 3)
    runner.catch_up()
    reads: list[int] = []
    real = runner.checkpoints

    def counted() -> dict[str, int]:
        reads.append(1)
        return real()

    runner.checkpoints = counted  # type: ignore[method-assign]
    seed(store, 2)
    assert runner.catch_up() == N * 4
    assert reads == []
    assert set(real().values()) == {10}


def test_a_remembered_checkpoint_moved_by_another_runner_applies_nothing_twice(db_url: str) -> None:
    store = InMemoryEventStore()
    seed(store, 4)
    first, other = runner_for(db_url, store), runner_for(db_url, store)
    first.catch_up()
    seed(store, 3)
    assert other.catch_up() == N * 6  # first still remembers position 8
    seed(store, 1)
    assert first.catch_up() == N * 2  # reads from 8, applies only past the locked 14
    with first.engine.connect() as conn:
        total = sa.select(sa.func.sum(projections.students.students.c.reports_submitted))
        assert conn.execute(total).scalar_one() == 8
    assert set(first.checkpoints().values()) == {16}


def test_a_reset_by_another_runner_is_noticed_with_nothing_new_in_the_feed(db_url: str) -> None:
    """A rebuild elsewhere moved the checkpoints back to 0 while the feed has nothing past the
    position this runner remembers: its next catch-up (a beat tick) still re-applies everything."""
    store = InMemoryEventStore()
    seed(store, 5)
    first, other = runner_for(db_url, store), runner_for(db_url, store)
    first.catch_up()
    live = first.digest()
    other.reset(["students"])
    assert other.checkpoints()["students"] == 0
    assert first.catch_up() == 10
    assert first.checkpoints()["students"] == 10
    assert first.digest() == live
