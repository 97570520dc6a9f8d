"""SQLAlchemy engines set up for durability: SQLite in WAL with synchronous=FULL, PostgreSQL as is."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock_for(url: str) -> contextlib.AbstractContextManager[Any]:
    """The lock this process's writers to one SQLite database file queue on before BEGIN
    IMMEDIATE; the same lock for every engine on that file (the event store and the key vault
    share the intake database). Threads that collide on SQLite's write lock wait in its busy
    handler, which sleeps in steps of up to 100 ms instead of queueing: measured 100–300 ms
    stalls of a POST whose key-vault insert met an event append. Other processes still meet
    busy_timeout. PostgreSQL (and in-memory SQLite) need no lock: a no-op context."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return contextlib.nullcontext()
    key = str(Path(database).resolve())
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


def make_engine(
    url: str, *, immediate: bool = False, pool_size: int = 10, pre_ping: bool = False, durable: bool = True
) -> sa.Engine:
    """An engine for `url`. With `immediate`, SQLite transactions begin with BEGIN IMMEDIATE so
    writers queue on the write lock up front instead of failing to upgrade a read lock.

    PostgreSQL connections are not pre-pinged by default: a ping is a round trip on every
    checkout (six per POST and its projection, measured), and after a server restart the first
    operation on a pooled connection fails instead — SQLAlchemy then drops the whole pool, the
    request answers 503 (`shared.web.errors`; the adapters raise StorageUnavailable) and the
    next one reconnects; a worker's catch-up fails and the next wake-up or beat tick retries.

    `durable=False` is for read models only: commits are not flushed to disk one by one (SQLite:
    synchronous=NORMAL in WAL mode; PostgreSQL: synchronous_commit=off for this engine's
    sessions), so a crash of the machine (SQLite) or of the server (PostgreSQL) may take back the
    last few commits — rows and their checkpoint together, as they share each transaction — and
    the runner applies those events again. Never for an event store: there a commit is a promise
    to the caller.

    Every engine hides statement parameters from its error messages (`hide_parameters`): a
    refused row's values, personal data among them, would otherwise reach the logs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=pool_size,
            max_overflow=pool_size,
            hide_parameters=True,
        )
        _configure_sqlite(engine, immediate=immediate, durable=durable)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    connect_args = {} if durable or parsed.get_backend_name() != "postgresql" else {
        "options": "-c synchronous_commit=off"}
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping,
                            connect_args=connect_args, hide_parameters=True)


def autocommit(engine: sa.Engine) -> sa.Engine:
    """`engine`'s pool, each statement its own transaction: for plain reads on PostgreSQL, which
    then need no BEGIN before and no ROLLBACK after (one statement sees one snapshot either way
    under READ COMMITTED). psycopg switches the mode on the client; the pool switches it back
    when it takes a connection back."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _configure_sqlite(engine: sa.Engine, *, immediate: bool, durable: bool = True) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN, not pysqlite's implicit handling.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: NORMAL can lose acknowledged commits on power loss in WAL mode
        # (acceptable for a rebuildable read model only; see make_engine).
        cursor.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def compact_sqlite(engine: sa.Engine, *, vacuum: bool = False) -> None:
    """On SQLite, move the WAL into the main file and truncate it, so pages holding deleted or
    overwritten data do not linger in the -wal file (secure_delete zeroes them in the main file).
    With `vacuum`, first rebuild the whole file (VACUUM), so no stale byte survives anywhere in
    it, free pages included: for small files that hold names (the identity database), where a
    canary of an erased person was once found left over in the main file. A no-op on other
    databases."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        if vacuum:
            driver.execute("VACUUM")
        driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
