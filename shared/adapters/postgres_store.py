"""The event store on PostgreSQL (psycopg 3).

Readers never skip an event: appends draw their positions from a sequence under a
transaction-scoped advisory lock held to commit, so positions commit in the order drawn (the same
price as the peer library's table lock; bench/RESULTS.md). A short append (up to 15 events) is one
statement in autocommit — version check, lock, positions, rows and idempotency key in one round
trip; a longer one is a transaction whose rows go in by COPY.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from shared.adapters.sql import make_engine
from shared.adapters.sql_store import EVENT_COLUMNS, SqlEventStore, Statements, driver_connection, dumps, metadata
from shared.clock import Clock
from shared.errors import ConcurrencyConflict
from shared.events import NewEvent
from shared.store import AppendResult

# Appends take this transaction-scoped advisory lock just before they draw positions and hold it
# to commit, so positions commit in order and a reader never skips one.
APPEND_LOCK_KEY = 0x43494D  # "CIM"
_SCHEMA_LOCK_KEY = 0x43494D01

#: From this many events in one stream's append, they go in by COPY (fewer: INSERTs).
_COPY_MIN_EVENTS = 16


class PostgresStatements(Statements):
    def __init__(self) -> None:
        p = "%s"  # psycopg's paramstyle
        super().__init__(p)
        self.append_lock = f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})"
        self.copy_events = f"COPY events ({EVENT_COLUMNS}) FROM STDIN"
        self.next_positions = f"SELECT nextval('events_position_seq') FROM generate_series(1, {p})"
        # The one-statement append (PostgresEventStore._append_in_one_statement). The lock's
        # CTE is the outermost scan of the join and nextval() is evaluated per joined row, in
        # the order unnest gives them: every position is drawn under the lock, in version order.
        # The parameters: stream id twice, recorded time, the six per-event columns as arrays,
        # and the expected version twice (NULL: any).
        locked = (
            f"WITH append_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})),"
            f" current AS MATERIALIZED (SELECT coalesce(max(version), 0) AS version FROM events"
            f" WHERE stream_id = {p})"
        )
        insert = (
            f"INSERT INTO events ({EVENT_COLUMNS})"
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


_STATEMENTS = PostgresStatements()


class PostgresEventStore(SqlEventStore):
    """SqlEventStore on PostgreSQL: one engine (pool) for writes and reads."""

    # One statement sees one snapshot either way (READ COMMITTED): reads need no BEGIN/ROLLBACK.
    _read_autocommit = True
    _statements: PostgresStatements

    def __init__(self, url: str, clock: Clock | None = None, *, pool_size: int = 10) -> None:
        super().__init__(url, clock)
        # No pre-ping: it is one more round trip per append and per read. A connection broken
        # by a server restart fails one call with StorageUnavailable (503, never a false
        # success) and is replaced (see driver_connection).
        self._writer = self._reader = make_engine(url, immediate=True, pool_size=pool_size, pre_ping=False)
        self._statements = _STATEMENTS

    # -- set-up and maintenance ---------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the tables if they are missing (idempotent, and safe when several processes
        start at once: DDL is transactional, so under this lock the second finds the tables made)."""
        with self._writer.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
            metadata.create_all(conn)

    def compact(self, *, vacuum: bool = False) -> None:
        """Nothing to do: no side file holds overwritten pages (the server's own VACUUM reclaims
        dead rows)."""

    def dispose(self) -> None:
        self._writer.dispose()

    # -- writing ----------------------------------------------------------------------------
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
        if len(events) < _COPY_MIN_EVENTS:
            return self._append_in_one_statement(
                stream_id, events, prepared, expected_version, now, result, idempotency_key, request_hash
            )
        return super()._append_prepared(
            stream_id, events, prepared, expected_version, now, result, idempotency_key, request_hash
        )

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
        """Up to 15 events: the version check, the append lock, the positions, the rows and the
        idempotency key (if any) in one statement that is its own transaction (psycopg's
        autocommit) — one round trip where the transaction took six or seven (BEGIN, version,
        lock, positions, INSERT, key, COMMIT). The lock is taken before any position is drawn
        and held to the statement's commit, as in the transaction; a version or a key taken
        meanwhile fails its UNIQUE constraint, and the whole statement with it, as there."""
        columns = [list(column) for column in zip(*prepared, strict=True)]  # psycopg: a list is an array
        params: tuple[Any, ...] = (stream_id, stream_id, now, *columns, expected_version, expected_version)
        statement = self._statements.append_statement
        if idempotency_key is not None:
            statement = self._statements.append_keyed_statement
            params += (idempotency_key, request_hash, stream_id, dumps(dict(result or {})), now)
        with driver_connection(self._writer, autocommit=True) as conn, contextlib.closing(conn.cursor()) as cursor:
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

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[tuple[Any, Any]]:
        """psycopg's implicit BEGIN; on an error the connection goes back to the pool
        uncommitted and the pool rolls it back."""
        with driver_connection(self._writer) as conn, contextlib.closing(conn.cursor()) as cursor:
            yield conn, cursor

    def _insert_rows(self, cursor: Any, rows: list[tuple[Any, ...]]) -> list[int]:
        # Sequence values are drawn in one order and may commit in another; under this lock
        # (taken as late as possible, released at commit) they commit in the order drawn.
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
