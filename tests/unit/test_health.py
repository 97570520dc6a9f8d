"""Issue 16.2: /health and /ready on every web process, public, naming the failing check, with
no personal data and never a 5xx other than 503."""

from __future__ import annotations

import socket

import pytest

from assessment_service import create_app as create_assessment_app
from intake_service import create_app, create_feed_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.personal import InMemoryKeyVault
from tests.authkit import make_identity
from tests.unit.test_intake_api import NOW


def _dead_redis_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def intake_apps(tmp_path):
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    store, vault = InMemoryEventStore(), InMemoryKeyVault()
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://", redis_url=_dead_redis_url())
    kwargs = {"store": store, "vault": vault, "clock": clock, "identity": identity}
    return create_app(settings, **kwargs), create_feed_app(settings, **kwargs)


def test_health_answers_anonymously_on_both_intake_processes(intake_apps) -> None:
    for app in intake_apps:
        answer = app.test_client().get("/health")
        assert answer.status_code == 200
        assert answer.json == {"status": "ok"}


def test_ready_names_the_failing_check_with_503(intake_apps) -> None:
    for app in intake_apps:
        answer = app.test_client().get("/ready")
        assert answer.status_code == 503
        assert answer.json["failing"] == ["redis"]
        assert answer.json["checks"] == {"database": "ok", "redis": "unreachable", "disk": "ok"}
        assert answer.headers["Cache-Control"] == "no-store"


def test_ready_is_200_when_every_check_passes(intake_apps, monkeypatch) -> None:
    import redis

    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)
    for app in intake_apps:
        answer = app.test_client().get("/ready")
        assert answer.status_code == 200, answer.json
        assert answer.json == {"status": "ok", "failing": [], "checks": {"database": "ok", "redis": "ok", "disk": "ok"}}


def test_assessment_ready_checks_database_redis_feed_and_lag(tmp_path, monkeypatch) -> None:
    import redis

    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)
    clock = FixedClock(NOW)
    intake_store = InMemoryEventStore()
    from shared.adapters.feed import StoreEventFeed

    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    app = create_assessment_app(settings, feed=StoreEventFeed(intake_store), clock=clock, identity=make_identity(clock))
    answer = app.test_client().get("/health")
    assert answer.status_code == 200
    answer = app.test_client().get("/ready")
    assert answer.status_code == 200, answer.json
    assert set(answer.json["checks"]) == {"database", "redis", "feed", "projections", "disk"}

    context = app.extensions["cim.assessment"]
    monkeypatch.setattr(type(context.feed), "head", lambda self: (_ for _ in ()).throw(OSError("refused")))
    answer = app.test_client().get("/ready")
    assert answer.status_code == 503
    assert "feed" in answer.json["failing"]
    assert "refused" not in answer.get_data(as_text=True)  # fixed reasons, never an error's text


def test_ready_says_the_data_disk_is_full(intake_apps, monkeypatch) -> None:
    """Issue 16.3: on a full data disk every write answers 503; /ready names the disk."""
    import redis

    from shared.web import health

    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)
    real = health.shutil.disk_usage
    monkeypatch.setattr(health.shutil, "disk_usage",
                        lambda path: real(path)._replace(free=3 * 1024 * 1024))
    answer = intake_apps[0].test_client().get("/ready")
    assert answer.status_code == 503
    assert answer.json["failing"] == ["disk"]
    assert answer.json["checks"]["disk"] == "full: 3 MB free < 16 MB"


def test_ready_tells_a_redis_refusing_writes_from_an_unreachable_one(intake_apps, monkeypatch) -> None:
    import redis

    def misconf(self: object) -> bool:
        raise redis.ResponseError("MISCONF Errors writing to the AOF file: No space left on device")

    monkeypatch.setattr(redis.Redis, "ping", misconf)
    answer = intake_apps[0].test_client().get("/ready")
    assert answer.status_code == 503
    assert answer.json["checks"]["redis"] == "refusing writes (cannot persist: disk full?)"


def test_no_disk_check_without_an_embedded_database() -> None:
    from shared.web.health import storage_checks

    assert storage_checks("postgresql://cim@db.example/cim", "sqlite://") == {}
    assert set(storage_checks("sqlite:////tmp/x/intake.db")) == {"disk"}
