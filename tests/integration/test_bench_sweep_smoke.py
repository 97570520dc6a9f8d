"""The deadline sweep benchmark runs at a toy size and measures what it claims: the sweep reads
only the students due (fewer rows than the full scan), finds what the full scan finds, and a
second sweep records nothing. Timings live in bench/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_sweep_benchmark_reads_only_the_students_due(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "bench/bench_sweep.py", "--students", "3000", "--data-dir", str(tmp_path / "data"),
         "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["full_scan_rows_read"] == 3000
    assert 0 < result["sweep_rows_read"] < result["full_scan_rows_read"] / 10
    recorded = result["recorded"]["reminders"] + result["recorded"]["deregistered"]
    assert recorded == result["full_scan_due"]
    assert result["second_sweep_recorded"] == {"deadlines_set": 0, "reminders": 0, "deregistered": 0}
