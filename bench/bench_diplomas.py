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

    .venv/bin/python bench/bench_diplomas.py                                  # 1,000 x (1, 2 workers)
    .venv/bin/python bench/bench_diplomas.py --count 20 --naive 3 --out /tmp/d.json   # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import statistics
import sys
import time
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


def run_naive(count: int) -> dict[str, Any]:
    """A new FontConfiguration and stylesheet per render: the cost the warm renderer avoids."""
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    from assessment_service import diploma_pdf

    renderer = diploma_pdf._warm_renderer()  # the template and fetcher; fonts are what we re-load
    ms = []
    for i in range(count):
        started = time.perf_counter()
        fonts = FontConfiguration()
        css = CSS(filename=str(diploma_pdf.ASSETS / "diploma.css"), url_fetcher=renderer.fetcher, font_config=fonts)
        doc = document(i)
        HTML(string=renderer.html(doc), url_fetcher=renderer.fetcher).write_pdf(
            stylesheets=[css], font_config=fonts, pdf_variant=diploma_pdf.PDF_VARIANT,
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
    args = parser.parse_args(argv)

    facts = machine_facts()
    from importlib.metadata import version

    facts["weasyprint"] = version("weasyprint")
    results = []
    for workers in (int(w) for w in args.workers.split(",")):
        r = run_pool(workers, args.count, args.chunk)
        results.append(r)
        d, f = r["diplomas"], r["floor"]
        print(f"{workers} worker(s), load {r['loadavg_before']}: {d['per_s']} diplomas/s (median {d['median_ms']} ms, "
              f"p95 {d['p95_ms']} ms, CPU {d['median_cpu_ms']} ms, {d['per_cpu_s']}/CPU-s, {d['mean_bytes']} B) | "
              f"floor {f['per_s']}/s (median {f['median_ms']} ms, p95 {f['p95_ms']} ms, CPU {f['median_cpu_ms']} ms) | "
              f"cold {r['cold_ms']} ms | peak RSS {r['peak_rss_mb']} MiB "
              f"(+{r['rss_growth_kib_per_diploma']} KiB per diploma)", flush=True)
    naive = run_naive(args.naive) if args.naive else None
    if naive:
        print(f"naive (fonts and stylesheet loaded per render): median {naive['median_ms']} ms, "
              f"p95 {naive['p95_ms']} ms over {naive['count']}", flush=True)
    facts["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": facts, "results": results, "naive": naive}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
