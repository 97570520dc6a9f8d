"""A PROPOSAL, measured beside the real store: SqlEventStore with a faster hot path.

Not used by the services. bench_store.py runs it as impl "store-proposed" so the report can show
what the change in bench/sql_store.proposed.patch would buy before anyone applies it to shared/.

What changes (and why, from cProfile of the current store; see bench/RESULTS.md):
1. append() runs its statements on the pooled DBAPI connection with SQL written once per dialect,
   instead of building a new Core select() per call and executing it through SQLAlchemy's
   compile-cache / execution-context machinery (~50-100 us per statement in Python here).
   BEGIN IMMEDIATE / BEGIN and COMMIT are issued on the same connection: one transaction, the
   same statements and the same guarantees (version check, advisory lock on PostgreSQL, UNIQUE
   (stream_id, version), idempotency key in the same transaction).
2. On SQLite, the writers of one process queue on a threading.Lock around the write transaction
   instead of colliding in SQLite's sleeping busy handler (8 threads: one writer starved for
   2.5-3.3 s in every run, p99 80-790 ms; under load fewer commits/s than one thread alone).
3. The PostgreSQL writer engine has no pool_pre_ping: the ping is one extra round trip per
   append. A connection broken by a server restart fails that append with StorageUnavailable
   (503, never a false 2xx), is invalidated, and the next append gets a fresh one. (The patch
   also disposes the whole pool on a disconnect, as SQLAlchemy's Connection does.)
4. read_all() fetches with the driver and decodes JSON with the C scanner directly
   (json.JSONDecoder().scan_once), skipping json.loads' Python wrapper: ~2.4 us instead of
   ~5.6 us per event for data + metadata here. Stored JSON is always written by json.dumps in
   this module, so the wrapper's checks (bytes input, trailing garbage) buy nothing. It builds
   RecordedEvent by setting its slots (~0.6 us instead of ~1.1 us for the frozen __init__).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import common  # noqa: F401  (puts the project root on sys.path when run from bench/)
import sqlalchemy as sa

from shared.adapters import sql_store as base
from shared.errors import ConcurrencyConflict, StorageUnavailable
from shared.events import NewEvent, RecordedEvent
from shared.store import AppendResult

_scan = json.JSONDecoder().scan_once
_fromiso = datetime.fromisoformat


def _recorded_event_factory() -> Any:
    """RecordedEvent(...) without the frozen dataclass __init__ (ten object.__setattr__ calls,
    ~1.1 us); setting the slots directly costs ~0.6 us and builds an equal object. RecordedEvent
    has no __post_init__ or defaults, so nothing is skipped. (Or: drop frozen=True in events.py.)"""
    names = [f.name for f in dataclasses.fields(RecordedEvent)]
    assert names == ["position", "event_id", "stream_id", "version", "type", "schema_version",
                     "data", "metadata", "occurred_at", "recorded_at"], names
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = (RecordedEvent.__dict__[n].__set__ for n in names)
    new, cls = object.__new__, RecordedEvent

    def make(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any, g: Any, h: Any, i: Any, j: Any) -> RecordedEvent:
        o = new(cls)
        s0(o, a); s1(o, b); s2(o, c); s3(o, d); s4(o, e)  # noqa: E702
        s5(o, f); s6(o, g); s7(o, h); s8(o, i); s9(o, j)  # noqa: E702
        return o

    return make


_recorded = _recorded_event_factory()

_COLS = "event_id, stream_id, version, type, schema_version, data, metadata, occurred_at, recorded_at"
_SELECT = (
    "SELECT position, event_id, stream_id, version, type, schema_version, data, metadata, "
    "occurred_at, recorded_at FROM events WHERE position > {p} ORDER BY position LIMIT {p}"
)


class _Sql:
    def __init__(self, sqlite: bool) -> None:
        p = "?" if sqlite else "%s"
        self.begin = "BEGIN IMMEDIATE" if sqlite else "BEGIN"
        self.version = f"SELECT coalesce(max(version), 0) FROM events WHERE stream_id = {p}"
        self.insert_one = f"INSERT INTO events ({_COLS}) VALUES ({', '.join([p] * 9)})"
        self.insert_pos = f"INSERT INTO events (position, {_COLS}) VALUES ({', '.join([p] * 10)})"
        self.head = "SELECT coalesce(max(position), 0) FROM events"
        self.lock = f"SELECT pg_advisory_xact_lock({base._APPEND_LOCK_KEY})"
        self.nextval = f"SELECT nextval('events_position_seq') FROM generate_series(1, {p})"
        self.idem = f"INSERT INTO idempotency_keys (key, request_hash, record, recorded_at) VALUES ({p}, {p}, {p}, {p})"
        self.read = _SELECT.format(p=p)


class ProposedSqlEventStore(base.SqlEventStore):
    version_check_outside = False
    def __init__(self, url: str, clock: Any = None, *, pool_size: int = 10) -> None:
        super().__init__(url, clock, pool_size=pool_size)
        self._sql = _Sql(self._sqlite)
        # SQLite allows one writer at a time; threads that collide on BEGIN IMMEDIATE wait in
        # SQLite's busy handler, which sleeps (up to 100 ms a try) instead of queueing, so under
        # 8 threads most time is spent asleep and one thread can starve for seconds. Queue the
        # writers of this process on a lock instead (other processes still meet busy_timeout).
        self._write_lock = threading.Lock() if self._sqlite else contextlib.nullcontext()
        if not self._sqlite:
            # Same engine as before, without the per-checkout ping (see 2. above).
            self._writer.dispose()
            self._writer = sa.create_engine(
                self._writer.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False
            )
            self._reader = self._writer

    def _append_once(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None,
        request_hash: str | None,
        result: Mapping[str, Any] | None,
    ) -> AppendResult:
        q = self._sql
        now = self._clock.now().isoformat()
        with self._write_lock:
            return self._append_locked(q, now, stream_id, events, expected_version, idempotency_key,
                                       request_hash, result)

    def _append_locked(
        self,
        q: _Sql,
        now: str,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None,
        request_hash: str | None,
        result: Mapping[str, Any] | None,
    ) -> AppendResult:
        fairy = self._writer.raw_connection()  # pooled DBAPI connection (SQLAlchemy's pool)
        try:
            dbapi = fairy.driver_connection
            cur = dbapi.cursor()
            if self._sqlite and self.version_check_outside:
                # Read the stream's version before taking SQLite's write lock (WAL: reads do not
                # block writers). Safe: versions only grow, and UNIQUE(stream_id, version) turns
                # a stale read into an IntegrityError -> ConcurrencyConflict (or a retry when
                # expected_version is None), exactly as a racing writer on PostgreSQL does.
                cur.execute(q.version, (stream_id,))
                current = cur.fetchone()[0]
                cur.execute(q.begin)
            elif self._sqlite:
                cur.execute(q.begin)  # isolation_level=None: we own the transaction
                cur.execute(q.version, (stream_id,))
                current = cur.fetchone()[0]
            else:
                cur.execute(q.version, (stream_id,))
                current = cur.fetchone()[0]
            try:
                if expected_version is not None and current != expected_version:
                    raise ConcurrencyConflict(stream_id, expected_version, current)
                rows = []
                for offset, event in enumerate(events, start=1):
                    meta = dict(event.metadata)
                    meta["idempotency_key"] = idempotency_key
                    rows.append(
                        (
                            event.event_id,
                            stream_id,
                            current + offset,
                            event.type,
                            event.schema_version,
                            base._dumps(event.data),
                            base._dumps(meta),
                            event.occurred_at.isoformat(),
                            now,
                        )
                    )
                if self._sqlite:
                    if len(rows) == 1:
                        cur.execute(q.insert_one, rows[0])
                        positions = [cur.lastrowid]
                    else:
                        cur.execute(q.head)
                        start = cur.fetchone()[0]
                        positions = list(range(start + 1, start + 1 + len(rows)))
                        cur.executemany(q.insert_pos, [(p, *r) for p, r in zip(positions, rows, strict=True)])
                else:
                    cur.execute(q.lock)
                    cur.execute(q.nextval, (len(rows),))
                    positions = sorted(r[0] for r in cur.fetchall())
                    params = [(p, *r) for p, r in zip(positions, rows, strict=True)]
                    if len(params) == 1:
                        cur.execute(q.insert_pos, params[0])
                    else:
                        # psycopg's executemany pipelines the rows (one round trip); measured
                        # faster here than one multi-row INSERT of 1,000 parameters.
                        cur.executemany(q.insert_pos, params)
                outcome = AppendResult(
                    stream_id=stream_id,
                    first_version=current + 1,
                    last_version=current + len(events),
                    positions=tuple(positions),
                    event_ids=tuple(e.event_id for e in events),
                    result=dict(result or {}),
                )
                if idempotency_key is not None:
                    cur.execute(q.idem, (idempotency_key, request_hash, base._dumps(outcome.as_record()), now))
                if self._sqlite:
                    cur.execute("COMMIT")
                else:
                    dbapi.commit()
            except BaseException:
                try:
                    if self._sqlite:
                        if dbapi.in_transaction:
                            cur.execute("ROLLBACK")
                    else:
                        dbapi.rollback()
                except Exception:
                    fairy.invalidate()
                raise
            finally:
                cur.close()
        except self._dbapi().Error as exc:
            # Map driver errors onto SQLAlchemy's, which append() already handles.
            dbapi_mod = self._dbapi()
            if isinstance(exc, dbapi_mod.IntegrityError):
                raise sa.exc.IntegrityError("append", None, exc) from exc
            if isinstance(exc, (dbapi_mod.OperationalError, dbapi_mod.InterfaceError)):
                fairy.invalidate()  # maybe a broken connection: never hand it out again
            raise sa.exc.DBAPIError("append", None, exc) from exc
        finally:
            fairy.close()
        return outcome

    def _dbapi(self) -> Any:
        return self._writer.dialect.loaded_dbapi

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        try:
            fairy = self._reader.raw_connection()
            try:
                cur = fairy.driver_connection.cursor()
                cur.execute(self._sql.read, (after, limit))
                rows = cur.fetchall()
                cur.close()
            finally:
                fairy.close()  # the pool's reset-on-return ends a PostgreSQL read transaction
        except self._dbapi().Error as exc:
            raise StorageUnavailable(f"the event store could not be read: {str(exc).splitlines()[0][:200]}") from exc
        scan, fromiso, ev = _scan, _fromiso, _recorded
        return [
            ev(r[0], r[1], r[2], r[3], r[4], r[5], scan(r[6], 0)[0], scan(r[7], 0)[0], fromiso(r[8]), fromiso(r[9]))
            for r in rows
        ]



class ProposedSqlEventStoreShortTx(ProposedSqlEventStore):
    """Also moves SQLite's version check out of the write transaction (step 5 in RESULTS.md)."""

    version_check_outside = True
