"""The store's small helpers: request fingerprints, batched reading, and the stored append result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.events import NewEvent
from shared.store import NO_STREAM, AppendResult, iter_all, request_fingerprint


def test_fingerprint_ignores_key_order_and_tells_requests_apart() -> None:
    assert request_fingerprint("register", {"a": 1, "b": 2}) == request_fingerprint("register", {"b": 2, "a": 1})
    assert request_fingerprint("register", {"a": 1}) != request_fingerprint("register", {"a": 2})
    assert request_fingerprint("register", {"a": 1}) != request_fingerprint("log_activity", {"a": 1})
    assert len(request_fingerprint("x")) == 64


def test_append_result_survives_its_stored_record() -> None:
    result = AppendResult("student-1", 2, 3, (7, 8), ("e7", "e8"), {"activity_id": "a"})
    again = AppendResult.from_record(result.as_record(), replayed=True)
    assert again.replayed
    assert (again.stream_id, again.first_version, again.last_version) == ("student-1", 2, 3)
    assert (again.positions, again.event_ids, dict(again.result)) == ((7, 8), ("e7", "e8"), {"activity_id": "a"})


def test_iter_all_reads_every_event_past_a_checkpoint_in_batches(memory_store: InMemoryEventStore) -> None:
    meta = {"actor": "t", "correlation_id": "c"}
    for n in range(11):
        event = NewEvent("ThingHappened", 1, {"n": n}, meta, datetime(2025, 1, 1, tzinfo=UTC))
        memory_store.append(f"s-{n}", [event], expected_version=NO_STREAM)
    assert [e.data["n"] for e in iter_all(memory_store, batch=3)] == list(range(11))
    assert [e.data["n"] for e in iter_all(memory_store, after=8, batch=2)] == [8, 9, 10]


def test_fixed_clock_stands_still_until_moved(clock: FixedClock) -> None:
    start = clock.now()
    assert clock.now() == start
    clock.advance(timedelta(hours=1))
    assert clock.now() == start + timedelta(hours=1)
    with pytest.raises(ValueError, match="tz-aware"):
        FixedClock(datetime(2026, 1, 1))


def test_writers_to_one_sqlite_file_share_one_lock_in_a_process(tmp_path, monkeypatch) -> None:
    """The event store and the key vault on the intake database queue on one lock (not in
    SQLite's sleeping busy handler); other files and PostgreSQL get their own or none."""
    import contextlib

    from shared.adapters.sql import write_lock_for
    from shared.adapters.sql_vault import SqlKeyVault
    from shared.adapters.stores import open_event_store

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    assert write_lock_for(url) is write_lock_for("sqlite:///intake.db")
    assert write_lock_for(url) is not write_lock_for(f"sqlite:///{tmp_path / 'other.db'}")
    assert isinstance(write_lock_for("postgresql://cim@db/cim"), contextlib.nullcontext)
    assert isinstance(write_lock_for("sqlite://"), contextlib.nullcontext)
    store, vault = open_event_store(url), SqlKeyVault(url, "a-vault-secret-of-at-least-32-characters!!")
    try:
        assert store._write_lock is vault._write_lock is write_lock_for(url)
    finally:
        store.dispose()
        vault.dispose()
