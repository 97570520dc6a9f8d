"""The statistics benchmark runs at a toy size and measures what it claims: every case of the page
and the JSON answered, and the naive replay of the whole log gives the same figures as the page.
Timings live in bench/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_statistics_benchmark_pages_equal_the_naive_replay(tmp_path: Path) -> None:
    out = tmp_path / "statistics.json"
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "bench/bench_statistics.py", "--smoke", "--data-dir", str(tmp_path / "data"),
         "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["events"] >= 20_000
    assert len(result["results"]) == 15
    assert all(r["p95_ms"] > 0 for r in result["results"])
    assert [r["same_figures"] for r in result["naive"]] == [True, True]
    assert all(r["events_read"] == result["events"] for r in result["naive"])
    assert result["late_recorded"] > 0
    assert any(result["recorded_later"].values())  # some diplomas were known only later
