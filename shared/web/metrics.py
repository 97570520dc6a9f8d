"""Prometheus metrics of a web process (issue 16.4), served at `GET /api/v1/metrics` (bearer
tokens work under /api/ only) to integration tokens with scope `ops:read` only (the matrix in
tests/security holds the rule).

- `cim_http_requests_total{app,endpoint,method,status}` and
  `cim_http_request_seconds{app,endpoint}` (a histogram) for every request; `endpoint` is the
  Flask endpoint name (never the path: paths carry student ids).
- Extra collectors an app passes in, computed at scrape time (the assessment side: projection
  lag and checkpoint per projection).

Under gunicorn with several workers, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory of the
process group (`make run` gives each program its own under a directory in /dev/shm, off the
data disk, emptied at start): every worker writes its counts there and a scrape adds them up
(`prometheus_client.multiprocess`). Without it, each process counts on its own."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import REGISTRY, Collector

from shared.web.access import access, token_scope

SCOPE_OPS = "ops:read"

REQUESTS = Counter("cim_http_requests_total", "HTTP requests answered", ["app", "endpoint", "method", "status"])
LATENCY = Histogram(
    "cim_http_request_seconds", "Time to answer an HTTP request", ["app", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class _Extra(Collector):
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


def install_metrics(app: Flask, name: str, extra: Callable[[], Iterable[Metric]] | None = None) -> None:
    """Count `app`'s requests under app=`name` and serve /api/v1/metrics."""

    @app.before_request
    def _start_timer() -> None:
        g.cim_request_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.pop("cim_request_started", None)
        endpoint = request.endpoint or "unmatched"
        REQUESTS.labels(name, endpoint, request.method, str(response.status_code)).inc()
        if started is not None:
            LATENCY.labels(name, endpoint).observe(time.perf_counter() - started)
        return response

    bp = Blueprint("metrics", __name__)

    @bp.get("/api/v1/metrics")
    @access(token_scope(SCOPE_OPS))
    def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        scraped = registry
        if extra is not None:
            scraped = CollectorRegistry()
            scraped.register(_Extra(lambda: [*registry.collect(), *extra()]))
        answer = Response(generate_latest(scraped), mimetype=CONTENT_TYPE_LATEST)
        answer.headers["Cache-Control"] = "no-store"
        return answer

    app.register_blueprint(bp)
