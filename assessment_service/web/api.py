"""The assessment JSON API: review queue, student overviews, projection status and the status feed."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from assessment_service import queries
from assessment_service.bootstrap import AssessmentContext
from shared.adapters.feed import event_to_json
from shared.errors import NotFound, ValidationFailed
from shared.validation import is_uuid
from shared.web.access import access, student_record, token_scope

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


@bp.get("/review-queue")
@access(token_scope(SCOPE_READ))
def review_queue() -> Response:
    limit = _int_arg("limit", 200, 1, 1000)
    with context().reader.connect() as conn:
        items = queries.review_queue_items(conn, limit)
    return _no_store(jsonify({"items": items, "count": len(items)}))


@bp.get("/students/<student_id>")
@access(student_record(write=False, scope=SCOPE_READ))
def student(student_id: str) -> Response:
    if not is_uuid(student_id):
        raise NotFound("No such student.")
    with context().reader.connect() as conn:
        overview = queries.student_overview(conn, student_id)
    if overview is None:
        raise NotFound("No such student.")
    return _no_store(jsonify(overview))


@bp.get("/projections")
@access(token_scope(SCOPE_OPS))
def projections() -> Response:
    return _no_store(jsonify({"projections": [s.as_dict() for s in context().runner.status()]}))


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
