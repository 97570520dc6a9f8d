"""The HTTP feed reader against a real HTTP/1.1 server: one kept-alive connection for many reads,
a connection the server dropped is replaced, and every failure is a typed StorageUnavailable."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from shared.adapters.feed import FeedAccessRefused, HttpEventFeed
from shared.errors import StorageUnavailable

EVENT = {
    "position": 7, "event_id": "e7", "stream_id": "student-1", "version": 1, "type": "StudentRegistered",
    "schema_version": 2, "data": {"department": "SOCSW"}, "metadata": {"actor": "token:1"},
    "occurred_at": "2026-11-28T10:00:00+00:00", "recorded_at": "2026-11-28T10:00:00+00:00",
}


class FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    connections: ClassVar[set[tuple[str, int]]] = set()
    requests: ClassVar[list[str]] = []
    paths: ClassVar[list[str]] = []
    answer: ClassVar[tuple[int, bytes]] = (200, b"")
    close_after_reply: ClassVar[bool] = False

    def do_GET(self) -> None:
        type(self).connections.add(self.client_address)
        type(self).requests.append(self.headers.get("Authorization", ""))
        type(self).paths.append(self.path)
        status, body = type(self).answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if type(self).close_after_reply:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    FeedHandler.connections = set()
    FeedHandler.requests = []
    FeedHandler.paths = []
    FeedHandler.answer = (200, json.dumps({"events": [EVENT], "next_after": 7, "head": 9}).encode())
    FeedHandler.close_after_reply = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_reads_reuse_one_connection_and_carry_the_token(server: str) -> None:
    feed = HttpEventFeed(server, token="cim_secret")
    for _ in range(5):
        [event] = feed.read(after=0, limit=10)
        assert (event.position, event.type, event.data) == (7, "StudentRegistered", {"department": "SOCSW"})
    assert feed.last_head == 9
    assert len(FeedHandler.connections) == 1
    assert FeedHandler.requests == ["Bearer cim_secret"] * 5
    assert FeedHandler.paths[0] == "/api/v1/events?after=0&limit=10"  # origin-form request line


def test_a_connection_the_server_closed_is_replaced(server: str) -> None:
    FeedHandler.close_after_reply = True
    feed = HttpEventFeed(server)
    assert [len(feed.read(0, 10)) for _ in range(3)] == [1, 1, 1]
    assert len(FeedHandler.connections) == 3


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_told_apart(server: str, status: int) -> None:
    FeedHandler.answer = (status, b'{"title": "no"}')
    with pytest.raises(FeedAccessRefused, match=str(status)):
        HttpEventFeed(server, token="cim_wrong").read(0, 10)


@pytest.mark.parametrize("answer", [(500, b"{}"), (200, b"<html>"), (200, b"[1, 2]"), (200, b'{"head": "x"}')])
def test_a_failed_or_garbled_answer_is_storage_unavailable(server: str, answer: tuple[int, bytes]) -> None:
    FeedHandler.answer = answer
    with pytest.raises(StorageUnavailable) as caught:
        HttpEventFeed(server).read(0, 10)
    assert not isinstance(caught.value, FeedAccessRefused)


def test_nobody_listening_is_storage_unavailable() -> None:
    feed = HttpEventFeed("http://127.0.0.1:9", timeout=1.0)
    with pytest.raises(StorageUnavailable, match="could not be read"):
        feed.read(0, 10)
