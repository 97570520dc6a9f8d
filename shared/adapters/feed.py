"""Event feeds a projection reads: the intake JSON feed over HTTP (default), or a store in-process.

Both hand out `RecordedEvent`s whose data is already upcast to the current schema version, so
projection handlers only ever see current shapes.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
import urllib3

from shared.errors import StorageUnavailable
from shared.events import EventRegistry, RecordedEvent
from shared.store import EventStore

INTAKE_FEED_PATH = "/api/v1/events"


def event_to_json(event: RecordedEvent) -> dict[str, Any]:
    """One event as a feed page carries it (the inverse of `event_from_json`)."""
    return {
        "position": event.position,
        "event_id": event.event_id,
        "stream_id": event.stream_id,
        "version": event.version,
        "type": event.type,
        "schema_version": event.schema_version,
        "data": event.data,
        "metadata": event.metadata,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
    }


_fromiso = datetime.fromisoformat
_new_event = tuple.__new__


def event_from_json(item: Mapping[str, Any]) -> RecordedEvent:
    """One event of a feed page (the intake feed's envelope) as a RecordedEvent. The page was
    just decoded, so its dicts are taken as they are (not copied); tuple.__new__ with the fields in
    declaration order skips the NamedTuple's keyword handling, once per event of every page."""
    data, metadata = item["data"], item.get("metadata") or {}
    if not isinstance(data, dict) or not isinstance(metadata, dict):
        raise TypeError("an event's data and metadata are JSON objects")
    return _new_event(RecordedEvent, (
        int(item["position"]), str(item["event_id"]), str(item["stream_id"]), int(item["version"]),
        str(item["type"]), int(item["schema_version"]), data, metadata,
        _fromiso(item["occurred_at"]), _fromiso(item["recorded_at"]),
    ))


class FeedAccessRefused(StorageUnavailable):
    """The feed refused our API token (401: missing, unknown or revoked; 403: no `feed:read`).
    Still a StorageUnavailable to the runner (nothing is projected, the next tick retries), but
    its own type and message, so a misconfigured CIM_FEED_TOKEN is told apart from an outage."""

    code = "feed_access_refused"


class HttpEventFeed:
    """Reads a feed page by page: GET <base_url><path>?after=N&limit=M -> {events, next_after, head}.
    Every feed needs an API token with the scope `feed:read` (CIM_FEED_TOKEN): `token` is sent as
    `Authorization: Bearer <token>` (and never appears in messages or logs).

    The connection is kept alive between reads (urllib3's pool; thread-safe): a catch-up after
    each commit would otherwise pay a TCP connect and the server's accept every time. A kept
    connection the server has closed meanwhile is noticed and replaced (one retry: a GET is safe
    to repeat)."""

    def __init__(self, base_url: str, path: str = INTAKE_FEED_PATH, *, timeout: float = 10.0,
                 max_limit: int = 5000, token: str = "") -> None:
        if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
            # Only ever HTTP(S): never a file:// or ftp:// URL from a mistyped setting.
            raise ValueError(f"a feed URL must be http(s), not {base_url!r}")
        self.url = base_url.rstrip("/") + path
        self._path = urllib.parse.urlsplit(self.url).path  # the request line carries the path only
        self.timeout = timeout
        self.max_limit = max_limit
        self.last_head: int | None = None
        self._token = token.strip()
        self._pool = urllib3.connection_from_url(
            self.url,
            maxsize=2,  # the runner's reader and its read-ahead
            block=False,
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
            retries=urllib3.Retry(total=1, connect=1, read=1, redirect=0, status=0, raise_on_status=False),
        )

    def __repr__(self) -> str:  # the token stays out of reprs (and so out of logs)
        return f"HttpEventFeed({self.url!r}, token={'set' if self._token else 'none'})"

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _get(self, after: int, limit: int) -> dict[str, Any]:
        query = urllib.parse.urlencode({"after": after, "limit": min(limit, self.max_limit)})
        try:
            response = self._pool.request("GET", f"{self._path}?{query}", headers=self.headers())
        except urllib3.exceptions.HTTPError as exc:
            raise StorageUnavailable(f"the feed at {self.url} could not be read: {exc}") from exc
        if response.status in (401, 403):
            why = "no API token was sent" if not self._token else "the API token was refused"
            raise FeedAccessRefused(
                f"the feed at {self.url} answered {response.status}: {why} "
                "(CIM_FEED_TOKEN needs a valid token with the scope feed:read)"
            )
        if response.status != 200:
            raise StorageUnavailable(f"the feed at {self.url} could not be read: HTTP {response.status}")
        try:
            body = dict(orjson.loads(response.data))
            self.last_head = int(body.get("head", 0))
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise StorageUnavailable(f"the feed at {self.url} answered something that is not a feed page") from exc
        return body

    def read(self, after: int, limit: int) -> list[RecordedEvent]:
        return [event_from_json(item) for item in self._get(after, limit)["events"]]

    def head(self) -> int:
        return int(self._get(0, 1).get("head", 0))


class StoreEventFeed:
    """Reads an event store in-process (tests, benchmarks). `opener` is the writer's own reading
    step (e.g. the intake services' open_events: unseal personal data, then upcast); without one,
    `registry` upcasts."""

    def __init__(
        self,
        store: EventStore,
        registry: EventRegistry | None = None,
        *,
        opener: Callable[[list[RecordedEvent]], list[RecordedEvent]] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.opener = opener

    def read(self, after: int, limit: int) -> list[RecordedEvent]:
        events = self.store.read_all(after=after, limit=limit)
        if self.opener is not None:
            return self.opener(events)
        if self.registry is None:
            return events
        return [self._upcast(e) for e in events]

    def _upcast(self, event: RecordedEvent) -> RecordedEvent:
        registry = self.registry
        assert registry is not None
        current = registry.current_version(event.type)
        if event.schema_version == current:
            return event
        return RecordedEvent(
            position=event.position,
            event_id=event.event_id,
            stream_id=event.stream_id,
            version=event.version,
            type=event.type,
            schema_version=current,
            data=registry.upcast(event.type, event.schema_version, event.data),
            metadata=event.metadata,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
        )

    def head(self) -> int:
        return self.store.head()


class FunctionFeed:
    """A feed made of two functions (e.g. a service's own query), for in-process wiring and tests."""

    def __init__(self, read: Callable[[int, int], list[RecordedEvent]], head: Callable[[], int]) -> None:
        self._read = read
        self._head = head

    def read(self, after: int, limit: int) -> list[RecordedEvent]:
        return self._read(after, limit)

    def head(self) -> int:
        return self._head()
