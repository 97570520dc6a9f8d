"""Event ids are UUID version 7: unique, canonical, and ordered by the millisecond they were made."""

from __future__ import annotations

import time
import uuid

from shared.events import NewEvent, new_event_id
from shared.validation import is_uuid


def test_event_ids_are_canonical_version_7_uuids() -> None:
    ids = [new_event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:100]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert is_uuid(value)


def test_event_ids_sort_by_the_time_they_were_made() -> None:
    first = new_event_id()
    time.sleep(0.002)
    second = new_event_id()
    assert first < second  # the leading 48 bits are the Unix milliseconds
    assert abs(int(first.replace("-", "")[:12], 16) - time.time_ns() // 1_000_000) < 5_000


def test_new_events_get_one_by_default() -> None:
    assert uuid.UUID(NewEvent("X", 1, {}, {}, None).event_id).version == 7  # type: ignore[arg-type]
