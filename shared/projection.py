"""Projection runner: read a feed from each checkpoint, apply, save the checkpoint IN THE SAME transaction.

A projection is a name, the read-model tables it alone writes, and an explicit `HANDLERS` dict
(`event type -> on_<event_name>(conn, event)`). Handlers may hand their writes to `queue(conn,
statement, params, key=...)` instead of `conn.execute`: inside the runner, the executions of one
statement object within one projection's batch then run as one `executemany` where that cannot
change the result (consecutive ones, or keyed ones moved only past writes of other keys), in the
same transaction, flushed before any other statement runs on that connection and before the
checkpoint moves; outside the runner `queue` simply executes. The runner reads one batch from
the lowest checkpoint of its projections (outside any transaction: the feed may be HTTP), then in ONE
database transaction locks every checkpoint row (``SELECT ... FOR UPDATE`` on PostgreSQL; the
engine's ``BEGIN IMMEDIATE`` on SQLite), skips what a concurrent runner already applied, applies
the rest and moves the checkpoints. So a duplicated, reordered or lost wake-up changes nothing:
the checkpoint, not the message, says what is done, and a crash rolls back rows and checkpoint
together. Rebuilding resets one projection's rows and checkpoint to 0 and catches up again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from shared.events import RecordedEvent

log = logging.getLogger(__name__)

Handler = Callable[[sa.Connection, RecordedEvent], None]

_PENDING = "cim.projection.pending_writes"

_SCHEMA_LOCK_KEY = 0x43494D50  # "CIMP"

checkpoint_metadata = sa.MetaData()

checkpoints = sa.Table(
    "projection_checkpoints",
    checkpoint_metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)


class _PendingWrites:
    """Writes queued during one projection's batch, executed at `flush` as few executemany calls.

    A write joins the group of the same statement object when nothing queued after that group
    could be affected by moving it there: the group is the last one, or the write has a `key`
    and every later group holds only writes with other keys (writes of different keys touch
    different rows, so they commute). Otherwise it starts a new group. Groups run in order."""

    __slots__ = ("conn", "flushing", "groups")

    _REACH = 8  # groups looked back at; the statements of a projection are few

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        # [statement, rows, keys of the rows (None once any row has no key)]
        self.groups: list[tuple[Any, list[Mapping[str, Any]], set[Any] | None]] = []
        self.flushing = False

    def add(self, statement: Any, params: Mapping[str, Any] | None, key: Any = None) -> None:
        if params is None:  # nothing to batch: run it now, after what is queued
            self.flush()
            self.conn.execute(statement)
            return
        groups = self.groups
        for index in range(len(groups) - 1, max(len(groups) - 1 - self._REACH, -1), -1):
            group_statement, rows, keys = groups[index]
            if group_statement is statement and (key is not None or index == len(groups) - 1):
                rows.append(params)
                if keys is not None:
                    if key is None:
                        groups[index] = (group_statement, rows, None)
                    else:
                        keys.add(key)
                return
            if key is None or keys is None or key in keys:
                break
        groups.append((statement, [params], None if key is None else {key}))

    def flush(self) -> None:
        groups = self.groups
        if not groups:
            return
        self.groups = []
        self.flushing = True
        try:
            for statement, rows, _keys in groups:
                if len(rows) > 1 and _driver_executemany(self.conn, statement, rows):
                    continue
                self.conn.execute(statement, rows if len(rows) > 1 else rows[0])
        finally:
            self.flushing = False


# dialect -> (statement, column keys) -> how to run it on the driver's cursor (None: through SQLAlchemy)
_driver_plans: weakref.WeakKeyDictionary[Any, dict[tuple[Any, tuple[str, ...]], _DriverPlan | None]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class _DriverPlan:
    """A statement compiled for one dialect and one set of parameter names, with what SQLAlchemy
    would add to each row: the statement's own constants and the types' bind processors."""

    sql: str
    order: tuple[str, ...] | None  # positional paramstyle (SQLite's qmark): the names in order
    constants: dict[str, Any]
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
        if self.constants or self.processors:
            merged = []
            for row in rows:
                full = {**self.constants, **row}
                for name, process in self.processors:
                    full[name] = process(full[name])
                merged.append(full)
            rows = merged
        if self.order is None:
            return rows
        order = self.order
        return [tuple(row[name] for name in order) for row in rows]


def _driver_executemany(conn: sa.Connection, statement: Any, rows: list[Mapping[str, Any]]) -> bool:
    """Run one group's rows as one `executemany` on the driver's own cursor, with the SQL the
    statement compiles to on this dialect (compiled once per parameter names), the statement's
    constants and the types' bind processors applied as SQLAlchemy would. Profiled: for a
    2,000-event page SQLAlchemy's per-row parameter handling cost about as much as the driver's
    own work. Returns False (the caller uses `conn.execute`) for statements that need more
    (expanding or post-compile parameters, escaped names, RETURNING) or rows of other names."""
    keys = tuple(rows[0])
    plans = _driver_plans.setdefault(conn.dialect, {})
    try:
        plan = plans[(statement, keys)]
    except KeyError:
        plan = plans[(statement, keys)] = _driver_plan(conn.dialect, statement, rows[0])
    if plan is None or any(row.keys() != rows[0].keys() for row in rows):
        return False
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(plan.sql, plan.parameters(rows))
    finally:
        cursor.close()
    return True


def _driver_plan(dialect: sa.Dialect, statement: Any, sample: Mapping[str, Any]) -> _DriverPlan | None:
    compiled = statement.compile(dialect=dialect, column_keys=list(sample))
    if (compiled.literal_execute_params or compiled.post_compile_params or compiled.escaped_bind_names
            or compiled.effective_returning or not isinstance(statement, sa.sql.dml.ValuesBase | sa.Update)):
        return None
    full = compiled.construct_params(params=dict(sample))
    constants = {name: value for name, value in full.items() if name not in sample}
    processors = tuple((name, fn) for name, fn in compiled._bind_processors.items() if name in full)
    order = tuple(compiled.positiontup) if compiled.positional else None
    return _DriverPlan(compiled.string, order, constants, processors)


def queue(conn: sa.Connection, statement: Any, params: Mapping[str, Any] | None = None, *,
          key: Any = None) -> None:
    """Execute `statement` with `params` on `conn`: at once outside a ProjectionRunner batch;
    inside one, deferred and batched with the projection's other executions of the same
    statement object (one executemany), before any other statement runs on `conn` and before
    the checkpoint moves. Only for writes whose result the handler does not read.

    `key`: the identity of every row this write can touch (e.g. the student id), the same kind
    of key for every keyed write of the projection. Writes with different keys may be reordered
    among each other (never past a write of the same key or an unkeyed one); without a key
    only consecutive executions are merged."""
    pending = conn.info.get(_PENDING)
    if pending is None:
        conn.execute(statement, params)
    else:
        pending.add(statement, params, key)


def _flush_pending(conn: sa.Connection, *_args: Any) -> None:
    """before_execute: any other statement on the connection sees the queued writes first."""
    pending = conn.info.get(_PENDING)
    if pending is not None and not pending.flushing:
        pending.flush()


class EventFeed(Protocol):
    """Where a projection reads from: events past a position, upcast to current schema versions."""

    def read(self, after: int, limit: int) -> list[RecordedEvent]:
        """Up to `limit` events with position > after, in position order, none skipped."""
        ...

    def head(self) -> int:
        """The highest position the feed may serve now."""
        ...


@dataclass(frozen=True)
class Projection:
    """A read model: its name (checkpoint key), the tables it owns, and its handlers."""

    name: str
    tables: tuple[sa.Table, ...]
    handlers: Mapping[str, Handler]

    def apply(self, conn: sa.Connection, event: RecordedEvent) -> None:
        handler = self.handlers.get(event.type)
        if handler is not None:
            handler(conn, event)


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    checkpoint: int
    head: int | None

    @property
    def lag(self) -> int | None:
        return None if self.head is None else max(self.head - self.checkpoint, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "checkpoint": self.checkpoint, "head": self.head, "lag": self.lag}


class ProjectionRunner:
    """Runs a set of projections over one feed into one database (SQLAlchemy Core)."""

    def __init__(
        self,
        engine: sa.Engine,
        feed: EventFeed,
        projections: Sequence[Projection],
        *,
        batch_size: int = 2000,
        reader: sa.Engine | None = None,
    ) -> None:
        """`engine` writes (on SQLite it must BEGIN IMMEDIATE: that lock serialises runners);
        `reader`, if given, serves plain reads of the checkpoints without taking a write lock."""
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate projection names: {names}")
        self.engine = engine
        self.reader = reader or engine
        self.feed = feed
        self.projections = {p.name: p for p in sorted(projections, key=lambda p: p.name)}
        self.batch_size = batch_size
        self._postgres = engine.dialect.name == "postgresql"
        if not sa.event.contains(engine, "before_execute", _flush_pending):
            sa.event.listen(engine, "before_execute", _flush_pending)

    # -- set-up -----------------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the checkpoint table and every read-model table if missing (idempotent)."""
        with self.engine.begin() as conn:
            if self._postgres:
                # Several processes start at once (gunicorn workers, pool children): PostgreSQL's
                # DDL is transactional, so under this lock the second one finds the tables made.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
            checkpoints.create(conn, checkfirst=True)
            for projection in self.projections.values():
                for table in projection.tables:
                    table.create(conn, checkfirst=True)
            self._ensure_rows(conn, list(self.projections))

    def _ensure_rows(self, conn: sa.Connection, names: Iterable[str]) -> None:
        have = set(conn.execute(sa.select(checkpoints.c.name)).scalars())
        for name in names:
            if name not in have:
                conn.execute(checkpoints.insert(), {"name": name, "position": 0, "updated_at": time.time()})

    # -- reading checkpoints ----------------------------------------------------------------
    def checkpoints(self) -> dict[str, int]:
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(checkpoints.c.name, checkpoints.c.position)).all()
        found = {name: int(position) for name, position in rows}
        return {name: found.get(name, 0) for name in self.projections}

    def status(self) -> list[ProjectionStatus]:
        """Each projection's checkpoint and the feed head (None when the feed is unreachable)."""
        try:
            head: int | None = self.feed.head()
        except Exception as exc:
            log.warning("feed head unavailable: %s", exc)
            head = None
        return [ProjectionStatus(name, pos, head) for name, pos in self.checkpoints().items()]

    # -- applying ---------------------------------------------------------------------------
    def catch_up(
        self,
        names: Sequence[str] | None = None,
        *,
        time_budget: float | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> int:
        """Apply every event past the checkpoints of `names` (all by default); return how many
        (event, projection) applications were made. Safe to run twice or concurrently.

        `time_budget` bounds the run (the rest is left for the next wake-up or beat tick);
        `on_batch(applied_in_batch, last_position)` reports progress.
        """
        selected = self.resolve_names(names)
        deadline = None if time_budget is None else time.monotonic() + time_budget
        total = 0
        # One checkpoint read per call; after each batch the positions come from the batch's
        # own transaction (locked there, so they include any concurrent runner's or reset's).
        positions = self.checkpoints()
        # Read-ahead: while a full page is applied, the next one is already being fetched (the
        # feed server decodes it in its own process meanwhile). One read in flight at a time, so
        # a feed needs no thread safety; a page read ahead for the wrong `after` (a reset moved
        # the checkpoints meanwhile) is dropped and read again, and one read ahead when the time
        # budget runs out is waited for and left unused (the next run reads it again).
        ahead: tuple[int, Future[list[RecordedEvent]]] | None = None
        pool: ThreadPoolExecutor | None = None
        try:
            while True:
                after = min(positions[name] for name in selected)
                if ahead is not None and ahead[0] == after:
                    events = ahead[1].result()
                else:
                    if ahead is not None:
                        ahead[1].result()  # let it finish; its page is stale
                    events = self.feed.read(after=after, limit=self.batch_size)
                ahead = None
                if not events:
                    return total
                if len(events) >= self.batch_size:
                    pool = pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-read-ahead")
                    next_after = events[-1].position
                    ahead = (next_after, pool.submit(self.feed.read, after=next_after, limit=self.batch_size))
                applied, positions = self._apply_batch(selected, after, events)
                total += applied
                if on_batch is not None:
                    on_batch(applied, events[-1].position)
                if deadline is not None and time.monotonic() > deadline:
                    return total
                # The page reached the head the feed reported with it: everything there was when
                # the feed answered is applied, so skip the read that would only come back empty.
                # (What commits later sends its own wake-up; beat's tick catches anything else.)
                head = getattr(self.feed, "last_head", None)
                if (ahead is None and isinstance(head, int) and len(events) < self.batch_size
                        and events[-1].position >= head
                        and all(positions[name] >= events[-1].position for name in selected)):
                    return total
        finally:
            if ahead is not None:
                ahead[1].cancel()
            if pool is not None:
                pool.shutdown(wait=True)

    def _apply_batch(
        self, names: Sequence[str], after: int, events: list[RecordedEvent]
    ) -> tuple[int, dict[str, int]]:
        """Apply `events` (every event in (after, events[-1].position]) past each locked checkpoint.

        Returns how many applications were made and the checkpoints as this transaction left them."""
        applied = 0
        positions: dict[str, int] = {}
        with self.engine.begin() as conn:
            current = self._lock_checkpoints(conn, names)
            pending = _PendingWrites(conn)
            conn.info[_PENDING] = pending
            try:
                for name in names:
                    start = positions[name] = current[name]
                    if start < after:
                        # Reset (rebuild) since we read the feed: this batch does not reach back to
                        # its checkpoint, so applying it would skip events. The next loop rereads.
                        continue
                    todo = [e for e in events if e.position > start]
                    if not todo:
                        continue
                    projection = self.projections[name]
                    for event in todo:
                        projection.apply(conn, event)
                    pending.flush()  # this projection's rows, then its checkpoint
                    conn.execute(
                        checkpoints.update().where(checkpoints.c.name == name),
                        {"position": todo[-1].position, "updated_at": time.time()},
                    )
                    positions[name] = todo[-1].position
                    applied += len(todo)
            finally:
                conn.info.pop(_PENDING, None)
        if applied:
            log.info(
                "projected batch",
                extra={
                    "projections": list(names),
                    "first_position": events[0].position,
                    "last_position": events[-1].position,
                    "applied": applied,
                    "correlation_ids": _correlation_ids(events),
                },
            )
        return applied, positions

    def _lock_checkpoints(self, conn: sa.Connection, names: Sequence[str]) -> dict[str, int]:
        """The checkpoints of `names`, locked until this transaction ends (sorted order: no deadlock).

        SQLite: the engine began with BEGIN IMMEDIATE, which already holds the database's write
        lock, so a concurrent runner waits here and then sees the moved checkpoint.
        """
        self._ensure_rows(conn, names)
        query = (
            sa.select(checkpoints.c.name, checkpoints.c.position)
            .where(checkpoints.c.name.in_(list(names)))
            .order_by(checkpoints.c.name)
        )
        if self._postgres:
            query = query.with_for_update()
        return {name: int(position) for name, position in conn.execute(query).all()}

    # -- rebuilding -------------------------------------------------------------------------
    def reset(self, names: Sequence[str] | None = None) -> None:
        """Empty the named projections' tables and set their checkpoints to 0, atomically."""
        selected = self.resolve_names(names)
        with self.engine.begin() as conn:
            self._lock_checkpoints(conn, selected)
            for name in selected:
                for table in reversed(self.projections[name].tables):
                    conn.execute(table.delete())
                conn.execute(
                    checkpoints.update().where(checkpoints.c.name == name),
                    {"position": 0, "updated_at": time.time()},
                )

    def rebuild(
        self,
        names: Sequence[str] | None = None,
        *,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> int:
        """Reset the named projections and apply the whole feed from position 0."""
        selected = self.resolve_names(names)
        self.reset(selected)
        return self.catch_up(selected, on_batch=on_batch)

    def digest(self, names: Sequence[str] | None = None) -> str:
        """A hash of the named projections' read-model rows, for "live == rebuilt" checks."""
        with self.reader.connect() as conn:
            return table_digest(conn, [t for n in self.resolve_names(names) for t in self.projections[n].tables])

    def resolve_names(self, names: Sequence[str] | None) -> list[str]:
        if not names:
            return list(self.projections)
        unknown = sorted(set(names) - set(self.projections))
        if unknown:
            raise KeyError(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(self.projections)}")
        return sorted(set(names))


def table_digest(conn: sa.Connection, tables: Iterable[sa.Table]) -> str:
    """SHA-256 over every row of `tables`, independent of physical row order."""
    digest = hashlib.sha256()
    for table in sorted(tables, key=lambda t: t.name):
        rows = [json.dumps([_plain(v) for v in row], default=str) for row in conn.execute(sa.select(table))]
        digest.update(table.name.encode())
        for row in sorted(rows):
            digest.update(row.encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def _correlation_ids(events: Sequence[RecordedEvent], cap: int = 20) -> list[str]:
    seen: dict[str, None] = {}
    for event in events:
        cid = event.metadata.get("correlation_id")
        if cid:
            seen.setdefault(str(cid), None)
            if len(seen) >= cap:
                break
    return list(seen)
