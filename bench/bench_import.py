"""The historical import of CIM in numbers (issue 15) under load: a synthetic CSV of N rows
(tests/history_csv.py: made-up persons over four departments and eleven years) checked and
recorded into the assessment service's own store, then projected into the statistics facts;
then the same file imported again (idempotent: nothing recorded). Target: 100,000 rows in <= 60 s
(check + record; the projection is timed beside it).

    .venv/bin/python bench/bench_import.py                     # 100,000 rows, SQLite file database
    .venv/bin/python bench/bench_import.py --smoke             # 2,000 rows (seconds)
    .venv/bin/python bench/bench_import.py --pg-url postgresql+psycopg://...   # also PostgreSQL
    .venv/bin/python bench/bench_import.py --json bench/out/import.json

The PostgreSQL database given is emptied first (its tables dropped).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_facts

from assessment_service import create_app
from assessment_service import history_import_services as importer
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from tests.history_csv import synthetic_rows, to_csv

TARGET_SECONDS = 60.0
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def csv_of(rows: int, seed: int = 15) -> bytes:
    """A valid synthetic file of at least `rows` rows (persons have ~6 rows each)."""
    people = max(rows // 5, 1)
    made = synthetic_rows(people, seed=seed)
    while len(made) < rows:
        people = int(people * rows / max(len(made), 1)) + 1
        made = synthetic_rows(people, seed=seed)
    # cut at a person's first row, so every person keeps their registration
    cut = rows
    while cut < len(made) and made[cut][0] == made[cut - 1][0]:
        cut += 1
    return to_csv(made[:cut], ";", bom=True).encode()


def _drop_pg(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def run(backend: str, data: bytes, data_dir: Path, pg_url: str | None) -> dict[str, Any]:
    url = f"sqlite:///{data_dir / 'assessment.db'}" if backend == "sqlite" else str(pg_url)
    if backend == "postgresql":
        _drop_pg(url)
    clock = FixedClock(NOW)
    settings = Settings(data_dir=data_dir, upload_dir=data_dir / "uploads", ratelimit_storage="memory://",
                        assessment_db_url=url)
    app = create_app(settings, feed=StoreEventFeed(InMemoryEventStore(clock)), clock=clock)
    ctx = app.extensions["cim.assessment"]
    ctx.own_runner.catch_up()
    started = time.perf_counter()
    plan = importer.check(ctx, data, by=None, actor="system:bench")
    checked = time.perf_counter()
    assert plan.ok, [str(e) for e in plan.errors[:5]]
    first = importer.record(ctx, plan, actor="system:bench")
    recorded = time.perf_counter()
    while ctx.own_runner.catch_up():
        pass
    projected = time.perf_counter()
    again = importer.record(ctx, importer.check(ctx, data, by=None, actor="system:bench"), actor="system:bench")
    repeated = time.perf_counter()
    assert first.recorded == len(plan.rows), first
    assert again.recorded == 0, again
    total = recorded - started
    result = {
        "backend": backend, "rows": len(plan.rows), "bytes": len(data),
        "check_s": round(checked - started, 2), "record_s": round(recorded - checked, 2),
        "import_s": round(total, 2), "rows_per_s": round(len(plan.rows) / total),
        "project_s": round(projected - recorded, 2), "reimport_s": round(repeated - projected, 2),
        "reimport_recorded": again.recorded, "target_s": TARGET_SECONDS, "ok": total <= TARGET_SECONDS,
    }
    ctx.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="2,000 rows: that the harness works")
    parser.add_argument("--pg-url", help="also on this PostgreSQL database (emptied first)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    rows = 2_000 if args.smoke else args.rows
    data = csv_of(rows)
    results = []
    backends = ["sqlite", *(["postgresql"] if args.pg_url else [])]
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="cim-bench-import-") as tmp:
            result = run(backend, data, Path(tmp), args.pg_url)
        results.append(result)
        print(f"{backend:<10} {result['rows']:>7} rows: check {result['check_s']} s + record {result['record_s']} s"
              f" = {result['import_s']} s ({result['rows_per_s']:,} rows/s; target <= {TARGET_SECONDS:.0f} s:"
              f" {'met' if result['ok'] else 'MISSED'}); projection {result['project_s']} s;"
              f" the same file again {result['reimport_s']} s, {result['reimport_recorded']} recorded", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_facts(args.pg_url), "results": results}, indent=2))
    if not all(r["ok"] for r in results) and not args.smoke:
        sys.exit(1)


if __name__ == "__main__":
    main()
