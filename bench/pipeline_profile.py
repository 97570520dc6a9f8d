"""Where the pipeline's time goes (cProfile), on the embedded default (SQLite), in-process.

    .venv/bin/python bench/pipeline_profile.py rebuild --events 30000     # feed server + projector
    .venv/bin/python bench/pipeline_profile.py task --rounds 200          # one wake-up's catch-up, by phase
    .venv/bin/python bench/pipeline_profile.py whatif --events 50000      # rebuild over HTTP: page size, read-ahead

`rebuild` fills a temporary intake store with sealed events (bench_pipeline.preload), then
profiles separately (a) the intake side serving the feed: GET /api/v1/events?after=N&limit=250
through the intake app's Flask test client (unseal + upcast + JSON), and (b) the projector:
ProjectionRunner.rebuild over those same pages held in memory (JSON decode + apply + commit),
i.e. the two halves of `flask --app assessment_service projections rebuild` without the socket.

`task` starts the intake app under gunicorn (no worker), POSTs one event at a time and then runs
exactly what the catch-up task runs (workers.tasks.projections.catch_up_projections, in-process),
timing each phase: clearing the wake-up key, reading checkpoints, the HTTP feed read, the
projection transaction, and the intake status-view catch-up.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bp


def top(prof: cProfile.Profile, n: int = 25, key: str = "tottime") -> str:
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(n)
    text = out.getvalue()
    return text[text.find("   ncalls") :] if "   ncalls" in text else text


def setup_env(tmp: Path, redis_url: str = "redis://127.0.0.1:6439/0") -> dict[str, str]:
    env = {
        "CIM_DATA_DIR": str(tmp / "var"),
        "CIM_INTAKE_DB_URL": f"sqlite:///{tmp / 'var' / 'intake.db'}",
        "CIM_ASSESSMENT_DB_URL": f"sqlite:///{tmp / 'var' / 'assessment.db'}",
        "CIM_REDIS_URL": redis_url,
        "CIM_WAKEUP": "none",
        "CIM_LOG_LEVEL": "WARNING",
        "CIM_IDENTITY_KEY": "bench-only-identity-key-0123456789abcdef",
        "CIM_RATELIMIT_POST": "100000000 per minute",
    }
    os.environ.update(env)
    return env


def with_token(env: dict[str, str]) -> None:
    """Mint the bench's API token in the identity database the servers will use (every request
    needs one since issue 4) and give it to the in-process worker as its feed token."""
    from shared.config import Settings

    bp.BENCH_TOKEN = bp.mint_api_token(Settings.from_env(), bp.BENCH_SCOPES)
    env["CIM_FEED_TOKEN"] = os.environ["CIM_FEED_TOKEN"] = bp.BENCH_TOKEN


def cmd_rebuild(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cim-prof-"))
    setup_env(tmp)
    if args.assessment_url:  # e.g. a PostgreSQL database: profile the projector there
        os.environ["CIM_ASSESSMENT_DB_URL"] = args.assessment_url
    from shared.config import Settings

    settings = Settings.from_env()
    import intake_service
    from shared.clock import SystemClock
    from shared.identity.wiring import build_identity

    identity = build_identity(clock=SystemClock(), identity_key="bench-only-identity-key-0123456789abcdef")
    feed_token = identity.api_tokens.create("bench", ["feed:read"]).token
    app = intake_service.create_app(identity=identity)
    dbs = bp.Databases("sqlite", settings.intake_db_url, settings.assessment_db_url, "")
    t = time.perf_counter()
    bp.preload(dbs, bp.EventMaker(settings.vault_secret), args.events, one_transaction=False, chunk=12000)
    head = dbs.head()
    print(f"preloaded {head} events in {time.perf_counter() - t:.1f} s")

    # (a) the feed server
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {feed_token}"
    pages: list[bytes] = []
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    after = 0
    while True:
        r = client.get(f"/api/v1/events?after={after}&limit={args.batch}")
        body = r.get_data()
        doc = json.loads(body)
        if not doc["events"]:
            break
        pages.append(body)
        after = doc["next_after"]
    prof.disable()
    serve = time.perf_counter() - t
    t = time.perf_counter()
    after = 0
    while True:
        doc = json.loads(client.get(f"/api/v1/events?after={after}&limit={args.batch}").get_data())
        if not doc["events"]:
            break
        after = doc["next_after"]
    plain = time.perf_counter() - t
    print(f"\n(a) FEED SERVER unprofiled: {head} events in {plain:.2f} s = {head / plain:,.0f} events/s")
    print(
        f"\n(a) FEED SERVER: {head} events in {serve:.2f} s = {head / serve:,.0f} events/s "
        f"(profiled; {len(pages)} pages of {args.batch})"
    )
    print(top(prof, args.top))

    # (b) the projector over in-memory pages
    import sqlalchemy as sa  # noqa: F401

    from assessment_service.bootstrap import build_context
    from shared.adapters.feed import FunctionFeed, event_from_json

    by_after: dict[int, bytes] = {}
    prev = 0
    for body in pages:
        by_after[prev] = body
        prev = json.loads(body)["next_after"]

    def read(after: int, limit: int) -> list[Any]:
        body = by_after.get(after)
        return [] if body is None else [event_from_json(e) for e in json.loads(body)["events"]]

    ctx = build_context(settings, feed=FunctionFeed(read, lambda: head), batch_size=args.batch)
    for label, profile in (("unprofiled", False), ("unprofiled", False), ("unprofiled", False), ("profiled", True)):
        prof = cProfile.Profile()
        t = time.perf_counter()
        cpu = time.process_time()
        server = _postgres_cpu()
        if profile:
            prof.enable()
        ctx.runner.rebuild()
        if profile:
            prof.disable()
        took = time.perf_counter() - t
        cpu = time.process_time() - cpu
        server = _postgres_cpu() - server
        print(f"\n(b) PROJECTOR ({label}): {head} events in {took:.2f} s = {head / took:,.0f} events/s"
              f" (CPU of this process {cpu:.2f} s, of PostgreSQL's processes {server:.2f} s)")
    print(top(prof, args.top))
    print(top(prof, 30, "cumtime"))
    # JSON decode alone
    t = time.perf_counter()
    n = 0
    for body in pages:
        n += len([event_from_json(e) for e in json.loads(body)["events"]])
    print(f"(b') JSON decode + event_from_json alone: {n / (time.perf_counter() - t):,.0f} events/s")
    ctx.dispose()


def _postgres_cpu() -> float:
    """CPU seconds used so far by every `postgres` process on this host (0 without any)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            if not fields[0].endswith("(postgres"):
                continue
            parts = fields[1].split()
            total += (int(parts[11]) + int(parts[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def cmd_task(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cim-prof-"))
    red = bp.Redis(args.redis_port, tmp)
    red.start()
    env = setup_env(tmp, f"redis://127.0.0.1:{args.redis_port}/0")
    env.update(
        {"CIM_INTAKE_URL": f"http://127.0.0.1:{args.port}", "CIM_ASSESSMENT_URL": f"http://127.0.0.1:{args.port + 1}",
         "CIM_INTAKE_FEED_URL": f"http://127.0.0.1:{args.port + 2}"}
    )
    backend = "sqlite"
    if args.pg_url:  # both databases on PostgreSQL (fresh ones), the servers as the bench runs them
        backend = "postgresql"
        bp.pg_recreate(args.pg_url, ["cim_f_prof_intake", "cim_f_prof_assess"])
        env["CIM_INTAKE_DB_URL"] = bp.pg_url_for(args.pg_url, "cim_f_prof_intake")
        env["CIM_ASSESSMENT_DB_URL"] = bp.pg_url_for(args.pg_url, "cim_f_prof_assess")
    os.environ.update(env)
    with_token(env)
    full_env = {k: v for k, v in os.environ.items()}
    full_env["PYTHONPATH"] = str(bp.ROOT)
    pipe = bp.Pipeline(backend, tmp, full_env)
    try:
        pipe.start_apps()

        from shared.adapters import feed as feed_mod
        from workers import base
        from workers.tasks import projections as task_mod

        ctx = base.assessment_context()
        view = base.intake_view()
        runner = ctx.runner
        phases: dict[str, list[float]] = {
            k: []
            for k in ("post", "clear_pending", "checkpoints", "feed_read", "apply_txn", "status_view", "task_total")
        }

        def timed(name: str, fn: Any) -> Any:
            def wrapper(*a: Any, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    phases[name].append(time.perf_counter() - t0)

            return wrapper

        runner.checkpoints = timed("checkpoints", runner.checkpoints)  # type: ignore[method-assign]
        runner.feed.read = timed("feed_read", runner.feed.read)  # type: ignore[method-assign]
        runner._apply_batch = timed("apply_txn", runner._apply_batch)  # type: ignore[method-assign]
        view.catch_up = timed("status_view", view.catch_up)  # type: ignore[method-assign]
        task_mod.clear_pending = timed("clear_pending", task_mod.clear_pending)
        del feed_mod
        session = bp.authed_session()
        registered = session.post(f"{pipe.intake_url}/api/v1/students", json=bp._student_body("prof"), timeout=30)
        sid = registered.json()["student_id"]
        task_mod.catch_up_projections.run()
        for v in phases.values():
            v.clear()
        prof = cProfile.Profile()
        task_cpu = 0.0
        for i in range(args.rounds):
            t0 = time.perf_counter()
            r = session.post(f"{pipe.intake_url}/api/v1/students/{sid}/activities", json=bp.ACTIVITY, timeout=30)
            phases["post"].append(time.perf_counter() - t0)
            assert r.status_code == 201, r.text
            t0 = time.perf_counter()
            if i >= args.rounds // 2:
                prof.enable()
            c0 = time.process_time()
            task_mod.catch_up_projections.run()
            if i < args.rounds // 2:
                task_cpu += time.process_time() - c0
            prof.disable()
            phases["task_total"].append(time.perf_counter() - t0)
        print(f"one event per wake-up, {args.rounds} rounds (ms: median / p90 / p99; calls per task)")
        for name, vals in phases.items():
            if vals:
                s = sorted(vals)
                print(
                    f"  {name:14} {statistics.median(s) * 1000:7.2f} {s[int(0.9 * (len(s) - 1))] * 1000:7.2f} "
                    f"{s[int(0.99 * (len(s) - 1))] * 1000:7.2f}   x{len(vals) / args.rounds:.1f}"
                )
        print(f"  task CPU (unprofiled half): {task_cpu * 1000 / max(args.rounds // 2, 1):.2f} ms")
        print(top(prof, args.top, "cumtime"))
        print(top(prof, args.top, "tottime"))
    finally:
        pipe.stop_all()
        red.stop()


class PrefetchFeed:
    """What-if (bench only): HttpEventFeed with one page of read-ahead, so the intake server
    serves page N+1 while the projector applies page N."""

    def __init__(self, inner: Any) -> None:
        import concurrent.futures

        self.inner = inner
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        self.pending: tuple[int, int, Any] | None = None

    def read(self, after: int, limit: int) -> list[Any]:
        if self.pending and self.pending[0] == after and self.pending[1] == limit:
            events = self.pending[2].result()
        else:
            events = self.inner.read(after, limit)
        self.pending = None
        if len(events) == limit:
            self.pending = (events[-1].position, limit, self.pool.submit(self.inner.read, events[-1].position, limit))
        return events

    def head(self) -> int:
        return self.inner.head()


def cmd_whatif(args: argparse.Namespace) -> None:
    """Rebuild in-process over the real HTTP feed (intake under gunicorn), as the CLI does, with
    the shipped settings and with the proposed changes that need no code: bigger pages, read-ahead."""
    tmp = Path(tempfile.mkdtemp(prefix="cim-prof-"))
    env = setup_env(tmp)
    env.update(
        {"CIM_INTAKE_URL": f"http://127.0.0.1:{args.port}", "CIM_ASSESSMENT_URL": f"http://127.0.0.1:{args.port + 1}",
         "CIM_INTAKE_FEED_URL": f"http://127.0.0.1:{args.port + 2}"}
    )
    os.environ.update(env)
    with_token(env)
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(bp.ROOT)
    from shared.config import Settings

    settings = Settings.from_env()
    dbs = bp.Databases("sqlite", settings.intake_db_url, settings.assessment_db_url, "")
    pipe = bp.Pipeline("sqlite", tmp, full_env)
    try:
        pipe.start_apps()
        bp.preload(dbs, bp.EventMaker(settings.vault_secret), args.events, one_transaction=False, chunk=12000)
        head = dbs.head()
        from assessment_service.bootstrap import build_context
        from shared.adapters.feed import HttpEventFeed

        for batch, prefetch in ((250, False), (2000, False), (250, True), (2000, True)):
            feed: Any = HttpEventFeed(settings.intake_url)
            if prefetch:
                feed = PrefetchFeed(feed)
            ctx = build_context(settings, feed=feed, batch_size=batch)
            intake_cpu0 = bp.tree_cpu(pipe.procs["intake"].pid)
            c0 = time.process_time()
            t = time.perf_counter()
            ctx.runner.rebuild()
            took = time.perf_counter() - t
            print(
                f"rebuild over HTTP, batch {batch:5}, read-ahead {prefetch!s:5}: {head} events in {took:6.2f} s = "
                f"{head / took:7,.0f} events/s (CPU s: projector {time.process_time() - c0:.1f}, "
                f"intake {bp.tree_cpu(pipe.procs['intake'].pid) - intake_cpu0:.1f}; load {bp.loadavg()})",
                flush=True,
            )
            ctx.dispose()
    finally:
        pipe.stop_all()


def _cleanup(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rebuild")
    r.add_argument("--events", type=int, default=30000)
    r.add_argument("--batch", type=int, default=bp.RUNNER_BATCH)
    r.add_argument("--top", type=int, default=30)
    r.add_argument("--assessment-url", default="", help="the projector's database (default: SQLite in a temp dir)")
    t = sub.add_parser("task")
    t.add_argument("--pg-url", default="", help="run both databases on this PostgreSQL server (default: SQLite)")
    t.add_argument("--rounds", type=int, default=200)
    t.add_argument("--redis-port", type=int, default=6439)
    t.add_argument("--port", type=int, default=8390)
    t.add_argument("--top", type=int, default=30)
    w = sub.add_parser("whatif")
    w.add_argument("--events", type=int, default=50000)
    w.add_argument("--port", type=int, default=8392)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cim-prof-"))
    tempfile.tempdir = str(base)  # every work dir below goes under base, removed at the end
    try:
        {"rebuild": cmd_rebuild, "task": cmd_task, "whatif": cmd_whatif}[args.cmd](args)
    finally:
        _cleanup(base)


if __name__ == "__main__":
    main()
