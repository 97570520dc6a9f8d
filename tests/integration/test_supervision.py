"""Issue 16.1: `make run` (scripts/run.sh) keeps its processes under supervisord. A process
killed with SIGKILL (the Celery worker, beat, a gunicorn app, Redis) is started again and serves;
SIGINT (Ctrl-C) stops everything run.sh started, soon, and leaves a Redis it did not start
running."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _wait(predicate, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _processes_of(data_dir: Path) -> list[int]:
    """Every process whose environment names this run's data directory (redis-server rewrites
    its own environment, so Redis is checked by its port instead)."""
    mine = f"CIM_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mine in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class Run:
    def __init__(self, tmp: Path, redis_port: int | None = None) -> None:
        self.data = tmp / "var"
        ports = _free_ports(5)
        self.redis_port = redis_port or ports[0]
        self.intake, self.assessment, self.feed, self.smtp = ports[1:]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
        env.update(
            CIM_DATA_DIR=str(self.data), CIM_RUN_REDIS_PORT=str(self.redis_port),
            CIM_RUN_INTAKE_PORT=str(self.intake), CIM_RUN_ASSESSMENT_PORT=str(self.assessment),
            CIM_RUN_INTAKE_FEED_PORT=str(self.feed), CIM_RUN_SMTP_PORT=str(self.smtp), CIM_RUN_NO_DEMO="1",
            CIM_RATELIMIT_STORAGE="memory://",
        )
        self.env = env
        self.out = (tmp / "run.out").open("wb")
        self.proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=env, stdout=self.out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        _wait(lambda: "processes" in (tmp / "run.out").read_text(), 90, "run.sh's summary")

    def ctl(self, *args: str) -> str:
        conf = self.data / "run" / "supervisord.conf"
        done = subprocess.run([str(BIN / "supervisorctl"), "-c", str(conf), *args], capture_output=True, text=True)
        return done.stdout

    def pid(self, name: str) -> int:
        text = self.ctl("pid", name).strip()
        return int(text) if text.isdigit() else 0

    def running(self, name: str) -> bool:
        return " RUNNING " in self.ctl("status", name)

    def stop(self) -> float:
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)
        self.out.close()
        return time.monotonic() - started


def test_killed_processes_come_back_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    run = Run(tmp_path)
    try:
        for name in ("intake", "intake-feed", "assessment", "worker", "beat", "redis", "smtp"):
            _wait(lambda n=name: run.running(n), 30, f"{name} RUNNING")
        for name in ("worker", "beat", "assessment", "redis"):
            old = run.pid(name)
            os.kill(old, signal.SIGKILL)
            _wait(lambda n=name, o=old: run.pid(n) not in (0, o) and run.running(n), 30, f"{name} restarted")
        _wait(lambda: _status(f"http://127.0.0.1:{run.assessment}/") in (200, 302, 303), 30, "assessment serving")
        _wait(lambda: _status(f"http://127.0.0.1:{run.intake}/") == 200, 30, "intake serving")
        ping = subprocess.run(["redis-cli", "-p", str(run.redis_port), "ping"], capture_output=True, text=True)
        assert ping.stdout.strip() == "PONG"
        # Metrics under gunicorn (multiprocess mode), for an ops:read token only.
        env = dict(run.env)
        for line in (run.data / "secrets.env").read_text().splitlines():
            name, _, value = line.partition("=")
            if name.startswith("CIM_"):
                env[name] = value
        token = subprocess.run(
            [str(BIN / "flask"), "--app", "intake_service", "tokens", "create", "--name", "ops", "--scope", "ops:read",
             "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()
        asking = urllib.request.Request(f"http://127.0.0.1:{run.intake}/api/v1/metrics",
                                        headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(asking, timeout=5) as answer:
            text = answer.read().decode()
        assert 'cim_http_requests_total{app="intake",endpoint="forms.home",method="GET",status="200"}' in text
        assert _status(f"http://127.0.0.1:{run.intake}/ready") in (200, 503)
        assert _status(f"http://127.0.0.1:{run.intake}/health") == 200
        time.sleep(4)  # past startsecs: the restarted worker and beat stay up
        assert run.running("worker")
        assert run.running("beat")
    finally:
        took = run.stop()
    assert took < 25, f"Ctrl-C took {took:.1f} s"
    assert run.proc.returncode is not None
    _wait(lambda: not _processes_of(run.data), 10, "no process left")
    ping = subprocess.run(["redis-cli", "-p", str(run.redis_port), "ping"], capture_output=True, text=True)
    assert ping.stdout.strip() != "PONG"  # the Redis it started is stopped too


def test_ctrl_c_leaves_a_redis_it_did_not_start(tmp_path: Path) -> None:
    port = _free_ports(1)[0]
    redis = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
              .stdout.strip() == "PONG", 10, "our redis")
        run = Run(tmp_path, redis_port=port)
        try:
            assert "redis" not in run.ctl("status")
        finally:
            run.stop()
        _wait(lambda: not _processes_of(run.data), 10, "no process left")
        ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
        assert ping.stdout.strip() == "PONG"
    finally:
        redis.terminate()
        redis.wait(timeout=10)
