"""A database that cannot be reached answers 503 (try again), never 500, also where no adapter
turned the driver's error into StorageUnavailable — here the identity look-up of an API token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from intake_service import create_app
from shared.clock import FixedClock
from shared.config import Settings
from shared.web.access import PUBLIC, access
from tests.authkit import bearer, make_identity


@pytest.fixture
def app(tmp_path: Path):
    clock = FixedClock(datetime(2026, 11, 28, tzinfo=UTC))
    return create_app(Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://"), clock=clock,
                      identity=make_identity(clock))


def _unreachable(*_args: object, **_kwargs: object) -> None:
    raise sa.exc.OperationalError("SELECT ...", {}, Exception("server closed the connection unexpectedly"))


def test_an_unreachable_identity_database_answers_503_problem_json(app, monkeypatch) -> None:
    identity = app.extensions["cim.identity"]
    headers = bearer(identity)
    monkeypatch.setattr(identity.api_tokens, "authenticate", _unreachable)
    response = app.test_client().get("/api/v1/events?after=0&limit=1", headers=headers)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "storage_unavailable"
    assert "try again" in response.json["detail"]


def test_an_unreachable_database_behind_a_page_answers_a_503_page(app) -> None:
    app.add_url_rule("/test-unreachable", "test_unreachable", access(PUBLIC)(lambda: _unreachable()))
    response = app.test_client().get("/test-unreachable")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert b"try again" in response.data


def test_other_database_errors_stay_500(app) -> None:
    def broken() -> None:
        raise sa.exc.ProgrammingError("SELECT nonsense", {}, Exception("syntax error"))

    app.add_url_rule("/test-broken", "test_broken", access(PUBLIC)(broken))
    assert app.test_client().get("/test-broken").status_code == 500  # a bug, not an outage


def test_redis_down_or_refusing_writes_answers_503_never_500(app) -> None:
    """Issue 16: sessions, sign-in links and the like live in Redis; its outage (or a Redis that
    cannot persist, MISCONF) is a 503 to try again, on pages and in the API."""
    import redis

    def down() -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def misconf() -> None:
        raise redis.ResponseError("MISCONF Errors writing to the AOF file: No space left on device")

    app.add_url_rule("/test-redis-down", "test_redis_down", access(PUBLIC)(down))
    app.add_url_rule("/api/v1/test-redis-misconf", "test_redis_misconf", access(PUBLIC)(misconf))
    page = app.test_client().get("/test-redis-down")
    assert page.status_code == 503
    assert b"try again" in page.data
    assert b"6379" not in page.data  # the driver's text is not shown
    api = app.test_client().get("/api/v1/test-redis-misconf")
    assert api.status_code == 503
    assert api.json["type"] == "storage_unavailable"
    assert "MISCONF" not in api.json["detail"]
