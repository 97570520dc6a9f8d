"""The clock guard with the real parts (shared/clock_guard.py): gunicorn-served apps, a Celery
worker on a real redis-server, the embedded SQLite default, moved 40 days ahead by the test-only
clock file. The worker refuses the deadline sweep on the jumped date and says so (its log, the
metric on /api/v1/metrics, the stored hold); the operator's `clock confirm` lets the next sweep
act."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared import task_names
from shared.clock_guard import SWEEP_DEADLINES, local_date
from tests.e2e.conftest import ROOT, Pipeline, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _row(pipeline: Pipeline) -> tuple[str | None, str | None] | None:
    path = pipeline.env["CIM_IDENTITY_DB_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute("SELECT last_date, held_date FROM clock_guard WHERE job = ?",
                                (SWEEP_DEADLINES,)).fetchone()
        except sqlite3.OperationalError:  # the table is made on the worker's first guarded task
            return None


@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_the_worker_refuses_a_jumped_date_says_so_and_acts_after_confirm(pipeline: Pipeline, tmp_path: Path) -> None:
    from celery import Celery

    clock_file = tmp_path / "clock"
    clock_file.write_text("0")
    pipeline.stop_all()
    pipeline.env.update({"CIM_ENV": "test", "CIM_CLOCK_FILE": str(clock_file)})
    pipeline.start_apps()
    pipeline.start_worker()
    sender = Celery(broker=pipeline.redis_url)

    def sweep() -> None:
        sender.send_task(task_names.SWEEP_DEADLINES, kwargs={"correlation_id": "e2e-clock"}, queue=task_names.QUEUE)

    today = local_date(datetime.now(UTC))
    sweep()
    wait_for(lambda: _row(pipeline) == (today.isoformat(), None), 60, "the first sweep recorded")

    jumped = today + timedelta(days=40)
    clock_file.write_text(str(timedelta(days=40).total_seconds()))
    sweep()
    wait_for(lambda: _row(pipeline) == (today.isoformat(), jumped.isoformat()), 60, "the sweep held")
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert f"clock guard: refusing sweep-deadlines on {jumped}: 40 days after the last run on {today}" in log
    request = urllib.request.Request(f"{pipeline.assessment_url}/api/v1/metrics", headers=pipeline.assessment_auth)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert f'cim_clock_guard_held{{job="{SWEEP_DEADLINES}"}} 1.0' in response.read().decode()

    shown = subprocess.run([sys.executable, "-m", "assessment_service.cli", "clock", "status"], cwd=ROOT,
                           env=pipeline.env, capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 1, shown.stderr
    assert f"HELD on {jumped}" in shown.stdout
    confirmed = subprocess.run([sys.executable, "-m", "assessment_service.cli", "clock", "confirm",
                                "--operator", "e2e operator"], cwd=ROOT, env=pipeline.env, capture_output=True,
                               text=True, timeout=60, check=False)
    assert confirmed.returncode == 0, confirmed.stderr
    sweep()
    wait_for(lambda: _row(pipeline) == (jumped.isoformat(), None), 60, "the sweep acting after confirm")
