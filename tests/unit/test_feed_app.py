"""The intake's feed server (`create_feed_app`): the global feed for `feed:read` tokens and
nothing else — no writes, no pages, no sign-in."""

from __future__ import annotations

import logging

import pytest

from intake_service import create_app, create_feed_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.logs import JsonFormatter, correlation_id_var
from shared.personal import InMemoryKeyVault
from tests.authkit import authed_client, bearer, make_identity
from tests.unit.test_intake_api import ACTIVITY, NOW, STUDENT


@pytest.fixture
def apps(tmp_path):
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    store, vault = InMemoryEventStore(), InMemoryKeyVault()
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    intake = create_app(settings, store=store, vault=vault, clock=clock, identity=identity)
    feed = create_feed_app(settings, store=store, vault=vault, clock=clock, identity=identity)
    return intake, feed, identity


def test_the_feed_server_serves_the_opened_feed_to_feed_tokens_only(apps) -> None:
    intake, feed_app, identity = apps
    writer = authed_client(intake, bearer(identity, "intake:register", "intake:write"))
    sid = writer.post("/api/v1/students", json=STUDENT).json["student_id"]
    assert writer.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY).status_code == 201

    reader = authed_client(feed_app, bearer(identity, "feed:read"))
    page = reader.get("/api/v1/events?after=0&limit=10").json
    assert [e["type"] for e in page["events"]] == ["StudentRegistered", "ActivityLogged"]
    assert page["events"][0]["data"]["name"] == STUDENT["name"]  # opened, as the intake's own feed
    assert page == authed_client(intake, bearer(identity, "feed:read")).get("/api/v1/events?after=0&limit=10").json
    assert reader.get("/api/v1/events?after=x").status_code == 422

    assert feed_app.test_client().get("/api/v1/events").status_code == 401
    wrong_scope = authed_client(feed_app, bearer(identity, "intake:read"))
    assert wrong_scope.get("/api/v1/events").status_code == 403


def test_the_feed_server_writes_nothing_and_has_no_pages(apps) -> None:
    _, feed_app, identity = apps
    client = authed_client(feed_app, bearer(identity, "intake:register", "intake:write", "feed:read"))
    assert client.post("/api/v1/students", json=STUDENT).status_code == 404
    assert client.post("/api/v1/events", json={}).status_code == 405
    for path in ("/", "/register", "/auth/sign-in", "/api/v1/openapi.json"):
        response = client.get(path)
        assert (response.status_code, response.mimetype) == (404, "application/problem+json")
    routes = {rule.rule for rule in feed_app.url_map.iter_rules()}
    assert routes == {"/api/v1/events", "/health", "/ready", "/api/v1/metrics"}  # and the operators' probes (issue 16)


def test_intake_and_feed_servers_log_json_lines_with_the_request_correlation_id(tmp_path) -> None:
    """Both intake processes log as the assessment service and the workers do: JSON lines, and
    whatever is logged while a request runs carries that request's X-Correlation-ID."""
    seen: list[str | None] = []

    class ProbeStore(InMemoryEventStore):
        def read_stream(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(correlation_id_var.get())
            return super().read_stream(*args, **kwargs)

        def read_all(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(correlation_id_var.get())
            return super().read_all(*args, **kwargs)

    root = logging.getLogger()
    before = list(root.handlers)
    for handler in before:
        root.removeHandler(handler)
    try:
        clock = FixedClock(NOW)
        identity = make_identity(clock)
        store, vault = ProbeStore(), InMemoryKeyVault()
        settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
        intake = create_app(settings, store=store, vault=vault, clock=clock, identity=identity)
        assert any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
        feed_app = create_feed_app(settings, store=store, vault=vault, clock=clock, identity=identity)
        writer = authed_client(intake, bearer(identity, "intake:register", "intake:write", "intake:read"))
        sid = writer.post("/api/v1/students", json=STUDENT).json["student_id"]
        seen.clear()
        writer.get(f"/api/v1/students/{sid}/events", headers={"X-Correlation-ID": "trace-intake-7"})
        authed_client(feed_app, bearer(identity, "feed:read")).get(
            "/api/v1/events?after=0", headers={"X-Correlation-ID": "trace-feed-7"}
        )
        assert seen[0] == "trace-intake-7"
        assert seen[-1] == "trace-feed-7"
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before:
            root.addHandler(handler)
