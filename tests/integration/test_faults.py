"""Issue 16.2 and 16.3, end to end: faults degrade, never cascade.

The whole system as `make run` starts it (scripts/run.sh: gunicorn apps, the Celery worker and
beat under supervisord, SQLite under CIM_DATA_DIR), then:

- **Redis down**: redis-server is SIGKILLed and stays down. Writes still answer 201 (the event is
  stored; the wake-up is lost), `/ready` names Redis, a signed-in assessor's staff page says the
  updates are paused, the worker keeps its process; once Redis is back the read models catch up
  to equal a rebuild from position 0 (nothing lost, nothing doubled) and the notice goes away.
- **Full data disk**: the data directory (and Redis's directory under it, where run.sh puts it)
  is a small filesystem of its own (tmpfs, or a loop-mounted ext4 image), filled to the last
  byte. Writes answer 503 (never 500), Redis refuses writes (MISCONF / AOF errors) and every
  process keeps running; once the filler is deleted the system recovers with no operator action.

What an operator sees in each case is in docs/operations.md, "Faults, as an operator sees them".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Pipeline, http
from tests.integration.test_supervision import Run, _free_ports, _wait

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

ASSESSOR_PASSWORD = "a-long-synthetic-passphrase-16"
PAUSED = "Updates are paused: the message queue (Redis) cannot be reached."


def _secrets(run: Run) -> dict[str, str]:
    env = dict(run.env)
    for line in (run.data / "secrets.env").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.startswith("CIM_"):
            env[name] = value
    return env


class System:
    """A started run.sh with the test's tokens and an assessor's session cookie, seen as the e2e
    Pipeline helpers expect (for the rebuild comparison)."""

    def __init__(self, run: Run, redis_url: str) -> None:
        from shared.clock import SystemClock
        from shared.identity.models import Role, RoleGrant
        from shared.identity.wiring import build_identity
        from tests.authkit import ALL_INTAKE_SCOPES

        self.run = run
        env = _secrets(run)
        env.update(
            PYTHONPATH=str(Path(__file__).resolve().parents[2]),
            CIM_INTAKE_URL=f"http://127.0.0.1:{run.intake}",
            CIM_ASSESSMENT_URL=f"http://127.0.0.1:{run.assessment}",
            CIM_INTAKE_FEED_URL=f"http://127.0.0.1:{run.feed}",
            CIM_REDIS_URL=redis_url,
            CIM_INTAKE_DB_URL=f"sqlite:///{run.data / 'intake.db'}",
            CIM_ASSESSMENT_DB_URL=f"sqlite:///{run.data / 'assessment.db'}",
            CIM_IDENTITY_DB_URL=f"sqlite:///{run.data / 'identity.db'}",
        )
        import redis

        identity = build_identity(clock=SystemClock(), identity_key=env["CIM_IDENTITY_KEY"],
                                  db_url=env["CIM_IDENTITY_DB_URL"], redis=redis.Redis.from_url(redis_url))
        try:
            tag = uuid.uuid4().hex[:6]
            feed = identity.api_tokens.create(f"faults feed {tag}", ["feed:read"]).token
            tokens = {
                "intake": identity.api_tokens.create(f"faults client {tag}", list(ALL_INTAKE_SCOPES)).token,
                "assessment": identity.api_tokens.create(
                    f"faults operator {tag}", ["assessment:read", "ops:read", "feed:read"]).token,
            }
            account = identity.accounts.create_account(
                "Synthetic Assessor", f"assessor.{tag}@example.org", grants=[RoleGrant(Role.ASSESSOR, "SOCSW")])
            self.session_id = identity.sessions.create(account.id, auth_method="password")
        finally:
            identity.store.dispose()  # type: ignore[attr-defined]
        env["CIM_FEED_TOKEN"] = feed
        self.pipe = Pipeline(run.data, env, redis_url, "sqlite", tokens)
        self.students = 0

    def register(self) -> tuple[int, Any]:
        n = self.students
        self.students += 1
        return self.pipe.intake("POST", "/students", {
            "name": f"Tova Fault {n}", "email": f"tova.fault.{n}.{uuid.uuid4().hex[:4]}@example.org",
            "university_id": f"fault-{n}-{uuid.uuid4().hex[:4]}", "department": "SOCSW", "programme": "SSASK",
            "expected_end_term": "VT2028"}, timeout=15)

    def staff_page(self, path: str = "/review-queue") -> tuple[int, str]:
        import urllib.error
        import urllib.request

        settings_cookie = "__Host-cim_session"
        request = urllib.request.Request(f"{self.pipe.assessment_url}{path}", headers={
            "Cookie": f"{settings_cookie}={self.session_id}", "Accept": "text/html", "Accept-Language": "en"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    def ready(self, port: int) -> tuple[int, Any]:
        return http("GET", f"http://127.0.0.1:{port}/ready")

    def converged(self) -> bool:
        head = self.pipe.intake_head()
        return all(p["checkpoint"] == head for p in self.pipe.projections())

    def all_visible(self, student_ids: list[str]) -> bool:
        return all(self.pipe.assessment(f"/students/{sid}")[0] == 200 for sid in student_ids)


def _start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    """redis-server with run.sh's settings (AOF on, no eviction), outside the supervisor, so
    that a SIGKILLed one stays down until the test starts it again."""
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
         "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "", "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    _wait(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
          .stdout.strip() == "PONG", 10, "redis-server")
    return proc


def _assert_no_500(answers: list[tuple[int, Any]]) -> None:
    assert all(status < 500 or status == 503 for status, _ in answers), answers


@pytest.mark.timeout(300)
def test_redis_down_degrades_writes_pages_and_worker_and_recovers(tmp_path: Path) -> None:
    port = _free_ports(1)[0]
    redis_dir = tmp_path / "var" / "redis"
    redis_url = f"redis://127.0.0.1:{port}/0"
    redis_proc = _start_redis(port, redis_dir)
    run = Run(tmp_path, redis_port=port)
    try:
        system = System(run, redis_url)
        _wait(lambda: run.running("worker") and run.running("beat"), 30, "worker and beat RUNNING")
        sids = []
        for _ in range(3):
            status, body = system.register()
            assert status == 201, body
            sids.append(body["student_id"])
        _wait(system.converged, 30, "the projections to catch up")
        status, page = system.staff_page()
        assert status == 200
        assert PAUSED not in page
        assert "catching up" not in page
        worker_pid = run.pid("worker")

        redis_proc.kill()  # SIGKILL: Redis is gone, and stays gone
        redis_proc.wait(timeout=10)
        down_at = time.monotonic()

        # Writes: the event is stored and acknowledged (201); only the wake-up is lost.
        answers = []
        for _ in range(3):
            started = time.monotonic()
            answers.append(system.register())
            assert time.monotonic() - started < 5, "a write waited on the dead Redis"
        assert [status for status, _ in answers] == [201, 201, 201], answers
        sids += [body["student_id"] for _, body in answers]
        # /ready names Redis on every web process.
        for web in (run.intake, run.feed, run.assessment):
            status, body = system.ready(web)
            assert (status, "redis" in body["failing"]) == (503, True), (web, body)
        # The staff page still opens and says that it is behind.
        found = _wait_value(lambda: system.staff_page(), lambda a: PAUSED in a[1], 15, "the notice")
        assert found[0] == 200
        # The worker keeps its process (no restart by the supervisor) while Redis stays down.
        time.sleep(max(0.0, 8 - (time.monotonic() - down_at)))
        assert run.pid("worker") == worker_pid
        assert run.running("worker")
        assert run.running("beat")

        redis_proc = _start_redis(port, redis_dir)
        back_at = time.monotonic()
        _wait(system.converged, 30, "the projections to catch up after Redis came back")
        caught_up = time.monotonic() - back_at
        assert system.all_visible(sids)
        from tests.e2e.test_pipeline import assert_live_equals_rebuild

        assert_live_equals_rebuild(system.pipe, f"sqlite:///{tmp_path / 'rebuilt.db'}")
        _wait_value(lambda: system.staff_page(), lambda a: a[0] == 200 and PAUSED not in a[1]
                    and "catching up" not in a[1], 15, "the notice to go")
        _wait(lambda: all(system.ready(web)[0] == 200 for web in (run.intake, run.feed)), 15, "/ready 200")
        assert run.pid("worker") == worker_pid
        print(f"redis down: caught up {caught_up:.1f} s after Redis came back; worker pid kept {worker_pid}")
    finally:
        run.stop()
        with contextlib.suppress(ProcessLookupError):
            redis_proc.kill()
        redis_proc.wait(timeout=10)


def _wait_value(get: Any, ok: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = get()
        if ok(last):
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {str(last)[:2000]}")


# -- the full data disk -----------------------------------------------------------------------

#: The data filesystem: room for the system's start (a few MB) and a student's writes.
DISK_MEGABYTES = 48


@contextlib.contextmanager
def _small_filesystem(directory: Path, megabytes: int) -> Iterator[str]:
    """Mount a filesystem of `megabytes` on `directory`: tmpfs, else an ext4 image on a loop
    device; skip (with the reason) when neither can be mounted (not root, no mount rights)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small filesystem for the data directory")
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0755", "tmpfs", str(directory)],
                           capture_output=True, text=True)
    kind = "tmpfs"
    if tried.returncode != 0:
        image = directory.parent / "data.img"
        with image.open("wb") as sparse:
            sparse.truncate(megabytes * 1024 * 1024)
        made = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], capture_output=True, text=True)
        looped = subprocess.run(["mount", "-o", "loop", str(image), str(directory)], capture_output=True, text=True) \
            if made.returncode == 0 else made
        if looped.returncode != 0:
            pytest.skip(f"cannot mount a small filesystem here: tmpfs: {tried.stderr.strip()}; "
                        f"loop ext4: {looped.stderr.strip()}")
        kind = "ext4 on a loop device"
    try:
        yield kind
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(directory)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:  # something still holds a file there: detach it now, freed when let go
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem has no byte left; return it."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            chunk = b"\0" * size
            while True:
                try:
                    out.write(chunk)
                except OSError:
                    break
    return filler


@pytest.mark.timeout(300)
def test_a_full_data_disk_answers_503_keeps_every_process_and_recovers_by_itself(tmp_path: Path) -> None:
    data = tmp_path / "var"
    with _small_filesystem(data, DISK_MEGABYTES) as kind:
        run = Run(tmp_path)
        try:
            redis_url = f"redis://127.0.0.1:{run.redis_port}/0"
            system = System(run, redis_url)
            names = ("redis", "intake", "intake-feed", "assessment", "worker", "beat", "smtp")
            for name in names:
                _wait(lambda n=name: run.running(n), 30, f"{name} RUNNING")
            sids = []
            for _ in range(3):
                status, body = system.register()
                assert status == 201, body
                sids.append(body["student_id"])
            _wait(system.converged, 30, "the projections to catch up")
            assert system.staff_page()[0] == 200
            pids = {name: run.pid(name) for name in names}

            filler = _fill(data)
            full_at = time.monotonic()
            assert shutil.disk_usage(data).free < 4096
            answers = [system.register() for _ in range(5)]
            _assert_no_500(answers)
            assert 503 in [status for status, _ in answers], answers
            # Redis refuses writes now (its AOF cannot grow); the worker, beat and everything
            # else keep running, in the same processes.
            time.sleep(max(0.0, 6 - (time.monotonic() - full_at)))
            more = [system.register() for _ in range(3)]
            _assert_no_500(more)
            # The signed-in assessor still reads, told that updates are paused (Redis refuses).
            _wait_value(system.staff_page, lambda a: a[0] == 200 and PAUSED in a[1], 10, "the notice")
            # /ready on every web process names the full disk and the Redis that cannot persist.
            readiness = {web: system.ready(web) for web in (run.intake, run.feed, run.assessment)}
            for status, body in readiness.values():
                assert status == 503, readiness
                assert body["checks"]["disk"].startswith("full: "), readiness
                assert body["checks"]["redis"].startswith("refusing writes"), readiness
            for name in names:
                assert run.running(name), (name, run.ctl("status"))
            restarted = {name for name in names if run.pid(name) != pids[name]}
            assert not restarted, f"restarted while the disk was full: {restarted}\n{run.ctl('status')}"

            worker_log = data / "log" / "worker.log"
            logged = worker_log.stat().st_size
            filler.unlink()  # the operator frees space; nothing else
            freed_at = time.monotonic()
            status, body = _wait_value(system.register, lambda a: a[0] == 201, 30, "a write to answer 201")
            sids.append(body["student_id"])
            writes_back = time.monotonic() - freed_at
            _wait(system.converged, 40, "the projections to catch up after space was freed")
            caught_up = time.monotonic() - freed_at
            assert system.all_visible(sids)
            from tests.e2e.test_pipeline import assert_live_equals_rebuild

            assert_live_equals_rebuild(system.pipe, f"sqlite:///{tmp_path / 'rebuilt.db'}")
            assert system.staff_page()[0] == 200
            _wait(lambda: all(system.ready(web)[0] == 200 for web in (run.intake, run.feed)), 15, "/ready 200")
            # The worker's output (stdout, to the supervisor) reaches its log file again.
            _wait(lambda: worker_log.stat().st_size > logged, 15, "the worker's log to grow")
            for name in names:
                assert run.running(name), (name, run.ctl("status"))
            print(f"full disk ({kind}): {[a[0] for a in answers + more]}; writes 201 again "
                  f"{writes_back:.1f} s and caught up {caught_up:.1f} s after space was freed; "
                  f"restarted: {sorted(restarted)}; /ready while full: "
                  f"{ {web: body.get('checks') for web, (_, body) in readiness.items()} }")
        finally:
            run.stop()
            # The processes' logs lived on the small filesystem: keep a copy beside it.
            with contextlib.suppress(OSError):
                shutil.copytree(data / "log", tmp_path / "log", dirs_exist_ok=True)
