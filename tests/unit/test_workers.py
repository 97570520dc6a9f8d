"""Workers: Celery settings for at-least-once, the beat schedule, the task as a plain function,
and the wake-up sender (fakeredis): sent by name with ids only, never raising when Redis is down."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import fakeredis
import kombu.transport.redis as kombu_redis
import pytest
from flask import Flask
from werkzeug.serving import make_server

from assessment_service import create_app as create_assessment_app
from assessment_service.bootstrap import build_context
from intake_service import assessment_view
from intake_service import create_app as create_intake_app
from intake_service.bootstrap import make_wakeup
from intake_service.events import REGISTRY
from shared import task_names
from shared.adapters.celery_wakeup import CeleryWakeUp, clear_pending
from shared.adapters.feed import FeedAccessRefused, FunctionFeed, HttpEventFeed, StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import StorageUnavailable
from shared.events import NewEvent
from tests.authkit import authed_client, bearer, make_identity
from tests.unit.test_intake_api import ACTIVITY, STUDENT
from workers import base as worker_base
from workers import celery_app, schedule
from workers.settings import settings as worker_settings
from workers.tasks import projections as projection_tasks


def test_celery_is_configured_for_at_least_once_delivery_of_json_messages() -> None:
    conf = celery_app.app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.task_default_queue == task_names.QUEUE


def test_every_beat_entry_names_a_registered_task_and_expires() -> None:
    import workers.tasks.deadlines
    import workers.tasks.diplomas
    import workers.tasks.mail
    import workers.tasks.retention
    import workers.tasks.staff_mail  # noqa: F401  (registers the tasks, as the worker's include does)

    for entry in schedule.BEAT_SCHEDULE.values():
        assert entry["task"] in celery_app.app.tasks
        assert entry["options"]["expires"] > 0
    catch_up = schedule.BEAT_SCHEDULE["catch-up-projections"]
    assert catch_up["options"]["expires"] <= 60
    assert 2 <= catch_up["schedule"] <= 5
    assert catch_up["kwargs"] == {"backstop": True}  # the tick also catches up the status view
    daily = schedule.BEAT_SCHEDULE["dispose-due-records"]  # retention, once a day
    assert daily["options"]["expires"] < 24 * 3600


def _registered(sid: str) -> NewEvent:
    from datetime import UTC, datetime

    return NewEvent(
        "StudentRegistered", 1,
        {"student_id": sid, "name": "Tova Exempel", "email": "t@example.org", "university_id": "x-1",
         "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028", "rules": "SOCSW@1"},
        {"actor": "test", "correlation_id": "corr-7"}, datetime(2026, 3, 16, tzinfo=UTC),
    )


def test_catch_up_task_called_as_a_function_projects_and_updates_the_intake_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path)
    store = InMemoryEventStore()
    sid = "00000000-0000-0000-0000-000000000001"
    store.append(f"student-{sid}", [_registered(sid)], expected_version=0)
    ctx = build_context(settings, feed=StoreEventFeed(store, REGISTRY))
    from assessment_service import queries

    def read(after: int, limit: int):  # type: ignore[no-untyped-def]
        with ctx.reader.connect() as conn:
            return queries.status_changes(conn, after, limit)

    view = assessment_view.build_view(settings, feed=FunctionFeed(read, lambda: 0))
    monkeypatch.setattr(projection_tasks, "assessment_context", lambda: ctx)
    monkeypatch.setattr(projection_tasks, "intake_view", lambda: view)
    broker = fakeredis.FakeRedis()
    broker.set(task_names.CATCH_UP_PENDING_KEY, "corr-7")
    monkeypatch.setattr(projection_tasks, "redis_client", lambda: broker)

    assert projection_tasks.catch_up_projections(correlation_id="corr-7") == 7  # one event, seven read models
    assert projection_tasks.catch_up_projections(correlation_id="corr-7") == 0  # a duplicate wake-up
    assert view.status_for(sid) is None  # a wake-up leaves the status view to beat's tick
    assert projection_tasks.catch_up_projections(backstop=True) == 0  # beat's tick
    assert view.status_for(sid) == "registered"
    assert set(ctx.runner.checkpoints().values()) == {1}
    assert broker.get(task_names.CATCH_UP_PENDING_KEY) is None  # the next commit wakes a new catch-up


def test_a_failing_intake_view_does_not_fail_the_catch_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = build_context(Settings(data_dir=tmp_path), feed=StoreEventFeed(InMemoryEventStore(), REGISTRY))

    class Broken:
        def catch_up(self) -> int:
            raise OSError("assessment feed unreachable")

    monkeypatch.setattr(projection_tasks, "assessment_context", lambda: ctx)
    monkeypatch.setattr(projection_tasks, "intake_view", lambda: Broken())
    down = fakeredis.FakeServer()
    down.connected = False
    monkeypatch.setattr(projection_tasks, "redis_client", lambda: fakeredis.FakeRedis(server=down))
    assert projection_tasks.catch_up_projections(backstop=True) == 0


@pytest.fixture
def fake_broker() -> Iterator[fakeredis.FakeServer]:
    server = fakeredis.FakeServer()

    def fake_client(_channel: object, asynchronous: bool = False) -> fakeredis.FakeRedis:
        return fakeredis.FakeRedis(server=server)

    with mock.patch.object(kombu_redis.Channel, "_create_client", fake_client):
        yield server


def _queued(server: fakeredis.FakeServer) -> list[dict]:
    client = fakeredis.FakeRedis(server=server)
    return [json.loads(raw) for raw in client.lrange(task_names.QUEUE, 0, -1)]


def _wakeup(server: fakeredis.FakeServer) -> CeleryWakeUp:
    return CeleryWakeUp("redis://broker.invalid:6379/0", client=fakeredis.FakeRedis(server=server))


def test_wake_up_sends_the_catch_up_task_by_name_with_ids_only(fake_broker: fakeredis.FakeServer) -> None:
    _wakeup(fake_broker).after_commit("corr-1")
    messages = _queued(fake_broker)
    assert [m["headers"]["task"] for m in messages] == [task_names.CATCH_UP_PROJECTIONS]
    args, kwargs, _embed = json.loads(base64.b64decode(messages[-1]["body"]))
    assert (args, kwargs) == ([], {"correlation_id": "corr-1"})
    assert messages[0]["content-type"] == "application/json"
    assert messages[0]["headers"]["expires"]  # a stale wake-up is dropped, beat covers it


def test_a_burst_of_commits_queues_one_catch_up_until_it_starts(fake_broker: fakeredis.FakeServer) -> None:
    wakeup = _wakeup(fake_broker)
    for n in range(50):
        wakeup.after_commit(f"corr-{n}")
    assert len(_queued(fake_broker)) == 1
    clear_pending(fakeredis.FakeRedis(server=fake_broker))  # the catch-up started: later commits wake again
    wakeup.after_commit("corr-late")
    assert len(_queued(fake_broker)) == 2


def test_wake_up_with_redis_down_neither_raises_nor_blocks(fake_broker: fakeredis.FakeServer) -> None:
    fake_broker.connected = False
    wakeup = _wakeup(fake_broker)
    started = time.monotonic()
    for _ in range(20):
        wakeup.after_commit("corr-2")
    assert time.monotonic() - started < 1.0
    fake_broker.connected = True
    assert _queued(fake_broker) == []  # skipped during the pause after a failure


def test_intake_sends_wake_ups_through_celery_by_default(tmp_path: Path) -> None:
    assert isinstance(make_wakeup(Settings(data_dir=tmp_path)), CeleryWakeUp)


# -- the feeds need an API token (issue 4) --------------------------------------------------------
@contextmanager
def served(app: Flask) -> Iterator[str]:
    """`app` behind a real HTTP server on a free port (what HttpEventFeed talks to in production)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def intake_app(tmp_path: Path) -> Flask:
    """The real intake app with one registered student (two events: registered, activity)."""
    clock = FixedClock(datetime(2026, 11, 28, tzinfo=UTC))
    identity = make_identity(clock)
    app = create_intake_app(Settings(data_dir=tmp_path / "intake", wakeup="none", ratelimit_storage="memory://"),
                            store=InMemoryEventStore(), clock=clock, identity=identity)
    client = authed_client(app, bearer(identity, "intake:register", "intake:write"))
    sid = client.post("/api/v1/students", json=STUDENT).json["student_id"]
    assert client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY).status_code == 201
    return app


def _token(app: Flask, *scopes: str) -> str:
    return app.extensions["cim.identity"].api_tokens.create("worker", scopes).token


def test_the_workers_catch_up_reads_the_intake_feed_with_the_token_from_settings(
    intake_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's own wiring end to end: CIM_FEED_TOKEN -> Settings -> the HttpEventFeed of the
    assessment context -> `Authorization: Bearer` -> the real intake app lets it read."""
    token = _token(intake_app, "feed:read")
    with served(intake_app) as base:
        monkeypatch.setenv("CIM_DATA_DIR", str(tmp_path / "worker"))
        monkeypatch.setenv("CIM_INTAKE_URL", base)
        monkeypatch.setenv("CIM_FEED_TOKEN", token)
        for name in ("CIM_INTAKE_DB_URL", "CIM_ASSESSMENT_DB_URL"):
            monkeypatch.delenv(name, raising=False)
        worker_settings.cache_clear()
        worker_base.assessment_context.cache_clear()
        worker_base.intake_view.cache_clear()
        monkeypatch.setattr(projection_tasks, "redis_client", lambda: fakeredis.FakeRedis())
        try:
            ctx = worker_base.assessment_context()
            assert isinstance(ctx.feed, HttpEventFeed)
            assert ctx.feed.headers()["Authorization"] == f"Bearer {token}"
            assert token not in repr(ctx.feed)
            assert projection_tasks.catch_up_projections(correlation_id="corr-9") > 0
            assert {ctx.runner.checkpoints()[name] for name in ("students", "activities")} == {2}
        finally:
            worker_base.assessment_context().dispose()
            worker_settings.cache_clear()
            worker_base.assessment_context.cache_clear()
            worker_base.intake_view.cache_clear()


def test_the_intake_feed_refuses_a_reader_without_a_valid_token_with_401(intake_app: Flask) -> None:
    revoked = intake_app.extensions["cim.identity"].api_tokens.create("old worker", ["feed:read"])
    intake_app.extensions["cim.identity"].api_tokens.revoke(revoked.record.id)
    with served(intake_app) as base:
        for token in ("", "cim_" + "x" * 43, "not-a-token", revoked.token):
            feed = HttpEventFeed(base, token=token)
            with pytest.raises(FeedAccessRefused, match="answered 401"):
                feed.read(0, 10)
            with pytest.raises(StorageUnavailable):  # to the runner: nothing read, retry later
                feed.head()
        assert [e.type for e in HttpEventFeed(base, token=_token(intake_app, "feed:read")).read(0, 10)] == [
            "StudentRegistered", "ActivityLogged"]


def test_the_intake_feed_refuses_a_token_without_feed_read_with_403(intake_app: Flask) -> None:
    with served(intake_app) as base:
        feed = HttpEventFeed(base, token=_token(intake_app, "intake:register", "intake:write", "intake:read"))
        with pytest.raises(FeedAccessRefused, match="answered 403"):
            feed.read(0, 10)


def test_the_intake_status_view_reads_the_assessment_status_feed_with_the_feed_token(
    intake_app: Flask, tmp_path: Path
) -> None:
    """intake_service.assessment_view's default feed: GET /api/v1/status-feed with CIM_FEED_TOKEN."""
    intake = intake_app.extensions["cim.intake"]
    settings = Settings(data_dir=tmp_path / "assessment", wakeup="none", ratelimit_storage="memory://")
    clock = FixedClock(datetime(2026, 11, 28, tzinfo=UTC))
    identity = make_identity(clock)
    assessment = create_assessment_app(
        settings, feed=StoreEventFeed(intake.store, opener=intake.open_events),
        clock=clock, identity=identity)
    assessment.extensions["cim.assessment"].runner.catch_up()
    token = identity.api_tokens.create("worker", ["feed:read"]).token
    (sid,) = {e.stream_id.removeprefix("student-") for e in intake.store.read_all()}
    with served(assessment) as base:
        without = assessment_view.build_view(Settings(data_dir=tmp_path / "v1", assessment_url=base))
        with pytest.raises(FeedAccessRefused, match="401"):
            without.catch_up()
        view = assessment_view.build_view(Settings(data_dir=tmp_path / "v2", assessment_url=base, feed_token=token))
        assert view.catch_up() == 1
        assert view.status_for(sid) == "registered"
