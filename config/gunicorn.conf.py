"""gunicorn settings shared by every way the apps are served (scripts/run.sh, docker-compose,
the end-to-end tests, the benchmarks): `gunicorn -c config/gunicorn.conf.py ...`. Bind address,
worker and thread counts stay on the command line, where each of them differs."""

from typing import Any


def post_worker_init(worker: Any) -> None:
    """The app is loaded in this worker: take its start-up heap out of the collector's walks
    (shared.runtime.settle_heap; 50–60 ms GIL pauses otherwise)."""
    from shared.runtime import settle_heap

    settle_heap()


# gunicorn's own records (start-up, worker boots and exits, a worker's unhandled error) as JSON
# lines like the apps' (shared.web.gunicorn_logs.JsonLogger).
logger_class = "shared.web.gunicorn_logs.JsonLogger"

# On SIGTERM a worker finishes what it is answering, then stops: at most this many seconds (the
# default, 30, kept `make run`'s feed server alive that long after Ctrl-C while a worker's
# kept-alive connection stayed open). The supervisor's stopwaitsecs (20) is longer.
graceful_timeout = 5


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: drop its live gauges from the metrics directory (prometheus_client's
    multiprocess mode, set up by `make run`; shared/web/metrics.py)."""
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
