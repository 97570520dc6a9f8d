"""One error handler for the app: typed errors -> RFC 9457 problem JSON (API) or an error page."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from shared.errors import CimError, ValidationFailed

log = logging.getLogger(__name__)

_CORRELATION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def correlation_id() -> str:
    if "correlation_id" not in g:
        given = request.headers.get("X-Correlation-ID", "")
        g.correlation_id = given if _CORRELATION.match(given) else str(uuid.uuid4())
    return str(g.correlation_id)


def problem(status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None,
            code: str = "about:blank") -> Response:
    body: dict[str, Any] = {"type": code, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CimError)
    def _cim_error(exc: CimError) -> Any:
        if exc.status >= 500:
            log.error("request failed: %s", exc.code)
        fields = exc.fields if isinstance(exc, ValidationFailed) else None
        if _wants_json():
            return problem(exc.status, exc.code.replace("_", " "), exc.message, fields, exc.code)
        return render_template("error.html", status=exc.status, message=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if _wants_json():
            return problem(status, exc.name, exc.description or exc.name)
        return render_template("error.html", status=status, message=exc.description), status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unexpected error")
        if _wants_json():
            return problem(500, "Internal Server Error", "Something went wrong on our side.")
        return render_template("error.html", status=500, message="Something went wrong."), 500
