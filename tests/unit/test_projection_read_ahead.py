"""The runner's options (RunnerOptions): with read-ahead it reads the next feed page while it
applies the current one — every page read once, in order, and a page read ahead for a checkpoint
that a reset moved meanwhile is not used; with write-behind and GC pauses it writes on a thread.
Either way it applies exactly what the plain path applies, and the plain path starts no thread."""

from __future__ import annotations

import threading
from pathlib import Path

from assessment_service import projections
from intake_service.events import REGISTRY
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.events import RecordedEvent
from shared.projection import PIPELINED, ProjectionRunner, RunnerOptions
from tests.unit.test_projection_runner import seed

#: How many read models each event of the intake feed is applied to.
N = len(projections.ALL)

READ_AHEAD = RunnerOptions(read_ahead=True)


class CountingFeed(StoreEventFeed):
    def __init__(self, store: InMemoryEventStore) -> None:
        super().__init__(store, REGISTRY)
        self.reads: list[int] = []
        self.threads: set[str] = set()  # the threads that read
        self.alive: set[str] = set()  # the threads there were at each read
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
            self.alive.update(t.name for t in threading.enumerate())
            return super().read(after, limit)
        finally:
            with self._lock:
                self.in_flight -= 1


def runner(tmp_path: Path, feed: CountingFeed, name: str = "a.db", batch_size: int = 6,
           options: RunnerOptions = READ_AHEAD) -> ProjectionRunner:
    r = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / name}", immediate=True), feed, projections.ALL,
                         batch_size=batch_size, options=options)
    r.create_schema()
    return r


def test_pages_are_read_ahead_once_each_and_in_order(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    seed(store, 10)  # 20 events: pages after 0, 6, 12, 18 (short: no read-ahead), 20 (empty)
    feed = CountingFeed(store)
    r = runner(tmp_path, feed)
    assert r.catch_up() == N * 20
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



def test_the_pipelined_options_apply_exactly_what_the_plain_path_applies(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    seed(store, 300)  # 600 events: pages of 250 are long enough to write behind and pause the GC
    plain_feed, pipelined_feed = CountingFeed(store), CountingFeed(store)
    plain = runner(tmp_path, plain_feed, "plain.db", batch_size=250, options=RunnerOptions())
    pipelined = runner(tmp_path, pipelined_feed, "pipelined.db", batch_size=250, options=PIPELINED)

    plain.catch_up()
    pipelined.catch_up()

    assert plain.digest() == pipelined.digest()
    assert plain.checkpoints() == pipelined.checkpoints()
    assert set(plain.checkpoints().values()) == {600}
    assert plain_feed.reads == pipelined_feed.reads == [0, 250, 500, 600]
    # The plain path: every read on the calling thread, and no thread of the runner's at any read.
    assert plain_feed.threads == {threading.current_thread().name}
    assert not any(name.startswith(("feed-read-ahead", "projection-writer")) for name in plain_feed.alive)
    # Pipelined: pages read ahead, and rows written behind by a writer thread.
    assert any(name.startswith("feed-read-ahead") for name in pipelined_feed.threads)
    assert any(name.startswith("projection-writer") for name in pipelined_feed.alive)
