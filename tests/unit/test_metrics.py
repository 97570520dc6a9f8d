"""Issue 16.4: /metrics counts requests by endpoint and status and, on the assessment side, shows
projection lag and checkpoints; only an integration token with scope ops:read reads it."""

from __future__ import annotations

import pytest

from assessment_service import create_app as create_assessment_app
from intake_service import create_app
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.personal import InMemoryKeyVault
from tests.authkit import authed_client, bearer, make_identity
from tests.unit.test_intake_api import NOW, STUDENT


@pytest.fixture
def intake(tmp_path):
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    app = create_app(settings, store=InMemoryEventStore(), vault=InMemoryKeyVault(), clock=clock, identity=identity)
    return app, identity


def test_metrics_need_an_ops_read_token(intake) -> None:
    app, identity = intake
    assert app.test_client().get("/api/v1/metrics").status_code == 401
    assert authed_client(app, bearer(identity, "feed:read")).get("/api/v1/metrics").status_code == 403


def test_requests_are_counted_by_endpoint_and_status_without_ids(intake) -> None:
    app, identity = intake
    writer = authed_client(app, bearer(identity, "intake:register", "intake:write"))
    sid = writer.post("/api/v1/students", json=STUDENT).json["student_id"]
    writer.post("/api/v1/students", json={"name": ""})  # a 4xx
    ops = authed_client(app, bearer(identity, "ops:read"))
    answer = ops.get("/api/v1/metrics")
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert 'cim_http_requests_total{app="intake",endpoint="api.register_student",method="POST",status="201"}' in text
    assert 'endpoint="api.register_student",method="POST",status="422"' in text or \
        'endpoint="api.register_student",method="POST",status="400"' in text
    assert 'cim_http_request_seconds_bucket{app="intake",endpoint="api.register_student"' in text
    assert sid not in text
    assert STUDENT["name"] not in text


def test_assessment_metrics_show_projection_lag_and_checkpoint(tmp_path, monkeypatch) -> None:
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    app = create_assessment_app(settings, feed=StoreEventFeed(InMemoryEventStore()), clock=clock, identity=identity)
    context = app.extensions["cim.assessment"]
    monkeypatch.setattr(type(context.feed), "head", lambda self: 7)
    text = authed_client(app, bearer(identity, "ops:read")).get("/api/v1/metrics").get_data(as_text=True)
    names = list(context.runner.projections)
    assert f'cim_projection_lag_events{{projection="{names[0]}"}} 7.0' in text
    assert f'cim_projection_checkpoint{{projection="{names[0]}"}} 0.0' in text


def test_assessment_metrics_show_outbox_depth_oldest_pending_age_and_clock_guard_holds(tmp_path, monkeypatch) -> None:
    from datetime import date, timedelta

    from shared.clock_guard import RETENTION, ClockGuard
    from shared.outbox import Message, Outbox

    clock = FixedClock(NOW)
    identity = make_identity(clock)
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    app = create_assessment_app(settings, feed=StoreEventFeed(InMemoryEventStore()), clock=clock, identity=identity)
    monkeypatch.setattr(type(app.extensions["cim.assessment"].feed), "head", lambda self: 0)
    box = Outbox.from_url(settings.identity_db_url, settings.identity_secret, clock=clock)
    box.create_schema()
    for n in range(3):
        box.enqueue(Message(key=f"test:{n}", template="sign_in_link", to_address=f"p{n}@example.org"))
        clock.advance(timedelta(minutes=5))
    token, claimed = box.claim(limit=1)
    assert box.mark_sent(claimed[0].id, token, "<m@example.org>")
    guard = ClockGuard(box.engine, clock=clock)
    guard.create_schema()
    guard.record(RETENTION, date(2026, 1, 1))
    assert not guard.admit(RETENTION, date(2026, 2, 1)).admitted
    text = authed_client(app, bearer(identity, "ops:read")).get("/api/v1/metrics").get_data(as_text=True)
    assert 'cim_outbox_rows{status="pending"} 2.0' in text
    assert 'cim_outbox_rows{status="sent"} 1.0' in text
    assert 'cim_outbox_rows{status="failed"} 0.0' in text
    # the oldest pending row is the second one, enqueued 10 minutes before the scrape
    assert "cim_outbox_oldest_pending_seconds 600.0" in text
    assert f'cim_clock_guard_held{{job="{RETENTION}"}} 1.0' in text
    assert "p1@example.org" not in text
