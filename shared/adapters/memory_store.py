"""An in-memory event store for unit tests; passes the same contract suite as the SQL store."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from shared.clock import Clock, SystemClock
from shared.errors import ConcurrencyConflict, IdempotencyKeyReused
from shared.events import NewEvent, RecordedEvent
from shared.store import AppendResult


class InMemoryEventStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._events: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._keys: dict[str, tuple[str | None, AppendResult]] = {}

    def create_schema(self) -> None:
        """Nothing to create; here so every store is set up alike."""

    def compact(self, *, vacuum: bool = False) -> None:
        """Nothing on disk to compact."""

    def append_many(self, batches: Sequence[tuple[str, Sequence[NewEvent]]]) -> list[AppendResult]:
        if any(not events for _, events in batches):
            raise ValueError("append needs at least one event")
        # Appends at any version cannot fail once checked, so one after the other is all or none.
        return [self.append(stream_id, events, expected_version=None) for stream_id, events in batches]

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
        if not events:
            raise ValueError("append needs at least one event")
        with self._lock:
            if idempotency_key is not None and idempotency_key in self._keys:
                return self._replay(idempotency_key, request_hash)
            stream = self._streams.setdefault(stream_id, [])
            current = len(stream)
            if expected_version is not None and expected_version != current:
                if not stream:
                    del self._streams[stream_id]
                raise ConcurrencyConflict(stream_id, expected_version, current)
            now = self._clock.now()
            recorded = []
            for offset, event in enumerate(events, start=1):
                metadata = dict(event.metadata)
                metadata["idempotency_key"] = idempotency_key
                recorded.append(
                    RecordedEvent(
                        position=len(self._events) + offset,
                        event_id=event.event_id,
                        stream_id=stream_id,
                        version=current + offset,
                        type=event.type,
                        schema_version=event.schema_version,
                        data=copy.deepcopy(event.data),
                        metadata=copy.deepcopy(metadata),
                        occurred_at=event.occurred_at,
                        recorded_at=now,
                    )
                )
            self._events.extend(recorded)
            stream.extend(recorded)
            outcome = AppendResult(
                stream_id=stream_id,
                first_version=current + 1,
                last_version=current + len(events),
                positions=tuple(e.position for e in recorded),
                event_ids=tuple(e.event_id for e in recorded),
                result=dict(result or {}),
            )
            if idempotency_key is not None:
                self._keys[idempotency_key] = (request_hash, outcome)
            return outcome

    def find_idempotent(self, idempotency_key: str, request_hash: str | None = None) -> AppendResult | None:
        with self._lock:
            if idempotency_key not in self._keys:
                return None
            return self._replay(idempotency_key, request_hash)

    def _replay(self, key: str, request_hash: str | None) -> AppendResult:
        stored_hash, outcome = self._keys[key]
        if stored_hash is not None and request_hash is not None and stored_hash != request_hash:
            raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
        return AppendResult.from_record(outcome.as_record(), replayed=True)

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        with self._lock:
            return [_copy(e) for e in self._streams.get(stream_id, [])[after_version:]]

    def stream_version(self, stream_id: str) -> int:
        with self._lock:
            return len(self._streams.get(stream_id, []))

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        with self._lock:
            return [_copy(e) for e in self._events[max(after, 0) : max(after, 0) + limit]]

    def head(self) -> int:
        with self._lock:
            return len(self._events)

    def count(self) -> int:
        return self.head()


def _copy(event: RecordedEvent) -> RecordedEvent:
    """Readers get their own copies: changing what you read never changes the log."""
    return event._replace(data=copy.deepcopy(event.data), metadata=copy.deepcopy(event.metadata))
