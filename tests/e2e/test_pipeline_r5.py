"""Redis loses its whole queue (restarted without AOF) and is then down for 30 s under load:
intake writes never answer 5xx, and once Redis is back the beat backstop projects every event
(bar R5; the key is in tests/README.md)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter

import pytest

from tests.e2e.conftest import Pipeline, kill_redis, restartable_redis, start_redis, wait_for
from tests.e2e.test_pipeline import assert_live_equals_rebuild, converged, fresh_database, intake_view_converged
from workers.schedule import CATCH_UP_EVERY_SECONDS

pytestmark = [pytest.mark.redis]


#: Answered writes to wait for in each phase before the next fault: enough that wake-ups are
#: queued in Redis when its queue is lost, however slow the machine is today.
WRITES_PER_PHASE = 20


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_r5_a_lost_queue_and_a_30s_redis_outage_delay_but_lose_nothing(
    pipeline: Pipeline, request: pytest.FixtureRequest
) -> None:
    port, directory = restartable_redis()
    outage = float(os.environ.get("CIM_R5_OUTAGE_SECONDS", "30"))
    statuses: Counter[int] = Counter()
    stop = threading.Event()
    lock = threading.Lock()

    def post(path: str, body: dict) -> dict:
        status, answer = pipeline.intake("POST", path, body, {"Idempotency-Key": uuid.uuid4().hex}, timeout=30)
        with lock:
            statuses[status] += 1
        return answer if status in (200, 201) else {}

    def load(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sid = post("/students", {
                "name": f"Tova Exempel {worker}-{n}", "email": f"t{worker}.{n}@example.org",
                "university_id": f"r5-{worker}-{n}", "department": "SOCSW", "programme": "SSASK",
                "expected_end_term": "VT2028"}).get("student_id")
            if not sid:
                continue
            aid = post(f"/students/{sid}/activities", {
                "kind": "seminar", "title": "Webinar", "organiser": "Synthetic University", "setting": "digital",
                "start_date": "2025-02-01", "end_date": "2025-02-01"}).get("activity_id")
            if aid:
                post(f"/students/{sid}/reports", {"answers": {"learning": "a", "profession": "b",
                                                              "perspective": "c"}, "activity_ids": [aid]})
            time.sleep(0.05)

    def written() -> int:
        with lock:
            return sum(statuses.values())

    def wait_for_writes(what: str) -> None:
        target = written() + WRITES_PER_PHASE
        wait_for(lambda: written() >= target, 60, f"{WRITES_PER_PHASE} answered writes {what}", interval=0.1)

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for_writes("with the first redis-server up")
        kill_redis(port, directory)  # the queue is lost: the new server starts empty, without AOF
        start_redis(port, directory, aof=False)
        wait_for_writes("against the empty redis-server")
        kill_redis(port, directory)  # and now Redis is down, under load
        time.sleep(outage)  # the outage itself: its length is the scenario, not a wait
        start_redis(port, directory, aof=True)
        back = time.monotonic()
        time.sleep(3)  # load goes on while the worker and beat reconnect: part of the scenario
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert statuses, "no requests were made"
    assert set(statuses) <= {200, 201}, f"intake answered {dict(statuses)}"
    # The bar (R5): nothing left unprojected two beat ticks after Redis is back, plus one second
    # of slack for this measurement. (The worker and beat reconnect every second:
    # PromptReconnectConnection; on kombu's default back-off this took 10-13 s.)
    bar = 2 * CATCH_UP_EVERY_SECONDS + 1.0
    wait_for(lambda: converged(pipeline), max(0.5, back + bar - time.monotonic()),
             f"every event projected within {bar:.0f} s of Redis coming back", interval=0.25)
    caught_up = time.monotonic() - back
    print(f"R5: {sum(statuses.values())} writes {dict(statuses)}; converged {caught_up:.1f} s after Redis returned")
    # The intake's status view follows on beat's ticks (every CATCH_UP_EVERY_SECONDS), after the
    # read models: wait for it as the R4 tests do before comparing it with a rebuild.
    wait_for(lambda: intake_view_converged(pipeline), 30, "the intake status view to converge", interval=0.5)
    assert_live_equals_rebuild(pipeline, fresh_database(pipeline, request))
