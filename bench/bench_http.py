"""HTTP appends through the running intake service under gunicorn.

Starts gunicorn itself on a free loopback port (CIM_WAKEUP=none, a temp CIM_DATA_DIR, the POST
rate limit lifted), once on SQLite and once on PostgreSQL (if --pg-url), and drives it with 1 and
then 8 concurrent clients (separate processes, each a requests.Session with a bearer token minted
for the run): register a student (POST /api/v1/students), then log 4 activities for them
(POST /api/v1/students/<id>/activities), and again, for a fixed time. Every response must be 201;
anything else counts as an error, and a run with errors exits non-zero (it measured nothing).

gunicorn: gthread workers. SQLite: 1 worker x 8 threads (one writing process per SQLite
database: docs/decisions/0001-one-writer-per-sqlite-file.md); PostgreSQL: 2 workers x 4 threads (2 cores here).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, libpq_url, machine_facts, mint_api_token, percentile, pg_reset, sa_url

ACTIVITY = {
    "kind": "summer-school",
    "title": "Summer school on comparative social policy",
    "organiser": "University of Example, Department of Social Work",
    "setting": "abroad",
    "country_code": "DE",
    "start_date": "2026-06-01",
    "end_date": "2026-06-20",
    "hours": 40,
    "description": "Two weeks of seminars and field visits on social services in Germany and the Nordic "
    "countries, with a group project on child welfare.",
}
ACTIVITIES_PER_STUDENT = 4


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_gunicorn(
    backend: str, data_dir: Path, pg_url: str, workers: int, threads: int
) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "CIM_DATA_DIR": str(data_dir),
            "CIM_WAKEUP": "none",
            "CIM_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
            "CIM_IDENTITY_KEY": "bench-only-identity-key-0123456789abcdef",
            # the clients post as fast as the service answers: no rate limit applies (and, with no
            # Redis in this run, the limiter counts in memory)
            "CIM_RATELIMIT_POST": "100000000 per minute",
            "CIM_RATELIMIT_STORAGE": "memory://",
        }
    )
    if backend == "postgresql":
        env["CIM_INTAKE_DB_URL"] = sa_url(pg_url)
        url = sa_url(pg_url)
    else:
        env.pop("CIM_INTAKE_DB_URL", None)
        url = f"sqlite:///{data_dir / 'intake.db'}"
    # Create the schema first, so the workers do not race to create it.
    from shared.adapters.stores import open_event_store

    store = open_event_store(url, pool_size=1)
    store.create_schema()
    store.dispose()
    # The clients call the API as an integration does: with a bearer token allowed to register
    # students and log their activities.
    from shared.config import Settings

    token = mint_api_token(Settings.from_env(env), ("intake:register", "intake:write", "intake:read"))
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    log = open(data_dir / "gunicorn.log", "w")  # noqa: SIM115  (gunicorn writes to it until stopped)
    proc = subprocess.Popen(
        [gunicorn, "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", "gthread", "--threads", str(threads),
         "--log-level", "warning", "intake_service:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    import requests

    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {(data_dir / 'gunicorn.log').read_text()[-2000:]}")
        try:
            if requests.get(base + "/api/v1/openapi.json", timeout=2).status_code == 200:
                return proc, base, token
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_gunicorn(proc)
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop_gunicorn(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _client(base: str, token: str, client_no: int, duration: float, warmup: float, barrier: Any,
            queue: Any) -> None:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    lat: dict[str, list[float]] = {"students": [], "activities": []}
    errors: dict[str, int] = {}
    n = 0

    def student() -> dict[str, Any]:
        nonlocal n
        n += 1
        tag = f"{client_no}x{n}x{uuid.uuid4().hex[:6]}"
        return {
            "name": f"Bench Student {tag}",
            "email": f"bench.{tag}@example.org",
            "university_id": f"b{tag}"[:32],
            "department": "SOCSW",
            "programme": "SSASK",
            "expected_end_term": "VT2028",
        }

    def post(kind: str, path: str, body: dict[str, Any], record: bool) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            r = session.post(base + path, json=body, timeout=30)
            status = r.status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
            r = None
        dt = time.perf_counter() - t0
        if record:
            lat[kind].append(dt)
        if status != 201:
            if record:
                errors[str(status)] = errors.get(str(status), 0) + 1
            return None
        return r.json()

    def one_round(record: bool) -> None:
        created = post("students", "/api/v1/students", student(), record)
        if created is None:
            return
        sid = created["student_id"]
        for _ in range(ACTIVITIES_PER_STUDENT):
            post("activities", f"/api/v1/students/{sid}/activities", ACTIVITY, record)

    end_warm = time.perf_counter() + warmup
    while time.perf_counter() < end_warm:
        one_round(record=False)
    barrier.wait()
    t0 = time.perf_counter()
    deadline = t0 + duration
    while time.perf_counter() < deadline:
        one_round(record=True)
    queue.put({"lat": lat, "errors": errors, "elapsed": time.perf_counter() - t0})


def run_load(base: str, token: str, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(base, token, i, duration, warmup, barrier, queue))
             for i in range(clients)]
    for p in procs:
        p.start()
    outs = [queue.get(timeout=duration + warmup + 300) for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(o["elapsed"] for o in outs)
    result: dict[str, Any] = {"clients": clients, "seconds": round(elapsed, 2)}
    everything: list[float] = []
    for kind in ("students", "activities"):
        lat = sorted(x for o in outs for x in o["lat"][kind])
        everything += lat
        result[kind] = {
            "requests": len(lat),
            "per_s": len(lat) / elapsed,
            "p50_ms": percentile(lat, 0.5) * 1000,
            "p99_ms": percentile(lat, 0.99) * 1000,
        }
    everything.sort()
    errors: dict[str, int] = {}
    for o in outs:
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    result.update(
        {
            "requests": len(everything),
            "per_s": len(everything) / elapsed,
            "p50_ms": percentile(everything, 0.5) * 1000,
            "p99_ms": percentile(everything, 0.99) * 1000,
            "errors": errors,
        }
    )
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | gunicorn | clients | requests/s | p50 ms | p99 ms | students/s (p50/p99 ms) "
        "| activities/s (p50/p99 ms) | errors |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        s, a = r["students"], r["activities"]
        lines.append(
            f"| {r['backend']} | {r['gunicorn']} | {r['clients']} | {r['per_s']:,.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {s['per_s']:,.0f} ({s['p50_ms']:.1f}/{s['p99_ms']:.1f}) | "
            f"{a['per_s']:,.0f} ({a['p50_ms']:.1f}/{a['p99_ms']:.1f}) | {r['errors'] or 0} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--pg-url", default=os.environ.get("CIM_BENCH_PG_URL", ""))
    ap.add_argument("--full", action="store_true", help="30 s per load level instead of 8 s")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    duration = args.duration or (30.0 if args.full else 8.0)
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not args.pg_url:
        print("no --pg-url / CIM_BENCH_PG_URL: skipping PostgreSQL", file=sys.stderr)
        backends.remove("postgresql")
    facts = machine_facts(args.pg_url or None)
    facts.update({"duration_s": duration})
    results: list[dict[str, Any]] = []
    for backend in backends:
        data_dir = Path(args.data_dir) / backend
        data_dir.mkdir(parents=True, exist_ok=True)
        if backend == "postgresql":
            pg_reset(libpq_url(args.pg_url))
        workers, threads = (1, 8) if backend == "sqlite" else (2, 4)
        proc, base, token = start_gunicorn(backend, data_dir, args.pg_url, workers, threads)
        try:
            for clients in (int(x) for x in args.clients.split(",")):
                r = run_load(base, token, clients, duration, args.warmup)
                r.update({"backend": backend, "gunicorn": f"{workers} worker x {threads} threads (gthread)"})
                results.append(r)
                print(f"  http {backend:10} clients={clients} {r['per_s']:7,.0f} req/s p50 {r['p50_ms']:6.1f} ms "
                      f"p99 {r['p99_ms']:7.1f} ms errors {r['errors']}", file=sys.stderr, flush=True)
        finally:
            stop_gunicorn(proc)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": facts, "results": results}, indent=1))
    print(markdown(results))
    failed = {f"{r['backend']}, {r['clients']} client(s)": r["errors"] for r in results if r["errors"]}
    if failed:
        # A refused request is not a measurement of an append: the run is not a result.
        sys.exit(f"bench_http: requests answered other than 201: {failed}")


if __name__ == "__main__":
    main()
