"""The assessment JSON API: review queue, reports, student overviews, projection status and the
status feed. Access: assessment_service/web/access_rules.py; a token with an account behind it
sees what that account may see, and its views of personal data are recorded (PersonalDataViewed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request

from assessment_service import queries, services
from assessment_service.bootstrap import AssessmentContext
from assessment_service.web.access_rules import queue_reader, queue_scope, report_reader, student_reader
from shared.adapters.feed import event_to_json
from shared.errors import NotFound, ValidationFailed
from shared.identity.models import Role
from shared.validation import is_uuid
from shared.web.access import access, current_caller, token_scope
from shared.web.errors import correlation_id

bp = Blueprint("api", __name__, url_prefix="/api/v1")

SCOPE_READ = "assessment:read"
SCOPE_FEED = "feed:read"
SCOPE_OPS = "ops:read"


def context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationFailed("Bad query.", {name: [f"Give a whole number from {low} to {high}."]})
    return int(raw)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _record_staff_view(student_ids: list[str], what: str) -> None:
    """A token acting for a member of staff: record the view before answering. (A student
    reading their own overview, and an integration's token, are not staff views.)"""
    caller = current_caller()
    if caller.principal is None:
        return
    others = [s for s in student_ids if s != caller.student_id]
    if others:
        req = services.RequestContext(actor=caller.actor, correlation_id=correlation_id())
        services.record_views(context(), others, caller.principal.account_id, what, req)


@bp.get("/review-queue")
@access(queue_reader(scope=SCOPE_READ))
def review_queue() -> Response:
    limit = _int_arg("limit", 200, 1, 1000)
    principal = current_caller().principal
    scope = queue_scope(principal) if principal is not None else None
    with context().reader.connect() as conn:
        items = queries.review_queue_items(conn, limit, scope)
    _record_staff_view([i["student_id"] for i in items], "review_queue")
    return _no_store(jsonify({"items": items, "count": len(items)}))


def _read_one(read: Callable[[sa.Connection, str], dict[str, Any] | None], key: str, missing: str) -> dict[str, Any]:
    """What `read` finds for `key` in the read models, or NotFound (a malformed id alike)."""
    found = None
    if is_uuid(key):
        with context().reader.connect() as conn:
            found = read(conn, key)
    if found is None:
        raise NotFound(missing)
    return found


@bp.get("/reports/<report_id>")
@access(report_reader(scope=SCOPE_READ))
def report(report_id: str) -> Response:
    detail = _read_one(queries.report_detail, report_id, "No such report.")
    principal = current_caller().principal
    if principal is not None and not principal.has_role(Role.COORDINATOR, detail["department"]):
        detail.pop("conflicts")  # who declared what is for the coordinator, not for fellow assessors
    _record_staff_view([detail["student_id"]], "report")
    return _no_store(jsonify(detail))


@bp.get("/students/<student_id>")
@access(student_reader(scope=SCOPE_READ))
def student(student_id: str) -> Response:
    overview = _read_one(queries.student_overview, student_id, "No such student.")
    _record_staff_view([student_id], "student_overview")
    return _no_store(jsonify(overview))


@bp.get("/projections")
@access(token_scope(SCOPE_OPS))
def projections() -> Response:
    return _no_store(jsonify({"projections": [s.as_dict() for s in context().runner.status()]}))


@bp.get("/events")
@access(token_scope(SCOPE_FEED))
def own_events() -> Response:
    """The assessment service's own events (assignments, reviews, decisions, staff views) past
    `after`, in the intake feed's page format, personal fields opened: what the intake side
    projects to show each student the steps of their report."""
    after = _int_arg("after", 0, 0, 2**62)
    limit = _int_arg("limit", 100, 1, 5000)
    events = services.own_feed(context(), after, limit)
    next_after = events[-1].position if events else after
    head = max(context().store.head(), next_after)
    return _no_store(jsonify({"events": [event_to_json(e) for e in events], "next_after": next_after, "head": head}))


@bp.get("/status-feed")
@access(token_scope(SCOPE_FEED))
def status_feed() -> Response:
    """Students' statuses as `StudentStatusChanged` events past `after` (see queries.status_changes)."""
    after = _int_arg("after", 0, 0, 2**62)
    limit = _int_arg("limit", 100, 1, 5000)
    with context().reader.connect() as conn:
        events = queries.status_changes(conn, after, limit)
        head = queries.status_head(conn)
    next_after = events[-1].position if events else after
    return _no_store(
        jsonify({"events": [event_to_json(e) for e in events], "next_after": next_after, "head": max(head, next_after)})
    )
