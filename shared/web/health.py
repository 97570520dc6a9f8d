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
from collections.abc import Callable, Mapping

import redis
from flask import Blueprint, Flask, Response, jsonify

from shared.web.access import PUBLIC, access

log = logging.getLogger(__name__)

#: A readiness check: None when fine, else a short fixed reason ("unreachable", "lag 5200 > 5000").
Check = Callable[[], str | None]

#: The largest projection lag (events behind the feed head) `/ready` accepts on the assessment side.
READY_MAX_LAG = 5000


def redis_check(url: str) -> Check:
    """Redis answers PING within a second."""

    def check() -> str | None:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
        return None

    return check


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
