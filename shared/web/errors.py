"""One error handler for both apps: typed errors -> RFC 9457 problem JSON (API) or an error page;
sign-in required -> a redirect to the sign-in page (pages) or 401 with a Bearer challenge (API)."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, current_app, g, jsonify, redirect, render_template, request
from redis.exceptions import RedisError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from shared.errors import CimError, StorageUnavailable, ValidationFailed
from shared.web.access import SignInRequired

log = logging.getLogger(__name__)

_CORRELATION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def problem(status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None,
            code: str = "about:blank") -> Response:
    body: dict[str, Any] = {"type": code, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def wants_json() -> bool:
    """Errors under /api/ are JSON problem documents; so is every error of an app that has no
    pages at all (`CIM_JSON_ONLY`, the intake's feed server)."""
    return request.path.startswith("/api/") or bool(current_app.config.get("CIM_JSON_ONLY"))


def correlation_id() -> str:
    if "correlation_id" not in g:
        given = request.headers.get("X-Correlation-ID", "")
        g.correlation_id = given if _CORRELATION.match(given) else str(uuid.uuid4())
    return str(g.correlation_id)


def sign_in_url() -> str:
    """Where an anonymous browser is sent: the sign-in page, coming back here (GET only)."""
    target = request.full_path if request.method == "GET" else request.path
    target = target.rstrip("?")
    return "/auth/sign-in?" + urlencode({"next": target})


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(SignInRequired)
    def _sign_in(exc: SignInRequired) -> Any:
        if wants_json():
            response = problem(401, "sign in required", "Send an API token: `Authorization: Bearer <token>`.",
                               code=exc.code)
            response.headers["WWW-Authenticate"] = 'Bearer realm="cim"'
            return response
        return redirect(sign_in_url(), code=303)

    @app.errorhandler(CimError)
    def _cim_error(exc: CimError) -> Any:
        if exc.status >= 500:
            log.error("request failed: %s", exc.code, extra={"correlation_id": correlation_id()})
        fields = exc.fields if isinstance(exc, ValidationFailed) else None
        field = getattr(exc, "field", None)
        if field and not fields:
            fields = {field: [exc.message]}
        if wants_json():
            response = problem(exc.status, exc.code.replace("_", " "), exc.message, fields, exc.code)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="cim", error="invalid_token"'
            return response
        # The problem, not its English text: a page shows it by its code in the page's language.
        return render_template("error.html", status=exc.status, message=exc.problem), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if wants_json():
            response = problem(status, exc.name, exc.description or exc.name)
            if status == 405 and exc.get_response().headers.get("Allow"):
                response.headers["Allow"] = exc.get_response().headers["Allow"]
            if status == 429 and exc.get_response().headers.get("Retry-After"):
                response.headers["Retry-After"] = exc.get_response().headers["Retry-After"]
            return response
        return render_template("error.html", status=status, message=exc.description), status

    @app.errorhandler(sa_exc.OperationalError)
    def _database_unreachable(exc: sa_exc.OperationalError) -> Any:
        """A database that cannot be reached (stopped, restarting, a connection it dropped) where
        no adapter turned it into StorageUnavailable (the identity store's look-ups, say): 503,
        try again, as for the event store — not a 500. The pool has already dropped the broken
        connection, so the next request reconnects."""
        log.warning("database unreachable: %s", type(exc.orig).__name__ if exc.orig else "?",
                    extra={"correlation_id": correlation_id()})
        return _cim_error(StorageUnavailable("The database cannot be reached just now; try again shortly."))

    @app.errorhandler(RedisError)
    def _redis_unavailable(exc: RedisError) -> Any:
        """Redis (sessions, sign-in links, rate limits) cannot be reached or refuses writes (a
        full disk: MISCONF): 503, try again -- not a 500. Reads of a signed-in staff member go on
        meanwhile (shared.identity.sessions.RedisSessionStore); signing in waits for Redis."""
        log.warning("redis unavailable: %s", type(exc).__name__, extra={"correlation_id": correlation_id()})
        return _cim_error(StorageUnavailable("The session store cannot be reached just now; try again shortly."))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unexpected error", extra={"correlation_id": correlation_id()})
        if wants_json():
            return problem(500, "Internal Server Error", "Something went wrong on our side.")
        return render_template("error.html", status=500, message="Something went wrong."), 500
