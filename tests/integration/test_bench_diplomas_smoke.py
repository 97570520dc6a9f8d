"""The diploma benchmark runs at a toy size and measures what it claims to.

Not timings (bench/RESULTS.md has those): that bench/bench_diplomas.py still renders every diploma
and floor page through a pool of 1 and 2 worker processes and reports each worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_diploma_benchmark_renders_every_diploma_in_every_pool(tmp_path: Path) -> None:
    out = tmp_path / "diplomas.json"
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "bench/bench_diplomas.py", "--count", "6", "--chunk", "2",
                           "--workers", "1,2", "--naive", "1", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r["workers"] for r in report["results"]] == [1, 2]
    for r in report["results"]:
        assert r["diplomas"]["count"] == 6
        assert r["floor"]["count"] == 6
        assert r["diplomas"]["mean_bytes"] > r["floor"]["mean_bytes"] > 0
        assert len(r["peak_rss_mb"]) == r["workers"]
        assert len(r["cold_ms"]) == r["workers"]
        assert all(rss > 0 for rss in r["peak_rss_mb"])
    assert report["naive"]["count"] == 1
    assert report["machine"]["weasyprint"] == "70.0"
