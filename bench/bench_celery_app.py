"""A bench-only Celery app for `bench/bench_diplomas.py --through celery` (issue 14, "Speed").

Not in workers/: the product's app and schedule stay clean. The settings have the same shape as
workers/celery_app.py, read from it (JSON only, late acknowledgement, reject on a lost child, short visibility
timeout, one message per process, the 400 MiB per-child memory cap, results ignored), and each pool
process warms the renderer in `worker_process_init` as workers/tasks/diplomas.py does. The task
renders the bench's synthetic `document(i)` (or the floor page), writes the PDF under the run's
folder as the product's task writes its file, and pushes its own render time and RSS onto a Redis
list the bench reads.

The bench starts the worker with `PYTHONPATH=bench:.` and sets, for both sides:
CIM_BENCH_REDIS_URL (broker), CIM_BENCH_QUEUE (one queue per run) and CIM_BENCH_RUN (key prefix).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from workers.celery_app import app as product_app

REDIS_URL = os.environ.get("CIM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("CIM_BENCH_QUEUE", "cim-bench")
RUN = os.environ.get("CIM_BENCH_RUN", "cim-bench")
TASK = "cim_bench.render"

#: The product's worker settings the bench reuses as they are (workers/celery_app.py), so the
#: bench measures what the workers run and cannot drift from it.
PRODUCT_SETTINGS = (
    "task_serializer", "result_serializer", "accept_content", "result_accept_content", "task_acks_late",
    "task_reject_on_worker_lost", "broker_transport_options", "result_backend_transport_options",
    "task_time_limit", "task_soft_time_limit", "worker_prefetch_multiplier", "worker_max_memory_per_child",
    "task_ignore_result", "broker_connection_retry_on_startup", "worker_hijack_root_logger",
    "worker_redirect_stdouts",
)

app = Celery("cim_bench")
app.conf.update(
    {key: product_app.conf[key] for key in PRODUCT_SETTINGS},
    broker_url=REDIS_URL,
    result_backend=REDIS_URL,
    task_default_queue=QUEUE,
    timezone="UTC",
    enable_utc=True,
)

FLOOR_HTML = "<!DOCTYPE html><html><body><p>Hello, world.</p></body></html>"
_redis: Any = None
_floor_fonts: Any = None


def results_key(kind: str) -> str:
    return f"{RUN}:{kind}"


def proc_status_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak resident) of a process, MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def _client() -> Any:
    global _redis
    if _redis is None:  # per pool process, after the fork
        import redis

        _redis = redis.Redis.from_url(REDIS_URL)
    return _redis


@worker_process_init.connect
def _warm(**_: Any) -> None:
    """What workers/tasks/diplomas.py does (fonts and stylesheet once per process), timed, plus a
    warm FontConfiguration for the floor page."""
    global _floor_fonts
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    from assessment_service.diploma_pdf import warm_up

    started = time.perf_counter()
    warm_up()
    cold_ms = (time.perf_counter() - started) * 1000
    _floor_fonts = FontConfiguration()
    HTML(string=FLOOR_HTML).write_pdf(font_config=_floor_fonts)
    _client().rpush(results_key("cold"), json.dumps({"pid": os.getpid(), "ms": cold_ms, **proc_status_mb()}))


@app.task(name=TASK)
def render(kind: str, i: int, out_dir: str) -> None:
    """Render diploma `i` (or the floor page), store it under `out_dir`, report time and RSS."""
    if kind == "ping":
        _client().rpush(results_key("ping"), os.getpid())
        return
    started, cpu = time.perf_counter(), time.process_time()
    if kind == "diploma":
        from bench_diplomas import document

        from assessment_service.diploma_pdf import render_diploma

        pdf = render_diploma(document(i))
    else:
        from weasyprint import HTML

        pdf = HTML(string=FLOOR_HTML).write_pdf(font_config=_floor_fonts)
    target = Path(out_dir) / f"{kind}-{i:05d}.pdf"
    tmp = target.with_suffix(".part")
    tmp.write_bytes(pdf)
    os.replace(tmp, target)  # as the product's store: never a half-written file under the name
    ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
    _client().rpush(results_key(kind), json.dumps(
        {"i": i, "ms": ms, "cpu_ms": cpu_ms, "bytes": len(pdf), "pid": os.getpid(), **proc_status_mb()}))
