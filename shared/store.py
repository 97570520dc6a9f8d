"""The event store contract every adapter (memory, SQLite, PostgreSQL) fulfils."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.events import NewEvent, RecordedEvent

#: expected_version for "this stream must not exist yet".
NO_STREAM = 0
#: expected_version for "append whatever the stream's version" (no concurrency check).
ANY_VERSION = None

MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append stored, or what the first append with the same idempotency key stored."""

    stream_id: str
    first_version: int
    last_version: int
    positions: tuple[int, ...]
    event_ids: tuple[str, ...]
    result: Mapping[str, Any] = field(default_factory=dict)
    replayed: bool = False

    def as_record(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "first_version": self.first_version,
            "last_version": self.last_version,
            "positions": list(self.positions),
            "event_ids": list(self.event_ids),
            "result": dict(self.result),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, replayed: bool) -> AppendResult:
        return cls(
            stream_id=record["stream_id"],
            first_version=record["first_version"],
            last_version=record["last_version"],
            positions=tuple(record["positions"]),
            event_ids=tuple(record["event_ids"]),
            result=record.get("result") or {},
            replayed=replayed,
        )


class EventStore(Protocol):
    def create_schema(self) -> None:
        """Create the store's tables if they are missing (idempotent; safe when several processes
        start at once). Called at start-up (bootstrap) or by an operator command, never in a
        request."""
        ...

    def compact(self, *, vacuum: bool = False) -> None:
        """Leave no page of deleted or overwritten data in a side file: on SQLite, move the WAL
        into the main file and truncate it (with `vacuum`, first rebuild the file). A no-op where
        there is nothing to compact (PostgreSQL, memory)."""
        ...

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append atomically. `expected_version` is the stream's current version (0: new stream,
        None: any). Raises ConcurrencyConflict on mismatch. With an idempotency key already used,
        stores nothing and returns the first result (IdempotencyKeyReused if the request differs).
        """
        ...

    def append_many(self, batches: Sequence[tuple[str, Sequence[NewEvent]]]) -> list[AppendResult]:
        """Append to several streams, each at whatever version it has (expected version None),
        in ONE transaction: all of them or none. For records that belong to many streams at once
        (a staff page showing ten students' data: one `PersonalDataViewed` per student's audit
        stream) — one commit instead of ten. No idempotency keys."""
        ...

    def find_idempotent(self, idempotency_key: str, request_hash: str | None = None) -> AppendResult | None:
        """The result stored under a key, or None. Raises IdempotencyKeyReused on a hash mismatch."""
        ...

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        """Events of one stream in version order."""
        ...

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 if it does not exist."""
        ...

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to `limit` events with position > after, in position order, never skipping one that
        a later call could return below the last position returned here."""
        ...

    def head(self) -> int:
        """The highest position a reader may safely have seen now (0 if empty)."""
        ...

    def count(self) -> int:
        """Number of stored events (for operations and tests)."""
        ...


def iter_all(store: EventStore, after: int = 0, batch: int = 1000) -> Iterator[RecordedEvent]:
    """Every event past `after`, read in batches."""
    while True:
        events = store.read_all(after=after, limit=batch)
        if not events:
            return
        yield from events
        after = events[-1].position


def request_fingerprint(*parts: Any) -> str:
    """A stable hash of a request, to tell a retry from a different request with the same key."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
