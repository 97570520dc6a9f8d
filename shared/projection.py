"""Projection runner: read a feed from each checkpoint, apply, save the checkpoint IN THE SAME transaction.

A projection is a name, the read-model tables it alone writes, and an explicit `HANDLERS` dict
(`event type -> on_<event_name>(conn, event)`). Handlers may hand their writes to `queue(conn,
statement, params, key=...)` instead of `conn.execute`: inside the runner, the executions of one
statement object within one projection's batch then run as one `executemany` (on the driver's
cursor, or as COPY on PostgreSQL: `shared.adapters.bulk_writes`) where that cannot change the
result (consecutive ones, or keyed ones moved only past writes of other keys), in the same
transaction, flushed before any other statement runs on that connection and before the
checkpoint moves; outside the runner `queue` simply executes. The runner reads one batch from
the lowest checkpoint of its projections (outside any transaction: the feed may be HTTP), then in ONE
database transaction locks every checkpoint row (``SELECT ... FOR UPDATE`` on PostgreSQL; the
engine's ``BEGIN IMMEDIATE`` on SQLite), skips what a concurrent runner already applied, applies
the rest and moves the checkpoints. So a duplicated, reordered or lost wake-up changes nothing:
the checkpoint, not the message, says what is done, and a crash rolls back rows and checkpoint
together. Rebuilding applies the feed from position 0 into a shadow copy of a projection's tables
and swaps it in with one transaction (`ProjectionRunner.rebuild`): readers see the old read model
until the new one is complete. (`reset` empties a projection in place, for tests and the
in-memory fallback.)

A projection may name event types that *scrub* personal data (`scrubs`, e.g. `StudentErased`,
whose handlers blank the copied name and e-mail). Blanking a row leaves its old image behind: in
SQLite's -wal file until a checkpoint, in PostgreSQL's dead tuples until a vacuum. So after a
batch that applied such an event commits, the runner compacts the database at once
(`compact_after_scrub`: SQLite `PRAGMA wal_checkpoint(TRUNCATE)`, with `secure_delete=FAST` on
the runner's connections so freed cell space in the main file is zeroed; PostgreSQL
`VACUUM (ANALYZE)` of the projection's tables), instead of leaving the person's data on disk
until the daily retention task runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from shared.adapters import bulk_writes
from shared.events import RecordedEvent
from shared.runtime import collection_paused

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


_running_writes = threading.local()  # `.active`: this thread is executing queued writes now


class _PendingWrites:
    """Writes queued during one projection's batch, executed at `flush` as few executemany calls.

    A write joins the group of the same statement object when nothing queued after that group
    could be affected by moving it there: the group is the last one, or the write has a `key`
    and every later group holds only writes with other keys (writes of different keys touch
    different rows, so they commute). Otherwise it starts a new group. Groups run in order.

    `flush_behind` hands the groups to a writer thread instead (same connection, same
    transaction, in order): the database works on one projection's rows while the handlers of
    the next one run. `flush` (and any other statement on the connection, through the
    before_execute hook) first waits for the writer and raises what it raised."""

    __slots__ = ("conn", "groups", "inflight", "writer")

    _REACH = 8  # groups looked back at; the statements of a projection are few

    def __init__(self, conn: sa.Connection, writer: ThreadPoolExecutor | None = None) -> None:
        self.conn = conn
        # [statement, rows, keys of the rows (None once any row has no key)]
        self.groups: list[tuple[Any, list[Mapping[str, Any]], set[Any] | None]] = []
        self.writer = writer
        self.inflight: list[Future[None]] = []

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
        """Run everything queued now (after what the writer has), in this thread."""
        self.wait()
        groups, self.groups = self.groups, []
        if groups:
            self._run(groups)

    def flush_behind(self) -> None:
        """Hand what is queued to the writer thread (or run it now without one)."""
        if self.writer is None:
            self.flush()
            return
        groups, self.groups = self.groups, []
        if groups:
            self.inflight.append(self.writer.submit(self._run, groups))

    def wait(self) -> None:
        """Wait for every write handed to the writer; raise the first error among them."""
        error = self.settle()
        if error is not None:
            raise error

    def settle(self) -> BaseException | None:
        """Wait for every write handed to the writer, even after one failed; the first error."""
        inflight, self.inflight = self.inflight, []
        errors = [future.exception() for future in inflight]
        return next((error for error in errors if error is not None), None)

    def _run(self, groups: list[tuple[Any, list[Mapping[str, Any]], set[Any] | None]]) -> None:
        _running_writes.active = True
        try:
            for statement, rows, _keys in groups:
                if bulk_writes.executemany(self.conn, statement, rows):
                    continue
                self.conn.execute(statement, rows if len(rows) > 1 else rows[0])
        finally:
            _running_writes.active = False


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
    if pending is not None and not getattr(_running_writes, "active", False):
        pending.flush()


@dataclass(frozen=True)
class RunnerOptions:
    """How a catch-up overlaps its work. Each option changes the speed of a long catch-up (a
    rebuild, a backlog), never what is applied: the same rows and checkpoints either way. The
    default is the plain path: read a page, apply it, move the checkpoints, repeat.

    `read_ahead`: while a full page is applied, the next one is already being fetched (an HTTP
    feed's server decodes it in its own process meanwhile). One read in flight at a time, so a
    feed needs no thread safety.
    `write_behind_from`: from pages this long, with several projections, one projection's
    queued rows are written by a writer thread (same connection, same transaction, in order)
    while the next one's handlers run (see `_PendingWrites.flush_behind`). None: never.
    `pause_gc_from`: pages this long are applied with the cyclic garbage collector paused (their
    objects are acyclic: see shared.runtime.collection_paused). None: never."""

    read_ahead: bool = False
    write_behind_from: int | None = None
    pause_gc_from: int | None = None


#: What the services run with (measured in bench/PIPELINE_RESULTS.md). A live wake-up's page of a
#: few events gains nothing from a thread or a GC pause, hence the thresholds.
PIPELINED = RunnerOptions(read_ahead=True, write_behind_from=200, pause_gc_from=200)


class _Pages:
    """The feed's pages in turn, each read once. With read-ahead, after a full page the next one
    is fetched on a thread while the caller applies this one; a page read ahead for the wrong
    `after` (a reset moved the checkpoints meanwhile) is waited for, dropped and read again."""

    def __init__(self, feed: EventFeed, batch_size: int, *, read_ahead: bool) -> None:
        self._feed = feed
        self._batch_size = batch_size
        self._read_ahead = read_ahead
        self._ahead: tuple[int, Future[list[RecordedEvent]]] | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def reading_ahead(self) -> bool:
        return self._ahead is not None

    def read(self, after: int) -> list[RecordedEvent]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == after:
            events = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].result()  # let it finish (one read in flight at a time); its page is stale
            events = self._feed.read(after=after, limit=self._batch_size)
        if self._read_ahead and len(events) >= self._batch_size:
            self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-read-ahead")
            next_after = events[-1].position
            self._ahead = (next_after, self._pool.submit(self._feed.read, after=next_after, limit=self._batch_size))
        return events

    def close(self) -> None:
        """Drop a page read ahead (waited for, unused: the next run reads it again)."""
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)


_MOVE_CHECKPOINT = (
    checkpoints.update()
    .where(checkpoints.c.name == sa.bindparam("b_name"))
    .values(position=sa.bindparam("b_position"), updated_at=sa.bindparam("b_at"))
)
# Built once (each wake-up's batch locks its checkpoints): a reused statement memoises its
# construction and SQLAlchemy's cache key. Sorted by name, so runners lock in one order.
_READ_CHECKPOINTS = sa.select(checkpoints.c.name, checkpoints.c.position)
_LOCK = (
    sa.select(checkpoints.c.name, checkpoints.c.position)
    .where(checkpoints.c.name.in_(sa.bindparam("names", expanding=True)))
    .order_by(checkpoints.c.name)
)
_LOCK_FOR_UPDATE = _LOCK.with_for_update()


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
    #: Event types whose handlers remove personal data: the batch that applies one is followed
    #: by `compact_after_scrub` of this projection's tables (see the module docstring).
    scrubs: frozenset[str] = frozenset()

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
        options: RunnerOptions = RunnerOptions(),
    ) -> None:
        """`engine` writes (on SQLite it must BEGIN IMMEDIATE: that lock serialises runners);
        `reader`, if given, serves plain reads of the checkpoints without taking a write lock;
        `options` overlap reading, applying and writing (RunnerOptions; the services use
        PIPELINED)."""
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate projection names: {names}")
        self.engine = engine
        self.reader = reader or engine
        self.feed = feed
        self.projections = {p.name: p for p in sorted(projections, key=lambda p: p.name)}
        self.batch_size = batch_size
        self.options = options
        self._postgres = engine.dialect.name == "postgresql"
        # The checkpoints as this process last committed or read them. A catch-up starts from
        # these instead of reading them again (a wake-up's first round trips): the batch locks
        # the real ones anyway, and applies only past them, so a remembered position another
        # runner has moved on only re-reads a page, and one a reset has moved back is noticed
        # there (or, when the feed has nothing past it, by the check before giving up).
        self._known: dict[str, int] = {}
        if not sa.event.contains(engine, "before_execute", _flush_pending):
            sa.event.listen(engine, "before_execute", _flush_pending)
        if (engine.dialect.name == "sqlite" and any(p.scrubs for p in projections)
                and not sa.event.contains(engine, "connect", _secure_delete)):
            sa.event.listen(engine, "connect", _secure_delete)

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
            rows = conn.execute(_READ_CHECKPOINTS).all()
        found = {name: int(position) for name, position in rows}
        current = {name: found.get(name, 0) for name in self.projections}
        self._known = dict(current)
        return current

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
        # The positions this process knows (see _known), else one checkpoint read; after each
        # batch they come from the batch's own transaction (locked there, so they include any
        # concurrent runner's or reset's).
        known = self._known
        remembered = all(name in known for name in selected)
        positions = dict(known) if remembered else self.checkpoints()
        pages = _Pages(self.feed, self.batch_size, read_ahead=self.options.read_ahead)
        # One connection for the whole run (one pool checkout, not one per batch); each batch
        # is its own transaction on it.
        conn: sa.Connection | None = None
        writer: ThreadPoolExecutor | None = None  # made for the first page long enough to write behind
        try:
            while True:
                after = min(positions[name] for name in selected)
                events = pages.read(after)
                if not events:
                    if remembered:  # nothing past what this process remembers: are they still so?
                        remembered = False
                        fresh = self.checkpoints()
                        if any(fresh[name] != positions[name] for name in selected):
                            positions = fresh
                            continue
                    return total
                conn = conn or self.engine.connect()
                writer = writer or self._writer_for(len(events), len(selected))
                with self._gc_paused_for(len(events)):
                    applied, positions = self._apply_batch(conn, selected, after, events, writer)
                self._known = {**self._known, **positions}
                remembered = False  # these come from the batch's locked rows
                total += applied
                if on_batch is not None:
                    on_batch(applied, events[-1].position)
                if deadline is not None and time.monotonic() > deadline:
                    return total
                # The page reached the head the feed reported with it: everything there was when
                # the feed answered is applied, so skip the read that would only come back empty.
                # (What commits later sends its own wake-up; beat's tick catches anything else.)
                head = getattr(self.feed, "last_head", None)
                if (not pages.reading_ahead and isinstance(head, int) and len(events) < self.batch_size
                        and events[-1].position >= head
                        and all(positions[name] >= events[-1].position for name in selected)):
                    return total
        finally:
            pages.close()
            if writer is not None:
                writer.shutdown(wait=True)
            if conn is not None:
                conn.close()

    def _writer_for(self, page: int, projections: int) -> ThreadPoolExecutor | None:
        """A writer thread for write-behind, if this page and these projections call for one."""
        threshold = self.options.write_behind_from
        if threshold is None or page < threshold or projections < 2:
            return None
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="projection-writer")

    def _gc_paused_for(self, page: int) -> contextlib.AbstractContextManager[Any]:
        threshold = self.options.pause_gc_from
        if threshold is None or page < threshold:
            return contextlib.nullcontext()
        return collection_paused()

    def _apply_batch(
        self, conn: sa.Connection, names: Sequence[str], after: int, events: list[RecordedEvent],
        writer: ThreadPoolExecutor | None = None,
    ) -> tuple[int, dict[str, int]]:
        """Apply `events` (every event in (after, events[-1].position]) past each locked checkpoint.

        With a `writer` thread, one projection's queued rows are written while the next one's
        handlers run (same transaction). Returns how many applications were made and the
        checkpoints as this transaction left them."""
        applied = 0
        positions: dict[str, int] = {}
        moved: list[dict[str, Any]] = []
        scrubbed: list[sa.Table] = []
        with conn.begin():
            current = self._lock_checkpoints(conn, names)
            pending = _PendingWrites(conn, writer)
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
                    if projection.scrubs and any(e.type in projection.scrubs for e in todo):
                        scrubbed.extend(projection.tables)
                    pending.flush_behind()  # this projection's rows (each projection's in order)
                    moved.append({"b_name": name, "b_position": todo[-1].position, "b_at": time.time()})
                    positions[name] = todo[-1].position
                    applied += len(todo)
                pending.flush()  # every row written before any checkpoint moves
                if moved:
                    conn.execute(_MOVE_CHECKPOINT, moved)
            except BaseException:
                # Nothing may still run on the connection when the transaction rolls back; the
                # error being raised is the one to report (the writer's, if any, came later).
                pending.settle()  # its error, if any, is dropped for the one being raised
                raise
            finally:
                conn.info.pop(_PENDING, None)
        if scrubbed:  # committed: now the old row images can go
            compact_after_scrub(self.engine, scrubbed)
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
        query = _LOCK_FOR_UPDATE if self._postgres else _LOCK
        params = {"names": list(names)}
        found = {name: int(position) for name, position in conn.execute(query, params).all()}
        if len(found) < len(names):  # a projection added since create_schema: its row, then lock again
            self._ensure_rows(conn, names)
            found = {name: int(position) for name, position in conn.execute(query, params).all()}
        return found

    # -- rebuilding -------------------------------------------------------------------------
    def reset(self, names: Sequence[str] | None = None) -> None:
        """Empty the named projections' tables and set their checkpoints to 0, atomically."""
        selected = self.resolve_names(names)
        self._known = {}
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
        """Rebuild the named projections from position 0 where readers never see it: into a shadow
        copy of their tables (see `_Shadow`), then swapped in with ONE transaction, so a reader
        sees the old read model until the new one is complete, never an empty or partial one.
        Live runners keep applying new events to the old tables meanwhile; the swap takes over
        what they applied past the shadow (see `_swap`), so the checkpoints never move back.
        Returns how many (event, projection) applications were made.

        On an in-memory SQLite database (no file another connection could attach) this falls
        back to the in-place rebuild: reset, then catch up."""
        selected = self.resolve_names(names)
        shadow = _Shadow.open(self.engine)
        if shadow is None:
            log.warning("rebuilding %s in place: an in-memory database has no shadow", selected)
            self.reset(selected)
            return self.catch_up(selected, on_batch=on_batch)
        started = time.monotonic()
        try:
            shadow.create_tables([checkpoints, *(t for n in selected for t in self.projections[n].tables)])
            building = ProjectionRunner(shadow.engine, self.feed, [self.projections[n] for n in selected],
                                        batch_size=self.batch_size, options=self.options)
            applied = building.catch_up(selected, on_batch=on_batch)
            built_in = time.monotonic() - started
            shadow.engine.dispose()  # its connections are done; the swap only reads its tables
            swapped, positions, scrubbed = self._swap(shadow, selected)
        finally:
            shadow.drop()
        self._known = {}
        if scrubbed:
            compact_after_scrub(self.engine, scrubbed)
        log.info("rebuilt projections in a shadow and swapped them in",
                 extra={"projections": selected, "checkpoints": positions, "built_seconds": round(built_in, 3),
                        "swapped_seconds": round(time.monotonic() - started - built_in, 3),
                        "tail_applied": swapped})
        return applied + swapped + self.catch_up(selected, on_batch=on_batch)

    def _swap(self, shadow: _Shadow, names: Sequence[str]) -> tuple[int, dict[str, int], list[sa.Table]]:
        """In ONE transaction, with the live checkpoints locked (so no live runner moves them):
        replace the live rows of `names` with the shadow's, and leave each checkpoint at the
        furthest of the live one and the shadow's. What the live runners applied past the shadow
        (live checkpoint L > shadow's S) is applied again to the copied rows (events (S, L]), so a
        reader never sees the model go back. What the shadow applied past the live checkpoint
        (S > L) is first applied to the live store too (events (L, S]): handlers may have effects
        beyond their projection's tables (an erasure destroys the student's key), and those must
        happen in the live store once; the rows it writes are then replaced by the shadow's.
        Each event thus reaches the read model's rows exactly once. Returns the applications
        made, the checkpoints as committed, and the tables an erasure in the tail blanked."""
        meta = sa.MetaData()
        built_table = checkpoints.to_metadata(meta, schema=shadow.alias)
        with self.engine.connect() as conn:
            shadow.attach(conn)
            try:
                with conn.begin():
                    live = self._lock_checkpoints(conn, names)
                    found = {name: int(position) for name, position in conn.execute(
                        sa.select(built_table.c.name, built_table.c.position)
                        .where(built_table.c.name.in_(list(names)))
                    )}
                    built = {name: found.get(name, 0) for name in names}
                    # (L, S]: effects outside the tables, in the live store (rows replaced next).
                    ahead, _reached, scrubbed = self._apply_until(conn, names, live, built)
                    for name in names:
                        tables = self.projections[name].tables
                        for table in reversed(tables):
                            conn.execute(table.delete())
                        for table in tables:
                            source = table.to_metadata(meta, schema=shadow.alias)
                            columns = [column.name for column in table.columns]
                            conn.execute(sa.insert(table).from_select(
                                columns, sa.select(*(source.c[column] for column in columns))))
                    # (S, L]: what the live runners had applied past the shadow, onto its rows.
                    goal = {name: max(live[name], built[name]) for name in names}
                    behind, positions, tail_scrubbed = self._apply_until(conn, names, built, goal)
                    conn.execute(_MOVE_CHECKPOINT, [
                        {"b_name": name, "b_position": positions[name], "b_at": time.time()} for name in names
                    ])
            finally:
                shadow.detach(conn)
        return ahead + behind, positions, [*scrubbed, *tail_scrubbed]

    def _apply_until(self, conn: sa.Connection, names: Sequence[str], start: Mapping[str, int],
                     goal: Mapping[str, int]) -> tuple[int, dict[str, int], list[sa.Table]]:
        """In `conn`'s transaction, apply to each projection the events in (start, goal] (read from
        the feed); the applications made, the positions reached and the tables scrubbed."""
        positions = dict(start)
        applied = 0
        scrubbed: list[sa.Table] = []
        pending = _PendingWrites(conn)
        conn.info[_PENDING] = pending
        try:
            while True:
                behind = [name for name in names if positions[name] < goal[name]]
                if not behind:
                    break
                events = self.feed.read(after=min(positions[name] for name in behind), limit=self.batch_size)
                if not events:  # the feed serves less than a checkpoint says was applied
                    log.warning("rebuild swap: the feed ends before %s", {n: goal[n] for n in behind})
                    break
                for name in behind:
                    todo = [e for e in events if positions[name] < e.position <= goal[name]]
                    if not todo:
                        continue
                    projection = self.projections[name]
                    for event in todo:
                        projection.apply(conn, event)
                    if projection.scrubs and any(e.type in projection.scrubs for e in todo):
                        scrubbed.extend(projection.tables)
                    pending.flush()
                    positions[name] = todo[-1].position
                    applied += len(todo)
        except BaseException:
            pending.settle()
            raise
        finally:
            conn.info.pop(_PENDING, None)
        return applied, positions, scrubbed

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



class _Shadow:
    """Where a rebuild builds: a store of its own holding fresh copies of the rebuilt tables and a
    checkpoint table, in which every other table name still finds the live one (a handler may
    read another read model, or write beyond its own tables: an erasure destroys a key), just as
    an in-place rebuild would see them.

    - SQLite: a new database file beside the live one (`<file>.rebuild-<token>`), whose
      connections ATTACH the live file: SQLite resolves a name in `main` (the shadow) first, then
      in the attached live database. The swap ATTACHes the shadow file to a live connection as
      `cim_rebuild`. The files are deleted afterwards.
    - PostgreSQL: a new schema (`cim_rebuild_<token>`) in the live database, reached by an
      engine whose `search_path` puts it before the live schemas. The schema is dropped
      afterwards (the database user needs CREATE on the database).

    So the handlers, their statements built once at import and the runner's bulk writes (COPY
    names its table unqualified) run unchanged against the shadow. On SQLite each page of the
    build holds the live file's write lock too (BEGIN IMMEDIATE takes every attached database),
    as any catch-up's page does: live writers wait at most a page. A rebuild killed midway leaves
    its shadow behind (a `*.rebuild-*` file, a `cim_rebuild_*` schema); nothing reads it, and it
    may be deleted."""

    ALIAS = "cim_rebuild"  # the shadow file's name on the swapping SQLite connection

    def __init__(self, engine: sa.Engine, local: str, alias: str, *, path: Path | None = None,
                 live: sa.Engine | None = None) -> None:
        self.engine = engine  # writes into the shadow
        self.local = local  # how the shadow's own connections name its schema
        self.alias = alias  # how a live connection names it
        self.path = path  # SQLite: the shadow file
        self._live = live  # PostgreSQL: the engine that made (and drops) the schema

    @classmethod
    def open(cls, live: sa.Engine) -> _Shadow | None:
        """A new, empty shadow for `live`'s database; None where there can be none."""
        from shared.adapters.sql import make_engine

        token = uuid.uuid4().hex[:12]
        url = live.url
        if live.dialect.name == "sqlite":
            database = url.database or ""
            if not database or database == ":memory:" or database.startswith("file:"):
                return None
            live_path = Path(database).resolve()
            path = live_path.with_name(f"{live_path.name}.rebuild-{token}")
            if live_path.exists():  # as private as the live file (SQLite gives its -wal/-shm the same mode)
                path.touch(mode=live_path.stat().st_mode & 0o777, exist_ok=False)
            engine = make_engine(f"sqlite:///{path}", immediate=True, pool_size=2, durable=False)

            def _see_live(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("ATTACH DATABASE ? AS cim_live", (str(live_path),))

            sa.event.listen(engine, "connect", _see_live)
            return cls(engine, "main", cls.ALIAS, path=path)
        if live.dialect.name == "postgresql":
            schema = f"cim_rebuild_{token}"
            try:
                with live.begin() as conn:
                    conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
                    searched = list(conn.exec_driver_sql("SELECT current_schemas(false)").scalar_one())
            except sa.exc.ProgrammingError as exc:  # e.g. insufficient privilege
                raise RuntimeError(
                    f"a rebuild builds in a schema of its own and could not make one ({exc.orig}): "
                    f"the database user needs CREATE on the database (GRANT CREATE ON DATABASE ...)"
                ) from exc
            path_list = ",".join([schema, *(_pg_identifier(name) for name in searched)])
            engine = sa.create_engine(
                url, pool_size=2, max_overflow=2, hide_parameters=True,
                connect_args={"options": f"-c search_path={path_list} -c synchronous_commit=off"},
            )
            return cls(engine, schema, schema, live=live)
        return None

    def create_tables(self, tables: Iterable[sa.Table]) -> None:
        """Fresh copies of `tables` (columns, keys and indexes) in the shadow."""
        meta = sa.MetaData()
        with self.engine.begin() as conn:
            for table in tables:
                table.to_metadata(meta, schema=self.local).create(conn)

    def attach(self, conn: sa.Connection) -> None:
        """Let `conn` (a live connection, before its transaction) name the shadow's tables."""
        if self.path is not None:
            self._driver(conn).execute(f"ATTACH DATABASE ? AS {self.ALIAS}", (str(self.path),))

    def detach(self, conn: sa.Connection) -> None:
        if self.path is None:
            return
        try:
            self._driver(conn).execute(f"DETACH DATABASE {self.ALIAS}")
        except Exception:  # never hand a connection with the shadow attached back to the pool
            conn.invalidate()

    @staticmethod
    def _driver(conn: sa.Connection) -> Any:
        driver = conn.connection.driver_connection
        assert driver is not None
        return driver

    def drop(self) -> None:
        """Remove the shadow and everything in it (the read model's copy holds personal data)."""
        self.engine.dispose()
        if self.path is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{self.path}{suffix}").unlink()
        elif self._live is not None:
            try:
                with self._live.begin() as conn:
                    conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {self.local} CASCADE")
            except Exception:
                log.exception("could not drop the rebuild's shadow schema %s; drop it by hand", self.local)


def _pg_identifier(name: str) -> str:
    """A schema name for a libpq `-c search_path=` option: plain, or double-quoted (spaces escaped)."""
    if name.isidentifier() and name == name.lower():
        return name
    return '"' + name.replace('"', '""').replace(" ", "\\ ") + '"'


def _secure_delete(dbapi_connection: Any, _record: Any) -> None:
    """SQLite zeroes the space a deleted or shrunk row leaves in a page it writes anyway (FAST:
    no extra I/O), so a blanked name is not left in the main file's free space."""
    dbapi_connection.execute("PRAGMA secure_delete=FAST")


def compact_after_scrub(engine: sa.Engine, tables: Sequence[sa.Table]) -> None:
    """After personal data was blanked in `tables` (committed): SQLite moves the WAL into the main
    file and truncates it (the page images from before the blanking were in it); PostgreSQL
    vacuums the tables (dead tuples holding the old values are freed for reuse, and the planner's
    statistics refreshed). A failure is logged, not raised: the blanking itself is committed, and
    the daily retention task compacts again."""
    names = sorted({t.name for t in tables})
    try:
        if engine.dialect.name == "sqlite":
            raw = engine.raw_connection()
            try:
                driver = raw.driver_connection
                assert driver is not None
                busy, _log_frames, _moved = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                raw.close()
            if busy:
                log.warning("WAL checkpoint after an erasure was blocked by a reader; the daily task retries")
        elif engine.dialect.name == "postgresql":
            preparer = engine.dialect.identifier_preparer
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE) " + ", ".join(preparer.quote(n) for n in names))
    except Exception:
        log.exception("compaction after an erasure failed (tables %s); the daily task compacts again", names)


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
