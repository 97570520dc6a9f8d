"""What the SQLite and PostgreSQL event stores share: the tables, the events' JSON, the append
contract's retries and idempotency look-ups, and the reads.

Guarantees: events are only ever inserted; UNIQUE(stream_id, version) enforces optimistic
concurrency; idempotency keys are claimed in the same transaction as the events; and readers
never skip an event (how each database ensures that: sqlite_store.py, postgres_store.py).

The tables are declared here with SQLAlchemy Core (DDL, the engine and its pool); the statements
on the hot paths are SQL text run on the pooled DBAPI connection (see Statements for why).
`shared.adapters.stores.open_event_store(url)` picks the store for a URL.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa

from shared.clock import Clock, SystemClock
from shared.errors import ConcurrencyConflict, IdempotencyKeyReused, StorageUnavailable
from shared.events import NewEvent, RecordedEvent
from shared.store import MAX_IDEMPOTENCY_KEY, AppendResult

metadata = sa.MetaData()

position_seq = sa.Sequence("events_position_seq", metadata=metadata)

events_table = sa.Table(
    "events",
    metadata,
    sa.Column(
        "position",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        position_seq,
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.String(40), nullable=False),
    sa.Column("recorded_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
)

idempotency_table = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(MAX_IDEMPOTENCY_KEY), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.String(40), nullable=False),
)


def dumps(value: Any) -> str:
    """Event JSON, written so that orjson reads back exactly what was given: orjson itself
    refuses integers beyond 64 bits, and NaN and the infinities (which it would write as null)
    are refused here. Event data comes from validated schemas, so a refusal is a bug upstream.
    orjson writes a non-finite float as `null`, so only JSON with a `null` in it can hide one:
    the walk (~10 us for an event's data) runs for those only."""
    encoded = orjson.dumps(value)
    if b"null" in encoded:
        _refuse_non_finite(value)
    return encoded.decode()


def _refuse_non_finite(value: Any) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("event JSON cannot hold NaN or infinity")
    elif isinstance(value, dict):
        for item in value.values():
            _refuse_non_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_non_finite(item)


_loads = orjson.loads


_fromiso = datetime.fromisoformat
_new_event = tuple.__new__


def row_to_event(row: Sequence[Any]) -> RecordedEvent:
    # tuple.__new__ with the fields in declaration order: RecordedEvent(...) without the keyword
    # handling of its generated __new__, once per event read.
    return _new_event(RecordedEvent, (
        row[0], row[1], row[2], row[3], row[4], row[5],
        _loads(row[6]), _loads(row[7]), _fromiso(row[8]), _fromiso(row[9]),
    ))


EVENT_COLUMNS = (
    "position, event_id, stream_id, version, type, schema_version, data, metadata, occurred_at, recorded_at"
)


class Statements:
    """The statements both stores run, as SQL text in one driver's parameter style `p`. They run
    on the pooled DBAPI connection because building a Core select() per call and executing it
    through SQLAlchemy cost ~50-100 us of Python per statement, more than SQLite's fsync'd commit
    (bench/RESULTS.md). Each store adds its own (subclasses in its module)."""

    def __init__(self, p: str) -> None:
        self.stream_version = f"SELECT coalesce(max(version), 0) FROM events WHERE stream_id = {p}"
        self.head = "SELECT coalesce(max(position), 0) FROM events"
        self.count = "SELECT count(*) FROM events"
        self.insert_event = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({', '.join([p] * 10)})"
        self.insert_key = (
            f"INSERT INTO idempotency_keys (key, request_hash, record, recorded_at) VALUES ({p}, {p}, {p}, {p})"
        )
        self.find_key = f"SELECT request_hash, record FROM idempotency_keys WHERE key = {p}"
        self.read_stream = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = {p} AND version > {p} ORDER BY version"
        )
        self.read_all = f"SELECT {EVENT_COLUMNS} FROM events WHERE position > {p} ORDER BY position LIMIT {p}"


def prepare(events: Sequence[NewEvent], idempotency_key: str | None) -> list[tuple[Any, ...]]:
    """Each event's columns but its stream, version and recorded time, serialised."""
    return [
        (e.event_id, e.type, e.schema_version, dumps(e.data),
         dumps({**e.metadata, "idempotency_key": idempotency_key}), e.occurred_at.isoformat())
        for e in events
    ]


def as_sqlalchemy_error(exc: Exception, dbapi_error: type[Exception]) -> sa.exc.StatementError:
    """A driver's error as SQLAlchemy's (IntegrityError, OperationalError, ...: all DBAPIError),
    which the store's callers catch whichever way the statement was run."""
    return sa.exc.DBAPIError.instance(None, None, exc, dbapi_error)


@contextlib.contextmanager
def driver_connection(engine: sa.Engine, *, autocommit: bool = False) -> Iterator[Any]:
    """A DBAPI connection from the engine's pool. Driver errors come out as SQLAlchemy's
    (IntegrityError, OperationalError, ...: all DBAPIError). The pool rolls back whatever is left
    uncommitted when it takes the connection back. The store's PostgreSQL engine has no
    pre-ping, so a connection an error shows broken (a restarted server) is dropped with the
    rest of the pool, as SQLAlchemy's Connection does: the call fails, the next one reconnects.

    `autocommit` (psycopg only) runs each statement as its own transaction: no BEGIN before it
    and no ROLLBACK when the pool takes it back, two round trips fewer for a one-statement read
    or append. The connection goes back to the pool in transaction mode (or, if it cannot be
    switched back, is dropped): the pool's other users count on that."""
    dbapi_error = engine.dialect.loaded_dbapi.Error
    try:
        pooled = engine.raw_connection()
    except dbapi_error as exc:
        raise as_sqlalchemy_error(exc, dbapi_error) from exc
    driver: Any = pooled.driver_connection
    try:
        if autocommit:
            driver.autocommit = True
        yield driver
    except dbapi_error as exc:
        if engine.dialect.is_disconnect(exc, pooled.dbapi_connection, None):
            pooled.invalidate()
            engine.dispose()
        raise as_sqlalchemy_error(exc, dbapi_error) from exc
    finally:
        if autocommit:
            try:
                driver.autocommit = False
            except Exception:  # a broken connection: never back to the pool in autocommit
                pooled.invalidate()
        pooled.close()


class SqlEventStore(abc.ABC):
    """The event store on one SQL database: what SqliteEventStore and PostgresEventStore share.
    One instance per process; safe to share between threads. Build one with
    `shared.adapters.stores.open_event_store(url)`.

    A subclass provides its engines (`_writer` for transactions, `_reader` for reads), its
    `Statements`, the write transaction, how rows get their positions, and its set-up and
    maintenance."""

    #: Reads run in autocommit (psycopg: no BEGIN before, no ROLLBACK after a one-statement read).
    _read_autocommit: ClassVar[bool] = False

    _writer: sa.Engine
    _reader: sa.Engine
    _statements: Statements

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.url = url
        self._clock = clock or SystemClock()

    # -- set-up and maintenance ---------------------------------------------------------------
    @abc.abstractmethod
    def create_schema(self) -> None:
        """Create the tables if they are missing (idempotent, safe when several processes start)."""

    @abc.abstractmethod
    def compact(self, *, vacuum: bool = False) -> None:
        """See shared.store.EventStore.compact."""

    @abc.abstractmethod
    def dispose(self) -> None:
        """Close every connection this store holds."""

    # -- what each database does its own way -------------------------------------------------
    @abc.abstractmethod
    def _write_transaction(self) -> contextlib.AbstractContextManager[tuple[Any, Any]]:
        """One transaction, as (connection, cursor); the caller's commit() ends it, and whatever
        it leaves uncommitted (an error, a refused version) is rolled back."""

    @abc.abstractmethod
    def _insert_rows(self, cursor: Any, rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert rows (every column but the position) inside the transaction, numbering them so
        that no reader skips one; their positions in row order."""

    # -- writing ----------------------------------------------------------------------------
    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        if not events:
            raise ValueError("append needs at least one event")
        if idempotency_key is not None:
            stored = self.find_idempotent(idempotency_key, request_hash)
            if stored is not None:
                return stored
        attempts = 3 if expected_version is None else 1
        for attempt in range(attempts):
            try:
                return self._append_once(
                    stream_id, events, expected_version, idempotency_key, request_hash, result
                )
            except ConcurrencyConflict:
                # A copy of this very request (same key) may have committed between our first
                # look-up and our version check: then the answer is its result, not a 409.
                if idempotency_key is not None:
                    stored = self.find_idempotent(idempotency_key, request_hash)
                    if stored is not None:
                        return stored
                raise
            except sa.exc.IntegrityError:
                # Another writer took the key or the version between our read and our insert.
                if idempotency_key is not None:
                    stored = self.find_idempotent(idempotency_key, request_hash)
                    if stored is not None:
                        return stored
                actual = self.stream_version(stream_id)
                if expected_version is not None or attempt == attempts - 1:
                    raise ConcurrencyConflict(stream_id, expected_version, actual) from None
            except sa.exc.DBAPIError as exc:
                raise StorageUnavailable(f"the event store could not record the write: {brief(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def append_many(self, batches: Sequence[tuple[str, Sequence[NewEvent]]]) -> list[AppendResult]:
        if any(not events for _, events in batches):
            raise ValueError("append needs at least one event")
        if not batches:
            return []
        for attempt in range(3):
            try:
                return self._append_many_once(batches)
            except sa.exc.IntegrityError:
                # A concurrent writer took a version of one of these streams first: read again.
                if attempt == 2:
                    raise StorageUnavailable("the event store could not record the write: conflicting writes") from None
            except sa.exc.DBAPIError as exc:
                raise StorageUnavailable(f"the event store could not record the write: {brief(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _append_many_once(self, batches: Sequence[tuple[str, Sequence[NewEvent]]]) -> list[AppendResult]:
        now = self._clock.now().isoformat()
        prepared = [(stream_id, events, prepare(events, None)) for stream_id, events in batches]
        with self._write_transaction() as (conn, cursor):
            outcomes = [
                self._insert_stream(cursor, stream_id, events, rows, self._version(cursor, stream_id), now, {})
                for stream_id, events, rows in prepared
            ]
            conn.commit()
        return outcomes

    def append_new_streams(self, batches: Sequence[tuple[str, Sequence[NewEvent]]]) -> int:
        """Start each stream (its events at versions 1, 2, ...), all in ONE transaction and ONE
        insert (one append lock and one draw of positions on PostgreSQL, COPY for many rows): for
        bulk imports of many small new streams, where append_many's per-stream version query and
        insert cost four round trips a stream. All or none: if any stream exists already (or an
        event id is taken), nothing is stored and ConcurrencyConflict names the first stream. No
        idempotency keys. Returns the number of events stored."""
        if any(not events for _, events in batches):
            raise ValueError("append needs at least one event")
        if not batches:
            return 0
        now = self._clock.now().isoformat()
        rows = [
            (event_id, stream_id, version, type_, schema_version, data, meta, occurred, now)
            for stream_id, events in batches
            for version, (event_id, type_, schema_version, data, meta, occurred) in enumerate(prepare(events, None), 1)
        ]
        try:
            with self._write_transaction() as (conn, cursor):
                self._insert_rows(cursor, rows)
                conn.commit()
        except sa.exc.IntegrityError:
            raise ConcurrencyConflict(batches[0][0], 0, self.stream_version(batches[0][0])) from None
        except sa.exc.DBAPIError as exc:
            raise StorageUnavailable(f"the event store could not record the write: {brief(exc)}") from exc
        return len(rows)

    def _append_once(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None,
        request_hash: str | None,
        result: Mapping[str, Any] | None,
    ) -> AppendResult:
        now = self._clock.now().isoformat()
        # Everything but the version is serialised before the write lock is taken, so the lock is
        # held for the queries and the inserts only (what other writers wait for).
        return self._append_prepared(
            stream_id, events, prepare(events, idempotency_key), expected_version, now, result,
            idempotency_key, request_hash,
        )

    def _append_prepared(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        prepared: list[tuple[Any, ...]],
        expected_version: int | None,
        now: str,
        result: Mapping[str, Any] | None,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> AppendResult:
        """The version check, the rows and the idempotency key in one write transaction (a store
        may take a shorter way for some appends: PostgresEventStore)."""
        with self._write_transaction() as (conn, cursor):
            current = self._version(cursor, stream_id)
            if expected_version is not None and current != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version, current)
            outcome = self._insert_stream(cursor, stream_id, events, prepared, current, now, dict(result or {}))
            if idempotency_key is not None:
                cursor.execute(
                    self._statements.insert_key, (idempotency_key, request_hash, dumps(outcome.as_record()), now)
                )
            conn.commit()
        return outcome

    def _version(self, cursor: Any, stream_id: str) -> int:
        cursor.execute(self._statements.stream_version, (stream_id,))
        return int(cursor.fetchone()[0])

    def _insert_stream(
        self, cursor: Any, stream_id: str, events: Sequence[NewEvent], prepared: list[tuple[Any, ...]],
        current: int, now: str, result: dict[str, Any],
    ) -> AppendResult:
        """Insert one stream's prepared events after version `current`, inside the transaction."""
        rows = [
            (event_id, stream_id, current + offset, type_, schema_version, data, meta, occurred, now)
            for offset, (event_id, type_, schema_version, data, meta, occurred) in enumerate(prepared, start=1)
        ]
        positions = self._insert_rows(cursor, rows)
        return AppendResult(
            stream_id=stream_id,
            first_version=current + 1,
            last_version=current + len(events),
            positions=tuple(positions),
            event_ids=tuple(e.event_id for e in events),
            result=result,
        )

    def find_idempotent(self, idempotency_key: str, request_hash: str | None = None) -> AppendResult | None:
        rows = self._read(self._statements.find_key, (idempotency_key,))
        if not rows:
            return None
        stored_hash, record = rows[0]
        if stored_hash is not None and request_hash is not None and stored_hash != request_hash:
            raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
        return AppendResult.from_record(json.loads(record), replayed=True)

    # -- reading ----------------------------------------------------------------------------
    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        rows = self._read(self._statements.read_stream, (stream_id, after_version))
        return [row_to_event(row) for row in rows]

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        rows = self._read(self._statements.read_all, (after, limit))
        return [row_to_event(row) for row in rows]

    def stream_version(self, stream_id: str) -> int:
        return int(self._scalar(self._statements.stream_version, (stream_id,)))

    def head(self) -> int:
        return int(self._scalar(self._statements.head))

    def count(self) -> int:
        return int(self._scalar(self._statements.count))

    def _scalar(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        """The one value of an aggregate query; a database error is StorageUnavailable."""
        return self._read(statement, params)[0][0]

    def _read(self, statement: str, params: tuple[Any, ...]) -> list[Sequence[Any]]:
        """The rows of one query; a database error is StorageUnavailable."""
        try:
            with (
                driver_connection(self._reader, autocommit=self._read_autocommit) as conn,
                contextlib.closing(conn.cursor()) as cursor,
            ):
                cursor.execute(statement, params)
                rows: list[Sequence[Any]] = cursor.fetchall()
                return rows
        except sa.exc.DBAPIError as exc:
            raise StorageUnavailable(f"the event store could not be read: {brief(exc)}") from exc


def brief(exc: BaseException) -> str:
    """The driver's message without SQL or parameters (which may hold personal data)."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0][:200]
