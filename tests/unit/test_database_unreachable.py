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
