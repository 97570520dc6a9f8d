"""JSON API for rulings on activities of a kind the catalogue lacks (assessment_service/rulings.py).

- POST /api/v1/activities/<activity_id>/ruling — a coordinator or assessor of the activity's
  department records the assessor group's ruling (`kind_label`, `outcome`, `kind`,
  `activity_class`, `rationale`); 201, or 200 when the same ruling was recorded already. Staff of
  another department get 404 like an unknown activity; bad input 422; another ruling already
  recorded 409. `Idempotency-Key` replays a repeated request.
- GET /api/v1/departments/<code>/rulings-awaited — the department's activities awaiting a ruling.
- GET /api/v1/departments/<code>/precedents — the department's rulings (no student named).
Only people (a session, or a token acting for an account) with a staff role of that department.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from assessment_service import queries, ruling_services
from assessment_service.bootstrap import AssessmentContext
from shared.application import RequestContext
from shared.errors import NotFound, ValidationFailed
from shared.identity.models import Role
from shared.web.access import Caller, Rule, access, current_caller
from shared.web.errors import correlation_id

bp = Blueprint("ruling_api", __name__, url_prefix="/api/v1")

_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_FIELDS = ("kind_label", "outcome", "kind", "activity_class", "rationale")


def _staff(caller: Caller, args: Any) -> bool:
    """A person holding the assessor or coordinator role somewhere; the view checks the department."""
    return caller.principal is not None and (caller.has_role(Role.ASSESSOR) or caller.has_role(Role.COORDINATOR))


RULING_STAFF = Rule("rulings:staff", _staff)


def context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _department(code: str) -> str:
    caller = current_caller()
    if caller.principal is None or not ruling_services.is_staff_of(caller.principal, code):
        raise NotFound("No such department.")
    return code


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/activities/<activity_id>/ruling")
@access(RULING_STAFF)
def rule(activity_id: str) -> tuple[Response, int]:
    body = request.get_json(silent=True) if request.mimetype == "application/json" else None
    if not isinstance(body, dict):
        raise ValidationFailed("Send a JSON object.", {"body": ["Send a JSON object with the ruling's fields."]})
    bad = {name: ["Give a string."] for name in _FIELDS
           if body.get(name) is not None and not isinstance(body[name], str)}
    if bad:
        raise ValidationFailed("Bad ruling.", bad)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.match(key):
        raise ValidationFailed(
            "Bad Idempotency-Key header.", {"Idempotency-Key": ["Use 1-200 visible ASCII characters."]}
        )
    caller = current_caller()
    if caller.principal is None:  # the rule lets only people through
        raise NotFound("No such activity.")
    req = RequestContext(actor=caller.actor, correlation_id=correlation_id(), idempotency_key=key)
    before = context().store.head()
    outcome = ruling_services.record_ruling(context(), caller.principal, activity_id, body, req)
    created = context().store.head() != before and not outcome.replayed
    return _no_store(jsonify({**outcome.result, "version": outcome.version})), 201 if created else 200


@bp.get("/departments/<code>/rulings-awaited")
@access(RULING_STAFF)
def awaited(code: str) -> Response:
    department = _department(code)
    rule_set = context().catalogue.department(department)
    listed = [k.code for k in rule_set.activity_kinds] if rule_set else []
    with context().reader.connect() as conn:
        items = queries.kinds_awaiting_ruling(conn, department, listed)
    return _no_store(jsonify({"items": items, "count": len(items)}))


@bp.get("/departments/<code>/precedents")
@access(RULING_STAFF)
def precedents(code: str) -> Response:
    department = _department(code)
    with context().reader.connect() as conn:
        items = queries.precedents(conn, department)
    return _no_store(jsonify({"items": items, "count": len(items)}))
