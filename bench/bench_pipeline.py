"""The event pipeline end to end (issue 3, "Speed"): intake -> Redis/Celery -> projections -> assessment DB.

Starts, per backend (SQLite = the embedded default, and PostgreSQL), the production shape of
scripts/run.sh / tests/e2e/conftest.py: its own redis-server (AOF on, noeviction), the intake and
the assessment apps under gunicorn, one `celery worker` and `celery beat`. The worker reads the
intake feed over HTTP (HttpEventFeed), exactly as in production. Then it measures:

1. intake appends over HTTP with the worker running (1 and 8 client processes; register + 4
   activities per student, one event per POST);
2. a. POST->visible lag at a steady rate (default 100 events/s for 60 s): sender threads POST
      register / 4 activities / report per student on a fixed schedule; a separate process polls
      the assessment database directly (`SELECT min(position) FROM projection_checkpoints`, every
      ~1 ms). The checkpoint commits in the same transaction as the rows, so "checkpoint >= the
      event's position" is exactly "the row is visible in the review queue / students table".
      Each POST's position is looked up afterwards in the intake DB by (stream, version).
      The first 3 s at the same rate are a warm-up, reported apart (first connections, caches).
   b. sustained 1,000 events/s for 30 s, appended through SqlEventStore.append + the Celery
      wake-up (the intake app's own path minus HTTP: this machine's intake HTTP tops out below
      1,000 POST/s, see step 1), backlog = head - checkpoint sampled over time, start vs end;
   c. catch-up throughput: N events committed in one transaction, one wake-up, time until the
      checkpoints reach the head (the worker reading the feed over HTTP, batches of 250);
3. rebuild: worker and beat stopped, the intake store filled up to N events, then
   `flask --app assessment_service projections rebuild` as a subprocess: wall time, events/s,
   RSS sampled from /proc every 0.25 s (VmRSS, VmHWM) at 10%..100% of the run;
4. the raw reference: the rebuilt read-model rows (students, activities, reports, review_queue)
   inserted into fresh tables of the same schema in the same database engine with the raw driver
   (sqlite3 executemany, WAL + synchronous=FULL as the services; psycopg executemany), in as many
   transactions as the rebuild used (one per 250-event batch).

Bulk preloading writes event rows straight into the intake `events` table (with personal fields
sealed with per-student keys stored in `subject_keys`, as the intake service does), so the feed
does the same unsealing work as in production.

    .venv/bin/python bench/bench_pipeline.py                 # defaults, both backends, < 10 min
    .venv/bin/python bench/bench_pipeline.py --full          # 1,000,000-event rebuild, longer runs
    .venv/bin/python bench/bench_pipeline.py --backends sqlite --skip lag,burst
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import http.client
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import mint_api_token  # noqa: E402

from assessment_service.bootstrap import BATCH_SIZE as RUNNER_BATCH  # noqa: E402  (events per projection transaction)

ACTIVITY = {
    "kind": "summer-school",
    "title": "Summer school on comparative social policy",
    "organiser": "University of Example, Department of Social Work",
    "setting": "abroad",
    "country_code": "DE",
    "start_date": "2026-06-01",
    "end_date": "2026-06-20",
    "hours": 40,
    "description": "Two weeks of seminars and field visits on social services in Germany and the Nordic "
    "countries, with a group project on child welfare.",
}
ANSWERS = {
    "learning": "I learned how social services are organised in other welfare states.",
    "profession": "It changed how I think about my future professional role.",
    "perspective": "I now see my own practice in an international perspective.",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------
#: The intake-feed projections' checkpoint. `assignments` is projected from the assessment
#: service's own store (staff decisions), whose positions are another sequence: left out.
CHECKPOINT_SQL = "SELECT coalesce(min(position), 0) FROM projection_checkpoints WHERE name <> 'assignments'"

#: The integration API token every bench request presents (run_backend mints it in the identity
#: database the services use); the services' worker reads feeds with it too (CIM_FEED_TOKEN).
BENCH_TOKEN = ""
BENCH_SCOPES = ("intake:register", "intake:write", "intake:read", "feed:read", "ops:read", "assessment:read")


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {BENCH_TOKEN}"} if BENCH_TOKEN else {}


def authed_session() -> Any:
    import requests

    session = requests.Session()
    session.headers.update(auth_headers())
    return session


_json_dumps = json.dumps  # LightSession.post's `json` argument hides the module


class _Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.content = body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LightSession:
    """A keep-alive JSON client on http.client, for the lag run's senders: the load generator
    shares the two cores with the system it measures, and `requests` spent ~1.9 ms of CPU per
    POST there (bench process 18.5 % of a core at 100 POST/s, measured). Same requests on the
    wire (method, path, headers, JSON body); one connection per sender thread, reopened once
    if the server closed it between requests."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.headers = {"Content-Type": "application/json", **auth_headers(), **(headers or {})}
        self._conn: Any = None
        self._host = ""

    def post(self, url: str, json: Any = None, timeout: float = 30.0) -> _Answer:  # requests' signature
        parts = urlsplit(url)
        body = _json_dumps(json).encode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            if self._conn is None or self._host != parts.netloc:
                self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
                self._host = parts.netloc
            try:
                self._conn.request("POST", path, body, self.headers)
                answer = self._conn.getresponse()
                return _Answer(answer.status, answer.read())
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth_headers()), timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class Redis:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--maxmemory-policy",
                "noeviction",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import redis

        wait_for(lambda: self._ping(redis), 10, "redis")

    def _ping(self, redis: Any) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


class Pipeline:
    """The processes of scripts/run.sh for one backend (same flags as tests/e2e/conftest.py)."""

    def __init__(self, backend: str, workdir: Path, env: dict[str, str]) -> None:
        self.backend = backend
        self.workdir = workdir
        self.env = env
        self.processes = "1" if backend == "sqlite" else "2"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.intake_url = env["CIM_INTAKE_URL"]
        self.assessment_url = env["CIM_ASSESSMENT_URL"]

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        logf = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def start_apps(self) -> None:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import intake_service, assessment_service; "
                "intake_service.create_app(); assessment_service.create_app()",
            ],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        for name, factory, url in (
            ("intake", "intake_service:create_app()", self.intake_url),
            ("assessment", "assessment_service:create_app()", self.assessment_url),
            ("intake-feed", "intake_service:create_feed_app()", self.env["CIM_INTAKE_FEED_URL"]),
        ):
            port = url.rsplit(":", 1)[1]
            self._start(
                name,
                [
                    str(BIN / "gunicorn"),
                    "--config",
                    str(ROOT / "config" / "gunicorn.conf.py"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    self.processes,
                    "--threads",
                    "4",
                    "--no-control-socket",
                    factory,
                ],
            )
        wait_for(lambda: http_get(f"{self.intake_url}/api/v1/events?limit=1")[0] == 200, 60, "intake")
        wait_for(lambda: http_get(f"{self.assessment_url}/api/v1/projections")[0] == 200, 60, "assessment")

    def start_worker(self) -> None:
        self._start(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "workers.celery_app",
                "worker",
                "--concurrency",
                self.processes,
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        proc = self.procs["worker"]

        def ready() -> bool:
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            return len(out) >= int(self.processes)

        wait_for(ready, 60, "celery worker pool")
        time.sleep(2.0)  # consumer connected

    def start_beat(self) -> None:
        self._start(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "workers.celery_app",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(self.workdir / "celerybeat-schedule"),
            ],
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


# ---------------------------------------------------------------------------------------------
# databases
# ---------------------------------------------------------------------------------------------
class Databases:
    """Raw access to the intake and assessment databases of one backend."""

    def __init__(self, backend: str, intake_url: str, assessment_url: str, raw_url: str) -> None:
        self.backend = backend
        self.intake_url = intake_url
        self.assessment_url = assessment_url
        self.raw_url = raw_url

    def connect(self, url: str) -> Any:
        if self.backend == "sqlite":
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=60000")
            return conn
        import psycopg

        return psycopg.connect(libpq(url), autocommit=True)

    def scalar(self, url: str, sql: str) -> Any:
        conn = self.connect(url)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()

    def head(self) -> int:
        return int(self.scalar(self.intake_url, "SELECT coalesce(max(position), 0) FROM events"))

    def checkpoint(self) -> int:
        return int(self.scalar(self.assessment_url, CHECKPOINT_SQL))

    def positions_for(self, after: int) -> dict[tuple[str, int], int]:
        conn = self.connect(self.intake_url)
        try:
            rows = conn.execute(
                f"SELECT stream_id, version, position FROM events WHERE position > {int(after)}"
            ).fetchall()
        finally:
            conn.close()
        return {(s, int(v)): int(p) for s, v, p in rows}


def libpq(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1] if url.startswith("postgresql+") else url


def pg_recreate(admin_url: str, names: list[str]) -> None:
    import psycopg

    for name in names:
        assert name == "cim_f" or name.startswith("cim_f_"), name
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")


def pg_url_for(base: str, db: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + db


# ---------------------------------------------------------------------------------------------
# synthetic events, sealed as the intake service seals them
# ---------------------------------------------------------------------------------------------
class EventMaker:
    """Per student: StudentRegistered, 4 x ActivityLogged, ReportSubmitted (6 events, 7 read-model rows)."""

    PER_STUDENT = 6

    def __init__(self, vault_secret: str) -> None:
        from intake_service.events import REGISTRY
        from shared.adapters.sql_vault import KeyWrapper

        self.wrapper = KeyWrapper(vault_secret)
        self.versions = {
            t: REGISTRY.current_version(t) for t in ("StudentRegistered", "ActivityLogged", "ReportSubmitted")
        }

    def student(self, n: int) -> tuple[str, str, list[tuple[str, int, dict[str, Any]]]]:
        """(student_id, wrapped key, [(type, schema_version, sealed data), ...])."""
        from cryptography.fernet import Fernet

        from shared.personal import SubjectCipher

        sid = str(uuid.uuid4())
        key = Fernet.generate_key()  # the vault's key format
        cipher = SubjectCipher(key)

        tag = f"{n}x{sid[:6]}"
        out: list[tuple[str, int, dict[str, Any]]] = [
            (
                "StudentRegistered",
                self.versions["StudentRegistered"],
                {
                    "student_id": sid,
                    "name": cipher.seal("name", f"Bench Student {tag}"),
                    "email": cipher.seal("email", f"bench.{tag}@example.org"),
                    "university_id": cipher.seal("university_id", f"b{tag}"[:32]),
                    "department": "SOCSW",
                    "programme": "SSASK",
                    "expected_end_term": "VT2028",
                    "rules": "SOCSW@1",
                },
            )
        ]
        aids = []
        for _ in range(4):
            aid = str(uuid.uuid4())
            aids.append(aid)
            data = dict(ACTIVITY, activity_id=aid, description=cipher.seal("description", ACTIVITY["description"]))
            out.append(("ActivityLogged", self.versions["ActivityLogged"], data))
        out.append(
            (
                "ReportSubmitted",
                self.versions["ReportSubmitted"],
                {
                    "report_id": str(uuid.uuid4()),
                    "answers": cipher.seal("answers", ANSWERS),
                    "activity_ids": aids,
                    "attachment_id": None,
                    "rules": "SOCSW@1",
                },
            )
        )
        return sid, self.wrapper.wrap(sid, key), out


def preload(dbs: Databases, maker: EventMaker, n_events: int, *, one_transaction: bool, chunk: int = 6000) -> float:
    """Write n_events (rounded up to whole students) into the intake store; return the commit time
    (time.monotonic()) of the last transaction."""
    import sqlalchemy as sa

    from shared.adapters.sql import make_engine
    from shared.adapters.sql_store import events_table
    from shared.adapters.sql_vault import subject_keys

    engine = make_engine(dbs.intake_url, immediate=True, pool_size=1)
    students = math.ceil(n_events / maker.PER_STUDENT)
    now = datetime.now(UTC).isoformat()
    meta_s = json.dumps(
        {"actor": "bench", "correlation_id": "bench-preload", "causation_id": None, "idempotency_key": None},
        separators=(",", ":"),
    )
    per_chunk = max(1, chunk // maker.PER_STUDENT)
    insert_events = events_table.insert()
    insert_keys = subject_keys.insert()
    committed = time.monotonic()

    def rows_for(first: int, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ev, keys = [], []
        for n in range(first, first + count):
            sid, wrapped, events = maker.student(n)
            keys.append({"subject_id": sid, "wrapped_key": wrapped, "created_at": now, "erased_at": None})
            for version, (typ, sv, data) in enumerate(events, start=1):
                ev.append(
                    {
                        "event_id": str(uuid.uuid4()),
                        "stream_id": f"student-{sid}",
                        "version": version,
                        "type": typ,
                        "schema_version": sv,
                        "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                        "metadata": meta_s,
                        "occurred_at": now,
                        "recorded_at": now,
                    }
                )
        return ev, keys

    def write(conn: sa.Connection, ev: list[dict[str, Any]], keys: list[dict[str, Any]]) -> None:
        conn.execute(insert_keys, keys)
        if dbs.backend == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4409677)")  # the store's append lock
        conn.execute(insert_events, ev)

    try:
        if one_transaction:
            with engine.begin() as conn:
                for first in range(0, students, per_chunk):
                    write(conn, *rows_for(first, min(per_chunk, students - first)))
            committed = time.monotonic()
        else:
            for first in range(0, students, per_chunk):
                with engine.begin() as conn:
                    write(conn, *rows_for(first, min(per_chunk, students - first)))
            committed = time.monotonic()
    finally:
        engine.dispose()
    return committed


# ---------------------------------------------------------------------------------------------
# the checkpoint poller (a separate process: no GIL shared with the load generator)
# ---------------------------------------------------------------------------------------------
def _poller(backend: str, url: str, interval: float, stop: Any, out: Any) -> None:
    dbs = Databases(backend, "", url, "")
    conn = dbs.connect(url)
    sql = CHECKPOINT_SQL
    samples: list[tuple[float, int]] = []
    last = -1
    polls = 0
    while not stop.is_set():
        pos = int(conn.execute(sql).fetchone()[0])
        polls += 1
        if pos != last:
            samples.append((time.monotonic(), pos))
            last = pos
        time.sleep(interval)
    samples.append((time.monotonic(), last))
    conn.close()
    out.put({"samples": samples, "polls": polls})


class Poller:
    def __init__(self, backend: str, url: str, interval: float = 0.001) -> None:
        ctx = mp.get_context("spawn")
        self.stop_event = ctx.Event()
        self.queue = ctx.Queue()
        self.proc = ctx.Process(target=_poller, args=(backend, url, interval, self.stop_event, self.queue))
        self.t0 = time.monotonic()

    def __enter__(self) -> Poller:
        self.proc.start()
        time.sleep(1.0)
        return self

    def finish(self) -> dict[str, Any]:
        self.stop_event.set()
        result = self.queue.get(timeout=60)
        self.proc.join(timeout=30)
        self.samples: list[tuple[float, int]] = result["samples"]
        self.polls = result["polls"]
        self._times = [t for t, _ in self.samples]
        self._positions = [p for _, p in self.samples]
        return result

    def __exit__(self, *exc: Any) -> None:
        if self.proc.is_alive():
            self.stop_event.set()
            self.proc.join(timeout=30)

    def visible_at(self, position: int) -> float | None:
        i = bisect.bisect_left(self._positions, position)
        return self._times[i] if i < len(self._times) else None

    def checkpoint_at(self, t: float) -> int:
        i = bisect.bisect_right(self._times, t) - 1
        return self._positions[i] if i >= 0 else 0


# ---------------------------------------------------------------------------------------------
# 1. HTTP appends
# ---------------------------------------------------------------------------------------------
def _student_body(tag: str) -> dict[str, Any]:
    return {
        "name": f"Bench Student {tag}",
        "email": f"bench.{tag}@example.org",
        "university_id": f"b{tag}"[:32],
        "department": "SOCSW",
        "programme": "SSASK",
        "expected_end_term": "VT2028",
    }


def _http_client(base: str, no: int, duration: float, barrier: Any, out: Any) -> None:
    session = authed_session()
    ok, errors, lat = 0, {}, []
    n = 0
    barrier.wait()
    t0 = time.perf_counter()
    deadline = t0 + duration

    def post(path: str, body: dict[str, Any]) -> Any:
        nonlocal ok
        s = time.perf_counter()
        r = session.post(base + path, json=body, timeout=30)
        lat.append(time.perf_counter() - s)
        if r.status_code == 201:
            ok += 1
            return r.json()
        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
        return None

    while time.perf_counter() < deadline:
        n += 1
        created = post("/api/v1/students", _student_body(f"{no}x{n}x{uuid.uuid4().hex[:6]}"))
        if created is None:
            continue
        for _ in range(4):
            if time.perf_counter() >= deadline:
                break
            post(f"/api/v1/students/{created['student_id']}/activities", ACTIVITY)
    out.put({"ok": ok, "errors": errors, "lat": lat, "elapsed": time.perf_counter() - t0})


def bench_http_appends(pipe: Pipeline, clients: int, duration: float) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_http_client, args=(pipe.intake_url, i, duration, barrier, out)) for i in range(clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=duration + 120) for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(r["elapsed"] for r in results)
    lat = [x for r in results for x in r["lat"]]
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    ok = sum(r["ok"] for r in results)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "events": ok,
        "events_per_s": ok / elapsed,
        "p50_ms": pct(lat, 0.5) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "errors": errors,
    }


def wait_drained(dbs: Databases, timeout: float) -> float:
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if dbs.checkpoint() >= dbs.head():
            return time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError(
        f"projection did not catch up within {timeout} s (checkpoint {dbs.checkpoint()}, head {dbs.head()})"
    )


# ---------------------------------------------------------------------------------------------
# 2a. steady-rate POST -> visible lag
# ---------------------------------------------------------------------------------------------
def bench_lag(
    pipe: Pipeline, dbs: Databases, rate: float, duration: float, senders: int = 4, warmup: float = 3.0,
    trace: str = "", client: str = "http.client",
) -> dict[str, Any]:
    """POST->visible at a steady `rate`. The first `warmup` seconds run at the same rate but are
    reported apart ("warm-up"), not in the steady-state percentiles: there each process makes its
    first connections (HTTP keep-alive, the wake-up's broker connection, database pools) and
    fills its statement caches, a one-off cost of a freshly started system."""
    head0 = dbs.head()
    records: list[tuple[float, float, int, str, int]] = []  # (t_start, t_end, status, stream, version)
    lock = threading.Lock()
    late = [0]
    slip = [0.0]
    start_at = time.monotonic() + 0.5
    measure_from = start_at + warmup
    total = int(rate * (duration + warmup))

    def sender(i: int) -> None:
        session = LightSession() if client == "http.client" else authed_session()
        k = i  # this sender's slots: i, i+senders, ...
        sid = None
        aids: list[str] = []
        step = 0  # 0 register, 1..4 activities, 5 report
        while k < total:
            due = start_at + k / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elif due >= measure_from:
                slip[0] = max(slip[0], now - due)
                if now - due > 0.005:
                    late[0] += 1
            t_start = time.monotonic()
            if step == 0:
                r = session.post(pipe.intake_url + "/api/v1/students", json=_student_body(f"lag{i}x{k}"), timeout=30)
                if r.status_code == 201:
                    sid = r.json()["student_id"]
                    aids = []
            elif step <= 4:
                r = session.post(f"{pipe.intake_url}/api/v1/students/{sid}/activities", json=ACTIVITY, timeout=30)
                if r.status_code == 201:
                    aids.append(r.json()["activity_id"])
            else:
                r = session.post(
                    f"{pipe.intake_url}/api/v1/students/{sid}/reports",
                    json={"answers": ANSWERS, "activity_ids": aids},
                    timeout=30,
                )
            t_end = time.monotonic()
            version = r.json().get("version", -1) if r.status_code in (200, 201) else -1
            with lock:
                records.append((t_start, t_end, r.status_code, f"student-{sid}", int(version)))
            step = (step + 1) % 6
            k += senders

    probe_before = host_probe()
    with Poller(dbs.backend, dbs.assessment_url) as poller:
        cpu0: dict[str, float] = {}

        def take_cpu() -> None:  # at the end of the warm-up: CPU of the steady part only
            time.sleep(max(measure_from - time.monotonic(), 0.0))
            cpu0.update({name: tree_cpu(proc.pid) for name, proc in pipe.procs.items()})

        cpu_taker = threading.Thread(target=take_cpu)
        cpu_taker.start()
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu_taker.join()
        cpu1 = {name: tree_cpu(proc.pid) for name, proc in pipe.procs.items()}
        wait_drained(dbs, 60)
        time.sleep(0.2)
        poll = poller.finish()
    positions = dbs.positions_for(head0)
    from_start, from_ack, errors = [], [], {}
    warm_lag: list[float] = []
    steady = [r for r in records if r[0] >= measure_from]
    for t_start, t_end, status, stream, version in records:
        if status not in (200, 201):
            errors[str(status)] = errors.get(str(status), 0) + 1
            continue
        pos = positions[(stream, version)]
        vis = poller.visible_at(pos)
        if vis is None:
            errors["never visible"] = errors.get("never visible", 0) + 1
            continue
        if t_start < measure_from:
            warm_lag.append(vis - t_start)
            continue
        from_start.append(vis - t_start)
        from_ack.append(max(vis - t_end, 0.0))
    span = max(r[1] for r in steady) - min(r[0] for r in steady)
    if trace:  # one line per POST: seconds since the start, POST ms, POST-answered->visible ms
        t0 = min(r[0] for r in records)
        with open(trace, "w") as fh:
            for t_start, t_end, _status, stream, version in records:
                pos = positions.get((stream, version))
                vis = poller.visible_at(pos) if pos is not None else None
                after = f"{(vis - t_end) * 1000:.1f}" if vis is not None else "-"
                fh.write(f"{t_start - t0:.3f} {(t_end - t_start) * 1000:.1f} {after}\n")
    post_lat = [r[1] - r[0] for r in steady]
    return {
        "rate_target": rate,
        "senders": senders,
        "client": client,
        "seconds": round(span, 1),
        "posts": len(steady),
        # CPU ms each process spent per steady-state POST (its share of the pipeline's work),
        # and a fixed pure-Python loop timed before and after the run: this machine's speed
        # varies between runs (a shared host), and these show how fast it was during this one.
        "cpu_ms_per_post": {
            name: round((cpu1[name] - cpu0.get(name, cpu1[name])) * 1000 / max(len(steady), 1), 2) for name in cpu1
        },
        "host_probe_ms": [probe_before, host_probe()],
        "warmup_seconds": warmup,
        "warmup_posts": len(records) - len(steady),
        "warmup_lag_p50_ms": pct(warm_lag, 0.5) * 1000,
        "warmup_lag_p99_ms": pct(warm_lag, 0.99) * 1000,
        "warmup_lag_max_ms": max(warm_lag) * 1000 if warm_lag else float("nan"),
        "achieved_per_s": len(steady) / span,
        "late_sends_over_5ms": late[0],
        "max_schedule_slip_ms": slip[0] * 1000,
        "errors": errors,
        "post_p50_ms": pct(post_lat, 0.5) * 1000,
        "post_p99_ms": pct(post_lat, 0.99) * 1000,
        "lag_p50_ms": pct(from_start, 0.5) * 1000,
        "lag_p99_ms": pct(from_start, 0.99) * 1000,
        "lag_max_ms": max(from_start) * 1000 if from_start else float("nan"),
        "after_ack_p50_ms": pct(from_ack, 0.5) * 1000,
        "after_ack_p99_ms": pct(from_ack, 0.99) * 1000,
        "polls_per_s": poll["polls"] / max(span, 1e-9),
    }


# ---------------------------------------------------------------------------------------------
# 2b. sustained 1,000 events/s: does a backlog grow?
# ---------------------------------------------------------------------------------------------
def bench_burst(
    pipe: Pipeline, dbs: Databases, maker: EventMaker, rate: float, duration: float, settings: Any, threads: int = 1
) -> dict[str, Any]:
    from shared.adapters.celery_wakeup import CeleryWakeUp
    from shared.adapters.sql_vault import subject_keys
    from shared.adapters.stores import open_event_store
    from shared.events import NewEvent

    per = maker.PER_STUDENT
    n_students = int(rate * duration / per) + 1
    log(f"  burst: preparing {n_students} students' sealed events")
    prepared = [maker.student(n) for n in range(n_students)]

    from shared.adapters.sql import make_engine

    engine = make_engine(dbs.intake_url, immediate=True, pool_size=1)
    now_s = datetime.now(UTC).isoformat()
    with engine.begin() as conn:
        conn.execute(
            subject_keys.insert(),
            [{"subject_id": sid, "wrapped_key": w, "created_at": now_s, "erased_at": None} for sid, w, _ in prepared],
        )
    engine.dispose()
    store = open_event_store(dbs.intake_url, pool_size=max(2, threads))
    commits: list[tuple[float, float, int, int]] = []  # (t_start, t_commit, first_pos, last_pos)
    behind = [0]
    lock = threading.Lock()

    def inject(k: int, t0: float) -> None:
        wake = CeleryWakeUp(settings.redis_url)
        for i in range(k, len(prepared), threads):
            sid, _w, events = prepared[i]
            due = t0 + i * per / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elif now - due > 0.05:
                behind[0] += 1
            ts = time.monotonic()
            occurred = datetime.now(UTC)
            new = [
                NewEvent(
                    type=t,
                    schema_version=v,
                    data=d,
                    metadata={"actor": "bench", "correlation_id": f"burst-{i}", "causation_id": None},
                    occurred_at=occurred,
                )
                for t, v, d in events
            ]
            res = store.append(f"student-{sid}", new, expected_version=0)
            tc = time.monotonic()
            wake.after_commit(f"burst-{i}")
            with lock:
                commits.append((ts, tc, res.positions[0], res.positions[-1]))

    with Poller(dbs.backend, dbs.assessment_url) as poller:
        t0 = time.monotonic() + 0.2
        workers = [threading.Thread(target=inject, args=(k, t0)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        t_end = time.monotonic()
        drain = wait_drained(dbs, 300)
        time.sleep(0.2)
        poller.finish()
    commits.sort(key=lambda c: c[1])
    # head at commit time = the highest position committed so far
    running = 0
    commits = [(ts, tc, last, (running := max(running, last))) for ts, tc, _f, last in commits]
    store.dispose()
    span = t_end - commits[0][0]
    lags = []  # (t_commit - t0, lag seconds of the last event of the append)
    for _ts, tc, own_last, _head in commits:
        vis = poller.visible_at(own_last)
        if vis is not None:
            lags.append((tc - commits[0][0], vis - tc))
    # backlog (events committed but not yet projected) once per second
    backlog = []
    heads_t = [c[1] for c in commits]
    for sec in range(int(span) + 1):
        t = commits[0][0] + sec + 0.999
        i = bisect.bisect_right(heads_t, t) - 1
        head = commits[i][3] if i >= 0 else 0
        backlog.append(max(0, head - poller.checkpoint_at(t)))
    first5 = [lag for t, lag in lags if t < 5]
    last5 = [lag for t, lag in lags if t > span - 5]
    events = len(commits) * per
    return {
        "rate_target": rate,
        "seconds": round(span, 1),
        "events": events,
        "achieved_per_s": events / span,
        "appends_behind_schedule": behind[0],
        "injector_threads": threads,
        "drain_after_stop_s": round(drain, 2),
        "backlog_per_s": backlog,
        "backlog_start": statistics.mean(backlog[1:6]) if len(backlog) > 6 else float("nan"),
        "backlog_end": statistics.mean(backlog[-6:-1]) if len(backlog) > 6 else float("nan"),
        "backlog_max": max(backlog) if backlog else 0,
        "lag_first5_p50_ms": pct(first5, 0.5) * 1000,
        "lag_first5_p99_ms": pct(first5, 0.99) * 1000,
        "lag_last5_p50_ms": pct(last5, 0.5) * 1000,
        "lag_last5_p99_ms": pct(last5, 0.99) * 1000,
        "lag_p99_ms": pct([x for _, x in lags], 0.99) * 1000,
    }


# ---------------------------------------------------------------------------------------------
# 2c. catch-up throughput
# ---------------------------------------------------------------------------------------------
def bench_catch_up(pipe: Pipeline, dbs: Databases, maker: EventMaker, n: int, settings: Any) -> dict[str, Any]:
    from shared.adapters.celery_wakeup import CeleryWakeUp

    # The wake-up sender as the intake holds it: built and connected before the commit (a cold
    # one spent ~30 ms building its Celery app and connecting, counted against the catch-up).
    # Its first wake-up finds nothing to do.
    wakeup = CeleryWakeUp(settings.redis_url)
    wakeup.after_commit("bench-catch-up-warm")
    wait_drained(dbs, 120)
    time.sleep(0.5)
    head0 = dbs.head()
    w_cpu0, i_cpu0 = tree_cpu(pipe.procs["worker"].pid), tree_cpu(pipe.procs["intake-feed"].pid)
    log(f"  catch-up: committing {n} events in one transaction")
    t_commit = preload(dbs, maker, n, one_transaction=True)
    wakeup.after_commit("bench-catch-up")
    head = dbs.head()
    samples = []
    # One connection, polled every 5 ms (a connection per poll forks a PostgreSQL backend each
    # time: CPU taken from the catch-up it measures; 50 ms polls added up to 50 ms to it).
    poll = dbs.connect(dbs.assessment_url)
    try:
        while True:
            cp = int(poll.execute(CHECKPOINT_SQL).fetchone()[0])
            samples.append((time.monotonic() - t_commit, cp))
            if cp >= head:
                break
            if time.monotonic() - t_commit > 900:
                raise RuntimeError("catch-up did not finish in 900 s")
            time.sleep(0.005)
    finally:
        poll.close()
    elapsed = samples[-1][0]
    w_cpu, i_cpu = tree_cpu(pipe.procs["worker"].pid) - w_cpu0, tree_cpu(pipe.procs["intake-feed"].pid) - i_cpu0
    events = head - head0
    # the longest pause in checkpoint progress (the catch-up task's 30 s budget, then a beat tick)
    longest_flat, run = 0.0, 0.0
    for a, b in itertools.pairwise(samples):
        run = run + (b[0] - a[0]) if b[1] == a[1] else 0.0
        longest_flat = max(longest_flat, run)
    return {
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_s": events / elapsed,
        "longest_no_progress_s": round(longest_flat, 2),
        "cpu_s_celery_worker": round(w_cpu, 1),
        "cpu_s_intake_feed_server": round(i_cpu, 1),
    }


# ---------------------------------------------------------------------------------------------
# 3. rebuild through the CLI
# ---------------------------------------------------------------------------------------------
def bench_rebuild(pipe: Pipeline, dbs: Databases, maker: EventMaker, n_total: int) -> dict[str, Any]:
    pipe.stop("beat")
    pipe.stop("worker")
    head = dbs.head()
    if head < n_total:
        log(f"  rebuild: preloading {n_total - head} events (head {head})")
        t = time.monotonic()
        preload(dbs, maker, n_total - head, one_transaction=False, chunk=12000)
        log(f"  rebuild: preloaded in {time.monotonic() - t:.0f} s")
    head = dbs.head()
    flask = str(BIN / "flask")
    # start-up cost of the CLI (import, create_app, create_schema), to separate from the rebuild
    t = time.monotonic()
    subprocess.run(
        [flask, "--app", "assessment_service", "projections", "status"],
        cwd=ROOT,
        env=pipe.env,
        check=True,
        capture_output=True,
    )
    startup = time.monotonic() - t
    out = open(pipe.workdir / "rebuild.log", "wb")  # noqa: SIM115
    intake_pid = pipe.procs["intake-feed"].pid
    intake_cpu0 = tree_cpu(intake_pid)
    ru0 = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [flask, "--app", "assessment_service", "projections", "rebuild"],
        cwd=ROOT,
        env=pipe.env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    samples = []  # (t, rss_mb, hwm_mb, checkpoint)
    reset_seen = False
    cp_before = dbs.checkpoint()
    poll = dbs.connect(dbs.assessment_url)  # one connection for the polls (not a backend fork each)
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            vals = {
                line.split(":")[0]: line.split()[1]
                for line in status.splitlines()
                if line.startswith(("VmRSS", "VmHWM"))
            }
            cp = int(poll.execute(CHECKPOINT_SQL).fetchone()[0])
            reset_seen = reset_seen or cp < cp_before or cp == 0
            if not reset_seen:
                cp = 0
            samples.append((time.monotonic() - t0, int(vals["VmRSS"]) / 1024, int(vals["VmHWM"]) / 1024, cp))
        except (OSError, KeyError, ValueError, Exception):
            pass
        time.sleep(0.25)
    elapsed = time.monotonic() - t0
    poll.close()
    out.close()
    if proc.returncode != 0:
        raise RuntimeError(f"rebuild failed: {(pipe.workdir / 'rebuild.log').read_text()[-2000:]}")
    ru1 = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    ru = ru1.ru_maxrss / 1024
    cli_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    intake_cpu = tree_cpu(intake_pid) - intake_cpu0
    by_progress = {}
    for frac in (0.1, 0.25, 0.5, 0.75, 0.9):
        cand = [s for s in samples if s[3] >= frac * head]
        if cand:
            by_progress[f"{int(frac * 100)}%"] = round(cand[0][1], 1)
    by_progress["end"] = round(samples[-1][1], 1) if samples else None
    rows = table_rows(dbs)
    # The command's own report of each rebuild (reset + catch-up, without the process start-up):
    # "Rebuilt <names> up to position N in X s".
    phase = sum(float(x) for x in re.findall(
        r"Rebuilt .*? up to position \d+ in ([\d.]+) s", (pipe.workdir / "rebuild.log").read_text()))
    return {
        "events": head,
        "seconds": round(elapsed, 1),
        "rebuild_phase_s": round(phase, 2),
        "rows_per_s_rebuild_phase": sum(rows.values()) / phase if phase else float("nan"),
        "events_per_s": head / elapsed,
        "events_per_s_excl_startup": head / max(elapsed - startup, 1e-9),
        "cli_startup_s": round(startup, 2),
        "peak_rss_mb": round(max((s[2] for s in samples), default=float("nan")), 1),
        "rusage_children_maxrss_mb": round(ru, 1),
        "cpu_s_rebuild_process": round(cli_cpu, 1),
        "cpu_s_intake_feed_server": round(intake_cpu, 1),
        "rss_by_progress_mb": by_progress,
        "rss_series": [(round(t, 1), round(r, 1), c) for t, r, _h, c in samples[:: max(1, len(samples) // 40)]],
        "rows": rows,
        "rows_total": sum(rows.values()),
        "rows_per_s": sum(rows.values()) / elapsed,
    }


READ_MODELS = ("students", "activities", "reports", "review_queue")


def table_rows(dbs: Databases) -> dict[str, int]:
    conn = dbs.connect(dbs.assessment_url)
    try:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in READ_MODELS}
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# 4. raw batched insert of the same read-model rows
# ---------------------------------------------------------------------------------------------
def bench_raw_insert(dbs: Databases, n_events: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from assessment_service.projections import metadata
    from shared.adapters.sql import make_engine

    src = dbs.connect(dbs.assessment_url)
    data: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for t in READ_MODELS:
        cur = src.execute(f"SELECT * FROM {t}")
        cols = [d[0] for d in cur.description]
        data[t] = (cols, [tuple(r) for r in cur.fetchall()])
    src.close()
    if dbs.backend == "sqlite":
        path = dbs.raw_url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    engine = make_engine(dbs.raw_url, pool_size=1)
    tables = [metadata.tables[t] for t in READ_MODELS]
    metadata.drop_all(engine, tables=tables)
    metadata.create_all(engine, tables=tables)
    engine.dispose()
    del sa
    batches = max(1, math.ceil(n_events / RUNNER_BATCH))
    conn = dbs.connect(dbs.raw_url)
    ph = "?" if dbs.backend == "sqlite" else "%s"
    stmts = {
        t: f"INSERT INTO {t} ({', '.join(cols)}) VALUES ({', '.join([ph] * len(cols))})"
        for t, (cols, _) in data.items()
    }
    total = sum(len(rows) for _, rows in data.values())
    t0 = time.perf_counter()
    for b in range(batches):
        if dbs.backend == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
            for t, (_, rows) in data.items():
                lo, hi = len(rows) * b // batches, len(rows) * (b + 1) // batches
                if hi > lo:
                    conn.executemany(stmts[t], rows[lo:hi])
            conn.execute("COMMIT")
        else:
            with conn.transaction():
                cur = conn.cursor()
                for t, (_, rows) in data.items():
                    lo, hi = len(rows) * b // batches, len(rows) * (b + 1) // batches
                    if hi > lo:
                        cur.executemany(stmts[t], rows[lo:hi])
    elapsed = time.perf_counter() - t0
    conn.close()
    return {
        "rows": total,
        "transactions": batches,
        "seconds": round(elapsed, 2),
        "rows_per_s": total / elapsed,
        "events_equiv_per_s": n_events / elapsed,
    }


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------
def machine(pg_url: str | None) -> dict[str, Any]:
    from importlib.metadata import version

    facts: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
    }
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            facts["cpu"] = line.split(":", 1)[1].strip()
            break
    facts["ram_gib"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    for pkg in ("sqlalchemy", "psycopg", "celery", "kombu", "redis", "gunicorn", "flask", "cryptography"):
        with contextlib.suppress(Exception):
            facts[pkg] = version(pkg)
    facts["redis_server"] = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()[2]
    if pg_url:
        import psycopg

        with psycopg.connect(libpq(pg_url_for(pg_url, "postgres")), autocommit=True) as c:
            facts["postgresql"] = c.execute("SHOW server_version").fetchone()[0]
            facts["pg_fsync"] = c.execute("SHOW fsync").fetchone()[0]
            facts["pg_synchronous_commit"] = c.execute("SHOW synchronous_commit").fetchone()[0]
    return facts


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (from /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_pids(pid: int) -> list[int]:
    """pid and its descendants."""
    out = [pid]
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for k in kids:
        out += tree_pids(int(k))
    return out


def tree_cpu(pid: int) -> float:
    return sum(proc_cpu(p) for p in tree_pids(pid))


def host_probe() -> float:
    """Milliseconds for a fixed pure-Python loop of a million additions (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        x = 0
        for i in range(1_000_000):
            x += i
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)


def loadavg() -> list[str]:
    return open("/proc/loadavg").read().split()[:3]


def run_backend(
    backend: str, args: argparse.Namespace, workdir: Path, redis_port: int, port: int, sizes: dict[str, Any]
) -> dict[str, Any]:
    bdir = workdir / backend
    bdir.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        intake_db = f"sqlite:///{bdir / 'var' / 'intake.db'}"
        assess_db = f"sqlite:///{bdir / 'var' / 'assessment.db'}"
        raw_db = f"sqlite:///{bdir / 'var' / 'raw.db'}"
    else:
        pg_recreate(args.pg_admin_url, ["cim_f_pipe_intake", "cim_f_pipe_assess", "cim_f_pipe_raw"])
        intake_db = pg_url_for(args.pg_url, "cim_f_pipe_intake")
        assess_db = pg_url_for(args.pg_url, "cim_f_pipe_assess")
        raw_db = pg_url_for(args.pg_url, "cim_f_pipe_raw")
    redis_db = 1 if backend == "sqlite" else 2
    redis_url = f"redis://127.0.0.1:{redis_port}/{redis_db}"
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    from shared.config import Settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "CIM_DATA_DIR": str(bdir / "var"),
            "CIM_INTAKE_DB_URL": intake_db,
            "CIM_ASSESSMENT_DB_URL": assess_db,
            "CIM_REDIS_URL": redis_url,
            "CIM_INTAKE_URL": f"http://127.0.0.1:{port}",
            "CIM_ASSESSMENT_URL": f"http://127.0.0.1:{port + 1}",
            # the intake's feed server (a process of its own, as scripts/run.sh starts it)
            "CIM_INTAKE_FEED_URL": f"http://127.0.0.1:{port + 2}",
            "CIM_IDENTITY_KEY": "bench-only-identity-key-0123456789abcdef",
            # the benchmark is one client posting up to 1,000 events/s: no rate limit applies
            "CIM_RATELIMIT_POST": "100000000 per minute",
        }
    )
    global BENCH_TOKEN
    BENCH_TOKEN = mint_api_token(Settings.from_env(env), BENCH_SCOPES)
    env["CIM_FEED_TOKEN"] = BENCH_TOKEN
    for k, v in env.items():  # this process appends (burst) and sends wake-ups as the intake does
        if k.startswith("CIM_"):
            os.environ[k] = v

    settings = Settings.from_env(env)
    maker = EventMaker(settings.vault_secret)
    dbs = Databases(backend, intake_db, assess_db, raw_db)
    pipe = Pipeline(backend, bdir, env)
    res: dict[str, Any] = {
        "backend": backend,
        "gunicorn": f"{pipe.processes} worker(s) x 4 threads",
        "celery_concurrency": int(pipe.processes),
        "loadavg_start": loadavg(),
    }
    skip = set(args.skip.split(",")) if args.skip else set()
    try:
        log(f"{backend}: starting redis db {redis_db}, gunicorn :{port} :{port + 1} :{port + 2} (feed), "
            "celery worker + beat")
        pipe.start_apps()
        pipe.start_worker()
        pipe.start_beat()
        if "http" not in skip:
            res["http"] = []
            for clients in (1, 8):
                r = bench_http_appends(pipe, clients, sizes["http_seconds"])
                res["http"].append(r)
                log(
                    f"  http appends, {clients} client(s): {r['events_per_s']:.0f} events/s "
                    f"(p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms) errors {r['errors']}"
                )
            res["http_drain_s"] = round(wait_drained(dbs, 300), 2)
        if "lag" not in skip:
            r = bench_lag(
                pipe,
                dbs,
                sizes["lag_rate"],
                sizes["lag_seconds"],
                senders=args.lag_senders or (8 if backend == "sqlite" else 12),
                trace=args.lag_trace,
                client=args.lag_client,
            )
            res["lag"] = r
            log(
                f"  lag at {r['achieved_per_s']:.0f}/s: POST->visible p50 {r['lag_p50_ms']:.1f} ms, "
                f"p99 {r['lag_p99_ms']:.1f} ms, max {r['lag_max_ms']:.1f} ms (POST p50 {r['post_p50_ms']:.1f} ms) "
                f"errors {r['errors']}; warm-up {r['warmup_seconds']:.0f} s: p50 {r['warmup_lag_p50_ms']:.1f} ms, "
                f"p99 {r['warmup_lag_p99_ms']:.1f} ms; CPU ms/POST {r['cpu_ms_per_post']}; probe {r['host_probe_ms']}"
            )
        if "burst" not in skip:
            r = bench_burst(
                pipe,
                dbs,
                maker,
                sizes["burst_rate"],
                sizes["burst_seconds"],
                settings,
                threads=args.burst_threads or (1 if backend == "sqlite" else 3),
            )
            res["burst"] = r
            log(
                f"  burst {r['achieved_per_s']:.0f} ev/s for {r['seconds']} s: backlog start {r['backlog_start']:.0f} "
                f"end {r['backlog_end']:.0f} max {r['backlog_max']}; "
                f"lag p99 first 5 s {r['lag_first5_p99_ms']:.0f} ms, "
                f"last 5 s {r['lag_last5_p99_ms']:.0f} ms; drained {r['drain_after_stop_s']} s after stop"
            )
        if "catchup" not in skip:
            r = bench_catch_up(pipe, dbs, maker, sizes["catchup_events"], settings)
            res["catch_up"] = r
            log(
                f"  catch-up of {r['events']} events: {r['seconds']} s = {r['events_per_s']:.0f} events/s "
                f"(longest pause {r['longest_no_progress_s']} s; CPU s worker {r['cpu_s_celery_worker']}, "
                f"intake {r['cpu_s_intake_feed_server']})"
            )
        if "rebuild" not in skip:
            res["loadavg_before_rebuild"] = loadavg()
            r = bench_rebuild(pipe, dbs, maker, sizes["rebuild_events"])
            res["rebuild"] = r
            log(
                f"  rebuild of {r['events']} events: {r['seconds']} s = {r['events_per_s']:.0f} events/s, "
                f"{r['rows_per_s']:.0f} rows/s (rebuild phase {r['rebuild_phase_s']} s: "
                f"{r['rows_per_s_rebuild_phase']:.0f} rows/s), peak RSS {r['peak_rss_mb']} MB, "
                f"by progress {r['rss_by_progress_mb']}; "
                f"CPU s rebuild {r['cpu_s_rebuild_process']}, intake feed {r['cpu_s_intake_feed_server']}"
            )
            r = bench_raw_insert(dbs, res["rebuild"]["events"])
            res["raw_insert"] = r
            log(
                f"  raw insert of the same {r['rows']} rows in {r['transactions']} transactions: "
                f"{r['rows_per_s']:.0f} rows/s ({r['events_equiv_per_s']:.0f} events-equivalent/s)"
            )
    finally:
        pipe.stop_all()
        res["loadavg_end"] = loadavg()
    return res


def verdicts(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    if "lag" in r:
        v = r["lag"]["lag_p99_ms"]
        out.append(("POST->visible p99 <= 50 ms at 100 events/s", f"{v:.1f} ms", "PASS" if v <= 50 else "FAIL"))
    if "burst" in r:
        b = r["burst"]
        grows = (
            b["backlog_end"] > max(2 * b["backlog_start"], b["backlog_start"] + 500)
            or b["achieved_per_s"] < 0.95 * b["rate_target"]
        )
        out.append(
            (
                "no growing backlog at 1,000 events/s",
                f"backlog {b['backlog_start']:.0f} -> {b['backlog_end']:.0f} events",
                "FAIL" if grows else "PASS",
            )
        )
    if "raw_insert" in r:
        # The rebuild's rate as the command measures it (reset + catch-up), like the raw reference's
        # (its inserts, without connecting or loading); the whole command's, start-up included, beside it.
        raw = r["raw_insert"]["rows_per_s"]
        rb = r["rebuild"]["rows_per_s_rebuild_phase"]
        whole = r["rebuild"]["rows_per_s"]
        out.append(
            (
                "rebuild >= 1/3 of raw batched insert",
                f"{rb:,.0f} / {raw:,.0f} rows/s = {rb / raw:.2f} (whole command incl. "
                f"{r['rebuild']['cli_startup_s']} s start-up: {whole / raw:.2f})",
                "PASS" if rb >= raw / 3 else "FAIL",
            )
        )
        if "catch_up" in r:
            raw_ev = r["raw_insert"]["events_equiv_per_s"]
            cu = r["catch_up"]["events_per_s"]
            out.append(
                (
                    "live projection (catch-up) >= 1/3 of raw",
                    f"{cu:,.0f} / {raw_ev:,.0f} events/s = {cu / raw_ev:.2f}",
                    "PASS" if cu >= raw_ev / 3 else "FAIL",
                )
            )
    if "rebuild" in r and r["backend"] == "sqlite":
        rb = r["rebuild"]
        t1m = 1_000_000 / rb["events_per_s"]
        measured = rb["events"] >= 1_000_000
        label = f"{rb['seconds']:.0f} s for {rb['events']:,}" + (
            "" if measured else f" -> ~{t1m:.0f} s for 1M (extrapolated)"
        )
        out.append(("1,000,000 events rebuilt < 2 min on SQLite", label, "PASS" if t1m < 120 else "FAIL"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--full", action="store_true", help="1,000,000-event rebuild, 100,000-event catch-up, 15 s HTTP levels"
    )
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument(
        "--pg-url", default=os.environ.get("CIM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:55432/cim_f")
    )
    ap.add_argument(
        "--pg-admin-url",
        default="",
        help="where CREATE/DROP DATABASE cim_f_pipe_* runs (default: --pg-url's server, db postgres)",
    )
    ap.add_argument("--redis-port", type=int, default=6431)
    ap.add_argument("--port", type=int, default=8310, help="intake on PORT, assessment on PORT+1 (PostgreSQL: +10)")
    ap.add_argument("--workdir", default="")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--skip", default="", help="comma list of http,lag,burst,catchup,rebuild")
    ap.add_argument("--http-seconds", type=float)
    ap.add_argument("--lag-rate", type=float, default=100.0)
    ap.add_argument("--lag-seconds", type=float, default=60.0)
    ap.add_argument(
        "--lag-client", default="http.client", choices=("http.client", "requests"),
        help="the lag run's HTTP client: http.client (light, the default) or requests (as before 2026-11-29)",
    )
    ap.add_argument("--lag-trace", default="", help="write one line per POST of the lag run to this file")
    ap.add_argument("--burst-rate", type=float, default=1000.0)
    ap.add_argument("--burst-threads", type=int, default=0, help="appending threads (default 1 SQLite, 3 PostgreSQL)")
    ap.add_argument("--lag-senders", type=int, default=0, help="POSTing threads (default 8 SQLite, 12 PostgreSQL)")
    ap.add_argument("--burst-seconds", type=float, default=30.0)
    ap.add_argument("--catchup-events", type=int)
    ap.add_argument("--rebuild-events", type=int)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if not args.pg_admin_url:
        args.pg_admin_url = pg_url_for(args.pg_url, "postgres")
    sizes = {
        "http_seconds": args.http_seconds or (15.0 if args.full else 8.0),
        "lag_rate": args.lag_rate,
        "lag_seconds": args.lag_seconds,
        "burst_rate": args.burst_rate,
        "burst_seconds": args.burst_seconds,
        "catchup_events": args.catchup_events or (100_000 if args.full else 20_000),
        "rebuild_events": args.rebuild_events or (1_000_000 if args.full else 100_000),
    }
    backends = [b for b in args.backends.split(",") if b]
    facts = machine(args.pg_url if "postgresql" in backends else None)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="cim-pipe-"))
    workdir.mkdir(parents=True, exist_ok=True)
    facts["loadavg_start"] = loadavg()
    facts["sizes"] = sizes
    log(f"work dir {workdir}; sizes {sizes}; load {facts['loadavg_start']}")
    red = Redis(args.redis_port, workdir)
    red.start()
    results = []
    try:
        for i, backend in enumerate(backends):
            results.append(run_backend(backend, args, workdir, args.redis_port, args.port + 10 * i, sizes))
    finally:
        red.stop()
        if "postgresql" in backends:
            try:
                pg_recreate_drop(args.pg_admin_url)
            except Exception as exc:
                log(f"could not drop the PostgreSQL databases: {exc}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    facts["loadavg_end"] = loadavg()
    doc = {"machine": facts, "results": results, "verdicts": {r["backend"]: verdicts(r) for r in results}}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str))
    for r in results:
        for name, value, verdict in doc["verdicts"][r["backend"]]:
            print(f"{r['backend']:10} {verdict:4}  {name}: {value}")


def pg_recreate_drop(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        for name in ("cim_f_pipe_intake", "cim_f_pipe_assess", "cim_f_pipe_raw"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
