"""End to end: intake over HTTP -> wake-up on Redis -> real Celery worker -> assessment read models.

Real redis-server, PostgreSQL, both apps under gunicorn, `celery worker` and `celery beat`.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery

from assessment_service import projections
from intake_service import assessment_view
from shared import task_names
from shared.adapters.feed import HttpEventFeed
from shared.adapters.sql import make_engine
from shared.config import Settings
from shared.projection import ProjectionRunner
from tests.e2e.conftest import Pipeline, http, kill_redis, restartable_redis, start_redis, wait_for

pytestmark = [pytest.mark.redis]

ANSWERS = {"learning": "Learnt a lot.", "profession": "Useful.", "perspective": "Wider."}
KINDS = [("exchange", "abroad", "FR"), ("summer-school", "digital", None), ("seminar", "at_home", "SE")]


def post(pipe: Pipeline, path: str, body: dict[str, Any], cid: str | None = None) -> dict[str, Any]:
    status, answer = pipe.intake("POST", path, body,
                                 {"X-Correlation-ID": cid or uuid.uuid4().hex, "Idempotency-Key": uuid.uuid4().hex})
    assert status in (200, 201), (path, status, answer)
    return answer


def student_with_report(pipe: Pipeline, n: int, activities: int = 1, complete: bool = False) -> tuple[str, str]:
    """Register a synthetic student, log activities, submit a report: 2 + activities (+1) events."""
    sid = post(pipe, "/students", {
        "name": f"Tova Exempel {n}", "email": f"tova.{n}@example.org", "university_id": f"e2e-{n}",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"})["student_id"]
    ids = []
    for k in range(activities):
        kind, setting, country = KINDS[k % len(KINDS)]
        ids.append(post(pipe, f"/students/{sid}/activities", {
            "kind": kind, "title": f"Activity {k}", "organiser": "Synthetic University", "setting": setting,
            "country_code": country, "start_date": "2025-01-10", "end_date": "2025-02-10"})["activity_id"])
    if complete:
        post(pipe, f"/students/{sid}/studies-completed", {"completed_on": date(2026, 1, 15).isoformat(),
                                                           "term": "HT2025"})
    report = post(pipe, f"/students/{sid}/reports", {"answers": ANSWERS, "activity_ids": ids})["report_id"]
    return sid, report


def live_runner(pipe: Pipeline) -> ProjectionRunner:
    return ProjectionRunner(make_engine(pipe.env["CIM_ASSESSMENT_DB_URL"]),
                            HttpEventFeed(pipe.intake_url, token=pipe.feed_token), projections.ALL)


def assert_live_equals_rebuild(pipe: Pipeline, fresh_db: str) -> None:
    """The live read models equal a rebuild from position 0 into a fresh database; so does the
    intake status view; every checkpoint is at the feed's head."""
    head = pipe.intake_head()
    live = live_runner(pipe)
    assert set(live.checkpoints().values()) == {head}
    rebuilt = ProjectionRunner(make_engine(fresh_db), HttpEventFeed(pipe.intake_url, token=pipe.feed_token),
                               projections.ALL, batch_size=1000)
    rebuilt.create_schema()
    rebuilt.catch_up()
    assert live.digest() == rebuilt.digest()

    settings = Settings.from_env(pipe.env)
    status_feed = HttpEventFeed(pipe.assessment_url, assessment_view.STATUS_FEED_PATH, token=pipe.feed_token)
    live_view = assessment_view.build_view(settings, feed=status_feed)
    fresh_view = assessment_view.build_view(settings, feed=status_feed, engine=make_engine(fresh_db))
    fresh_view.catch_up()
    assert live_view.runner.digest() == fresh_view.runner.digest()
    for r in (live, rebuilt, live_view.runner, fresh_view.runner):
        r.engine.dispose()


def converged(pipe: Pipeline) -> bool:
    head = pipe.intake_head()
    return all(p["checkpoint"] == head for p in pipe.projections())


def intake_view_converged(pipe: Pipeline) -> bool:
    engine = make_engine(pipe.env["CIM_INTAKE_DB_URL"])
    try:
        with engine.connect() as conn:
            view_at = conn.execute(sa.text(
                "SELECT position FROM projection_checkpoints WHERE name = 'intake_assessment_status'")).scalar()
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()
    _, feed = pipe.assessment("/status-feed?limit=1")
    return view_at == feed["head"]


def fresh_database(pipe: Pipeline, request: pytest.FixtureRequest) -> str:
    """An empty database of the pipeline's kind, for a rebuild from zero."""
    if pipe.backend == "postgres":
        return str(request.getfixturevalue("pg_database")())
    return f"sqlite:///{pipe.tmp / f'rebuilt-{uuid.uuid4().hex[:8]}.db'}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "pipeline", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"], indirect=True
)
def test_report_posted_to_intake_appears_in_the_review_queue_within_seconds(
    pipeline: Pipeline, request: pytest.FixtureRequest
) -> None:
    wait_for(lambda: converged(pipeline), 30, "the worker to start")
    # The feeds the worker reads need its token: without one both apps refuse.
    assert http("GET", f"{pipeline.intake_url}/api/v1/events?limit=1")[0] == 401
    assert http("GET", f"{pipeline.assessment_url}/api/v1/status-feed?limit=1")[0] == 401
    lags = []
    for n in range(5):
        started = time.monotonic()
        sid, report = student_with_report(pipeline, n, activities=2)
        posted = time.monotonic()
        wait_for(lambda report=report: any(  # type: ignore[misc]
            i["report_id"] == report for i in pipeline.assessment("/review-queue")[1]["items"]
        ), 5, "the report in the review queue", interval=0.01)
        lags.append(time.monotonic() - posted)
        assert time.monotonic() - started < 10
    print(f"POST -> visible in review queue: {[round(x * 1000) for x in lags]} ms")
    status, body = pipeline.assessment(f"/students/{sid}")
    assert status == 200
    assert body["status"] == "report submitted"
    assert [a["title"] for a in body["activities"]] == ["Activity 0", "Activity 1"]
    # ... and the status reaches intake's own database, by events
    settings = Settings.from_env(pipeline.env)
    view = assessment_view.build_view(settings)
    wait_for(lambda: view.status_for(sid) == "report submitted", 10, "the status on the intake side")
    view.engine.dispose()

    # Duplicate and out-of-order wake-ups change nothing: flood the queue with catch-ups carrying
    # old, repeated and unknown correlation ids while more events arrive.
    sender = Celery("e2e-sender", broker=pipeline.redis_url, set_as_current=False)
    cids = [None, "stale", "corr-0", "corr-0", *[uuid.uuid4().hex for _ in range(20)]]
    random.shuffle(cids)
    for cid in cids:
        sender.send_task(task_names.CATCH_UP_PROJECTIONS, kwargs={"correlation_id": cid}, queue=task_names.QUEUE)
    student_with_report(pipeline, 99, activities=1)
    for cid in cids:
        sender.send_task(task_names.CATCH_UP_PROJECTIONS, kwargs={"correlation_id": cid}, queue=task_names.QUEUE)
    wait_for(lambda: converged(pipeline), 20, "the projections to converge")
    wait_for(lambda: intake_view_converged(pipeline), 20, "the intake status view to converge")
    assert_live_equals_rebuild(pipeline, fresh_database(pipeline, request))
    assert pipeline.assessment("/review-queue")[1]["count"] == 6

    # The correlation id of the POST is in the worker's structured log lines; no token is.
    worker_log = (pipeline.tmp / "worker.log").read_text()
    assert '"correlation_id": "' in worker_log
    for token in (pipeline.feed_token, pipeline.intake_auth["Authorization"].split()[1]):
        assert token not in worker_log
        assert token not in (pipeline.tmp / "intake.log").read_text()


def restart_redis(port: str, directory: str) -> None:
    """SIGKILL redis-server and start it again with the same settings (AOF keeps what was fsynced)."""
    kill_redis(port, directory)
    start_redis(port, directory, aof=True)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_chaos_killed_workers_and_a_restarted_redis_lose_and_double_nothing(
    pipeline: Pipeline, request: pytest.FixtureRequest
) -> None:
    import os

    redis_port, redis_dir = restartable_redis()
    target_events = int(os.environ.get("CIM_CHAOS_EVENTS", "5000"))
    per_student = 5  # register + 3 activities + report
    students = target_events // per_student
    rng = random.Random(int(os.environ.get("CIM_CHAOS_SEED", "3")))
    done = threading.Event()
    faults: list[str] = []

    def chaos() -> None:
        """A pool child SIGKILLed every 1-3 s; every fourth fault the whole worker instead (and
        restarted); redis-server SIGKILLed and restarted once, and the worker SIGTERMed once."""
        while not done.is_set():
            time.sleep(rng.uniform(1.0, 3.0))
            if done.is_set():
                return
            if len(faults) == 4:
                restart_redis(redis_port, redis_dir)
                faults.append("redis restarted")
            elif len(faults) == 2:
                # R4's one SIGTERM: a warm shutdown finishes (and acks) the task in hand.
                pipeline.kill("worker", signal.SIGTERM)
                faults.append("worker terminated")
                pipeline.start_worker()
                pipeline.wait_worker_ready()
            elif len(faults) % 4 == 3 or not pipeline.kill_pool_child():
                pipeline.kill("worker")
                faults.append("worker killed")
                time.sleep(rng.uniform(0, 1.0))
                pipeline.start_worker()
                pipeline.wait_worker_ready()
            else:
                faults.append("pool child killed")

    started = time.monotonic()
    chaos_thread = threading.Thread(target=chaos, daemon=True)
    chaos_thread.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: student_with_report(pipeline, n, activities=3), range(students)))
        # On a fast machine posting may end before every kind of fault has happened.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (faults.count("worker killed") < 3 or len(faults) < 5):
            time.sleep(0.5)
    finally:
        done.set()
        chaos_thread.join(timeout=30)
    posted = time.monotonic()
    if pipeline.procs["worker"].poll() is not None:
        pipeline.start_worker()
    assert "redis restarted" in faults
    assert "worker terminated" in faults
    assert faults.count("worker killed") >= 3
    wait_for(lambda: converged(pipeline), 60, "the projections to converge after the last fault", interval=0.5)
    converged_at = time.monotonic()
    wait_for(lambda: intake_view_converged(pipeline), 30, "the intake status view to converge", interval=0.5)
    assert pipeline.intake_head() >= students * per_student
    assert_live_equals_rebuild(pipeline, fresh_database(pipeline, request))
    _, queue = pipeline.assessment("/review-queue?limit=1000")
    assert queue["count"] == min(students, 1000)
    print(f"chaos: {pipeline.intake_head()} events posted in {posted - started:.1f} s with faults {faults}; "
          f"converged {converged_at - posted:.1f} s after the last post")


