"""SqlEventStore.append_new_streams (for bulk imports): many new streams in one transaction and one
insert, all or none when one of them exists already."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.adapters.stores import open_event_store
from shared.errors import ConcurrencyConflict
from shared.events import NewEvent

MOMENT = datetime(2020, 1, 1, 12, tzinfo=UTC)


def _event(n: int) -> NewEvent:
    return NewEvent("HistoryImported", 1, {"n": n}, {"actor": "t"}, MOMENT)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_new_streams_are_started_together_or_not_at_all(backend: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database")()
    store = open_event_store(url)
    store.create_schema()
    assert store.append_new_streams([("s-1", [_event(1)]), ("s-2", [_event(2), _event(3)])]) == 3
    assert [(e.stream_id, e.version) for e in store.read_all()] == [("s-1", 1), ("s-2", 1), ("s-2", 2)]
    with pytest.raises(ConcurrencyConflict):
        store.append_new_streams([("s-3", [_event(4)]), ("s-2", [_event(5)])])
    assert store.count() == 3  # s-3 was not stored either
    assert store.append_new_streams([]) == 0
    many = [(f"m-{n}", [_event(n)]) for n in range(150)]  # PostgreSQL: COPY from 100 rows on
    assert store.append_new_streams(many) == 150
    with pytest.raises(ConcurrencyConflict):
        store.append_new_streams([("m-150", [_event(150)]), *many[:120]])
    assert store.count() == 153
    store.dispose()
