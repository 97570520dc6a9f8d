"""The runner reads the next feed page while it applies the current one: every page is read once,
in order, and a page read ahead for a checkpoint that a reset moved meanwhile is not used."""

from __future__ import annotations

import threading
from pathlib import Path

from assessment_service import projections
from intake_service.events import REGISTRY
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.events import RecordedEvent
from shared.projection import ProjectionRunner
from tests.unit.test_projection_runner import seed


class CountingFeed(StoreEventFeed):
    def __init__(self, store: InMemoryEventStore) -> None:
        super().__init__(store, REGISTRY)
        self.reads: list[int] = []
        self.threads: set[str] = set()
        self.in_flight = 0
        self.overlapped = False
        self._lock = threading.Lock()

    def read(self, after: int, limit: int) -> list[RecordedEvent]:
        with self._lock:
            self.in_flight += 1
            self.overlapped |= self.in_flight > 1
        try:
            self.reads.append(after)
            self.threads.add(threading.current_thread().name)
            return super().read(after, limit)
        finally:
            with self._lock:
                self.in_flight -= 1


def runner(tmp_path: Path, feed: CountingFeed, name: str = "a.db") -> ProjectionRunner:
    r = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / name}", immediate=True), feed, projections.ALL,
                         batch_size=6)
    r.create_schema()
    return r


def test_pages_are_read_ahead_once_each_and_in_order(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    seed(store, 10)  # 20 events: pages after 0, 6, 12, 18 (short: no read-ahead), 20 (empty)
    feed = CountingFeed(store)
    r = runner(tmp_path, feed)
    assert r.catch_up() == 4 * 20
    assert feed.reads == [0, 6, 12, 18, 20]
    assert any(name.startswith("feed-read-ahead") for name in feed.threads)
    assert not feed.overlapped  # one read in flight at a time: feeds need no thread safety
    assert set(r.checkpoints().values()) == {20}


def test_a_page_read_ahead_before_a_reset_is_not_applied(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    seed(store, 10)
    feed = CountingFeed(store)
    r = runner(tmp_path, feed)
    resets = {"done": False}

    def reset_once(applied: int, position: int) -> None:
        if not resets["done"]:
            resets["done"] = True
            r.reset()  # the checkpoints go back to 0 while the page after 6 is being read ahead

    r.catch_up(on_batch=reset_once)
    clean = runner(tmp_path, CountingFeed(store), "clean.db")
    clean.catch_up()
    assert r.digest() == clean.digest()
    assert set(r.checkpoints().values()) == {20}
    # Page (0, 6] applied, (6, 12] read ahead; the reset lands; (6, 12] no longer reaches back to the
    # checkpoints, so it is skipped, and the page read ahead after it (12) is dropped: from 0 again.
    assert feed.reads[:4] == [0, 6, 12, 0]

