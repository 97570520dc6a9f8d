"""Picks the event store for a database URL: SQLite or PostgreSQL (both SqlEventStore)."""

from __future__ import annotations

from shared.adapters.postgres_store import PostgresEventStore
from shared.adapters.sql import is_sqlite
from shared.adapters.sql_store import SqlEventStore
from shared.adapters.sqlite_store import SqliteEventStore
from shared.clock import Clock


def open_event_store(url: str, clock: Clock | None = None, *, pool_size: int = 10) -> SqlEventStore:
    """The event store on `url` (its tables are made by `create_schema()`, at start-up).
    Connects to nothing until first used."""
    if is_sqlite(url):
        return SqliteEventStore(url, clock, pool_size=pool_size)
    return PostgresEventStore(url, clock, pool_size=pool_size)
