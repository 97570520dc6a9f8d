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
        assert answer.json["checks"] == {"database": "ok", "redis": "unreachable"}
        assert answer.headers["Cache-Control"] == "no-store"


def test_ready_is_200_when_every_check_passes(intake_apps, monkeypatch) -> None:
    import redis

    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)
    for app in intake_apps:
        answer = app.test_client().get("/ready")
        assert answer.status_code == 200, answer.json
        assert answer.json == {"status": "ok", "failing": [], "checks": {"database": "ok", "redis": "ok"}}


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
    assert set(answer.json["checks"]) == {"database", "redis", "feed", "projections"}

    context = app.extensions["cim.assessment"]
    monkeypatch.setattr(type(context.feed), "head", lambda self: (_ for _ in ()).throw(OSError("refused")))
    answer = app.test_client().get("/ready")
    assert answer.status_code == 503
    assert "feed" in answer.json["failing"]
    assert "refused" not in answer.get_data(as_text=True)  # fixed reasons, never an error's text
