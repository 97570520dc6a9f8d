"""The SQL event store (SQLAlchemy Core) on SQLite or PostgreSQL, chosen by URL.

Guarantees: events are only ever inserted; UNIQUE(stream_id, version) enforces optimistic
concurrency; idempotency keys are claimed in the same transaction as the events; and readers
never skip an event: SQLite serialises writers, and on PostgreSQL appends draw their positions
under a transaction-scoped advisory lock so they commit in position order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shared.adapters.sql import is_sqlite, make_engine
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

_COLUMNS = (
    events_table.c.position,
    events_table.c.event_id,
    events_table.c.stream_id,
    events_table.c.version,
    events_table.c.type,
    events_table.c.schema_version,
    events_table.c.data,
    events_table.c.metadata,
    events_table.c.occurred_at,
    events_table.c.recorded_at,
)

# Appends on PostgreSQL take this transaction-scoped advisory lock just before they draw positions
# and hold it to commit, so positions commit in order and a reader never skips one.
_APPEND_LOCK_KEY = 0x43494D  # "CIM"
_SCHEMA_LOCK_KEY = 0x43494D01


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _row_to_event(row: Sequence[Any]) -> RecordedEvent:
    return RecordedEvent(
        position=row[0],
        event_id=row[1],
        stream_id=row[2],
        version=row[3],
        type=row[4],
        schema_version=row[5],
        data=json.loads(row[6]),
        metadata=json.loads(row[7]),
        occurred_at=datetime.fromisoformat(row[8]),
        recorded_at=datetime.fromisoformat(row[9]),
    )


class SqlEventStore:
    """Event store on SQLAlchemy Core. One instance per process; safe to share between threads."""

    def __init__(self, url: str, clock: Clock | None = None, *, pool_size: int = 10) -> None:
        self.url = url
        self._clock = clock or SystemClock()
        self._sqlite = is_sqlite(url)
        self._writer = make_engine(url, immediate=True, pool_size=pool_size)
        self._reader = make_engine(url, pool_size=pool_size) if self._sqlite else self._writer
        self._insert_events = events_table.insert()

    # -- set-up -----------------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the tables if they are missing (idempotent, and safe when several processes
        start at once: on PostgreSQL DDL is transactional, so under this lock the second finds
        the tables made)."""
        with self._writer.begin() as conn:
            if not self._sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
            metadata.create_all(conn)

    def dispose(self) -> None:
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
        with self._writer.begin() as conn:
            current = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(events_table.c.version), 0)).where(
                    events_table.c.stream_id == stream_id
                )
            ).scalar_one()
            if expected_version is not None and current != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version, current)
            rows = []
            for offset, event in enumerate(events, start=1):
                meta = dict(event.metadata)
                meta["idempotency_key"] = idempotency_key
                rows.append(
                    {
                        "event_id": event.event_id,
                        "stream_id": stream_id,
                        "version": current + offset,
                        "type": event.type,
                        "schema_version": event.schema_version,
                        "data": _dumps(event.data),
                        "metadata": _dumps(meta),
                        "occurred_at": event.occurred_at.isoformat(),
                        "recorded_at": now,
                    }
                )
            if self._sqlite:
                positions = self._insert_sqlite(conn, rows)
            else:
                positions = self._insert_postgres(conn, rows)
            outcome = AppendResult(
                stream_id=stream_id,
                first_version=current + 1,
                last_version=current + len(events),
                positions=tuple(positions),
                event_ids=tuple(e.event_id for e in events),
                result=dict(result or {}),
            )
            if idempotency_key is not None:
                conn.execute(
                    idempotency_table.insert(),
                    {
                        "key": idempotency_key,
                        "request_hash": request_hash,
                        "record": _dumps(outcome.as_record()),
                        "recorded_at": now,
                    },
                )
        return outcome

    def _insert_sqlite(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
        # SQLite serialises writers (BEGIN IMMEDIATE), so rowids are assigned in commit order.
        if len(rows) == 1:
            inserted = conn.execute(self._insert_events, rows[0]).inserted_primary_key
            assert inserted is not None
            return [int(inserted[0])]
        start = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(events_table.c.position), 0))
        ).scalar_one()
        for index, row in enumerate(rows, start=1):
            row["position"] = start + index
        conn.execute(self._insert_events, rows)
        return [row["position"] for row in rows]

    def _insert_postgres(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
        # Sequence values are drawn in one order and may commit in another; under this lock
        # (taken as late as possible, released at commit) they commit in the order drawn. This
        # is the same price as the peer library's table lock; see docs in the README.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_APPEND_LOCK_KEY})")
        positions = conn.execute(
            sa.text("SELECT nextval('events_position_seq') FROM generate_series(1, :n)"),
            {"n": len(rows)},
        ).scalars().all()
        for row, position in zip(rows, sorted(positions), strict=True):
            row["position"] = position
        conn.execute(self._insert_events, rows)
        return [row["position"] for row in rows]

    def find_idempotent(self, idempotency_key: str, request_hash: str | None = None) -> AppendResult | None:
        try:
            with self._reader.connect() as conn:
                row = conn.execute(
                    sa.select(idempotency_table.c.request_hash, idempotency_table.c.record).where(
                        idempotency_table.c.key == idempotency_key
                    )
                ).first()
        except sa.exc.DBAPIError as exc:
            raise StorageUnavailable(f"the event store could not be read: {_brief(exc)}") from exc
        if row is None:
            return None
        if row[0] is not None and request_hash is not None and row[0] != request_hash:
            raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
        return AppendResult.from_record(json.loads(row[1]), replayed=True)

    # -- reading ----------------------------------------------------------------------------
    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        query = (
            sa.select(*_COLUMNS)
            .where(events_table.c.stream_id == stream_id, events_table.c.version > after_version)
            .order_by(events_table.c.version)
        )
        try:
            with self._reader.connect() as conn:
                return [_row_to_event(row) for row in conn.execute(query)]
        except sa.exc.DBAPIError as exc:
            raise StorageUnavailable(f"the event store could not be read: {_brief(exc)}") from exc

    def stream_version(self, stream_id: str) -> int:
        query = sa.select(sa.func.coalesce(sa.func.max(events_table.c.version), 0)).where(
            events_table.c.stream_id == stream_id
        )
        return int(self._scalar(query))

    def _scalar(self, query: sa.Select[Any]) -> Any:
        try:
            with self._reader.connect() as conn:
                return conn.execute(query).scalar_one()
        except sa.exc.DBAPIError as exc:
            raise StorageUnavailable(f"the event store could not be read: {_brief(exc)}") from exc

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        query = (
            sa.select(*_COLUMNS)
            .where(events_table.c.position > sa.bindparam("after"))
            .order_by(events_table.c.position)
            .limit(sa.bindparam("limit"))
        )
        try:
            with self._reader.connect() as conn:
                rows = conn.execute(query, {"after": after, "limit": limit}).all()
        except sa.exc.DBAPIError as exc:
            raise StorageUnavailable(f"the event store could not be read: {_brief(exc)}") from exc
        return [_row_to_event(row) for row in rows]

    def head(self) -> int:
        return int(self._scalar(sa.select(sa.func.coalesce(sa.func.max(events_table.c.position), 0))))

    def count(self) -> int:
        return int(self._scalar(sa.select(sa.func.count()).select_from(events_table)))


def _brief(exc: BaseException) -> str:
    """The driver's message without SQL or parameters (which may hold personal data)."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0][:200]
