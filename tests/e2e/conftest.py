"""The running pipeline for end-to-end tests: real redis-server, PostgreSQL, gunicorn-served apps,
real `celery worker` and `celery beat` processes. Needs CIM_TEST_REDIS_URL and CIM_TEST_PG_URL
(scripts/test.sh sets both); skips otherwise.

Every API needs a token (issue 4): the fixture makes them in the identity database all the
processes use (CIM_IDENTITY_DB_URL), before they start: the workers' and apps' feed token
(`feed:read`, passed as CIM_FEED_TOKEN), the test client's (every intake scope) and an operator's
for the assessment API (`assessment:read`, `ops:read`, `feed:read`)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.authkit import ALL_INTAKE_SCOPES, IDENTITY_KEY, sql_identity

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", "Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, (json.loads(raw) if raw else None)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def port_refuses(port: str) -> bool:
    """Nothing listens on 127.0.0.1:port any more (a killed server's socket is closed)."""
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def redis_answers(port: str) -> bool:
    out = subprocess.run(["redis-cli", "-p", port, "ping"], capture_output=True, text=True, check=False)
    return out.stdout.strip() == "PONG"


def restartable_redis() -> tuple[str, str]:
    """The port and directory of the redis-server scripts/test.sh started (so a test may kill and
    restart it); skips the test when they are not given."""
    port, directory = os.environ.get("CIM_TEST_REDIS_PORT"), os.environ.get("CIM_TEST_REDIS_DIR")
    if not port or not directory:
        pytest.skip("CIM_TEST_REDIS_PORT and CIM_TEST_REDIS_DIR are needed to restart redis-server")
    return port, directory


def kill_redis(port: str, directory: str) -> None:
    """SIGKILL the test's redis-server (scripts/services.sh started it, daemonized, with its pid
    file in `directory`) and wait until its port refuses connections, so a new one can bind."""
    pid = Path(directory, "redis.pid").read_text().strip()
    subprocess.run(["kill", "-9", pid], check=False)
    wait_for(lambda: port_refuses(port), 10, "the killed redis-server to close its port")


def start_redis(port: str, directory: str, *, aof: bool, appendfsync: str = "everysec") -> None:
    """Start redis-server on `port` with the suite's settings (no eviction; AOF on or off) and wait
    until it answers."""
    subprocess.run(
        ["redis-server", "--bind", "127.0.0.1", "--port", port, "--dir", directory,
         "--appendonly", "yes" if aof else "no", "--appendfsync", appendfsync,
         "--maxmemory-policy", "noeviction", "--save", "", "--daemonize", "yes",
         "--pidfile", f"{directory}/redis.pid", "--logfile", f"{directory}/redis.log"],
        check=True,
    )
    wait_for(lambda: redis_answers(port), 10, "redis-server to start")


class Pipeline:
    """Starts, kills and restarts the processes of the pipeline; all in their own sessions."""

    def __init__(self, tmp: Path, env: dict[str, str], redis_url: str, backend: str,
                 tokens: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.backend = backend
        # The embedded default keeps one writing process per SQLite database (measured: several
        # writer processes starve one); PostgreSQL takes several.
        self.processes = "1" if backend == "sqlite" else "2"
        self.env = env
        self.redis_url = redis_url
        self.intake_url = env["CIM_INTAKE_URL"]
        self.assessment_url = env["CIM_ASSESSMENT_URL"]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        tokens = tokens or {}
        #: The workers' token (feed:read), also in env as CIM_FEED_TOKEN.
        self.feed_token = env.get("CIM_FEED_TOKEN", "")
        #: Headers of the test's integration client of the intake API (every intake scope).
        self.intake_auth = {"Authorization": f"Bearer {tokens.get('intake', '')}"}
        #: Headers of an operator of the assessment API (assessment:read, ops:read, feed:read).
        self.assessment_auth = {"Authorization": f"Bearer {tokens.get('assessment', '')}"}

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_apps(self) -> None:
        # Create both schemas once, before several gunicorn workers race to create them.
        subprocess.run([sys.executable, "-c", "import intake_service, assessment_service; "
                        "intake_service.create_app(); assessment_service.create_app()"],
                       cwd=ROOT, env=self.env, check=True, capture_output=True)
        feed_url = self.env["CIM_INTAKE_FEED_URL"]
        for name, factory, url in (("intake", "intake_service:create_app()", self.intake_url),
                                   ("assessment", "assessment_service:create_app()", self.assessment_url),
                                   ("intake-feed", "intake_service:create_feed_app()", feed_url)):
            port = url.rsplit(":", 1)[1]
            self._start(name, [str(BIN / "gunicorn"), "--config", str(ROOT / "config" / "gunicorn.conf.py"),
                               "--bind", f"127.0.0.1:{port}", "--workers", self.processes,
                               "--threads", "4", "--no-control-socket", factory])
        wait_for(lambda: http("GET", f"{self.intake_url}/api/v1/events?limit=1", headers=self.intake_auth)[0] == 200,
                 30, "intake")
        feed_auth = {"Authorization": f"Bearer {self.feed_token}"}
        wait_for(lambda: http("GET", f"{feed_url}/api/v1/events?limit=1", headers=feed_auth)[0] == 200,
                 30, "intake feed")
        wait_for(lambda: http("GET", f"{self.assessment_url}/api/v1/projections",
                              headers=self.assessment_auth)[0] == 200, 30, "assessment")

    def start_worker(self) -> None:
        self._start("worker", [str(BIN / "celery"), "-A", "workers.celery_app", "worker",
                               "--concurrency", self.processes, "--loglevel", "INFO",
                               "--without-gossip", "--without-mingle"])

    def start_beat(self) -> None:
        self._start("beat", [str(BIN / "celery"), "-A", "workers.celery_app", "beat", "--loglevel", "INFO",
                             "--schedule", str(self.tmp / "celerybeat-schedule")])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            proc.wait(timeout=30)

    def pool_children(self) -> list[int]:
        proc = self.procs.get("worker")
        if proc is None or proc.poll() is not None:
            return []
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in out]

    def wait_worker_ready(self, timeout: float = 15.0) -> None:
        """Until the restarted worker has its pool processes (so a fault lands on a running worker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.pool_children():
            time.sleep(0.1)

    def kill_pool_child(self) -> bool:
        """SIGKILL one prefork pool child of the worker (the main process lives on)."""
        proc = self.procs.get("worker")
        if proc is None or proc.poll() is not None:
            return False
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not out:
            return False
        try:
            os.kill(int(random.choice(out)), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM if name in ("intake", "assessment") else signal.SIGKILL)

    # -- reading ----------------------------------------------------------------------------
    def projections(self) -> list[dict[str, Any]]:
        return http("GET", f"{self.assessment_url}/api/v1/projections", headers=self.assessment_auth)[1]["projections"]

    def intake_head(self) -> int:
        return int(http("GET", f"{self.intake_url}/api/v1/events?limit=1", headers=self.intake_auth)[1]["head"])

    def intake(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
               timeout: float = 10.0) -> tuple[int, Any]:
        """The intake API (`path` under /api/v1) as the test's integration."""
        return http(method, f"{self.intake_url}/api/v1{path}", body, {**self.intake_auth, **(headers or {})},
                    timeout)

    def assessment(self, path: str) -> tuple[int, Any]:
        """GET the assessment API (`path` under /api/v1) as an operator."""
        return http("GET", f"{self.assessment_url}/api/v1{path}", headers=self.assessment_auth)


@pytest.fixture
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pipeline]:
    """The pipeline on PostgreSQL (default), or on the embedded default with
    `@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)`."""
    backend = getattr(request, "param", "postgres")
    redis_url = os.environ.get("CIM_TEST_REDIS_URL")
    if not redis_url or (backend == "postgres" and not os.environ.get("CIM_TEST_PG_URL")):
        pytest.skip("CIM_TEST_REDIS_URL and CIM_TEST_PG_URL are needed (scripts/test.sh sets them)")
    if backend == "postgres":
        make_db = request.getfixturevalue("pg_database")
        intake_db, assessment_db, identity_db = make_db(), make_db(), make_db()
    else:
        (tmp_path / "var").mkdir(parents=True, exist_ok=True)
        intake_db = f"sqlite:///{tmp_path / 'var' / 'intake.db'}"
        assessment_db = f"sqlite:///{tmp_path / 'var' / 'assessment.db'}"
        identity_db = f"sqlite:///{tmp_path / 'var' / 'identity.db'}"
    # The tokens, made in the identity database every process below reads (only their sha256
    # is stored; the processes get the feed token through the environment, never in a message).
    identity = sql_identity(identity_db, IDENTITY_KEY)
    try:
        feed_token = identity.api_tokens.create("workers", ["feed:read"]).token
        tokens = {
            "intake": identity.api_tokens.create("e2e client", ALL_INTAKE_SCOPES).token,
            "assessment": identity.api_tokens.create(
                "e2e operator", ["assessment:read", "ops:read", "feed:read"]).token,
        }
    finally:
        identity.store.dispose()  # type: ignore[attr-defined]
    import redis

    # A database index of its own, emptied first, so no earlier run's messages interfere.
    redis_url = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CIM_DATA_DIR": str(tmp_path / "var"),
        # The diploma credentials' signing keys (none made here; a test that needs one makes it).
        "CIM_CREDENTIAL_KEYS_DIR": str(tmp_path / "credential-keys"),
        "CIM_INTAKE_DB_URL": intake_db,
        "CIM_ASSESSMENT_DB_URL": assessment_db,
        "CIM_REDIS_URL": redis_url,
        "CIM_INTAKE_URL": f"http://127.0.0.1:{free_port()}",
        "CIM_ASSESSMENT_URL": f"http://127.0.0.1:{free_port()}",
        # The workers read the intake feed from its own server, as `make run` starts it.
        "CIM_INTAKE_FEED_URL": f"http://127.0.0.1:{free_port()}",
        "CIM_LOG_LEVEL": "INFO",
        "CIM_IDENTITY_DB_URL": identity_db,
        "CIM_IDENTITY_KEY": IDENTITY_KEY,
        "CIM_FEED_TOKEN": feed_token,
        # Thousands of posts from one address (the test's threads): the rate limit (S5, tested on
        # its own) is set out of reach; its counters still live in this Redis.
        "CIM_RATELIMIT_POST": "1000000 per minute",
        # The workers deliver the outbox to the SMTP sink scripts/test.sh starts.
        "CIM_SMTP_PORT": os.environ.get("CIM_TEST_SMTP_PORT", "8025"),
    }
    pipe = Pipeline(tmp_path, env, redis_url, backend, tokens)
    try:
        pipe.start_apps()
        pipe.start_worker()
        pipe.start_beat()
        yield pipe
    finally:
        pipe.stop_all()
