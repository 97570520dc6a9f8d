"""The SQL event store (SQLAlchemy Core) on SQLite or PostgreSQL, chosen by URL.

Guarantees: events are only ever inserted; UNIQUE(stream_id, version) enforces optimistic
concurrency; idempotency keys are claimed in the same transaction as the events; and readers
never skip an event: SQLite serialises writers, and on PostgreSQL appends draw their positions
under a transaction-scoped advisory lock so they commit in position order.

The tables are declared here with SQLAlchemy Core (DDL, the engine and its pool); the statements
on the hot paths are SQL text run on the pooled DBAPI connection (see _Statements for why).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from shared.adapters.sql import compact_sqlite, is_sqlite, make_engine, write_lock_for
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

# Appends on PostgreSQL take this transaction-scoped advisory lock just before they draw positions
# and hold it to commit, so positions commit in order and a reader never skips one.
_APPEND_LOCK_KEY = 0x43494D  # "CIM"
_SCHEMA_LOCK_KEY = 0x43494D01


def _dumps(value: Any) -> str:
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


def _row_to_event(row: Sequence[Any]) -> RecordedEvent:
    # tuple.__new__ with the fields in declaration order: RecordedEvent(...) without the keyword
    # handling of its generated __new__, once per event read.
    return _new_event(RecordedEvent, (
        row[0], row[1], row[2], row[3], row[4], row[5],
        _loads(row[6]), _loads(row[7]), _fromiso(row[8]), _fromiso(row[9]),
    ))


#: From this many events in one stream's append, PostgreSQL gets them by COPY (fewer: INSERTs).
_COPY_MIN_EVENTS = 16

_EVENT_COLUMNS = (
    "position, event_id, stream_id, version, type, schema_version, data, metadata, occurred_at, recorded_at"
)


class _Statements:
    """The store's statements as SQL text in one driver's parameter style. They run on the pooled
    DBAPI connection because building a Core select() per call and executing it through
    SQLAlchemy cost ~50-100 us of Python per statement, more than SQLite's fsync'd commit
    (bench/RESULTS.md); the transactions and the statements are the same as they were."""

    def __init__(self, p: str) -> None:
        self.stream_version = f"SELECT coalesce(max(version), 0) FROM events WHERE stream_id = {p}"
        self.head = "SELECT coalesce(max(position), 0) FROM events"
        self.count = "SELECT count(*) FROM events"
        self.insert_event = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({', '.join([p] * 10)})"
        # SQLite numbers a single row itself (position is its rowid): one statement fewer.
        self.insert_unnumbered_event = (
            f"INSERT INTO events ({_EVENT_COLUMNS.removeprefix('position, ')}) VALUES ({', '.join([p] * 9)})"
        )
        self.append_lock = f"SELECT pg_advisory_xact_lock({_APPEND_LOCK_KEY})"
        self.copy_events = f"COPY events ({_EVENT_COLUMNS}) FROM STDIN"
        self.next_positions = f"SELECT nextval('events_position_seq') FROM generate_series(1, {p})"
        # PostgreSQL's one-statement append (SqlEventStore._append_in_one_statement). The lock's
        # CTE is the outermost scan of the join and nextval() is evaluated per joined row, in
        # the order unnest gives them: every position is drawn under the lock, in version order.
        # The parameters: stream id twice, recorded time, the six per-event columns as arrays,
        # and the expected version twice (NULL: any).
        locked = (
            f"WITH append_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock({_APPEND_LOCK_KEY})),"
            f" current AS MATERIALIZED (SELECT coalesce(max(version), 0) AS version FROM events"
            f" WHERE stream_id = {p})"
        )
        insert = (
            f"INSERT INTO events ({_EVENT_COLUMNS})"
            f" SELECT nextval('events_position_seq'), e.event_id, {p}, current.version + e.n, e.type,"
            f" e.schema_version, e.data, e.metadata, e.occurred_at, {p}"
            f" FROM append_lock, current, unnest({p}::text[], {p}::text[], {p}::integer[], {p}::text[],"
            f" {p}::text[], {p}::text[]) WITH ORDINALITY"
            f" AS e(event_id, type, schema_version, data, metadata, occurred_at, n)"
            f" WHERE {p}::integer IS NULL OR current.version = {p}::integer"
            f" RETURNING position, version, event_id"
        )
        self.append_statement = f"{locked} {insert}"
        # The same with its idempotency key claimed in the same statement (so in the same
        # transaction), the key's record (AppendResult.as_record) built from the inserted rows;
        # no rows inserted, no key. More parameters: key, request hash, stream id, the result's
        # JSON, recorded time.
        self.append_keyed_statement = (
            f"{locked}, inserted AS ({insert}),"
            f" claimed AS (INSERT INTO idempotency_keys (key, request_hash, record, recorded_at)"
            f" SELECT {p}, {p}, json_build_object('stream_id', {p}::text, 'first_version', min(version),"
            f" 'last_version', max(version), 'positions', json_agg(position ORDER BY version),"
            f" 'event_ids', json_agg(event_id ORDER BY version), 'result', {p}::json)::text, {p}"
            f" FROM inserted HAVING count(*) > 0)"
            f" SELECT position, version FROM inserted"
        )
        self.insert_key = (
            f"INSERT INTO idempotency_keys (key, request_hash, record, recorded_at) VALUES ({p}, {p}, {p}, {p})"
        )
        self.find_key = f"SELECT request_hash, record FROM idempotency_keys WHERE key = {p}"
        self.read_stream = (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_id = {p} AND version > {p} ORDER BY version"
        )
        self.read_all = f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > {p} ORDER BY position LIMIT {p}"


_SQLITE = _Statements("?")  # sqlite3's paramstyle
_POSTGRES = _Statements("%s")  # psycopg's


def _prepare(events: Sequence[NewEvent], idempotency_key: str | None) -> list[tuple[Any, ...]]:
    """Each event's columns but its stream, version and recorded time, serialised."""
    return [
        (e.event_id, e.type, e.schema_version, _dumps(e.data),
         _dumps({**e.metadata, "idempotency_key": idempotency_key}), e.occurred_at.isoformat())
        for e in events
    ]


def _as_sqlalchemy_error(exc: Exception, dbapi_error: type[Exception]) -> sa.exc.StatementError:
    """A driver's error as SQLAlchemy's (IntegrityError, OperationalError, ...: all DBAPIError),
    which the store's callers catch whichever way the statement was run."""
    return sa.exc.DBAPIError.instance(None, None, exc, dbapi_error)


@contextlib.contextmanager
def _driver_connection(engine: sa.Engine, *, autocommit: bool = False) -> Iterator[Any]:
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
        raise _as_sqlalchemy_error(exc, dbapi_error) from exc
    driver: Any = pooled.driver_connection
    try:
        if autocommit:
            driver.autocommit = True
        yield driver
    except dbapi_error as exc:
        if engine.dialect.is_disconnect(exc, pooled.dbapi_connection, None):
            pooled.invalidate()
            engine.dispose()
        raise _as_sqlalchemy_error(exc, dbapi_error) from exc
    finally:
        if autocommit:
            try:
                driver.autocommit = False
            except Exception:  # a broken connection: never back to the pool in autocommit
                pooled.invalidate()
        pooled.close()


class SqlEventStore:
    """Event store on SQLAlchemy Core. One instance per process; safe to share between threads."""

    def __init__(self, url: str, clock: Clock | None = None, *, pool_size: int = 10) -> None:
        self.url = url
        self._clock = clock or SystemClock()
        self._sqlite = is_sqlite(url)
        # No pre-ping: it is one more round trip per append and per read on PostgreSQL. A
        # connection broken by a server restart fails one call with StorageUnavailable (503,
        # never a false success) and is replaced (see _driver_connection).
        self._writer = make_engine(url, immediate=True, pool_size=pool_size, pre_ping=False)
        self._reader = make_engine(url, pool_size=pool_size) if self._sqlite else self._writer
        self._statements = _SQLITE if self._sqlite else _POSTGRES
        # SQLite lets one transaction write at a time, and threads that collide on BEGIN
        # IMMEDIATE wait in its busy handler, which sleeps (up to 100 ms a try) instead of
        # queueing: with 8 threads one writer starved for seconds. This process's writers queue
        # on a lock instead (shared with the key vault on the same file); other processes still
        # meet busy_timeout.
        self._write_lock = write_lock_for(url)
        if self._sqlite and isinstance(self._write_lock, contextlib.nullcontext):
            self._write_lock = threading.Lock()  # an in-memory or URI database: this store's own
        # SQLite: the one connection this process writes through, held out of the pool (see
        # _sqlite_transaction); with the pid that opened it.
        self._sqlite_writer: tuple[int, Any] | None = None
        self._inherited: list[Any] = []  # a forked child's copies of its parent's (never closed)

    # -- set-up -----------------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the tables if they are missing (idempotent, and safe when several processes
        start at once: on PostgreSQL DDL is transactional, so under this lock the second finds
        the tables made)."""
        with self._writer.begin() as conn:
            if not self._sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
            metadata.create_all(conn)

    def compact(self, *, vacuum: bool = False) -> None:
        """SQLite: the WAL checkpointed into the file and truncated (with `vacuum`, the file
        rebuilt first), under this process's write lock. PostgreSQL: nothing to do."""
        with self._write_lock:
            compact_sqlite(self._reader, vacuum=vacuum)

    def dispose(self) -> None:
        with self._write_lock:
            held, self._sqlite_writer = self._sqlite_writer, None
            if held is not None and held[0] == os.getpid():
                held[1].close()
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()

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
                raise StorageUnavailable(f"the event store could not record the write: {_brief(exc)}") from exc
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
                raise StorageUnavailable(f"the event store could not record the write: {_brief(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _append_many_once(self, batches: Sequence[tuple[str, Sequence[NewEvent]]]) -> list[AppendResult]:
        now = self._clock.now().isoformat()
        prepared = [(stream_id, events, _prepare(events, None)) for stream_id, events in batches]
        with self._write_transaction() as (conn, cursor):
            outcomes = [
                self._insert_stream(cursor, stream_id, events, rows, self._version(cursor, stream_id), now, {})
                for stream_id, events, rows in prepared
            ]
            conn.commit()
        return outcomes

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
        prepared = _prepare(events, idempotency_key)
        if not self._sqlite and len(events) < _COPY_MIN_EVENTS:
            return self._append_in_one_statement(
                stream_id, events, prepared, expected_version, now, result, idempotency_key, request_hash
            )
        with self._write_transaction() as (conn, cursor):
            current = self._version(cursor, stream_id)
            if expected_version is not None and current != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version, current)
            outcome = self._insert_stream(cursor, stream_id, events, prepared, current, now, dict(result or {}))
            if idempotency_key is not None:
                cursor.execute(
                    self._statements.insert_key, (idempotency_key, request_hash, _dumps(outcome.as_record()), now)
                )
            conn.commit()
        return outcome

    def _append_in_one_statement(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        prepared: list[tuple[Any, ...]],
        expected_version: int | None,
        now: str,
        result: Mapping[str, Any] | None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> AppendResult:
        """PostgreSQL, up to 15 events: the version check, the append lock, the positions, the
        rows and the idempotency key (if any) in one statement that is its own transaction
        (psycopg's autocommit) — one round trip where the transaction took six or seven (BEGIN,
        version, lock, positions, INSERT, key, COMMIT). The lock is taken before any position is
        drawn and held to the statement's commit, as in the transaction; a version or a key
        taken meanwhile fails its UNIQUE constraint, and the whole statement with it, as there."""
        columns = [list(column) for column in zip(*prepared, strict=True)]  # psycopg: a list is an array
        params: tuple[Any, ...] = (stream_id, stream_id, now, *columns, expected_version, expected_version)
        statement = self._statements.append_statement
        if idempotency_key is not None:
            statement = self._statements.append_keyed_statement
            params += (idempotency_key, request_hash, stream_id, _dumps(dict(result or {})), now)
        with _driver_connection(self._writer, autocommit=True) as conn, contextlib.closing(conn.cursor()) as cursor:
            cursor.execute(statement, params)
            numbered = sorted(cursor.fetchall(), key=lambda row: row[1])
        if not numbered:  # the version check refused it: nothing was written
            raise ConcurrencyConflict(stream_id, expected_version, self.stream_version(stream_id))
        first = numbered[0][1]
        return AppendResult(
            stream_id=stream_id,
            first_version=first,
            last_version=first + len(events) - 1,
            positions=tuple(int(row[0]) for row in numbered),
            event_ids=tuple(e.event_id for e in events),
            result=dict(result or {}),
        )

    def _write_transaction(self) -> contextlib.AbstractContextManager[tuple[Any, Any]]:
        """One transaction, as (connection, cursor); the caller's commit() ends it, and whatever
        it leaves uncommitted (an error, a refused version) is rolled back."""
        return self._sqlite_transaction() if self._sqlite else self._postgres_transaction()

    @contextlib.contextmanager
    def _postgres_transaction(self) -> Iterator[tuple[Any, Any]]:
        """psycopg's implicit BEGIN; on an error the connection goes back to the pool
        uncommitted and the pool rolls it back."""
        with _driver_connection(self._writer) as conn, contextlib.closing(conn.cursor()) as cursor:
            yield conn, cursor

    @contextlib.contextmanager
    def _sqlite_transaction(self) -> Iterator[tuple[Any, Any]]:
        """SQLite's write transaction: BEGIN IMMEDIATE (its connections are in autocommit mode,
        see sql.py) on one connection held for the life of the store.

        This process's writers already queue on the write lock, so one connection serves them
        all; taking it from the pool and handing it back around every append (the pool resets it
        with a ROLLBACK) cost more CPU than the transaction's own statements (bench/RESULTS.md,
        the 8-process cell). Whatever the caller leaves uncommitted — an error, a refused
        version — is rolled back here, still under the lock. The connection was opened through
        the engine (its pragmas: WAL, synchronous=FULL, busy_timeout); a forked child opens its
        own and leaves its parent's alone."""
        dbapi_error = self._writer.dialect.loaded_dbapi.Error
        with self._write_lock:
            held = self._sqlite_writer
            if held is None or held[0] != os.getpid():
                if held is not None:
                    self._leave_parent_connections(held[1])
                try:
                    held = self._sqlite_writer = (os.getpid(), self._writer.raw_connection())
                except dbapi_error as exc:
                    raise _as_sqlalchemy_error(exc, dbapi_error) from exc
            conn: Any = held[1].driver_connection
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield conn, cursor
            except dbapi_error as exc:
                raise _as_sqlalchemy_error(exc, dbapi_error) from exc
            finally:
                cursor.close()
                if conn.in_transaction:
                    conn.rollback()

    def _leave_parent_connections(self, parents_writer: Any) -> None:
        """In a process forked from the one that opened them: SQLite connections must not cross a
        fork, so the pools are dropped without closing what they hold (SQLAlchemy's advice for
        os.fork) and the parent's writing connection stays referenced, never finalised here."""
        self._inherited.append(parents_writer)
        self._writer.dispose(close=False)
        if self._reader is not self._writer:
            self._reader.dispose(close=False)

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
        positions = self._insert_sqlite(cursor, rows) if self._sqlite else self._insert_postgres(cursor, rows)
        return AppendResult(
            stream_id=stream_id,
            first_version=current + 1,
            last_version=current + len(events),
            positions=tuple(positions),
            event_ids=tuple(e.event_id for e in events),
            result=result,
        )

    def _insert_sqlite(self, cursor: Any, rows: list[tuple[Any, ...]]) -> list[int]:
        # SQLite serialises writers (BEGIN IMMEDIATE), so rowids are assigned in commit order.
        sql = self._statements
        if len(rows) == 1:
            cursor.execute(sql.insert_unnumbered_event, rows[0])
            return [cursor.lastrowid]
        cursor.execute(sql.head)
        start = cursor.fetchone()[0]
        positions = list(range(start + 1, start + 1 + len(rows)))
        cursor.executemany(sql.insert_event, [(p, *row) for p, row in zip(positions, rows, strict=True)])
        return positions

    def _insert_postgres(self, cursor: Any, rows: list[tuple[Any, ...]]) -> list[int]:
        # Sequence values are drawn in one order and may commit in another; under this lock
        # (taken as late as possible, released at commit) they commit in the order drawn. This
        # is the same price as the peer library's table lock; see bench/RESULTS.md.
        sql = self._statements
        cursor.execute(sql.append_lock)
        cursor.execute(sql.next_positions, (len(rows),))
        positions = sorted(row[0] for row in cursor.fetchall())
        numbered = [(p, *row) for p, row in zip(positions, rows, strict=True)]
        if len(numbered) == 1:
            cursor.execute(sql.insert_event, numbered[0])
        elif len(numbered) < _COPY_MIN_EVENTS:
            cursor.executemany(sql.insert_event, numbered)  # psycopg pipelines the rows
        else:
            # COPY: the same rows and constraints (a taken version or event id fails it as the
            # INSERTs would), in a fraction of the time the append lock is held for 100 INSERTs.
            with cursor.copy(sql.copy_events) as copy:
                for row in numbered:
                    copy.write_row(row)
        return positions

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
        return [_row_to_event(row) for row in rows]

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        rows = self._read(self._statements.read_all, (after, limit))
        return [_row_to_event(row) for row in rows]

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
        """The rows of one query; a database error is StorageUnavailable. On PostgreSQL the query
        runs in autocommit: one statement sees one snapshot either way (READ COMMITTED)."""
        try:
            with (
                _driver_connection(self._reader, autocommit=not self._sqlite) as conn,
                contextlib.closing(conn.cursor()) as cursor,
            ):
                cursor.execute(statement, params)
                rows: list[Sequence[Any]] = cursor.fetchall()
                return rows
        except sa.exc.DBAPIError as exc:
            raise StorageUnavailable(f"the event store could not be read: {_brief(exc)}") from exc


def _brief(exc: BaseException) -> str:
    """The driver's message without SQL or parameters (which may hold personal data)."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0][:200]
