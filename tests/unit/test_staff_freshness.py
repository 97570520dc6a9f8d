"""Issue 16.3: the staff pages say when what they show is behind (the projections lag and have
not moved for a while) or when Redis cannot be reached, in English and Swedish; a current
pipeline shows nothing."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from assessment_service import create_app
from assessment_service.web import freshness
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from shared.projection import checkpoints
from tests.authkit import make_account, make_identity, sign_in
from tests.unit.test_intake_api import NOW


def _dead_redis_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def staff(tmp_path, monkeypatch):
    monkeypatch.setattr(freshness, "STATUS_TTL", 0.0)
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    feed_store = InMemoryEventStore()
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://", redis_url=_dead_redis_url())
    app = create_app(settings, feed=StoreEventFeed(feed_store), clock=clock, identity=identity)
    client = app.test_client()
    account = make_account(identity, "Staff Person", grants=[(Role.COORDINATOR, "SOCSW")])
    sign_in(client, identity, account)
    return app, client, feed_store


def _redis_up(monkeypatch) -> None:
    import redis

    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)


def test_redis_down_is_said_on_the_staff_page(staff) -> None:
    _, client, _ = staff
    page = client.get("/review-queue").get_data(as_text=True)
    assert "the message queue (Redis) cannot be reached" in page
    page = client.get("/review-queue?lang=sv").get_data(as_text=True)
    assert "meddelandekön (Redis) går inte att nå" in page


def test_a_current_pipeline_shows_no_notice(staff, monkeypatch) -> None:
    _redis_up(monkeypatch)
    _, client, _ = staff
    page = client.get("/review-queue").get_data(as_text=True)
    assert "catching up" not in page
    assert "cannot be reached" not in page


def test_projections_behind_and_not_moving_say_when_they_were_updated(staff, monkeypatch) -> None:
    _redis_up(monkeypatch)
    app, client, _ = staff
    context = app.extensions["cim.assessment"]
    monkeypatch.setattr(type(context.feed), "head", lambda self: 40)  # the feed has 40 events
    import time

    with context.engine.begin() as conn:  # the checkpoints last moved two minutes ago
        conn.execute(sa.update(checkpoints).values(position=10, updated_at=time.time() - 125))
    page = client.get("/review-queue").get_data(as_text=True)
    assert "Updated 2 minutes ago; the pipeline is catching up." in page
    page = client.get("/review-queue?lang=sv").get_data(as_text=True)
    assert "Uppdaterad för 2 minuter sedan; flödet hinner ikapp." in page


def test_a_fresh_small_lag_shows_nothing(staff, monkeypatch) -> None:
    _redis_up(monkeypatch)
    app, client, _ = staff
    context = app.extensions["cim.assessment"]
    monkeypatch.setattr(type(context.feed), "head", lambda self: 12)
    import time

    with context.engine.begin() as conn:
        conn.execute(sa.update(checkpoints).values(position=10, updated_at=time.time() - 1))
    assert "catching up" not in client.get("/review-queue").get_data(as_text=True)
