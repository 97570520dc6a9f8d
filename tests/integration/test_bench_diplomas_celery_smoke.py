"""The diploma benchmark through real Celery workers (`--through celery`) runs at a toy size.

Not timings (bench/RESULTS.md has those): that every diploma and floor page sent went through a
`celery worker` pool process, was stored as a file (the bench checks the files and fails
otherwise) and reported, that the pool child's peak RSS was read, and that the run leaves no keys
behind in the shared Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_diploma_benchmark_renders_through_a_celery_worker(tmp_path: Path) -> None:
    url = os.environ.get("CIM_TEST_REDIS_URL")
    if not url:
        pytest.skip("CIM_TEST_REDIS_URL is not set (scripts/test.sh starts redis-server)")
    import redis

    client = redis.Redis.from_url(url)
    out = tmp_path / "diplomas.json"
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path),
           "CIM_TEST_REDIS_URL": url}
    done = subprocess.run([sys.executable, "bench/bench_diplomas.py", "--through", "celery", "--count", "4",
                           "--workers", "1", "--naive", "0", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["machine"]["through"] == "celery"
    [r] = report["results"]
    assert (r["workers"], r["through"]) == (1, "celery")
    assert r["diplomas"]["count"] == 4
    assert r["floor"]["count"] == 4
    assert r["diplomas"]["mean_bytes"] > r["floor"]["mean_bytes"] > 0
    assert r["diplomas_per_process"] == [4]  # one pool process did them all
    assert len(r["cold_ms"]) == 1
    assert len(r["peak_rss_mb"]) == 1
    assert r["peak_rss_mb"][0] > 20
    assert r["peak_rss_mb"][0] >= r["peak_rss_mb_reported"][0]  # /proc read after the last task's own
    assert not list(client.scan_iter("cim-bench-*"))
    assert not list(client.scan_iter("_kombu.binding.cim-bench-*"))
