"""CIM in numbers under a long history (issue 15, "Speed"): the statistics page as of several
dates against a naive replay of the whole log, in the same run.

Generates N events (default 1,000,000) over 20 departments and ten years (2016-2025): students
registering, logging activities (some amended or withdrawn), submitting, approved, presenting,
issued diplomas (some revoked and re-issued), withdrawing, deregistered and reinstated, a few
registrations voided. The events go into the intake log (a SQLite event store of its own) and the
assessment service's own store, and their facts straight into the read models
`statistics_facts` / `statistics_own_facts` (bulk inserts, what projecting them gives; the
checkpoints set to the heads), 3% of the diplomas recorded late (imported). The summed counts are
then made by the product's own `projections.statistics.recount` (timed).

Measured through the Flask test client (server time, in process): `/statistics` and
`/api/v1/statistics` as of several dates, for an administrator (all 20 departments) and a
coordinator (one). Then the naive alternative: read every event of both stores, `facts_of`,
`figures(facts, as_of)` — per date, and its figures must equal the page's JSON. Bar: p95 <= 300 ms.

    .venv/bin/python bench/bench_statistics.py                       # 1,000,000 events
    .venv/bin/python bench/bench_statistics.py --smoke --json /tmp/s.json   # 20,000 events (seconds)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sqlalchemy as sa
from common import machine_facts, percentile

from assessment_service import create_app
from assessment_service import statistics as stats
from assessment_service.projections import statistics as projection
from shared.adapters.feed import StoreEventFeed
from shared.adapters.sqlite_store import SqliteEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.events import NewEvent, RecordedEvent
from shared.identity.models import Role
from shared.projection import checkpoints
from tests.authkit import bearer, make_account, make_identity, sign_in

TARGET_P95_MS = 300.0
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FIRST, YEARS = date(2016, 1, 1), 10
DATES = (date(2017, 6, 30), date(2020, 12, 31), date(2023, 3, 15), date(2025, 12, 31), date(2026, 12, 1))
SHIPPED = ("SOCSW", "MED", "SAMF", "HT")


def departments() -> list[str]:
    return [*SHIPPED, *(f"D{n:02d}" for n in range(len(SHIPPED) + 1, 21))]


def history(n_events: int, rng: random.Random) -> tuple[list[tuple[str, str, dict[str, Any], datetime]],
                                                      list[tuple[str, str, dict[str, Any], datetime]],
                                                      dict[tuple[str, int], datetime]]:
    """(intake events, own events, late recordings): each event (stream, type, data, occurred_at);
    late recordings by (log, index) -> recorded_at."""
    intake: list[tuple[str, str, dict[str, Any], datetime]] = []
    own: list[tuple[str, str, dict[str, Any], datetime]] = []
    late: dict[tuple[str, int], datetime] = {}
    deps = departments()
    span = YEARS * 365
    n = 0
    while len(intake) + len(own) < n_events:
        n += 1
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        dept = deps[n % len(deps)]
        on = FIRST + timedelta(days=rng.randrange(span))
        stream, mine = f"student-{sid}", f"stats-bench-{sid}"

        def at(day: date) -> datetime:
            return datetime.combine(day, dtime(10, rng.randrange(60)), tzinfo=UTC)

        intake.append((stream, "StudentRegistered", {"student_id": sid, "department": dept, "programme": "P1",
                                                     "rules": f"{dept}@1"}, at(on)))
        key = {"student_id": sid, "department": dept}
        roll = rng.random()
        if rng.random() < 0.02:
            own.append((mine, "RegistrationVoided", {**key, "reason_code": "other_faculty"}, at(on + timedelta(3))))
        if roll < 0.08:
            intake.append((stream, "RegistrationWithdrawn", {}, at(on + timedelta(days=rng.randrange(10, 200)))))
            continue
        acts = []
        for _ in range(rng.randrange(0, 4)):
            on += timedelta(days=rng.randrange(5, 120))
            aid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            acts.append(aid)
            intake.append((stream, "ActivityLogged", {
                "activity_id": aid, "setting": rng.choice(("abroad", "at_home", "digital")),
                "country_code": rng.choice(("DE", "NO", "FR", "ES", "US", "JP", None))}, at(on)))
        if acts and rng.random() < 0.15:
            intake.append((stream, "ActivityAmended", {"activity_id": acts[-1], "setting": "digital",
                                                       "country_code": None}, at(on + timedelta(2))))
        if acts and rng.random() < 0.1:
            intake.append((stream, "ActivityWithdrawn", {"activity_id": acts[0]}, at(on + timedelta(3))))
        if not acts or roll < 0.3:
            if rng.random() < 0.5:
                own.append((mine, "StudentDeregistered", key, at(on + timedelta(days=400))))
                if rng.random() < 0.2:
                    own.append((mine, "StudentReinstated", key, at(on + timedelta(days=420))))
            continue
        on += timedelta(days=rng.randrange(10, 200))
        intake.append((stream, "ReportSubmitted", {"report_id": sid}, at(on)))
        if rng.random() < 0.15:
            continue
        on += timedelta(days=rng.randrange(5, 60))
        own.append((mine, "ReportApproved", key, at(on)))
        on += timedelta(days=rng.randrange(5, 60))
        own.append((mine, "PresentationHeld", key, at(on)))
        if rng.random() < 0.1:
            continue
        on += timedelta(days=rng.randrange(1, 30))
        did = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        own.append((mine, "DiplomaIssued", {**key, "diploma_id": did, "issued_on": on.isoformat()}, at(on)))
        if rng.random() < 0.03:  # recorded late (an import): known only later
            late[("own", len(own) - 1)] = at(on + timedelta(days=rng.randrange(20, 400)))
        if rng.random() < 0.03:
            own.append((mine, "DiplomaRevoked", {**key, "diploma_id": did}, at(on + timedelta(20))))
            did2 = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            issued = on + timedelta(21)
            own.append((mine, "DiplomaIssued", {**key, "diploma_id": did2, "issued_on": issued.isoformat()},
                        at(issued)))
    return intake, own, late


def load(store: SqliteEventStore, events: list[tuple[str, str, dict[str, Any], datetime]]) -> None:
    """Append the events, each stream's in order, in transactions of ~5,000 events (positions
    1..N in list order)."""
    batch: list[tuple[str, list[NewEvent]]] = []
    size = 0
    meta = {"actor": "bench", "correlation_id": "bench", "causation_id": None}
    for stream, type_, data, occurred in events:
        event = NewEvent(type_, 1, data, meta, occurred)
        if batch and batch[-1][0] == stream:
            batch[-1][1].append(event)
        else:
            batch.append((stream, [event]))
        size += 1
        if size >= 5000:
            store.append_many(batch)
            batch, size = [], 0
    if batch:
        store.append_many(batch)


def fact_rows(log: str, events: list[tuple[str, str, dict[str, Any], datetime]],
              late: dict[tuple[str, int], datetime], dept_of: dict[str, str]) -> list[dict[str, Any]]:
    """The read model's rows for the events: what `projections.statistics` writes for each."""
    rows = []
    for index, (stream, type_, data, occurred) in enumerate(events):
        recorded = late.get((log, index), occurred)
        event = RecordedEvent(index + 1, "", stream, 1, type_, 1, data, {}, occurred, recorded)
        for seq, fact in enumerate(stats.facts_of(event)):
            if fact.kind == stats.REGISTERED and fact.department:
                dept_of[fact.student_id] = fact.department
            rows.append({"position": index + 1, "seq": seq, "student_id": fact.student_id,
                         "department": fact.department or dept_of.get(fact.student_id), "kind": fact.kind,
                         "business_date": fact.on, "recorded_at": recorded.isoformat(), "ref": fact.ref,
                         "setting": fact.setting, "country": fact.country})
    return rows


def measure(client: Any, url: str, requests: int, headers: dict[str, str] | None = None) -> tuple[dict[str, Any], Any]:
    client.get(url, headers=headers)  # warm
    times, cpu, response = [], [], None
    for _ in range(requests):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    times.sort()
    cpu.sort()
    return {"url": url, "requests": requests, "p50_ms": round(percentile(times, 0.5), 1),
            "p95_ms": round(percentile(times, 0.95), 1), "max_ms": round(times[-1], 1),
            "cpu_p50_ms": round(percentile(cpu, 0.5), 1), "cpu_p95_ms": round(percentile(cpu, 0.95), 1)}, response


def naive(stores: list[SqliteEventStore], as_of: date) -> tuple[float, dict[str, Any], int]:
    """The whole log replayed: every event read, its facts, the figures. (ms, figures, events)."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    facts: list[stats.Fact] = []
    count = 0
    for store in stores:
        after = 0
        while True:
            page = store.read_all(after, 10_000)
            if not page:
                break
            for event in page:
                facts.extend(stats.facts_of(event))
            count += len(page)
            after = page[-1].position
    figures = stats.figures(facts, as_of).as_json()
    naive.cpu_ms = (time.process_time() - cpu_started) * 1000  # type: ignore[attr-defined]
    return (time.perf_counter() - started) * 1000, figures, count


def run(n_events: int, requests: int, naive_dates: int, data_dir: Path, seed: int) -> dict[str, Any]:
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    intake_store = SqliteEventStore(f"sqlite:///{data_dir / 'intake.db'}", clock)
    intake_store.create_schema()
    settings = Settings(data_dir=data_dir, upload_dir=data_dir / "uploads", ratelimit_storage="memory://")
    app = create_app(settings, feed=StoreEventFeed(intake_store), clock=clock, identity=identity)
    ctx = app.extensions["cim.assessment"]

    started = time.perf_counter()
    intake, own, late = history(n_events, random.Random(seed))
    generated = time.perf_counter() - started
    started = time.perf_counter()
    load(intake_store, intake)
    load(ctx.store, own)
    appended = time.perf_counter() - started
    if (intake_store.head(), ctx.store.head()) != (len(intake), len(own)):
        raise SystemExit("the stores did not number the events 1..N")
    started = time.perf_counter()
    dept_of: dict[str, str] = {}
    with ctx.engine.begin() as conn:
        for table, log, events in ((projection.facts, "intake", intake), (projection.own_facts, "own", own)):
            rows = fact_rows(log, events, late, dept_of)
            for start in range(0, len(rows), 10_000):
                conn.execute(table.insert(), rows[start:start + 10_000])
        # what projecting these events gives: mark them applied, as a live system has
        for runner, head in ((ctx.runner, len(intake)), (ctx.own_runner, len(own))):
            for name in runner.checkpoints():
                conn.execute(checkpoints.update().where(checkpoints.c.name == name).values(position=head))
    inserted = time.perf_counter() - started
    started = time.perf_counter()
    with ctx.engine.begin() as conn:
        students = projection.recount(conn)
    counted = time.perf_counter() - started
    with ctx.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        count_rows = conn.execute(sa.select(sa.func.count()).select_from(projection.counts)).scalar()
    print(f"{len(intake) + len(own)} events, {students} students: generated {generated:.0f} s, appended "
          f"{appended:.0f} s, facts inserted {inserted:.0f} s, counts made {counted:.0f} s ({count_rows} rows)",
          flush=True)

    admin = make_account(identity, "Administrator", grants=[(Role.ADMINISTRATOR, None)])
    coordinator = make_account(identity, "Coordinator SOCSW", grants=[(Role.COORDINATOR, "SOCSW")])
    browser = app.test_client()
    sign_in(browser, identity, admin)
    coord = app.test_client()
    sign_in(coord, identity, coordinator)
    token = bearer(identity, "assessment:statistics", account_id=admin.id)
    results, pages = [], {}
    for day in DATES:
        q = f"as_of={day.isoformat()}"
        for name, client, url, headers in (
            ("page, administrator, all departments", browser, f"/statistics?{q}", None),
            ("json, administrator, all departments", browser, f"/api/v1/statistics?{q}", token),
            ("page, coordinator, SOCSW", coord, f"/statistics?{q}", None),
        ):
            result, response = measure(client, url, requests, headers)
            result["case"], result["as_of"] = name, day.isoformat()
            results.append(result)
            if name.startswith("json"):
                pages[day] = response.get_json()
            print(f"{day} {name:40s} p50 {result['p50_ms']:7.1f} ms  p95 {result['p95_ms']:7.1f} ms  (CPU p50 "
                  f"{result['cpu_p50_ms']:6.1f}, p95 {result['cpu_p95_ms']:6.1f} ms)", flush=True)

    replays = []
    stores = [intake_store, ctx.store]
    for day in DATES[-naive_dates:] if naive_dates else ():
        ms, figures, read = naive(stores, day)
        extra = ("computed_at", "known_on_date", "recorded_later", "per_faculty")
        page = {k: v for k, v in pages[day].items() if k not in extra}
        replays.append({"as_of": day.isoformat(), "ms": round(ms, 1), "cpu_ms": round(naive.cpu_ms, 1),  # type: ignore[attr-defined]
                        "events_read": read,
                        "same_figures": figures == page})
        print(f"{day} naive replay of {read} events: {ms:.0f} ms (CPU {naive.cpu_ms:.0f} ms), same figures: "  # type: ignore[attr-defined]
              f"{figures == page}", flush=True)
    worst = max(r["p95_ms"] for r in results)
    worst_cpu = max(r["cpu_p95_ms"] for r in results)
    page_p50 = {r["as_of"]: r["p50_ms"] for r in results if r["case"].startswith("page, administrator")}
    ratios = [round(r["ms"] / page_p50[r["as_of"]], 1) for r in replays]
    known_differs = {d.isoformat(): pages[d].get("recorded_later", {}) for d in DATES}
    return {
        "events": len(intake) + len(own), "intake_events": len(intake), "own_events": len(own),
        "students": students, "count_rows": count_rows, "late_recorded": len(late),
        "seconds": {"generate": round(generated, 1), "append": round(appended, 1),
                    "insert_facts": round(inserted, 1), "recount": round(counted, 1)},
        "requests_per_case": requests, "results": results, "naive": replays,
        "naive_over_page_p50": ratios, "recorded_later": known_differs,
        "worst_p95_ms": worst, "worst_cpu_p95_ms": worst_cpu, "target_p95_ms": TARGET_P95_MS,
        "verdict": "PASS" if worst <= TARGET_P95_MS and all(r["same_figures"] for r in replays) else "FAIL",
        "machine": machine_facts(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--naive-dates", type=int, default=2, help="how many of the dates to replay naively")
    parser.add_argument("--smoke", action="store_true", help="20,000 events, 3 requests per case")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    n, requests = (20_000, 3) if args.smoke else (args.events, args.requests)
    with tempfile.TemporaryDirectory(prefix="cim-bench-statistics-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        out = run(n, requests, args.naive_dates, data_dir, args.seed)
    print(f"{out['events']} events: worst p95 {out['worst_p95_ms']} ms (target {TARGET_P95_MS} ms), naive replay "
          f"/ page p50: {out['naive_over_page_p50']}: {out['verdict']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
