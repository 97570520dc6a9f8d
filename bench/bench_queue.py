"""The review queue under load: N waiting reports across 20 departments, built straight into the
read models (bulk inserts, no pipeline), then the server time of the queue page and its JSON,
filtered and sorted, through the Flask test client (in process: what the app spends, without a
network or a client) — issue 12's target: p95 <= 100 ms at 10,000 reports.

    .venv/bin/python bench/bench_queue.py                   # 10,000 reports, 60 requests per case
    .venv/bin/python bench/bench_queue.py --smoke           # 400 reports, 5 requests per case (seconds)
    .venv/bin/python bench/bench_queue.py --json bench/out/queue.json

SQLite file database (the embedded default). The page views record each shown student's
`PersonalDataViewed` (50 appends per page view): part of what is measured.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_facts, percentile

from assessment_service import create_app
from assessment_service.projections.assignments import assignments
from assessment_service.projections.reports import reports
from assessment_service.projections.review_queue import review_queue
from assessment_service.projections.review_states import review_marks, review_states
from assessment_service.projections.students import students
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from tests.authkit import bearer, make_account, make_identity, sign_in

TARGET_P95_MS = 100.0
SHIPPED = ("SOCSW", "MED", "SAMF", "HT")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CHECKLIST = {
    "rules": "SOCSW@1",
    "items": [
        {"label": {"en": "At least three activities", "sv": "Minst tre aktiviteter"}, "met": True, "needed": 3,
         "found": 3, "activities": []},
        {"label": {"en": "At least one activity abroad", "sv": "Minst en aktivitet utomlands"}, "met": False,
         "needed": 1, "found": 0, "activities": []},
    ],
    "uncounted": [],
}


def departments() -> list[str]:
    return [*SHIPPED, *(f"D{n:02d}" for n in range(len(SHIPPED) + 1, 21))]


def build(app: Any, n: int, assessors: dict[str, list[str]], seed: int = 12) -> dict[str, Any]:
    """N waiting reports, spread evenly over 20 departments, straight into the read models: two
    thirds assigned (two assessors each), a tenth of those reviewed and decided."""
    rng = random.Random(seed)
    depts = departments()
    rows: dict[str, list[dict[str, Any]]] = {"students": [], "reports": [], "queue": [], "assign": [],
                                              "states": [], "marks": []}
    checklist = json.dumps(CHECKLIST, separators=(",", ":"), sort_keys=True)
    for i in range(n):
        dept = depts[i % len(depts)]
        sid, rid = str(uuid.uuid4()), str(uuid.uuid4())
        submitted = (NOW - timedelta(days=rng.randint(0, 90), minutes=rng.randint(0, 1440))).isoformat()
        rows["students"].append({
            "student_id": sid, "name": f"Student{i:05d} Exempel", "email": f"s{i}@example.org", "department": dept,
            "programme": f"P{rng.randint(1, 5)}", "expected_end_term": "VT2028", "rules": f"{dept}@1",
            "registered_at": submitted, "status": "report_submitted", "status_rank": 3, "status_position": i + 1,
            "status_changed_at": submitted, "studies_completed_on": None, "reports_submitted": 1,
        })
        rows["reports"].append({
            "report_id": rid, "student_id": sid, "submitted_at": submitted, "position": i + 1, "answers": "{}",
            "activity_ids": "[]", "attachment_id": None, "rules": f"{dept}@1", "correlation_id": None,
            "round": 1, "round_submitted_at": submitted,
        })
        rows["queue"].append({
            "report_id": rid, "student_id": sid, "submitted_at": submitted, "position": i + 1,
            "rules": f"{dept}@1", "activity_ids": "[]", "checklist": checklist,
            "checklist_met": rng.randint(0, 2), "checklist_total": 2,
        })
        if i % 3:
            for k, assessor in enumerate(rng.sample(assessors[dept], 2)):
                rows["assign"].append({
                    "report_id": rid, "assessor_account_id": assessor, "student_id": sid, "department": dept,
                    "assigned_at": submitted, "position": 2 * i + k + 1,
                })
                if i % 10 == 1:
                    rows["marks"].append({
                        "report_id": rid, "assessor_account_id": assessor, "round": 1, "student_id": sid,
                        "department": dept, "recommendation": "approve", "reviewed_at": submitted,
                        "position": 2 * i + k + 1,
                    })
            if i % 10 == 1:
                rows["states"].append({
                    "report_id": rid, "student_id": sid, "department": dept, "decided_round": 1,
                    "outcome": "approved", "decided_at": submitted, "position": i + 1,
                })
    ctx = app.extensions["cim.assessment"]
    tables = {"students": students, "reports": reports, "queue": review_queue, "assign": assignments,
              "states": review_states, "marks": review_marks}
    with ctx.engine.begin() as conn:
        for name, table in tables.items():
            for start in range(0, len(rows[name]), 5000):
                conn.execute(table.insert(), rows[name][start:start + 5000])
    with ctx.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    return {name: len(found) for name, found in rows.items()}


def measure(client: Any, url: str, requests: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    client.get(url, headers=headers)  # warm: compiled statements, templates
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    times.sort()
    return {"url": url, "requests": requests, "p50_ms": round(percentile(times, 0.5), 2),
            "p95_ms": round(percentile(times, 0.95), 2), "max_ms": round(times[-1], 2)}


def run(n: int, requests: int, data_dir: Path) -> dict[str, Any]:
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    settings = Settings(data_dir=data_dir, upload_dir=data_dir / "uploads", ratelimit_storage="memory://")
    app = create_app(settings, feed=StoreEventFeed(InMemoryEventStore(clock)), clock=clock, identity=identity)
    assessors = {
        dept: [make_account(identity, f"Assessor {dept}-{k}", grants=[(Role.ASSESSOR, dept)]).id for k in range(6)]
        for dept in departments()
    }
    coordinator = make_account(identity, "Coordinator SOCSW", grants=[(Role.COORDINATOR, "SOCSW")])
    started = time.perf_counter()
    counts = build(app, n, assessors)
    built_s = time.perf_counter() - started

    coord = app.test_client()
    sign_in(coord, identity, coordinator)
    assessor = app.test_client()
    assessor_account = identity.store.get_account(assessors["SOCSW"][0])
    assert assessor_account is not None
    sign_in(assessor, identity, assessor_account)
    integration = bearer(identity, "assessment:read")
    coordinator_token = bearer(identity, "assessment:read", account_id=coordinator.id)
    cases = [
        ("page, coordinator, default", coord, "/queue", None),
        ("page, coordinator, filtered + sorted", coord, "/queue?state=in_review&waiting_over=10&sort=student", None),
        ("page, coordinator, page 3 by checklist", coord, "/queue?sort=-checklist&page=3", None),
        ("page, assessor, assigned to me", assessor, "/queue?assessor=me&sort=-waiting", None),
        ("json, coordinator, filtered + sorted", coord, "/api/v1/queue?state=waiting&sort=-submitted",
         coordinator_token),
        ("json, integration, all, longest waiting first", coord, "/api/v1/queue", integration),
        ("json, integration, all, sorted by student, page 40", coord, "/api/v1/queue?sort=student&page=40",
         integration),
        ("json, integration, unassigned in P3", coord, "/api/v1/queue?assessor=unassigned&programme=P3",
         integration),
        ("json, integration, waiting > 30 days, by state", coord, "/api/v1/queue?waiting_over=30&sort=state",
         integration),
    ]
    results = []
    for name, client, url, headers in cases:
        result = measure(client, url, requests, headers)
        result["case"] = name
        results.append(result)
        print(f"{name:55s} p50 {result['p50_ms']:7.1f} ms  p95 {result['p95_ms']:7.1f} ms", flush=True)
    worst = max(r["p95_ms"] for r in results)
    return {"reports": n, "requests_per_case": requests, "rows": counts, "build_seconds": round(built_s, 2),
            "results": results, "worst_p95_ms": worst, "target_p95_ms": TARGET_P95_MS,
            "verdict": "PASS" if worst <= TARGET_P95_MS else "FAIL", "machine": machine_facts()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--smoke", action="store_true", help="400 reports, 5 requests per case")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    n, requests = (400, 5) if args.smoke else (args.reports, args.requests)
    with tempfile.TemporaryDirectory(prefix="cim-bench-queue-") as tmp:
        out = run(n, requests, args.data_dir or Path(tmp))
    print(f"{n} reports: worst p95 {out['worst_p95_ms']} ms (target {TARGET_P95_MS} ms): {out['verdict']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
