"""The store and HTTP benchmarks run, at toy sizes, and measure what they claim to.

Not timings (those live in bench/RESULTS.md): that the harnesses still work against the code as
it is. The HTTP benchmark once measured 429 refusals for a day after rate limits landed; here it
must get every request answered 201, and the store benchmark must commit through every client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240, check=False)


def test_http_benchmark_gets_every_append_answered_201(tmp_path: Path) -> None:
    out = tmp_path / "http.json"
    done = _run(["bench/bench_http.py", "--data-dir", str(tmp_path / "data"), "--backends", "sqlite",
                 "--clients", "1,2", "--duration", "1", "--warmup", "0.2", "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [r["clients"] for r in results] == [1, 2]
    for r in results:
        assert r["errors"] == {}
        assert r["students"]["requests"] > 0
        assert r["activities"]["requests"] >= r["students"]["requests"]


def test_store_benchmark_commits_through_every_client(tmp_path: Path) -> None:
    out = tmp_path / "store.json"
    done = _run(["bench/bench_store.py", "--sqlite-dir", str(tmp_path), "--backends", "sqlite",
                 "--impls", "store,raw,peer", "--writers", "1,2", "--batches", "1,3", "--rounds", "1",
                 "--duration", "0.3", "--read-events", "2000", "--read-repeat", "1", "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    appends = [r for r in results if r["kind"] == "append"]
    assert {(r["impl"], r["batch"], r["writers"]) for r in appends} == {
        (impl, batch, writers) for impl in ("store", "raw", "peer") for batch in (1, 3) for writers in (1, 2)
    }
    for r in appends:
        assert r["errors"] == 0
        assert r["commits"] > 0
    reads = {r["impl"]: r for r in results if r["kind"] == "read_all"}
    assert set(reads) == {"store", "raw", "peer"}
    assert all(r["events"] == 2000 for r in reads.values())


def test_queue_benchmark_answers_every_case_of_the_page_and_the_json(tmp_path: Path) -> None:
    out = tmp_path / "queue.json"
    done = _run(["bench/bench_queue.py", "--smoke", "--json", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["rows"]["queue"] == 400
    assert len(result["results"]) == 9
    assert all(r["p95_ms"] > 0 for r in result["results"])
