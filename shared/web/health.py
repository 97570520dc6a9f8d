"""`/health` and `/ready` on every web process (issue 16.2), public and free of personal data.

- `GET /health`: the process answers (200 `{"status": "ok"}`); nothing else is touched. The
  supervisor and the compose health checks use it to tell a live process from a hung one.
- `GET /ready`: every check of this process (its database, Redis, the feed it reads, the
  projections' lag) passes → 200; otherwise 503 naming each failing check, e.g.
  `{"status": "unavailable", "failing": ["redis"], "checks": {"redis": "unreachable", ...}}`.
  Each check says only "ok" or a short fixed reason: never an exception's text (which can name
  hosts, users or rows)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import redis
from flask import Blueprint, Flask, Response, jsonify

from shared.web.access import PUBLIC, access

log = logging.getLogger(__name__)

#: A readiness check: None when fine, else a short fixed reason ("unreachable", "lag 5200 > 5000").
Check = Callable[[], str | None]

#: The largest projection lag (events behind the feed head) `/ready` accepts on the assessment side.
READY_MAX_LAG = 5000


#: Less free space than this where an embedded (SQLite) database lives: `/ready` says so (a full
#: disk answers every write with 503; a page of projected events needs a few MB of WAL).
DISK_MIN_FREE_BYTES = 16 * 1024 * 1024


def redis_check(url: str) -> Check:
    """Redis answers PING within a second. A Redis that cannot persist (its disk full: it then
    refuses writes, and PING, with MISCONF) is "refusing writes", not "unreachable"."""

    def check() -> str | None:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.ping()
        except redis.ResponseError as error:
            if str(error).startswith("MISCONF"):
                return "refusing writes (cannot persist: disk full?)"
            raise
        finally:
            client.close()
        return None

    return check


def sqlite_directory(db_url: str) -> Path | None:
    """The directory of an SQLite database file named by `db_url`; None for any other database."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).resolve().parent


def disk_check(directory: Path, min_free: int = DISK_MIN_FREE_BYTES) -> Check:
    """At least `min_free` bytes free on the filesystem of `directory`."""

    def check() -> str | None:
        free = shutil.disk_usage(directory).free
        if free < min_free:
            return f"full: {free // (1024 * 1024)} MB free < {min_free // (1024 * 1024)} MB"
        return None

    return check


def storage_checks(*db_urls: str) -> dict[str, Check]:
    """A `disk` check for the directories of the SQLite databases among `db_urls` (none on
    PostgreSQL: its disk is its server's to watch)."""
    directories = sorted({d for d in map(sqlite_directory, db_urls) if d is not None})
    if not directories:
        return {}

    def check() -> str | None:
        reasons = [r for r in (disk_check(d)() for d in directories) if r]
        return "; ".join(reasons) or None

    return {"disk": check}


def install_health(app: Flask, checks: Mapping[str, Check]) -> None:
    """Register /health and /ready on `app`, with this process's readiness checks."""
    bp = Blueprint("ops", __name__)

    @bp.get("/health")
    @access(PUBLIC)
    def health() -> Response:
        return jsonify(status="ok")

    @bp.get("/ready")
    @access(PUBLIC)
    def ready() -> tuple[Response, int]:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                reason = check()
            except Exception as error:  # any failure of a dependency is "not ready", never a 500
                log.warning("readiness check failed", extra={"check": name, "error": type(error).__name__})
                reason = "unreachable"
            results[name] = reason or "ok"
        failing = [name for name, result in results.items() if result != "ok"]
        body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": results}
        answer = jsonify(body)
        answer.headers["Cache-Control"] = "no-store"
        return answer, 503 if failing else 200

    app.register_blueprint(bp)
