"""Event store benchmark: SqlEventStore vs the raw driver vs eventsourcing's recorder.

Appends (1 event per transaction and 100 per transaction; 1 and 8 concurrent writers) and
read_all with decoding, on SQLite (file, WAL, synchronous=FULL) and PostgreSQL, in one run.

    python bench/bench_store.py --sqlite-dir /tmp/x --pg-url postgresql://postgres@127.0.0.1:5432/db
    python bench/bench_store.py ... --full        # the issue's sizes (1M events read, longer cells)

Each append cell runs for a fixed time (2.5 s; --full 10 s) on an empty database, 2 interleaved
rounds (--full 3) with the best reported; writers are processes by default
(--mode threads for one process with N threads sharing one client). Results go to --out (JSON)
and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import multiprocessing as mp
import os
import sqlite3
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    APPEND_LOCK_KEY,
    DATA,
    EVENT_TYPE,
    META,
    current_rss_mb,
    dumps,
    git_rev,
    libpq_url,
    machine_facts,
    peak_rss_mb,
    percentile,
    pg_checkpoint,
    pg_reset,
    sa_url,
)

# Measurement variants that only exist on PostgreSQL (locks taken out, or a table lock instead).
POSTGRES_ONLY = ("raw-tablelock", "raw-nolock", "store-nolock", "peer-nolock")

STREAM_LEN = 10  # commits per stream before a writer moves on to a new stream

INSERT_COLS = "event_id, stream_id, version, type, schema_version, data, metadata, occurred_at, recorded_at"
INSERT_COLS_POS = "position, " + INSERT_COLS


# --------------------------------------------------------------------------------------------
# Clients: each has append(stream_id, expected_version, n) -> None and close().
# --------------------------------------------------------------------------------------------
class StoreClient:
    """The event store (shared.adapters.stores.open_event_store), exactly as the services use it."""

    def __init__(self, backend: str, target: str, pool_size: int) -> None:
        from shared.adapters.stores import open_event_store
        from shared.events import NewEvent

        self._new = NewEvent
        url = f"sqlite:///{target}" if backend == "sqlite" else sa_url(target)
        self.store = open_event_store(url, pool_size=pool_size)

    def append(self, stream_id: str, expected: int, n: int) -> None:
        occurred = datetime.now(UTC)
        events = [self._new(EVENT_TYPE, 1, DATA, META, occurred) for _ in range(n)]
        self.store.append(stream_id, events, expected_version=expected)

    def close(self) -> None:
        self.store.dispose()


class StoreNoLockClient(StoreClient):
    """PostgreSQL only, for measurement: the store with its append lock taken out of its
    statements, so positions may commit out of order (readers could skip). The store's rate
    against this one's is what the no-skip guarantee costs the store itself."""

    def __init__(self, backend: str, target: str, pool_size: int) -> None:
        super().__init__(backend, target, pool_size)
        from shared.adapters import postgres_store

        statements = copy.copy(self.store._statements)
        lock_cte = f"append_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock({postgres_store.APPEND_LOCK_KEY})), "
        for name in ("append_statement", "append_keyed_statement"):
            text = getattr(statements, name)
            unlocked = text.replace(lock_cte, "").replace("FROM append_lock, current,", "FROM current,")
            if "pg_advisory" in unlocked or "append_lock" in unlocked:
                raise RuntimeError(f"store-nolock: the store's {name} changed shape; update this client")
            setattr(statements, name, unlocked)
        statements.append_lock = "SELECT 1"  # the COPY path's lock statement (batches of 16+)
        self.store._statements = statements


class RawSqliteClient:
    """sqlite3 doing what the store does: BEGIN IMMEDIATE; version check; INSERT(s); COMMIT."""

    def __init__(self, backend: str, target: str, pool_size: int) -> None:
        self.path = target
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    def append(self, stream_id: str, expected: int, n: int) -> None:
        conn = self._conn()
        now = datetime.now(UTC)
        occurred = now.isoformat()
        recorded = now.isoformat()
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute(
                "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?", (stream_id,)
            ).fetchone()[0]
            if current != expected:
                raise RuntimeError("conflict")
            meta = dict(META)
            meta["idempotency_key"] = None
            rows = [
                (str(uuid.uuid4()), stream_id, current + i, EVENT_TYPE, 1, dumps(DATA), dumps(meta), occurred, recorded)
                for i in range(1, n + 1)
            ]
            if n == 1:
                conn.execute(f"INSERT INTO events ({INSERT_COLS}) VALUES (?,?,?,?,?,?,?,?,?)", rows[0])
            else:
                start = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
                conn.executemany(
                    f"INSERT INTO events ({INSERT_COLS_POS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(start + i, *row) for i, row in enumerate(rows, start=1)],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class RawPgClient:
    """psycopg doing what the store does: BEGIN; version check; lock; nextval; INSERT(s); COMMIT.

    lock: "advisory" (the store's pg_advisory_xact_lock), "table" (LOCK TABLE ... IN EXCLUSIVE
    MODE, the peer's way) or "none" (no ordering guarantee: the floor)."""

    lock = "advisory"

    def __init__(self, backend: str, target: str, pool_size: int) -> None:
        self.url = libpq_url(target)
        self._local = threading.local()

    def _conn(self) -> Any:
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = psycopg.connect(self.url, autocommit=True)
            self._local.conn = conn
        return conn

    def append(self, stream_id: str, expected: int, n: int) -> None:
        conn = self._conn()
        now = datetime.now(UTC)
        occurred = now.isoformat()
        recorded = now.isoformat()
        with conn.transaction():
            current = conn.execute(
                "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = %s", (stream_id,)
            ).fetchone()[0]
            if current != expected:
                raise RuntimeError("conflict")
            meta = dict(META)
            meta["idempotency_key"] = None
            rows = [
                (str(uuid.uuid4()), stream_id, current + i, EVENT_TYPE, 1, dumps(DATA), dumps(meta), occurred, recorded)
                for i in range(1, n + 1)
            ]
            if self.lock == "advisory":
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_KEY,))
            elif self.lock == "table":
                conn.execute("LOCK TABLE events IN EXCLUSIVE MODE")
            positions = [
                r[0]
                for r in conn.execute(
                    "SELECT nextval('events_position_seq') FROM generate_series(1, %s)", (n,)
                ).fetchall()
            ]
            positions.sort()
            sql = f"INSERT INTO events ({INSERT_COLS_POS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            if n == 1:
                conn.execute(sql, (positions[0], *rows[0]))
            else:
                with conn.cursor() as cur:
                    cur.executemany(sql, [(p, *row) for p, row in zip(positions, rows, strict=True)])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class RawPgTableLockClient(RawPgClient):
    lock = "table"


class RawPgNoLockClient(RawPgClient):
    lock = "none"


def peer_env(backend: str, target: str, pool_size: int, create: bool) -> dict[str, str]:
    if backend == "sqlite":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": target,
            "SQLITE_LOCK_TIMEOUT": "60",
            "CREATE_TABLE": "y" if create else "n",
        }
    from sqlalchemy.engine import make_url

    u = make_url(sa_url(target))
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": u.database or "postgres",
        "POSTGRES_HOST": u.host or "127.0.0.1",
        "POSTGRES_PORT": str(u.port or 5432),
        "POSTGRES_USER": u.username or "postgres",
        "POSTGRES_PASSWORD": u.password or "",
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
        "CREATE_TABLE": "y" if create else "n",
    }


class PeerClient:
    """eventsourcing's ApplicationRecorder (its sqlite / postgres persistence module)."""

    def __init__(self, backend: str, target: str, pool_size: int) -> None:
        from eventsourcing.persistence import InfrastructureFactory, StoredEvent

        self._stored = StoredEvent
        self.factory = InfrastructureFactory.construct(peer_env(backend, target, pool_size, create=False))
        self.recorder = self.factory.application_recorder()
        self._ids: dict[str, uuid.UUID] = {}

    def append(self, stream_id: str, expected: int, n: int) -> None:
        oid = self._ids.get(stream_id)
        if oid is None:
            oid = self._ids[stream_id] = uuid.uuid4()
        # Same work as the others: encode data and metadata to JSON for every event.
        meta = dict(META)
        meta["idempotency_key"] = None
        occurred = datetime.now(UTC).isoformat()
        events = [
            self._stored(
                originator_id=oid,
                originator_version=expected + i,
                topic=EVENT_TYPE,
                state=dumps(
                    {"data": DATA, "metadata": meta, "occurred_at": occurred, "id": str(uuid.uuid4())}
                ).encode(),
            )
            for i in range(1, n + 1)
        ]
        self.recorder.insert_events(events)

    def close(self) -> None:
        self.factory.close()


class PeerNoLockClient(PeerClient):
    """PostgreSQL only, for measurement: the peer without its table lock (its recorder's lock
    statements emptied; readers could skip). The peer's rate against this one's is what its
    table lock costs it."""

    def __init__(self, backend: str, target: str, pool_size: int) -> None:
        super().__init__(backend, target, pool_size)
        if not self.recorder.lock_table_statements:
            raise RuntimeError("peer-nolock: the peer's recorder has no lock statements to take out")
        self.recorder.lock_table_statements = []


CLIENTS: dict[str, type] = {
    "store": StoreClient,
    "raw": RawSqliteClient,  # replaced per backend below
    "peer": PeerClient,
}


def client_class(impl: str, backend: str) -> type:
    if impl == "store":
        return StoreClient
    if impl == "store-nolock":
        return StoreNoLockClient
    if impl == "peer":
        return PeerClient
    if impl == "peer-nolock":
        return PeerNoLockClient
    if backend == "sqlite":
        return RawSqliteClient
    return {"raw": RawPgClient, "raw-tablelock": RawPgTableLockClient, "raw-nolock": RawPgNoLockClient}[impl]


def create_schema(impl: str, backend: str, target: str) -> None:
    """Fresh, empty tables for one cell."""
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target + suffix)
    else:
        pg_reset(target)
    if impl.startswith("peer"):
        from eventsourcing.persistence import InfrastructureFactory

        factory = InfrastructureFactory.construct(peer_env(backend, target, 1, create=True))
        factory.application_recorder()
        factory.close()
    else:
        from shared.adapters.stores import open_event_store

        url = f"sqlite:///{target}" if backend == "sqlite" else sa_url(target)
        store = open_event_store(url, pool_size=1)
        store.create_schema()
        store.dispose()
    if backend == "postgresql":
        pg_checkpoint(target)


# --------------------------------------------------------------------------------------------
# Append cells
# --------------------------------------------------------------------------------------------
def _writer_loop(client: Any, writer: int, batch: int, duration: float, barrier: Any, out: list) -> None:
    prefix = f"w{writer}-{uuid.uuid4().hex[:8]}"
    stream_no, version = 0, 0
    # Warm-up: connect, prepare statements, fill caches.
    for _ in range(3):
        client.append(f"{prefix}-warm-{stream_no}", version, batch)
        version += batch
    stream_no, version = 1, 0
    barrier.wait()
    lat: list[float] = []
    commits = errors = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + duration
    now = t0
    while now < deadline:
        stream = f"{prefix}-{stream_no}"
        try:
            client.append(stream, version, batch)
            version += batch
            commits += 1
        except Exception as exc:
            errors += 1
            if errors < 3:
                print(f"    writer {writer}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
            stream_no, version = stream_no + 1, 0
        after = time.perf_counter()
        lat.append(after - now)
        now = after
        if commits % STREAM_LEN == 0:
            stream_no, version = stream_no + 1, 0
    out.append({"commits": commits, "errors": errors, "elapsed": now - t0, "lat": lat,
                "cpu": time.process_time() - cpu0})


def _process_writer(impl: str, backend: str, target: str, writer: int, batch: int, duration: float,
                    barrier: Any, queue: Any) -> None:
    client = client_class(impl, backend)(backend, target, 1)
    out: list = []
    try:
        _writer_loop(client, writer, batch, duration, barrier, out)
    finally:
        client.close()
    queue.put(out[0])


def run_append_cell(impl: str, backend: str, target: str, batch: int, writers: int, duration: float,
                    mode: str) -> dict[str, Any]:
    create_schema(impl, backend, target)
    results: list[dict[str, Any]] = []
    if writers == 1 or mode == "threads":
        client = client_class(impl, backend)(backend, target, max(1, writers))
        barrier = threading.Barrier(writers)
        threads = [
            threading.Thread(target=_writer_loop, args=(client, w, batch, duration, barrier, results))
            for w in range(writers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.close()
        how = "1 thread" if writers == 1 else f"{writers} threads"
    else:
        ctx = mp.get_context("fork")
        barrier = ctx.Barrier(writers)
        queue = ctx.Queue()
        procs = [
            ctx.Process(target=_process_writer, args=(impl, backend, target, w, batch, duration, barrier, queue))
            for w in range(writers)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            results.append(queue.get(timeout=duration + 120))
        for p in procs:
            p.join()
        how = f"{writers} processes"
    lat = sorted(x for r in results for x in r["lat"])
    commits = sum(r["commits"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    per_writer = [r["commits"] / r["elapsed"] for r in results]
    return {
        "kind": "append",
        "backend": backend,
        "impl": impl,
        "batch": batch,
        "writers": writers,
        "how": how,
        "commits": commits,
        "errors": sum(r["errors"] for r in results),
        "seconds": round(elapsed, 2),
        "commits_per_s": commits / elapsed,
        "events_per_s": commits * batch / elapsed,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "max_ms": (lat[-1] * 1000) if lat else float("nan"),
        "slowest_writer_share": (min(per_writer) / (sum(per_writer) / len(per_writer))) if per_writer else 0,
        # Client-side CPU per commit (this process; with 1 writer it excludes the database server's
        # own CPU, so it shows each library's overhead even when other jobs share the machine).
        "client_cpu_us_per_commit": (results[0]["cpu"] / commits * 1e6) if writers == 1 and commits else None,
    }


# --------------------------------------------------------------------------------------------
# read_all cells
# --------------------------------------------------------------------------------------------
def fill(impl: str, backend: str, target: str, total: int) -> float:
    """Bulk-load `total` events (not timed as part of the result): store's table or the peer's."""
    create_schema("peer" if impl == "peer" else "store", backend, target)
    t0 = time.perf_counter()
    meta = dict(META)
    meta["idempotency_key"] = None
    data_s, meta_s = dumps(DATA), dumps(meta)
    now = datetime.now(UTC).isoformat()
    chunk = 20_000
    if impl == "peer":
        state = dumps({"data": DATA, "metadata": meta, "occurred_at": now, "id": str(uuid.uuid4())}).encode()
        if backend == "sqlite":
            conn = sqlite3.connect(target, isolation_level=None)
            for start in range(0, total, chunk):
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO stored_events VALUES (?,?,?,?)",
                    [(uuid.UUID(int=(i // STREAM_LEN) + 1).hex, i % STREAM_LEN + 1, EVENT_TYPE, state)
                     for i in range(start, min(total, start + chunk))],
                )
                conn.execute("COMMIT")
            conn.close()
        else:
            import psycopg

            with psycopg.connect(libpq_url(target)) as conn, conn.cursor() as cur:
                with cur.copy("COPY stored_events (originator_id, originator_version, topic, state) FROM STDIN") as cp:
                    for i in range(total):
                        cp.write_row((uuid.UUID(int=(i // STREAM_LEN) + 1), i % STREAM_LEN + 1, EVENT_TYPE, state))
                conn.commit()
    else:
        def row(i: int) -> tuple:
            return (i + 1, str(uuid.UUID(int=i + 1)), f"student-{i // STREAM_LEN}", i % STREAM_LEN + 1,
                    EVENT_TYPE, 1, data_s, meta_s, now, now)

        if backend == "sqlite":
            conn = sqlite3.connect(target, isolation_level=None)
            for start in range(0, total, chunk):
                conn.execute("BEGIN")
                conn.executemany(f"INSERT INTO events ({INSERT_COLS_POS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                                 [row(i) for i in range(start, min(total, start + chunk))])
                conn.execute("COMMIT")
            conn.close()
        else:
            import psycopg

            with psycopg.connect(libpq_url(target)) as conn, conn.cursor() as cur:
                with cur.copy(f"COPY events ({INSERT_COLS_POS}) FROM STDIN") as cp:
                    for i in range(total):
                        cp.write_row(row(i))
                conn.execute("SELECT setval('events_position_seq', %s)", (total,))
                conn.commit()
    if backend == "postgresql":
        import psycopg

        with psycopg.connect(libpq_url(target), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        pg_checkpoint(target)
    return time.perf_counter() - t0


def _read_store(backend: str, target: str, batch: int) -> int:
    from shared.adapters.stores import open_event_store

    url = f"sqlite:///{target}" if backend == "sqlite" else sa_url(target)
    store = open_event_store(url, pool_size=1)
    n, after = 0, 0
    while True:
        events = store.read_all(after=after, limit=batch)
        if not events:
            break
        n += len(events)
        after = events[-1].position
    store.dispose()
    return n


def _decode_raw_rows(rows: list, recorded_event: Any, loads: Any, fromiso: Any) -> list:
    return [
        recorded_event(r[0], r[1], r[2], r[3], r[4], r[5], loads(r[6]), loads(r[7]), fromiso(r[8]), fromiso(r[9]))
        for r in rows
    ]


def _read_raw(backend: str, target: str, batch: int) -> int:
    """The driver's ceiling: same query, same decoding into RecordedEvent, no SQLAlchemy."""
    from shared.events import RecordedEvent

    sql = ("SELECT position, event_id, stream_id, version, type, schema_version, data, metadata, "
           "occurred_at, recorded_at FROM events WHERE position > {p} ORDER BY position LIMIT {p}")
    loads, fromiso = json.loads, datetime.fromisoformat
    n, after = 0, 0
    if backend == "sqlite":
        conn = sqlite3.connect(target)
        q = sql.format(p="?")
        while True:
            rows = conn.execute(q, (after, batch)).fetchall()
            if not rows:
                break
            events = _decode_raw_rows(rows, RecordedEvent, loads, fromiso)
            n += len(events)
            after = events[-1].position
        conn.close()
    else:
        import psycopg

        q = sql.format(p="%s")
        with psycopg.connect(libpq_url(target), autocommit=True) as conn:
            while True:
                rows = conn.execute(q, (after, batch)).fetchall()
                if not rows:
                    break
                events = _decode_raw_rows(rows, RecordedEvent, loads, fromiso)
                n += len(events)
                after = events[-1].position
    return n


def _read_peer(backend: str, target: str, batch: int) -> int:
    from eventsourcing.persistence import InfrastructureFactory

    factory = InfrastructureFactory.construct(peer_env(backend, target, 1, create=False))
    recorder = factory.application_recorder()
    loads = json.loads
    n, after = 0, 0
    while True:
        notes = recorder.select_notifications(start=after, limit=batch, inclusive_of_start=False)
        if not notes:
            break
        decoded = [(x.id, x.originator_id, x.originator_version, x.topic, loads(x.state)) for x in notes]
        n += len(decoded)
        after = notes[-1].id
    factory.close()
    return n


def _read_child(impl: str, backend: str, target: str, batch: int, queue: Any) -> None:
    # Import what the reader needs before measuring, so the RSS growth is the read's own.
    import sqlalchemy  # noqa: F401

    import shared.adapters.stores  # noqa: F401

    if impl == "peer":
        import eventsourcing.persistence  # noqa: F401
    gc.collect()
    base = current_rss_mb()
    fn = {"store": _read_store, "raw": _read_raw, "peer": _read_peer}[impl]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    n = fn(backend, target, batch)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    queue.put({"n": n, "seconds": elapsed, "cpu": cpu, "peak_rss_mb": peak_rss_mb(), "base_rss_mb": base})


def run_read_cell(impl: str, backend: str, target: str, total: int, batch: int) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_read_child, args=(impl, backend, target, batch, queue))
    p.start()
    r = queue.get(timeout=3600)
    p.join()
    if r["n"] != total:
        print(f"    WARNING: read {r['n']} of {total}", file=sys.stderr)
    return {
        "kind": "read_all",
        "backend": backend,
        "impl": impl,
        "batch": batch,
        "events": r["n"],
        "seconds": round(r["seconds"], 2),
        "events_per_s": r["n"] / r["seconds"],
        # Events per second of the reader's own CPU time: what the reader achieves when it has a
        # core to itself (wall-clock ev/s drops when other jobs share the 2 cores).
        "events_per_cpu_s": r["n"] / r["cpu"] if r["cpu"] else None,
        "peak_rss_mb": round(r["peak_rss_mb"], 1),
        "base_rss_mb": round(r["base_rss_mb"], 1),
    }


# --------------------------------------------------------------------------------------------
def _cpu(r: dict[str, Any]) -> str:
    cpu = r.get("client_cpu_us_per_commit")
    return "" if cpu is None else str(round(cpu))


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    appends = [r for r in results if r["kind"] == "append"]
    if appends:
        lines += [
            "| backend | impl | events/txn | writers | commits/s (rounds) | events/s | p50 ms | p99 ms | max ms "
            "| slowest writer | client CPU us/commit | errors |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in appends:
            lines.append(
                f"| {r['backend']} | {r['impl']} | {r['batch']} | {r['how']} | {r['commits_per_s']:,.0f} "
                f"({'/'.join(str(x) for x in r.get('rounds', []))}) | "
                f"{r['events_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.0f} | "
                f"{r['slowest_writer_share']:.2f} | {_cpu(r)} | "
                f"{r['errors']} |"
            )
    reads = [r for r in results if r["kind"] == "read_all"]
    if reads:
        lines += [
            "",
            "| backend | impl | events | batch | seconds | events/s (wall) | events per CPU-s "
            "| peak RSS MB (before read) |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in reads:
            lines.append(
                f"| {r['backend']} | {r['impl']} | {r['events']:,} | {r['batch']} | {r['seconds']} | "
                f"{r['events_per_s']:,.0f} | {r['events_per_cpu_s'] or 0:,.0f} | "
                f"{r['peak_rss_mb']} ({r['base_rss_mb']}) |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sqlite-dir", required=True, help="directory for the SQLite files (a real disk)")
    ap.add_argument("--pg-url", default=os.environ.get("CIM_BENCH_PG_URL", ""), help="PostgreSQL URL (empty: skip)")
    ap.add_argument("--full", action="store_true", help="the issue's sizes: read 1,000,000 events, 10 s cells")
    ap.add_argument("--duration", type=float, default=None, help="seconds per append cell (default 2.5, full 10)")
    ap.add_argument("--read-events", type=int, default=None, help="events for read_all (default 100k, full 1M)")
    ap.add_argument("--read-batch", type=int, default=1000)
    ap.add_argument("--read-repeat", type=int, default=2, help="read each table this often, keep the best")
    ap.add_argument("--rounds", type=int, default=None, help="repeats per append cell (default 2, full 3)")
    ap.add_argument("--mode", choices=["processes", "threads"], default="processes",
                    help="how the 8 concurrent writers run")
    ap.add_argument("--writers", default="1,8")
    ap.add_argument("--batches", default="1,100")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--impls", default="store,raw,peer,raw-tablelock,raw-nolock,store-nolock,peer-nolock")
    ap.add_argument("--skip-append", action="store_true")
    ap.add_argument("--skip-read", action="store_true")
    ap.add_argument("--out", default="", help="write the results as JSON here")
    args = ap.parse_args()
    duration = args.duration or (10.0 if args.full else 2.5)
    read_events = args.read_events or (1_000_000 if args.full else 100_000)
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not args.pg_url:
        print("no --pg-url / CIM_BENCH_PG_URL: skipping PostgreSQL", file=sys.stderr)
        backends.remove("postgresql")
    impls = args.impls.split(",")
    facts = machine_facts(args.pg_url or None)
    facts.update({"git": git_rev(), "duration_s": duration, "read_events": read_events, "mode": args.mode})
    print(json.dumps(facts), file=sys.stderr)
    results: list[dict[str, Any]] = []
    all_rounds: list[dict[str, Any]] = []
    rounds_n = args.rounds or (3 if args.full else 2)
    sqlite_path = str(Path(args.sqlite_dir) / "bench.db")
    for backend in backends:
        target = sqlite_path if backend == "sqlite" else args.pg_url
        if not args.skip_append:
            for batch in (int(x) for x in args.batches.split(",")):
                for writers in (int(x) for x in args.writers.split(",")):
                    # Interleave the implementations and repeat: machine noise hits all of them
                    # alike, and the best round of each is reported (all rounds are in the JSON).
                    rounds: dict[str, list[dict[str, Any]]] = {}
                    for rnd in range(rounds_n):
                        for impl in impls:
                            if backend == "sqlite" and impl in POSTGRES_ONLY:
                                continue
                            r = run_append_cell(impl, backend, target, batch, writers, duration, args.mode)
                            r["round"] = rnd
                            rounds.setdefault(impl, []).append(r)
                            print(f"  {backend:10} {impl:13} batch={batch:<3} {r['how']:12} "
                                  f"{r['commits_per_s']:8,.0f} commits/s {r['events_per_s']:9,.0f} ev/s "
                                  f"p99 {r['p99_ms']:7.2f} ms cpu/commit {_cpu(r):>6} us "
                                  f"errors {r['errors']}", file=sys.stderr, flush=True)
                    for runs in rounds.values():
                        best = dict(max(runs, key=lambda x: x["commits_per_s"]))
                        best["rounds"] = [round(x["commits_per_s"]) for x in runs]
                        results.append(best)
                        all_rounds.extend(runs)
        if not args.skip_read:
            for impl in ("store", "raw", "peer"):
                if impl not in impls:
                    continue
                if impl in ("store", "peer"):  # the others read the store's table, already filled
                    secs = fill(impl, backend, target, read_events)
                    print(f"  filled {read_events:,} {impl} events in {secs:.1f} s", file=sys.stderr)
                runs = [run_read_cell(impl, backend, target, read_events, args.read_batch)
                        for _ in range(args.read_repeat)]
                r = dict(max(runs, key=lambda x: x["events_per_s"]))
                r["repeats"] = [round(x["events_per_s"]) for x in runs]
                results.append(r)
                print(f"  {backend:10} read_all {impl:6} {r['events']:,} events {r['events_per_s']:9,.0f} ev/s "
                      f"peak RSS {r['peak_rss_mb']} MB", file=sys.stderr, flush=True)
        if backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(sqlite_path + suffix)
    facts["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    if args.out:
        for r in all_rounds:
            r.pop("lat", None)
        Path(args.out).write_text(json.dumps({"machine": facts, "results": results, "all_rounds": all_rounds},
                                             indent=1, default=str))
    print(markdown(results))


if __name__ == "__main__":
    main()
