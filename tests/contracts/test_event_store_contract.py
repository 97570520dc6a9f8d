"""The event store contract: one suite, run against the in-memory store, SQLite and PostgreSQL.

Whatever passes here may stand in for the others: unit tests use the in-memory store because it
passes the same suite as the SQL store. At the end: exactly one of many concurrent appends at
one version wins (bar R2), and readers tailing the feed while 8 processes write miss nothing and
see it in order (bar R3); the key to the bars is in tests/README.md.
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.postgres_store import PostgresEventStore
from shared.adapters.sql_store import SqlEventStore
from shared.adapters.sqlite_store import SqliteEventStore
from shared.adapters.stores import open_event_store
from shared.clock import FixedClock
from shared.errors import ConcurrencyConflict, IdempotencyKeyReused, StorageUnavailable
from shared.events import NewEvent, RecordedEvent
from shared.store import ANY_VERSION, NO_STREAM, EventStore, iter_all, request_fingerprint
from tests.conftest import BACKEND_FIXTURES, CLOCK_START

#: When the facts in these tests happened (business time): well before the clock's "now".
OCCURRED = datetime(2025, 9, 1, 14, 0, tzinfo=UTC)


def new_event(
    type_: str = "ThingHappened",
    data: dict[str, Any] | None = None,
    *,
    actor: str = "student:alice",
    correlation_id: str = "corr-1",
    causation_id: str | None = None,
    occurred_at: datetime = OCCURRED,
) -> NewEvent:
    return NewEvent(
        type=type_,
        schema_version=1,
        data=data if data is not None else {"n": 1},
        metadata={"actor": actor, "correlation_id": correlation_id, "causation_id": causation_id},
        occurred_at=occurred_at,
    )


def stream() -> str:
    return f"student-{uuid.uuid4()}"


# -- appending and reading ------------------------------------------------------------------


def test_new_stream_numbers_versions_from_one(store: EventStore) -> None:
    sid = stream()
    events = [new_event(data={"n": n}) for n in range(3)]

    result = store.append(sid, events, expected_version=NO_STREAM)

    assert (result.stream_id, result.first_version, result.last_version) == (sid, 1, 3)
    assert result.event_ids == tuple(e.event_id for e in events)
    assert not result.replayed
    recorded = store.read_stream(sid)
    assert [e.version for e in recorded] == [1, 2, 3]
    assert [e.data for e in recorded] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [e.event_id for e in recorded] == list(result.event_ids)
    assert [e.position for e in recorded] == list(result.positions)
    assert store.stream_version(sid) == 3


def test_append_many_writes_several_streams_in_one_go(store: EventStore) -> None:
    """One transaction for many streams, each continued at its own version (audit records of
    one staff page: one per student)."""
    first, second = stream(), stream()
    store.append(first, [new_event(data={"n": 0})], expected_version=NO_STREAM)
    head = store.head()

    results = store.append_many([
        (first, [new_event(data={"n": 1})]),
        (second, [new_event(data={"n": 10}), new_event(data={"n": 11})]),
    ])

    assert [(r.stream_id, r.first_version, r.last_version) for r in results] == [(first, 2, 2), (second, 1, 2)]
    assert [e.data["n"] for e in store.read_stream(first)] == [0, 1]
    assert [e.data["n"] for e in store.read_stream(second)] == [10, 11]
    tail = store.read_all(after=head, limit=10)
    assert [e.position for e in tail] == [p for r in results for p in r.positions]
    assert [e.position for e in tail] == list(range(head + 1, head + 4))
    assert tail[0].metadata["actor"] == "student:alice"
    assert store.append_many([]) == []
    with pytest.raises(ValueError, match="at least one event"):
        store.append_many([(stream(), [])])
    assert store.head() == head + 3


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_append_many_is_all_or_none(backend: str, request: pytest.FixtureRequest) -> None:
    """A stream that cannot be written (here: an event id already stored) takes the others back
    with it. (The in-memory fake does not check event ids; an append at any version cannot fail
    there once the arguments are checked.)"""
    store: SqlEventStore = request.getfixturevalue(BACKEND_FIXTURES[backend])
    taken = new_event()
    store.append(stream(), [taken], expected_version=NO_STREAM)
    head, fresh = store.head(), stream()
    with pytest.raises(StorageUnavailable):
        store.append_many([(fresh, [new_event()]), (stream(), [taken])])  # the second cannot be stored
    assert store.head() == head
    assert store.read_stream(fresh) == []


def test_a_failed_sqlite_write_leaves_neither_rows_nor_the_lock_behind(
    sqlite_store: SqlEventStore, sqlite_url: str
) -> None:
    """On SQLite a process writes through one connection it holds (SqlEventStore.
    _sqlite_transaction): a transaction that fails is rolled back there, so SQLite's write lock
    is free for another process at once and the store's next append begins cleanly."""
    taken = new_event()
    sqlite_store.append(stream(), [taken], expected_version=NO_STREAM)
    head, fresh = sqlite_store.head(), stream()
    with pytest.raises(StorageUnavailable):
        sqlite_store.append_many([(fresh, [new_event()]), (stream(), [taken])])
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0.5, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # "database is locked" if the failed one were still open
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert sqlite_store.head() == head
    sqlite_store.append(fresh, [new_event()], expected_version=NO_STREAM)
    assert [e.version for e in sqlite_store.read_stream(fresh)] == [1]


def test_a_forked_process_writes_through_its_own_sqlite_connection(sqlite_store: SqlEventStore) -> None:
    """A store made before a fork (the parent has written) goes on writing in the child and,
    afterwards, in the parent: the child opens its own connection instead of using the
    parent's."""
    sid = stream()
    sqlite_store.append(sid, [new_event()], expected_version=NO_STREAM)
    sqlite_store.read_stream(sid)
    sqlite_store.create_schema()  # (idempotent) leaves a second connection idle in the pool
    parents = {id(obj) for obj in gc.get_objects() if isinstance(obj, sqlite3.Connection)}

    def child() -> None:
        sqlite_store.append(sid, [new_event()], expected_version=1)
        # the parent's connections are all still alive here, so a new one cannot share an id
        assert id(sqlite_store._sqlite_writer[1].driver_connection) not in parents
        assert len(sqlite_store.read_stream(sid)) == 2

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    sqlite_store.append(sid, [new_event()], expected_version=2)
    assert [e.version for e in sqlite_store.read_stream(sid)] == [1, 2, 3]


def test_append_with_the_current_version_continues_the_stream(store: EventStore) -> None:
    sid = stream()
    store.append(sid, [new_event()], expected_version=NO_STREAM)

    result = store.append(sid, [new_event(), new_event()], expected_version=1)

    assert (result.first_version, result.last_version) == (2, 3)
    assert [e.version for e in store.read_stream(sid)] == [1, 2, 3]
    assert [e.version for e in store.read_stream(sid, after_version=1)] == [2, 3]
    assert store.read_stream(sid, after_version=3) == []


def test_unknown_stream_is_empty_at_version_zero(store: EventStore) -> None:
    assert store.read_stream(stream()) == []
    assert store.stream_version(stream()) == 0


def test_positions_are_global_increasing_and_unique(store: EventStore) -> None:
    a, b = stream(), stream()
    store.append(a, [new_event()], expected_version=NO_STREAM)
    store.append(b, [new_event(), new_event()], expected_version=NO_STREAM)
    store.append(a, [new_event()], expected_version=1)

    everything = store.read_all()

    positions = [e.position for e in everything]
    assert positions == sorted(set(positions))
    assert positions[0] >= 1
    assert [e.stream_id for e in everything] == [a, b, b, a]
    assert store.head() == positions[-1]
    assert store.count() == 4


def test_data_round_trips_exactly(store: EventStore) -> None:
    data = {
        "text": "Åsa Öberg — 東京 \u2028 \"quoted\" \\ back",
        "nested": {"list": [1, 2.5, None, True, {"k": "v"}], "empty": {}},
        "big": 2**53,
    }
    sid = stream()
    store.append(sid, [new_event(data=data)], expected_version=NO_STREAM)
    assert store.read_stream(sid)[0].data == data


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused_and_nothing_is_stored(
    backend: str, bad: float, request: pytest.FixtureRequest
) -> None:
    """JSON has no NaN or infinity (orjson would write them as null, changing the event): the
    SQL stores refuse them, nested or not, alongside nulls that are fine, and store nothing."""
    store: SqlEventStore = request.getfixturevalue(BACKEND_FIXTURES[backend])
    before = store.head()
    for data in ({"x": bad}, {"a": None, "nested": {"list": [1, None, {"deep": bad}]}}):
        with pytest.raises(ValueError, match="NaN or infinity"):
            store.append(stream(), [new_event(data=data)], expected_version=NO_STREAM)
    assert store.head() == before
    fine = store.append(stream(), [new_event(data={"a": None, "f": 2.5})], expected_version=NO_STREAM)
    assert store.read_stream(fine.stream_id)[0].data == {"a": None, "f": 2.5}


def test_a_long_batch_round_trips_and_keeps_its_constraints(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 events in one append (PostgreSQL copies batches this long instead of INSERTing them):
    every field back as written, tabs, newlines and backslashes included, and a second batch
    claiming the same versions (a writer that read a stale version) stores nothing."""
    data = {"text": "tab\there\nnewline \\N backslash-N \\ Åsa \u2028", "n": 0}
    sid = stream()
    events = [new_event(data={**data, "n": n}, correlation_id=f"c\t{n}") for n in range(40)]
    result = store.append(sid, events, expected_version=NO_STREAM)
    recorded = store.read_stream(sid)
    assert [e.version for e in recorded] == list(range(1, 41))
    assert [e.data for e in recorded] == [e.data for e in events]
    assert [e.metadata["correlation_id"] for e in recorded] == [f"c\t{n}" for n in range(40)]
    assert [e.position for e in recorded] == list(result.positions)
    assert [e.occurred_at for e in recorded] == [OCCURRED] * 40
    before = store.head()
    with pytest.raises(ConcurrencyConflict):
        store.append(sid, [new_event(data={"n": n}) for n in range(40)], expected_version=0)
    if hasattr(store, "_version"):  # the SQL stores: the insert itself meets the taken versions
        monkeypatch.setattr(store, "_version", lambda _cursor, _sid: 0)
        with pytest.raises(ConcurrencyConflict):
            store.append(sid, [new_event(data={"n": n}) for n in range(40)], expected_version=None)
    assert store.head() == before
    assert len(store.read_stream(sid)) == 40



def test_a_short_batch_takes_positions_in_version_order(store: EventStore) -> None:
    """A few events in one append (PostgreSQL writes up to 15 in one statement): positions rise
    with the versions, the result names them, and a stale or taken version stores nothing."""
    sid, other = stream(), stream()
    store.append(other, [new_event()], expected_version=NO_STREAM)
    events = [new_event(data={"n": n}) for n in range(5)]
    result = store.append(sid, events, expected_version=NO_STREAM)
    recorded = store.read_stream(sid)
    assert [e.version for e in recorded] == [1, 2, 3, 4, 5]
    assert [e.data["n"] for e in recorded] == [0, 1, 2, 3, 4]
    assert [e.event_id for e in recorded] == [e.event_id for e in events]
    assert [e.position for e in recorded] == list(result.positions)
    assert list(result.positions) == sorted(result.positions)
    assert (result.first_version, result.last_version) == (1, 5)
    assert [e.position for e in store.read_all(after=result.positions[0] - 1)] == list(result.positions)
    before = store.head()
    with pytest.raises(ConcurrencyConflict) as stale:
        store.append(sid, [new_event(), new_event()], expected_version=3)
    assert stale.value.actual == 5
    assert store.head() == before
    more = store.append(sid, [new_event(), new_event()], expected_version=5)
    assert (more.first_version, more.last_version) == (6, 7)
    assert more.positions[0] > result.positions[-1]
    key = f"short-{sid}"  # with a key (PostgreSQL claims it in the same statement)
    keyed = store.append(sid, [new_event() for _ in range(3)], expected_version=7, idempotency_key=key,
                         result={"n": 3})
    assert [e.position for e in store.read_stream(sid, after_version=7)] == list(keyed.positions)
    replay = store.append(sid, [new_event()], expected_version=7, idempotency_key=key)
    assert replay.replayed
    assert dataclasses.replace(replay, replayed=False) == keyed
    with pytest.raises(ConcurrencyConflict):
        store.append(sid, [new_event()], expected_version=7, idempotency_key=f"stale-{sid}")
    assert store.find_idempotent(f"stale-{sid}") is None


@pytest.mark.postgres
def test_postgres_connections_go_back_to_the_pool_in_transaction_mode(pg_store: SqlEventStore) -> None:
    """Reads and short appends run in autocommit; the pool's other users (schema creation, keyed
    appends) count on getting a connection in transaction mode back."""
    sid = stream()
    pg_store.append(sid, [new_event()], expected_version=NO_STREAM)
    pg_store.read_stream(sid)
    with pytest.raises(ConcurrencyConflict):
        pg_store.append(sid, [new_event()], expected_version=NO_STREAM)
    pooled = pg_store._writer.raw_connection()
    try:
        assert pooled.driver_connection.autocommit is False
    finally:
        pooled.close()
    pg_store.append(sid, [new_event()], expected_version=1, idempotency_key="k-" + sid)
    assert pg_store.find_idempotent("k-" + sid) is not None


def test_empty_append_is_refused(store: EventStore) -> None:
    with pytest.raises(ValueError, match="at least one event"):
        store.append(stream(), [], expected_version=NO_STREAM)


# -- optimistic concurrency -----------------------------------------------------------------


@pytest.mark.parametrize("stale", [0, 2, 7])
def test_expected_version_mismatch_conflicts_and_stores_nothing(store: EventStore, stale: int) -> None:
    sid = stream()
    store.append(sid, [new_event()], expected_version=NO_STREAM)
    before = store.read_all()

    with pytest.raises(ConcurrencyConflict) as conflict:
        store.append(sid, [new_event(), new_event()], expected_version=stale)

    assert (conflict.value.stream_id, conflict.value.expected, conflict.value.actual) == (sid, stale, 1)
    assert conflict.value.status == 409
    assert store.read_all() == before
    assert store.stream_version(sid) == 1


def test_no_stream_refuses_an_existing_stream(store: EventStore) -> None:
    sid = stream()
    store.append(sid, [new_event()], expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyConflict):
        store.append(sid, [new_event()], expected_version=NO_STREAM)
    assert store.count() == 1


def test_expecting_a_version_of_a_missing_stream_conflicts_and_creates_nothing(store: EventStore) -> None:
    sid = stream()
    with pytest.raises(ConcurrencyConflict):
        store.append(sid, [new_event()], expected_version=3)
    assert store.stream_version(sid) == 0
    assert store.read_all() == []
    # ... and the stream can still be started afterwards.
    assert store.append(sid, [new_event()], expected_version=NO_STREAM).last_version == 1


def test_any_version_appends_whatever_the_version(store: EventStore) -> None:
    sid = stream()
    store.append(sid, [new_event()], expected_version=ANY_VERSION)
    result = store.append(sid, [new_event()], expected_version=ANY_VERSION)
    assert result.last_version == 2


# -- idempotency ----------------------------------------------------------------------------


def test_retry_with_the_same_key_returns_the_first_result_and_stores_nothing(store: EventStore) -> None:
    sid = stream()
    fingerprint = request_fingerprint("register", {"name": "Alice"})
    first = store.append(
        sid, [new_event()], expected_version=NO_STREAM, idempotency_key="key-1",
        request_hash=fingerprint, result={"student_id": "s-1"},
    )
    before = store.read_all()

    # The retry carries new event ids and an expected version that would conflict: neither matters.
    again = store.append(
        sid, [new_event(), new_event()], expected_version=NO_STREAM, idempotency_key="key-1",
        request_hash=fingerprint, result={"student_id": "s-2"},
    )

    assert again.replayed
    assert not first.replayed
    assert dataclasses.replace(again, replayed=False) == first
    assert dict(again.result) == {"student_id": "s-1"}
    assert store.read_all() == before
    found = store.find_idempotent("key-1", fingerprint)
    assert found is not None
    assert found.event_ids == first.event_ids
    assert found.replayed


def test_same_key_for_a_different_request_is_refused_and_stores_nothing(store: EventStore) -> None:
    sid = stream()
    store.append(sid, [new_event()], expected_version=NO_STREAM, idempotency_key="key-2", request_hash="a" * 64)
    before = store.read_all()

    with pytest.raises(IdempotencyKeyReused):
        store.append(stream(), [new_event()], expected_version=NO_STREAM, idempotency_key="key-2",
                     request_hash="b" * 64)
    with pytest.raises(IdempotencyKeyReused):
        store.find_idempotent("key-2", "b" * 64)
    assert store.read_all() == before


def test_unknown_key_finds_nothing(store: EventStore) -> None:
    assert store.find_idempotent("never-used") is None


def test_a_conflicting_append_does_not_claim_its_key(store: EventStore) -> None:
    sid = stream()
    store.append(sid, [new_event()], expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyConflict):
        store.append(sid, [new_event()], expected_version=NO_STREAM, idempotency_key="key-3")
    assert store.find_idempotent("key-3") is None

    result = store.append(sid, [new_event()], expected_version=1, idempotency_key="key-3")
    assert result.last_version == 2
    assert not result.replayed


def test_keys_are_distinct_per_request(store: EventStore) -> None:
    sid = stream()
    store.append(sid, [new_event()], expected_version=NO_STREAM, idempotency_key="k-a")
    store.append(sid, [new_event()], expected_version=1, idempotency_key="k-b")
    assert store.stream_version(sid) == 2


# -- reading everything ---------------------------------------------------------------------


def test_read_all_returns_batches_in_position_order(store: EventStore) -> None:
    streams = [stream() for _ in range(3)]
    for n in range(25):
        sid = streams[n % 3]
        store.append(sid, [new_event(data={"n": n})], expected_version=ANY_VERSION)

    whole = store.read_all(limit=100)
    assert [e.data["n"] for e in whole] == list(range(25))

    batched: list[RecordedEvent] = []
    after = 0
    while batch := store.read_all(after=after, limit=7):
        assert len(batch) <= 7
        batched.extend(batch)
        after = batch[-1].position
    assert batched == whole
    assert list(iter_all(store, batch=4)) == whole
    assert store.read_all(after=whole[-1].position) == []
    assert store.read_all(after=whole[9].position, limit=3) == whole[10:13]


def test_read_all_of_an_empty_store_is_empty(store: EventStore) -> None:
    assert store.read_all() == []
    assert store.head() == 0
    assert store.count() == 0


# -- metadata and time ----------------------------------------------------------------------


def test_metadata_is_kept_with_each_event(store: EventStore, clock: FixedClock) -> None:
    sid = stream()
    cause = str(uuid.uuid4())
    event = new_event(actor="staff:bob", correlation_id="corr-42", causation_id=cause)

    store.append(sid, [event], expected_version=NO_STREAM, idempotency_key="key-meta")

    (recorded,) = store.read_stream(sid)
    assert recorded.metadata["actor"] == "staff:bob"
    assert recorded.metadata["correlation_id"] == "corr-42"
    assert recorded.metadata["causation_id"] == cause
    assert recorded.metadata["idempotency_key"] == "key-meta"
    assert recorded.type == "ThingHappened"
    assert recorded.schema_version == 1
    assert recorded.event_id == event.event_id
    assert recorded.stream_id == sid


def test_recorded_at_comes_from_the_clock_and_occurred_at_is_kept_apart(
    store: EventStore, clock: FixedClock
) -> None:
    sid = stream()
    store.append(sid, [new_event(occurred_at=OCCURRED)], expected_version=NO_STREAM)
    clock.advance(timedelta(days=3, seconds=5))
    store.append(sid, [new_event(occurred_at=OCCURRED - timedelta(days=400))], expected_version=1)

    first, second = store.read_stream(sid)
    assert first.recorded_at == CLOCK_START
    assert second.recorded_at == CLOCK_START + timedelta(days=3, seconds=5)
    assert first.occurred_at == OCCURRED
    assert second.occurred_at == OCCURRED - timedelta(days=400)
    for moment in (first.recorded_at, first.occurred_at, second.recorded_at, second.occurred_at):
        assert moment.utcoffset() == timedelta(0)


# -- set-up and maintenance -----------------------------------------------------------------


def test_create_schema_twice_and_compact_keep_every_event(store: EventStore) -> None:
    """Both are reached through the protocol (no probing for an engine or a URL), on every store."""
    sid = stream()
    store.append(sid, [new_event(data={"n": n}) for n in range(3)], expected_version=NO_STREAM)
    store.create_schema()
    store.compact()
    store.compact(vacuum=True)
    assert [e.data["n"] for e in store.read_stream(sid)] == [0, 1, 2]
    assert store.stream_version(sid) == 3


def test_the_url_picks_the_store_and_the_common_base_is_not_a_store_of_its_own(tmp_path: Any) -> None:
    sqlite = open_event_store(f"sqlite:///{tmp_path / 'x.db'}")
    postgres = open_event_store("postgresql://cim@127.0.0.1:1/none")  # connects on first use only
    try:
        assert type(sqlite) is SqliteEventStore
        assert type(postgres) is PostgresEventStore
        assert isinstance(sqlite, SqlEventStore)
        assert isinstance(postgres, SqlEventStore)
    finally:
        sqlite.dispose()
        postgres.dispose()
    with pytest.raises(TypeError, match="abstract"):
        SqlEventStore(f"sqlite:///{tmp_path / 'y.db'}")  # type: ignore[abstract]


def test_compact_leaves_no_sqlite_wal_behind(sqlite_store: SqlEventStore, sqlite_url: str) -> None:
    """What erasure overwrote must not linger in the -wal file: compact() moves it into the
    database file and truncates the WAL."""
    wal = sqlite_url.removeprefix("sqlite:///") + "-wal"
    sqlite_store.append(stream(), [new_event(data={"blob": "x" * 5000})], expected_version=NO_STREAM)
    assert os.path.getsize(wal) > 0
    sqlite_store.compact()
    assert os.path.getsize(wal) == 0
    assert sqlite_store.count() == 1


# -- immutability ---------------------------------------------------------------------------

#: Everything public an event store may offer. Nothing here changes or removes a stored event.
ALLOWED_API = {
    "append", "append_many", "find_idempotent", "read_stream", "stream_version", "read_all", "head", "count",
    # set-up and maintenance (the EventStore protocol), the SQL stores' shutdown and URL
    "create_schema", "compact", "dispose", "url",
    # the SQL stores' bulk start of new streams (an append only: the historical import)
    "append_new_streams",
}


def test_the_store_offers_no_way_to_change_or_remove_events(store: EventStore) -> None:
    public = {name for name in dir(store) if not name.startswith("_")}
    assert public <= ALLOWED_API


def test_recorded_events_are_frozen(store: EventStore) -> None:
    sid = stream()
    store.append(sid, [new_event()], expected_version=NO_STREAM)
    (recorded,) = store.read_stream(sid)
    with pytest.raises(AttributeError):  # a NamedTuple: no field can be set
        recorded.data = {"n": 2}  # type: ignore[misc]


def test_changing_what_was_read_or_appended_does_not_change_the_store(store: EventStore) -> None:
    sid = stream()
    data = {"nested": {"n": 1}}
    store.append(sid, [new_event(data=data)], expected_version=NO_STREAM)
    data["nested"]["n"] = 99
    store.read_stream(sid)[0].data["nested"]["n"] = 98
    store.read_all()[0].metadata["actor"] = "mallory"

    (again,) = store.read_stream(sid)
    assert again.data == {"nested": {"n": 1}}
    assert again.metadata["actor"] == "student:alice"


# -- R2: racing writers at the same expected version ------------------------------------------

R2_ROUNDS = int(os.environ.get("CIM_R2_ROUNDS", "1000"))
R2_THREADS = 20
# Measured on a 2-core machine: ~40 s on SQLite, ~50 s on PostgreSQL when idle, ~90 s on PostgreSQL
# with other suites running; the client-side cost of each append (20 threads, one GIL) dominates.
R2_BUDGET_S = 180


@pytest.mark.slow
def test_r2_racing_writers_one_wins_each_round(store: EventStore) -> None:
    """R2: 1,000 rounds of 20 threads appending at the same expected version: exactly one wins
    each round, the rest get ConcurrencyConflict (409); no (stream, version) is stored twice."""
    sid = stream()
    barrier = threading.Barrier(R2_THREADS)
    started = time.monotonic()

    def attempt(expected: int) -> str:
        barrier.wait(timeout=30)
        try:
            store.append(sid, [new_event(data={"v": expected + 1})], expected_version=expected)
        except ConcurrencyConflict:
            return "conflict"
        return "ok"

    with ThreadPoolExecutor(R2_THREADS) as pool:
        for expected in range(R2_ROUNDS):
            outcomes = list(pool.map(attempt, [expected] * R2_THREADS))
            assert outcomes.count("ok") == 1, f"round {expected}: {outcomes.count('ok')} winners"
            assert outcomes.count("conflict") == R2_THREADS - 1
            assert time.monotonic() - started < R2_BUDGET_S, f"R2 over budget after {expected + 1} rounds"

    recorded = store.read_stream(sid)
    versions = [e.version for e in recorded]
    assert versions == list(range(1, R2_ROUNDS + 1))
    assert [e.data["v"] for e in recorded] == versions
    assert store.count() == R2_ROUNDS


# -- R3: readers tailing the log while writers append -----------------------------------------

R3_WRITERS = 8
R3_EVENTS_PER_WRITER = 1250
R3_READERS = 2
# Measured: ~9 s on SQLite and ~35 s on PostgreSQL when idle; up to ~70 s on a loaded machine.
R3_BUDGET_S = 180


def r3_write(url: str, writer: int, count: int) -> list[str]:
    """One writer process: `count` single-event appends to its own streams; returns the ids of
    the acknowledged events. Top level so multiprocessing can run it in a fresh interpreter."""
    store = open_event_store(url, pool_size=1)
    acknowledged = []
    try:
        for n in range(count):
            result = store.append(
                f"r3-{writer}-{n % 50}", [new_event(data={"w": writer, "n": n})], expected_version=ANY_VERSION
            )
            acknowledged.extend(result.event_ids)
    finally:
        store.dispose()
    return acknowledged


def tail(read: Callable[[int], list[RecordedEvent]], done: threading.Event, deadline: float,
         seen: list[RecordedEvent]) -> None:
    """Follow the log from position 0 as a projection would: read past the checkpoint, move it on."""
    checkpoint = 0
    while time.monotonic() < deadline:
        # Writers are done before `done` is set, so an empty read that began after it means the end.
        finished = done.is_set()
        batch = read(checkpoint)
        if batch:
            seen.extend(batch)
            checkpoint = batch[-1].position
        elif finished:
            return


def run_r3(store: EventStore, reader_factory: Callable[[], EventStore], write_all: Callable[[], list[str]]) -> None:
    total = R3_WRITERS * R3_EVENTS_PER_WRITER
    done = threading.Event()
    deadline = time.monotonic() + R3_BUDGET_S
    seen: list[list[RecordedEvent]] = [[] for _ in range(R3_READERS)]
    readers = []
    for index in range(R3_READERS):
        reader_store = reader_factory()
        reader = threading.Thread(
            target=tail,
            args=(lambda after, s=reader_store: s.read_all(after=after, limit=500), done, deadline, seen[index]),
            daemon=True,
        )
        reader.start()
        readers.append(reader)
    try:
        acknowledged = write_all()
    finally:
        done.set()
    for reader in readers:
        reader.join(timeout=max(1.0, deadline - time.monotonic()))
    assert time.monotonic() < deadline, "R3 ran over its time budget"

    assert len(acknowledged) == total
    stored = list(iter_all(store))
    assert len(stored) == total
    assert {e.event_id for e in stored} == set(acknowledged)
    for index, events in enumerate(seen):
        positions = [e.position for e in events]
        assert positions == sorted(set(positions)), f"reader {index} saw events out of order or twice"
        assert len(events) == total, f"reader {index} saw {len(events)}/{total}: skipped some"
        assert [e.event_id for e in events] == [e.event_id for e in stored]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_r3_tailing_readers_see_every_event_in_order(request: pytest.FixtureRequest, backend: str) -> None:
    """R3: 8 writer processes × 1,250 events while 2 readers tail read_all(position > checkpoint):
    each reader sees 10,000/10,000, none skipped, none out of order."""
    store: SqlEventStore = request.getfixturevalue(BACKEND_FIXTURES[backend])

    def write_all() -> list[str]:
        spawn = multiprocessing.get_context("spawn")
        with spawn.Pool(R3_WRITERS) as pool:
            parts = pool.starmap(r3_write, [(store.url, w, R3_EVENTS_PER_WRITER) for w in range(R3_WRITERS)])
        return [event_id for part in parts for event_id in part]

    readers: list[SqlEventStore] = []

    def reader_factory() -> EventStore:
        reader = open_event_store(store.url, pool_size=1)
        readers.append(reader)
        return reader

    try:
        run_r3(store, reader_factory, write_all)
    finally:
        for reader in readers:
            reader.dispose()


def test_r3_memory_store_tailing_readers_see_every_event(memory_store: InMemoryEventStore) -> None:
    """R3 on the in-memory store (threads: it lives in one process)."""

    def write_one(writer: int) -> list[str]:
        ids = []
        for n in range(R3_EVENTS_PER_WRITER):
            result = memory_store.append(f"r3-{writer}", [new_event(data={"n": n})], expected_version=ANY_VERSION)
            ids.extend(result.event_ids)
        return ids

    def write_all() -> list[str]:
        with ThreadPoolExecutor(R3_WRITERS) as pool:
            return [i for part in pool.map(write_one, range(R3_WRITERS)) for i in part]

    run_r3(memory_store, lambda: memory_store, write_all)


# -- a double-clicked form ------------------------------------------------------------------


def test_concurrent_retries_with_one_key_store_one_event_and_all_get_its_result(store: EventStore) -> None:
    """Ten copies of one request (same key, same fingerprint) racing: one event stored, and every
    copy answered with the first result, none with a conflict."""
    sid = stream()
    copies = 10
    barrier = threading.Barrier(copies)

    def send(_: int) -> Any:
        barrier.wait(timeout=30)
        try:
            return store.append(sid, [new_event()], expected_version=NO_STREAM, idempotency_key="double-click",
                                request_hash="h" * 64, result={"ok": True})
        except ConcurrencyConflict as exc:
            return exc

    with ThreadPoolExecutor(copies) as pool:
        answers = list(pool.map(send, range(copies)))

    assert store.count() == 1
    conflicts = [a for a in answers if isinstance(a, ConcurrencyConflict)]
    assert not conflicts, f"{len(conflicts)}/{copies} retries of one request got a conflict"
    assert len({a.event_ids for a in answers}) == 1
    assert sum(not a.replayed for a in answers) == 1
