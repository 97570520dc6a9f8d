"""Diploma PDFs per second (issue 14, "Speed"): `render_diploma` in a pool of worker processes.

For each pool size (default 1 and 2 processes) the pool is started and every worker warmed (one
render, timed as "cold"), then N diplomas (default 1,000, each a different number and holder) are
rendered and, in the same pool, N minimal one-page WeasyPrint documents with a warm
FontConfiguration: the floor, what any WeasyPrint render costs. Reports PDFs/s (wall clock over
the whole batch), the median and p95 of the time each render took inside its worker (warm), and
each worker's peak RSS after its diplomas (before the floor) with its growth per diploma. Then, in one
process, a few diplomas rendered the naive way (a new FontConfiguration and stylesheet per
render, as a one-off `HTML(...).write_pdf()` would) to show what keeping the renderer warm saves.
The workers are a `multiprocessing` pool calling the same function a Celery task would.

`--through celery` sends the same renders through real Celery workers instead: redis-server
(CIM_TEST_REDIS_URL, else one started here on a free port), `celery worker --concurrency N`
(prefork) on the bench-only app bench/bench_celery_app.py, one task per diploma that writes its
PDF under a temp folder and reports its render time and RSS; wall clock from the first send to
the last report; peak RSS per worker is VmHWM of the pool children.

    .venv/bin/python bench/bench_diplomas.py                                  # 1,000 x (1, 2 workers)
    .venv/bin/python bench/bench_diplomas.py --count 20 --naive 3 --out /tmp/d.json   # smoke
    .venv/bin/python bench/bench_diplomas.py --through celery --naive 0       # through Celery workers
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import current_rss_mb, machine_facts, peak_rss_mb, percentile  # noqa: E402

FLOOR_HTML = "<!DOCTYPE html><html><body><p>Hello, world.</p></body></html>"
GIVEN = ["Ingrid", "Ahmed", "Łucja", "Søren", "Maria José", "Chidi", "Anna-Karin", "Dương"]
FAMILY = ["Exempelsson", "Provnamn", "Testberg", "Żółć-Ştefănescu", "Fiktiva", "Påhittad"]
_cold_ms = 0.0
_warm_rss_mb = 0.0
_done = 0
_floor_fonts: Any = None


def document(i: int) -> Any:
    """The i-th synthetic diploma: the sample with its own number, code and holder."""
    from assessment_service.diploma_document import sample_document

    doc = sample_document()
    code = f"BENC-H{i:03d}-{i % 97:04d}-X"
    return dataclasses.replace(
        doc, number=f"CIM-SOCSW-2027-{i:04d}", verification_code=code,
        verify_url=f"http://127.0.0.1:8001/verify/{code}",
        holder_name=f"{GIVEN[i % len(GIVEN)]} {FAMILY[i % len(FAMILY)]}",
        merits=doc.merits[: 1 + i % len(doc.merits)])


def _warm() -> None:
    global _cold_ms, _warm_rss_mb, _floor_fonts
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    from assessment_service.diploma_pdf import warm_up

    started = time.perf_counter()
    warm_up()
    _cold_ms = (time.perf_counter() - started) * 1000
    _floor_fonts = FontConfiguration()
    HTML(string=FLOOR_HTML).write_pdf(font_config=_floor_fonts)
    _warm_rss_mb = current_rss_mb()


def _ready(_: int) -> tuple[int, float]:
    time.sleep(0.05)  # so every worker, not one, answers the roll call
    return os.getpid(), _cold_ms


def _render(indices: list[int]) -> list[tuple[float, int, float]]:
    from assessment_service.diploma_pdf import render_diploma

    global _done
    out = []
    for i in indices:
        started, cpu = time.perf_counter(), time.process_time()
        pdf = render_diploma(document(i))
        out.append(((time.perf_counter() - started) * 1000, len(pdf), (time.process_time() - cpu) * 1000))
    _done += len(indices)
    return out


def _floor(indices: list[int]) -> list[tuple[float, int, float]]:
    from weasyprint import HTML

    out = []
    for _ in indices:
        started, cpu = time.perf_counter(), time.process_time()
        pdf = HTML(string=FLOOR_HTML).write_pdf(font_config=_floor_fonts)  # warm, like the diplomas
        out.append(((time.perf_counter() - started) * 1000, len(pdf), (time.process_time() - cpu) * 1000))
    return out


def _peak(_: int) -> tuple[int, tuple[float, float]]:
    """Peak RSS, and RSS growth per diploma since the warm-up (KiB)."""
    time.sleep(0.05)
    growth = (current_rss_mb() - _warm_rss_mb) * 1024 / _done if _done else 0.0
    return os.getpid(), (peak_rss_mb(), growth)


def _roll_call(pool: Any, workers: int, fn: Any) -> dict[int, Any]:
    seen: dict[int, Any] = {}
    for _ in range(20):
        seen.update(pool.map(fn, range(workers * 2), chunksize=1))
        if len(seen) >= workers:
            break
    return seen


def _summary(timings: list[tuple[float, int, float]], wall_s: float) -> dict[str, Any]:
    ms = sorted(t for t, _, _ in timings)
    cpu = sorted(c for _, _, c in timings)
    return {
        "count": len(ms), "wall_s": round(wall_s, 3), "per_s": round(len(ms) / wall_s, 1),
        "median_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 0.95), 1),
        "max_ms": round(ms[-1], 1), "median_cpu_ms": round(statistics.median(cpu), 1),
        "per_cpu_s": round(len(cpu) / (sum(cpu) / 1000), 1),
        "mean_bytes": round(sum(b for _, b, _ in timings) / len(timings)),
    }


def run_pool(workers: int, count: int, chunk: int) -> dict[str, Any]:
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_warm) as pool:
        cold = _roll_call(pool, workers, _ready)
        batches = [list(range(s, min(s + chunk, count))) for s in range(0, count, chunk)]
        started = time.perf_counter()
        diplomas = [t for batch in pool.map(_render, batches, chunksize=1) for t in batch]
        diploma_wall = time.perf_counter() - started
        peaks = _roll_call(pool, workers, _peak)  # before the floor, so these are the diplomas' own
        started = time.perf_counter()
        floor = [t for batch in pool.map(_floor, batches, chunksize=1) for t in batch]
        floor_wall = time.perf_counter() - started
    return {
        "workers": workers,
        "loadavg_before": load_before,
        "diplomas": _summary(diplomas, diploma_wall),
        "floor": _summary(floor, floor_wall),
        "cold_ms": sorted(round(v) for v in cold.values()),
        "peak_rss_mb": sorted(round(peak, 1) for peak, _ in peaks.values()),
        "rss_growth_kib_per_diploma": sorted(round(growth, 1) for _, growth in peaks.values()),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, timeout: float, what: str, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def start_redis(workdir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """redis-server on a free loopback port, AOF on and no eviction (as scripts/services.sh)."""
    import redis

    port = _free_port()
    (workdir / "redis").mkdir()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir / "redis"),
         "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "", "--daemonize", "no",
         "--logfile", str(workdir / "redis" / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def up() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
        except Exception:
            return False

    _wait(up, 10, "redis-server", proc)
    return f"redis://127.0.0.1:{port}/0", proc


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # celery: warm shutdown; redis: save nothing, exit
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _celery_batch(client: Any, bench_app: Any, kind: str, count: int, out_dir: Path) -> tuple[list[Any], float]:
    """Send `count` renders of `kind`, wait for every report; the reports and the wall clock."""
    key = bench_app.results_key(kind)
    started = time.perf_counter()
    for i in range(count):
        bench_app.render.delay(kind, i, str(out_dir))
    _wait(lambda: client.llen(key) >= count, max(120.0, count * 2.0), f"{count} {kind} reports")
    wall = time.perf_counter() - started
    reports = [json.loads(r) for r in client.lrange(key, 0, -1)]
    return reports, wall


def run_celery(workers: int, count: int, redis_url: str, workdir: Path) -> dict[str, Any]:
    """`count` diplomas, then `count` floor pages, through `celery worker --concurrency workers`."""
    import redis

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    run = f"cim-bench-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "CIM_BENCH_REDIS_URL": redis_url, "CIM_BENCH_QUEUE": run, "CIM_BENCH_RUN": run,
           "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}"}
    os.environ.update({k: env[k] for k in ("CIM_BENCH_REDIS_URL", "CIM_BENCH_QUEUE", "CIM_BENCH_RUN")})
    sys.modules.pop("bench_celery_app", None)  # the app reads its queue and keys from the environment
    import bench_celery_app as bench_app

    out_dir = workdir / f"pdf-{workers}"
    out_dir.mkdir()
    client = redis.Redis.from_url(redis_url)
    logf = open(workdir / f"worker-{workers}.log", "ab")  # noqa: SIM115
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "bench_celery_app", "worker", "--pool", "prefork",
         "--concurrency", str(workers), "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-n", f"{run}@%h"],
        cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        cold_key = bench_app.results_key("cold")
        _wait(lambda: client.llen(cold_key) >= workers, 180, "every pool process warmed", worker)
        bench_app.render.delay("ping", 0, str(out_dir))  # the consumer is connected: timing starts now
        _wait(lambda: client.llen(bench_app.results_key("ping")) >= 1, 60, "the worker's consumer", worker)
        diplomas, diploma_wall = _celery_batch(client, bench_app, "diploma", count, out_dir)
        pool = _children(worker.pid)
        hwm = {pid: bench_app.proc_status_mb(pid)["VmHWM"] for pid in pool}  # before the floor
        floors, floor_wall = _celery_batch(client, bench_app, "floor", count, out_dir)
        cold = [json.loads(r) for r in client.lrange(cold_key, 0, -1)]
    finally:
        _stop(worker)
        logf.close()
        client.delete(*(bench_app.results_key(k) for k in ("cold", "ping", "diploma", "floor")),
                      run, f"_kombu.binding.{run}")
    stored = sorted(out_dir.glob("diploma-*.pdf"))
    if len(stored) != count or len({d["i"] for d in diplomas}) != count:
        raise RuntimeError(f"{len(stored)} diploma files and {len(diplomas)} reports for {count} sent")
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for d in diplomas:
        by_pid.setdefault(d["pid"], []).append(d)
    growth = [round((ds[-1]["VmRSS"] - ds[0]["VmRSS"]) * 1024 / max(1, len(ds) - 1), 1) for ds in by_pid.values()]
    shutil.rmtree(out_dir)
    return {
        "workers": workers,
        "through": "celery",
        "loadavg_before": load_before,
        "diplomas": _summary([(d["ms"], d["bytes"], d["cpu_ms"]) for d in diplomas], diploma_wall),
        "floor": _summary([(f["ms"], f["bytes"], f["cpu_ms"]) for f in floors], floor_wall),
        "cold_ms": sorted(round(c["ms"]) for c in cold),
        "peak_rss_mb": sorted(round(v, 1) for v in hwm.values()),
        "peak_rss_mb_reported": sorted(round(max(d["VmHWM"] for d in ds), 1) for ds in by_pid.values()),
        "diplomas_per_process": sorted(len(ds) for ds in by_pid.values()),
        "rss_growth_kib_per_diploma": sorted(growth),
    }


def run_naive(count: int) -> dict[str, Any]:
    """A new FontConfiguration and stylesheet per render: the cost the warm renderer avoids."""
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    from assessment_service import diploma_pdf

    renderer = diploma_pdf._warm_renderer()  # the template and fetcher; fonts are what we re-load
    ms = []
    for i in range(count):
        started = time.perf_counter()
        fonts = FontConfiguration()
        css = diploma_pdf.stylesheets("diploma.css", renderer.fetcher, fonts)
        doc = document(i)
        HTML(string=renderer.html(doc), url_fetcher=renderer.fetcher).write_pdf(
            stylesheets=css, font_config=fonts, pdf_variant=diploma_pdf.PDF_VARIANT,
            pdf_identifier=diploma_pdf.pdf_identifier(doc.number))
        ms.append((time.perf_counter() - started) * 1000)
    ms.sort()
    return {"count": count, "median_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 0.95), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="diplomas (and floor pages) per pool size")
    parser.add_argument("--workers", default="1,2", help="pool sizes, comma-separated")
    parser.add_argument("--chunk", type=int, default=10, help="diplomas per task sent to a worker")
    parser.add_argument("--naive", type=int, default=20, help="naive renders (fonts loaded per render); 0 skips")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--through", choices=("pool", "celery"), default="pool",
                        help="a multiprocessing pool (default) or real Celery worker processes")
    parser.add_argument("--redis-url", default=os.environ.get("CIM_TEST_REDIS_URL"),
                        help="--through celery: the broker (default CIM_TEST_REDIS_URL; unset: start redis-server)")
    args = parser.parse_args(argv)

    facts = machine_facts()
    from importlib.metadata import version

    facts["weasyprint"] = version("weasyprint")
    facts["through"] = args.through
    workdir = Path(tempfile.mkdtemp(prefix="cim-bench-diplomas-"))
    redis_proc = None
    redis_url = args.redis_url
    if args.through == "celery" and not redis_url:
        redis_url, redis_proc = start_redis(workdir)
    try:
        results = _run_all(args, redis_url, workdir)
    finally:
        if redis_proc is not None:
            _stop(redis_proc)
        shutil.rmtree(workdir, ignore_errors=True)
    naive = run_naive(args.naive) if args.naive else None
    if naive:
        print(f"naive (fonts and stylesheet loaded per render): median {naive['median_ms']} ms, "
              f"p95 {naive['p95_ms']} ms over {naive['count']}", flush=True)
    facts["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": facts, "results": results, "naive": naive}, indent=2))
    return 0


def _run_all(args: argparse.Namespace, redis_url: str | None, workdir: Path) -> list[dict[str, Any]]:
    results = []
    for workers in (int(w) for w in args.workers.split(",")):
        if args.through == "celery":
            assert redis_url is not None
            r = run_celery(workers, args.count, redis_url, workdir)
        else:
            r = run_pool(workers, args.count, args.chunk)
        results.append(r)
        d, f = r["diplomas"], r["floor"]
        print(f"{workers} worker(s), load {r['loadavg_before']}: {d['per_s']} diplomas/s (median {d['median_ms']} ms, "
              f"p95 {d['p95_ms']} ms, CPU {d['median_cpu_ms']} ms, {d['per_cpu_s']}/CPU-s, {d['mean_bytes']} B) | "
              f"floor {f['per_s']}/s (median {f['median_ms']} ms, p95 {f['p95_ms']} ms, CPU {f['median_cpu_ms']} ms) | "
              f"cold {r['cold_ms']} ms | peak RSS {r['peak_rss_mb']} MiB "
              f"(+{r['rss_growth_kib_per_diploma']} KiB per diploma)"
              + (f" | through celery, diplomas per process {r['diplomas_per_process']}"
                 if args.through == "celery" else ""), flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
