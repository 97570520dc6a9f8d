"""Reliability bars R1 (crashes) and R6 (disk full) of the event store, through the intake service.

R1: a real gunicorn intake process takes registrations and activities from 8 client threads that
retry with their Idempotency-Key until answered; the process is SIGKILLed 5 times (and on
PostgreSQL the database is stopped with `pg_ctl stop -m immediate` twice). Afterwards every event
whose POST got a 2xx is stored exactly once, no event is partial, and the service answered reads
within 10 s of each restart.

The bar's full size is 10,000 events; by default this runs a scaled-down load so each backend
takes well under 3 minutes. Full size: `CIM_RELIABILITY_FULL=1 bash scripts/test.sh -m slow
tests/integration/test_store_reliability.py` (or set CIM_RELIABILITY_EVENTS=<n>).

R6: the SQLite database lives on a 2 MB tmpfs that is filled up: writes answer 503 problem JSON,
never a 2xx that is not stored, and once space is freed every acknowledged event is there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from intake_service.events import REGISTRY
from shared.adapters.stores import open_event_store
from shared.store import iter_all
from tests.authkit import ALL_INTAKE_SCOPES, IDENTITY_KEY, authed_client, bearer, make_identity, sql_identity

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"

FULL = os.environ.get("CIM_RELIABILITY_FULL") == "1"
R1_EVENTS = int(os.environ.get("CIM_RELIABILITY_EVENTS", "10000" if FULL else "3000"))
R1_CLIENTS = 8
R1_KILLS = 5
R1_PG_STOPS = 2
R1_ACTIVITIES_PER_STUDENT = 4
READABLE_WITHIN_S = 10.0
R1_BUDGET_S = 1800 if FULL else 170


# -- a gunicorn intake process we may kill -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class IntakeProcess:
    """`gunicorn -w 1 'intake_service:create_app()'` in its own process group, on a fixed port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        #: An integration's token with every intake scope, in the identity database of `env`.
        self.token = api_token(env)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(GUNICORN), "-w", "1", "-b", f"127.0.0.1:{self.port}", "--timeout", "60", "--no-control-socket",
                 "intake_service:create_app()"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def wait_readable(self, timeout: float) -> float:
        """Seconds until the feed answers 200; fails the test past `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.proc.returncode}; see {self.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base}/api/v1/events?limit=1", timeout=2,
                                headers={"Authorization": f"Bearer {self.token}"}).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.05)
        pytest.fail(f"intake not readable within {timeout} s; log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL master and worker at once, mid-request: no shutdown code runs."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def intake_env(data_dir: Path, db_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_") or k.startswith("CIM_TEST_")}
    env.update(CIM_DATA_DIR=str(data_dir), CIM_WAKEUP="none", CIM_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    if db_url:
        env["CIM_INTAKE_DB_URL"] = db_url
    # Accounts and API tokens: their own SQLite database beside the data (as the default is), so
    # stopping PostgreSQL stops the event store, not the authentication of the clients.
    env.update(CIM_IDENTITY_DB_URL=f"sqlite:///{data_dir / 'identity.db'}", CIM_IDENTITY_KEY=IDENTITY_KEY)
    # 8 clients posting thousands of events from one address: the rate limit (S5, tested on its
    # own) would throttle them to a crawl; here the store is under test.
    env.update(CIM_RATELIMIT_STORAGE="memory://", CIM_RATELIMIT_POST="1000000 per minute")
    return env


def api_token(env: dict[str, str]) -> str:
    """A new integration token (every intake scope) in the identity database `env` names."""
    Path(env["CIM_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    identity = sql_identity(env["CIM_IDENTITY_DB_URL"], env["CIM_IDENTITY_KEY"])
    try:
        return identity.api_tokens.create("reliability clients", ALL_INTAKE_SCOPES).token
    finally:
        identity.store.dispose()  # type: ignore[attr-defined]


# -- PostgreSQL the test may stop -------------------------------------------------------------


def pg_ctl(*args: str) -> None:
    """Run pg_ctl on the throwaway cluster scripts/test.sh started (as its owner when root)."""
    command = [str(Path(os.environ["CIM_TEST_PG_BIN"]) / "pg_ctl"), "-D", os.environ["CIM_TEST_PG_DATA"], *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", os.environ.get("CIM_TEST_PG_USER", "postgres"), "--", *command]
    subprocess.run(command, cwd="/", check=True, capture_output=True, timeout=90)


# -- clients --------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the clients were told was stored, and every answer they got on the way."""

    registered: list[str] = field(default_factory=list)
    activities: list[tuple[str, str]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set when the test fails: clients stop retrying at once instead of at the deadline.
    abort: threading.Event = field(default_factory=threading.Event)

    def acknowledged(self) -> int:
        with self.lock:
            return len(self.registered) + len(self.activities)


RETRYABLE = {429, 500, 502, 503, 504}


def post_until_answered(session: requests.Session, url: str, body: dict[str, Any], ledger: Ledger,
                        deadline: float, key: str | None = None) -> dict[str, Any] | None:
    """POST with one Idempotency-Key until a 2xx: a lost answer is retried, never re-sent as new."""
    key = key or f"r1-{uuid.uuid4()}"
    while time.monotonic() < deadline and not ledger.abort.is_set():
        try:
            response = session.post(url, json=body, headers={"Idempotency-Key": key}, timeout=15)
        except requests.RequestException as exc:
            with ledger.lock:
                ledger.statuses[type(exc).__name__] += 1
            time.sleep(0.05)
            continue
        with ledger.lock:
            ledger.statuses[str(response.status_code)] += 1
        if response.status_code in (200, 201):
            return dict(response.json(), _key=key)
        if response.status_code not in RETRYABLE:
            with ledger.lock:
                ledger.unexpected.append(f"{response.status_code} {response.text[:300]}")
            return None
        time.sleep(0.05)
    return None


def registration(n: int) -> dict[str, Any]:
    return {
        "name": f"Reliability Student {n}",
        "email": f"r1-{n}@student.example.se",
        "university_id": f"rs{n:06d}",
        "department": "SOCSW",
        "programme": "SSASK",
        "expected_end_term": "VT2028",
    }


def activity(n: int) -> dict[str, Any]:
    return {
        "kind": "summer-school",
        "title": f"Summer school {n}",
        "organiser": "University of Helsinki",
        "setting": "digital",
        "start_date": "2025-08-04",
        "end_date": "2025-08-15",
        "hours": 40,
    }


def client(index: int, base: Callable[[], str], ledger: Ledger, enough: threading.Event, deadline: float,
           token: str) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    n = 0
    while not enough.is_set() and time.monotonic() < deadline:
        n += 1
        answer = post_until_answered(session, f"{base()}/api/v1/students", registration(index * 1_000_000 + n),
                                     ledger, deadline)
        if answer is None:
            continue
        student_id = answer["student_id"]
        with ledger.lock:
            ledger.registered.append(student_id)
        if n % 10 == 0:
            # A client that missed the answer sends the same request again, perhaps to a restarted
            # process: it must get the first answer back, and nothing new is stored.
            url = f"{base()}/api/v1/students"
            again = post_until_answered(session, url, registration(index * 1_000_000 + n), ledger, deadline,
                                        key=answer["_key"])
            if again is not None and again.get("student_id") != student_id:
                with ledger.lock:
                    ledger.unexpected.append(f"replay answered {again} instead of {student_id}")
        for a in range(R1_ACTIVITIES_PER_STUDENT):
            if enough.is_set():
                break
            answer = post_until_answered(
                session, f"{base()}/api/v1/students/{student_id}/activities", activity(a), ledger, deadline
            )
            if answer is not None:
                with ledger.lock:
                    ledger.activities.append((student_id, answer["activity_id"]))


# -- checks ---------------------------------------------------------------------------------


def check_store(db_url: str, ledger: Ledger, *, exact: bool = True) -> None:
    """Every acknowledged event stored exactly once; every stored event whole; streams gapless.
    With `exact`, nothing else is stored either (the clients retried every request to an answer)."""
    store = open_event_store(db_url)
    try:
        stored = list(iter_all(store))
    finally:
        store.dispose()
    by_stream: dict[str, list[Any]] = {}
    for event in stored:
        by_stream.setdefault(event.stream_id, []).append(event)
        assert event.type in REGISTRY.names(), f"unknown type {event.type!r} at {event.position}"
        current = REGISTRY.upcast(event.type, event.schema_version, event.data)
        assert set(current) == set(REGISTRY.schema(event.type).fields), f"partial event at {event.position}"
    for stream_id, events in by_stream.items():
        assert [e.version for e in events] == list(range(1, len(events) + 1)), f"gap in {stream_id}"

    registered = {e.data["student_id"] for e in stored if e.type == "StudentRegistered"}
    logged = Counter((e.stream_id, e.data["activity_id"]) for e in stored if e.type == "ActivityLogged")
    missing_students = [s for s in ledger.registered if s not in registered]
    missing_activities = [a for a in ledger.activities if logged[(f"student-{a[0]}", a[1])] == 0]
    assert not missing_students, f"{len(missing_students)} acknowledged registrations lost"
    assert not missing_activities, f"{len(missing_activities)} acknowledged activities lost"
    assert all(count == 1 for count in logged.values()), "an activity was stored twice"
    if exact:
        assert len(stored) == len(ledger.registered) + len(ledger.activities)


# -- R1 -------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def r1_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "sqlite":
        return "sqlite", None
    if not os.environ.get("CIM_TEST_PG_DATA"):
        pytest.skip("R1 on PostgreSQL stops the server: it needs the throwaway cluster scripts/test.sh starts "
                    "(CIM_TEST_PG_DATA, CIM_TEST_PG_BIN)")
    return "postgres", request.getfixturevalue("pg_url")


@pytest.fixture
def intake_process(tmp_path: Path, r1_backend: tuple[str, str | None]) -> Iterator[IntakeProcess]:
    _, db_url = r1_backend
    server = IntakeProcess(intake_env(tmp_path / "data", db_url), tmp_path / "gunicorn.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_r1_no_acknowledged_event_is_lost_when_the_intake_process_or_database_crashes(
    tmp_path: Path, r1_backend: tuple[str, str | None], intake_process: IntakeProcess
) -> None:
    backend, db_url = r1_backend
    db_url = db_url or f"sqlite:///{tmp_path / 'data' / 'intake.db'}"
    server = intake_process
    server.wait_readable(30)  # first start includes creating the schema

    faults = ["kill"] * R1_KILLS
    if backend == "postgres":
        faults[1:1] = ["pg_stop"]
        faults[4:4] = ["pg_stop"]
    ledger = Ledger()
    enough = threading.Event()
    deadline = time.monotonic() + R1_BUDGET_S
    clients = [
        threading.Thread(target=client, args=(i, lambda: server.base, ledger, enough, deadline, server.token),
                         daemon=True)
        for i in range(R1_CLIENTS)
    ]
    for thread in clients:
        thread.start()

    recovery: list[tuple[str, float]] = []
    passed = False
    try:
        for number, fault in enumerate(faults, start=1):
            target = R1_EVENTS * number // (len(faults) + 1)
            while ledger.acknowledged() < target:
                assert time.monotonic() < deadline, f"only {ledger.acknowledged()} events before the budget ran out"
                assert not ledger.unexpected, ledger.unexpected[:5]
                time.sleep(0.05)
            if fault == "kill":
                server.kill()
                server.start()
            else:
                pg_ctl("stop", "-m", "immediate")
                time.sleep(1.0)  # clients meet a dead database for a moment
                pg_log = Path(os.environ["CIM_TEST_PG_DATA"]).parent / "postgres.log"
                pg_ctl("start", "-w", "-t", "60", "-l", str(pg_log))
            recovery.append((fault, server.wait_readable(READABLE_WITHIN_S)))
        while ledger.acknowledged() < R1_EVENTS:
            assert time.monotonic() < deadline, f"only {ledger.acknowledged()} events before the budget ran out"
            time.sleep(0.05)
        passed = True
    finally:
        enough.set()
        if not passed:
            ledger.abort.set()
        for thread in clients:
            thread.join(timeout=max(1.0, deadline - time.monotonic() + 20))
    print(f"R1 {backend}: {ledger.acknowledged()} acknowledged; answers {dict(ledger.statuses)}; "
          f"readable after {[(f, round(s, 2)) for f, s in recovery]}")

    assert not any(thread.is_alive() for thread in clients), "a client never got its answer"
    assert not ledger.unexpected, ledger.unexpected[:5]
    assert ledger.statuses["200"] > 0, "no request was replayed"
    assert len(recovery) == len(faults)
    assert all(seconds <= READABLE_WITHIN_S for _, seconds in recovery)
    server.stop()
    check_store(db_url, ledger)


# -- R6 -------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root or CAP_SYS_ADMIN; skipped where mounting is not allowed)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte with one file; return it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize(
    "write",
    ["activity", "registration"],
)
def test_r6_a_full_disk_answers_503_and_never_acknowledges_a_lost_event(small_disk: Path, write: str) -> None:
    from intake_service import create_app
    from shared.clock import SystemClock
    from shared.config import Settings

    settings = Settings(data_dir=small_disk, wakeup="none", ratelimit_storage="memory://")
    # Accounts and tokens in memory: only the event store is on the disk that fills up.
    identity = make_identity(SystemClock())
    app = create_app(settings, identity=identity)
    http = authed_client(app, bearer(identity))
    ledger = Ledger()
    students: list[str] = []

    def register(n: int) -> int:
        response = http.post("/api/v1/students", json=registration(n), headers={"Idempotency-Key": f"r6-reg-{n}"})
        if response.status_code in (200, 201):
            students.append(response.get_json()["student_id"])
            ledger.registered.append(response.get_json()["student_id"])
        return response.status_code

    def log(n: int) -> int:
        student = students[n % len(students)]
        response = http.post(f"/api/v1/students/{student}/activities", json=activity(n),
                             headers={"Idempotency-Key": f"r6-act-{n}"})
        if response.status_code in (200, 201):
            ledger.activities.append((student, response.get_json()["activity_id"]))
        else:
            problem = response.get_json()
            assert response.mimetype == "application/problem+json"
            assert problem["status"] == response.status_code
        return response.status_code

    for n in range(5):
        assert register(n) == 201

    filler = fill(small_disk)
    answers: Counter[int] = Counter()
    for n in range(20):
        answers[register(1000 + n) if write == "registration" else log(n)] += 1
    print(f"R6 {write} answers while the disk is full: {dict(answers)}")
    assert answers[503] > 0, "the disk never filled up"
    assert set(answers) <= {200, 201, 503}, f"a full disk must answer 503, got {dict(answers)}"

    filler.unlink()
    for n in range(100, 110):
        assert log(n) in (200, 201)
    assert register(2000) == 201

    # What was acknowledged is there, read by a fresh process-level store (a restart).
    services = app.extensions["cim.intake"]
    with contextlib.suppress(Exception):
        services.store.dispose()
    # A request that failed may still have committed (a 503 is "unknown", like a timeout): not exact.
    check_store(settings.intake_db_url, ledger, exact=False)
    integrity = subprocess.run(
        [sys.executable, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
         "'PRAGMA integrity_check').fetchone()[0])", str(small_disk / "intake.db")],
        capture_output=True, text=True, check=True,
    )
    assert integrity.stdout.strip() == "ok"
