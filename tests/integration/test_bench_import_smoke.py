"""The historical import's benchmark runs at a toy size and measures what it claims to.

Not timings (bench/RESULTS.md has those): that bench/bench_import.py still checks, records and
projects every row of its synthetic file, and that the same file again records nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_import_benchmark_records_every_row_once(tmp_path: Path) -> None:
    out = tmp_path / "import.json"
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "bench/bench_import.py", "--smoke", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(out.read_text())["results"]
    assert result["backend"] == "sqlite"
    assert result["rows"] >= 2000
    assert result["reimport_recorded"] == 0
    assert result["import_s"] == pytest.approx(result["check_s"] + result["record_s"], abs=0.02)
