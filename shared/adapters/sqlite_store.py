"""The event store on SQLite: one file in WAL mode with synchronous=FULL.

Readers never skip an event because SQLite lets one transaction write at a time (BEGIN IMMEDIATE)
and rowids are assigned in commit order. This process's writers queue on a lock (shared with the
key vault on the same file) and write through one connection held for the life of the store.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from shared.adapters.sql import compact_sqlite, make_engine, write_lock_for
from shared.adapters.sql_store import EVENT_COLUMNS, SqlEventStore, Statements, as_sqlalchemy_error, metadata
from shared.clock import Clock


class SqliteStatements(Statements):
    def __init__(self) -> None:
        super().__init__("?")  # sqlite3's paramstyle
        # SQLite numbers a single row itself (position is its rowid): one statement fewer.
        self.insert_unnumbered_event = (
            f"INSERT INTO events ({EVENT_COLUMNS.removeprefix('position, ')}) VALUES ({', '.join(['?'] * 9)})"
        )


_STATEMENTS = SqliteStatements()


class SqliteEventStore(SqlEventStore):
    """SqlEventStore on a SQLite file (or an in-memory/URI database)."""

    _statements: SqliteStatements

    def __init__(self, url: str, clock: Clock | None = None, *, pool_size: int = 10) -> None:
        super().__init__(url, clock)
        # Writers BEGIN IMMEDIATE; reads go through a plain engine of their own, so they never
        # take the write lock.
        self._writer = make_engine(url, immediate=True, pool_size=pool_size)
        self._reader = make_engine(url, pool_size=pool_size)
        self._statements = _STATEMENTS
        # SQLite lets one transaction write at a time, and threads that collide on BEGIN
        # IMMEDIATE wait in its busy handler, which sleeps (up to 100 ms a try) instead of
        # queueing: with 8 threads one writer starved for seconds. This process's writers queue
        # on a lock instead (shared with the key vault on the same file); other processes still
        # meet busy_timeout.
        self._write_lock = write_lock_for(url)
        if isinstance(self._write_lock, contextlib.nullcontext):
            self._write_lock = threading.Lock()  # an in-memory or URI database: this store's own
        # The one connection this process writes through, held out of the pool (see
        # _write_transaction); with the pid that opened it.
        self._sqlite_writer: tuple[int, Any] | None = None
        self._inherited: list[Any] = []  # a forked child's copies of its parent's (never closed)

    # -- set-up and maintenance ---------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the tables if they are missing (idempotent; the writer's BEGIN IMMEDIATE
        serialises processes that start at once)."""
        with self._writer.begin() as conn:
            metadata.create_all(conn)

    def compact(self, *, vacuum: bool = False) -> None:
        """The WAL checkpointed into the file and truncated (with `vacuum`, the file rebuilt
        first), under this process's write lock."""
        with self._write_lock:
            compact_sqlite(self._reader, vacuum=vacuum)

    def dispose(self) -> None:
        with self._write_lock:
            held, self._sqlite_writer = self._sqlite_writer, None
            if held is not None and held[0] == os.getpid():
                held[1].close()
        self._writer.dispose()
        self._reader.dispose()

    # -- writing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[tuple[Any, Any]]:
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
                    raise as_sqlalchemy_error(exc, dbapi_error) from exc
            conn: Any = held[1].driver_connection
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield conn, cursor
            except dbapi_error as exc:
                raise as_sqlalchemy_error(exc, dbapi_error) from exc
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
        self._reader.dispose(close=False)

    def _insert_rows(self, cursor: Any, rows: list[tuple[Any, ...]]) -> list[int]:
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
