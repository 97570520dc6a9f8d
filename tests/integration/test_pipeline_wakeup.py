"""The wake-up sender against a real redis-server: one message per commit, by name, ids only;
and with the broker down (nothing listening, or the server frozen) a request is never held up."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared import task_names
from shared.adapters.celery_wakeup import CeleryWakeUp, clear_pending

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("CIM_TEST_REDIS_URL")
    if not url:
        pytest.skip("CIM_TEST_REDIS_URL is not set (scripts/test.sh starts redis-server)")
    url = url.rsplit("/", 1)[0] + "/6"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


def test_commits_queue_one_catch_up_by_name_until_it_starts(redis_url: str) -> None:
    wakeup = CeleryWakeUp(redis_url)
    client = redis.Redis.from_url(redis_url)
    for n in range(3):
        wakeup.after_commit(f"corr-{n}")
    assert client.llen(task_names.QUEUE) == 1
    clear_pending(client)
    wakeup.after_commit("corr-3")
    raw = client.lrange(task_names.QUEUE, 0, -1)
    assert len(raw) == 2
    assert {json.loads(m)["headers"]["task"] for m in raw} == {task_names.CATCH_UP_PROJECTIONS}
    assert 0 < client.pttl(task_names.CATCH_UP_PENDING_KEY) <= task_names.CATCH_UP_PENDING_TTL_MS


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_broker_down_costs_a_request_at_most_a_fraction_of_a_second() -> None:
    wakeup = CeleryWakeUp(f"redis://127.0.0.1:{_dead_port()}/0")
    started = time.monotonic()
    wakeup.after_commit("corr-x")
    first = time.monotonic() - started
    for _ in range(100):
        wakeup.after_commit("corr-y")
    assert first < 1.0
    assert time.monotonic() - started < 1.5


def test_a_frozen_broker_does_not_hang_the_request(redis_url: str) -> None:
    directory = os.environ.get("CIM_TEST_REDIS_DIR")
    if not directory or not Path(directory, "redis.pid").exists():
        pytest.skip("CIM_TEST_REDIS_DIR (with redis.pid) is needed to freeze the test redis-server")
    pid = int(Path(directory, "redis.pid").read_text().strip())
    wakeup = CeleryWakeUp(redis_url)
    wakeup.after_commit("warm")
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        wakeup.after_commit("frozen")
        wakeup.after_commit("frozen")
        assert time.monotonic() - started < 1.0
    finally:
        os.kill(pid, signal.SIGCONT)
