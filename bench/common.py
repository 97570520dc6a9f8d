"""Shared helpers for the benchmarks: payloads, percentiles, machine facts, PostgreSQL admin."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# A realistic ActivityLogged-sized event (~420 bytes of data, ~160 of metadata once stored).
DATA = {
    "activity_id": "9b2f6c1e-3a1d-4c55-9a57-0c1f2d3e4f50",
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
    "department": "SOCSW",
    "department_version": 1,
}
META = {
    "actor": "student:1f0e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
    "correlation_id": "0c8a7b6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
    "causation_id": None,
}
EVENT_TYPE = "ActivityLogged"

# The store's append lock key (kept in step with shared/adapters/postgres_store.py).
APPEND_LOCK_KEY = 0x43494D


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine_facts(pg_url: str | None = None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            facts["ram_gib"] = round(kb / 2**20, 1)
        facts["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    import sqlalchemy

    facts["sqlalchemy"] = sqlalchemy.__version__
    try:
        import psycopg

        facts["psycopg"] = psycopg.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        facts["eventsourcing"] = version("eventsourcing")
        facts["gunicorn"] = version("gunicorn")
    except Exception:
        pass
    if pg_url:
        try:
            import psycopg

            with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
                facts["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
                facts["pg_fsync"] = conn.execute("SHOW fsync").fetchone()[0]
                facts["pg_synchronous_commit"] = conn.execute("SHOW synchronous_commit").fetchone()[0]
        except Exception as exc:
            facts["postgresql"] = f"unknown ({exc})"
    return facts


def libpq_url(url: str) -> str:
    """postgresql+psycopg://... -> postgresql://... (what libpq understands)."""
    if url.startswith("postgresql+"):
        return "postgresql://" + url.split("://", 1)[1]
    return url


def sa_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def pg_reset(pg_url: str) -> None:
    """Drop every table the benchmarks create (store, raw, peer) so each cell starts empty."""
    import psycopg

    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        conn.execute(
            "DROP TABLE IF EXISTS events, idempotency_keys, stored_events CASCADE;"
            "DROP SEQUENCE IF EXISTS events_position_seq CASCADE;"
        )
        conn.execute("DROP FUNCTION IF EXISTS es_insert_events_uuid CASCADE")
        conn.execute("DROP TYPE IF EXISTS stored_event_uuid CASCADE")


def pg_checkpoint(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")


def git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except Exception:
        return "unknown"


def mint_api_token(settings: Any, scopes: tuple[str, ...], name: str = "bench") -> str:
    """A fresh API token with `scopes` in the identity database `settings` name (the one the
    services under test read): the benchmarks call the API as an integration would."""
    from shared.clock import SystemClock
    from shared.identity.wiring import build_identity

    identity = build_identity(clock=SystemClock(), identity_key=settings.identity_secret,
                              db_url=settings.identity_db_url)
    identity.store.create_schema()  # type: ignore[attr-defined]
    return identity.api_tokens.create(name, scopes).token
