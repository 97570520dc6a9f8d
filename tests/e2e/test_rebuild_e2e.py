"""A rebuild readers never see, with real processes (issue 16, item 4): while the operator's
`flask projections rebuild` runs in its own process, a reader keeps asking the assessment API (under
gunicorn) for the review queue, new reports keep arriving through the intake API and the Celery
worker projects them: the reader never sees fewer reports than before, and the rebuilt read models
equal a rebuild from zero into a fresh database."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import ROOT, Pipeline, wait_for
from tests.e2e.test_pipeline import assert_live_equals_rebuild, converged, fresh_database, student_with_report

pytestmark = [pytest.mark.redis]


@pytest.mark.parametrize(
    "pipeline", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"], indirect=True
)
@pytest.mark.timeout(300)
def test_the_review_queue_never_shrinks_while_the_read_models_are_rebuilt(
    pipeline: Pipeline, request: pytest.FixtureRequest
) -> None:
    wait_for(lambda: converged(pipeline), 30, "the worker to start")
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda n: student_with_report(pipeline, n, activities=2), range(240)))
    wait_for(lambda: converged(pipeline), 60, "the projections to converge")
    before = pipeline.assessment("/review-queue?limit=1000")[1]["count"]
    assert before == 240

    seen: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            status, body = pipeline.assessment("/review-queue?limit=1000")
            assert status == 200, body
            seen.append(body["count"])

    def arrive() -> None:
        for n in range(1000, 1010):
            student_with_report(pipeline, n, activities=1)

    threads = [threading.Thread(target=poll), threading.Thread(target=arrive)]
    for thread in threads:
        thread.start()
    try:
        rebuilt = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "assessment_service", "projections", "rebuild"],
            cwd=ROOT, env=pipeline.env, capture_output=True, text=True, timeout=240,
        )
    finally:
        threads[1].join()
        stop.set()
        threads[0].join()
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert "swapped in with one transaction" in rebuilt.stdout

    assert len(seen) > 5
    assert min(seen) >= before  # never an empty or partial queue
    assert seen == sorted(seen)  # and never one going back
    wait_for(lambda: converged(pipeline), 60, "the projections to converge after the rebuild")
    assert pipeline.assessment("/review-queue?limit=1000")[1]["count"] == 250
    assert_live_equals_rebuild(pipeline, fresh_database(pipeline, request))
