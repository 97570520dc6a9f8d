"""The intake JSON API: schema.load -> service -> JSON. Documented at /api/v1/openapi.json."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from marshmallow import Schema, ValidationError

from intake_service import domain
from intake_service.identity import current_actor
from intake_service.services import IntakeServices, Outcome, RequestContext
from intake_service.web.privacy import audit_staff_access
from intake_service.web.schemas import (
    ActivityRequest,
    CompleteStudiesRequest,
    FeedQuery,
    RegisterStudentRequest,
    SubmitReportRequest,
    WithdrawActivityRequest,
    WithdrawRegistrationRequest,
)
from shared.adapters.feed import event_to_json
from shared.errors import NotFound, UnsupportedMediaType, ValidationFailed
from shared.events import flatten_errors
from shared.validation import is_uuid
from shared.web.access import PUBLIC, access, student_record, token_scope
from shared.web.errors import correlation_id
from shared.web.json_body import load_json
from shared.web.privacy import download

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Scopes of API tokens (shared/identity): a token with an account acts as that account (a student:
# their own record only); a token without one is an integration's, acting on any student.
SCOPE_REGISTER = "intake:register"
SCOPE_WRITE = "intake:write"
SCOPE_READ = "intake:read"
SCOPE_FEED = "feed:read"

REGISTER = token_scope(SCOPE_REGISTER)
WRITE = student_record(write=True, scope=SCOPE_WRITE)
READ = student_record(write=False, scope=SCOPE_READ)
#: A report's PDF for the assessment service, which shows it to the report's assessors: the feed's
#: token (the feed already carries the report's answers), never a member of staff's own token.
ATTACHMENT_READ = student_record(write=False, scope=SCOPE_FEED)
FEED = token_scope(SCOPE_FEED)

_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_IF_MATCH = re.compile(r'^(?:W/)?"?(\d{1,9})"?$')


def services() -> IntakeServices:
    return current_app.extensions["cim.intake"]


def context() -> RequestContext:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.match(key):
        raise ValidationFailed(
            "Bad Idempotency-Key header.",
            {"Idempotency-Key": ["Use 1-200 visible ASCII characters."]},
        )
    expected = None
    if_match = request.headers.get("If-Match")
    if if_match is not None:
        match = _IF_MATCH.match(if_match.strip())
        if not match:
            raise ValidationFailed(
                "Bad If-Match header.", {"If-Match": ['Give the stream version, e.g. "3".']}
            )
        expected = int(match.group(1))
    return RequestContext(
        actor=current_actor(),
        correlation_id=correlation_id(),
        idempotency_key=key,
        expected_version=expected,
    )


def load_empty_or_json(schema: Schema) -> dict[str, Any]:
    if not request.get_data(cache=True) and request.mimetype in ("", "application/json"):
        return schema.load({})
    return load_json(schema)


def check_student_id(student_id: str) -> None:
    if not is_uuid(student_id):
        raise NotFound("No such student.")


def created(outcome: Outcome, location: str | None = None) -> Response:
    body = dict(outcome.result)
    body["version"] = outcome.version
    response = jsonify(body)
    response.status_code = 200 if outcome.replayed else 201
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["ETag"] = f'"{outcome.version}"'
    if location:
        response.headers["Location"] = location
    return response


def ok(outcome: Outcome) -> Response:
    response = created(outcome)
    response.status_code = 200
    return response


def _details(data: dict[str, Any]) -> domain.ActivityDetails:
    return domain.ActivityDetails(**data)


@bp.post("/students")
@access(REGISTER)
def register_student() -> Response:
    ctx = context()
    data = load_json(RegisterStudentRequest())
    outcome = services().register_student(domain.RegisterStudent(**data), ctx)
    sid = outcome.result["student_id"]
    return created(outcome, url_for("api.student_events", student_id=sid))


@bp.post("/students/<student_id>/activities")
@access(WRITE)
def log_activity(student_id: str) -> Response:
    ctx, data = _student_call(student_id, lambda: load_json(ActivityRequest()))
    return created(services().log_activity(student_id, _details(data), ctx))


def _student_call(student_id: str, load: Callable[[], dict[str, Any]]) -> tuple[RequestContext, dict[str, Any]]:
    """The request context and body of a call on a student's record, in the order a bad request
    is refused: the student's id, the headers, then the body."""
    check_student_id(student_id)
    ctx = context()
    return ctx, load()


def _activity_call(
    student_id: str, activity_id: str, load: Callable[[], dict[str, Any]]
) -> tuple[RequestContext, dict[str, Any]]:
    """As `_student_call`, then the activity's id."""
    ctx, data = _student_call(student_id, load)
    if not is_uuid(activity_id):
        raise NotFound("No such activity.")
    return ctx, data


@bp.post("/students/<student_id>/activities/<activity_id>/amendments")
@access(WRITE)
def amend_activity(student_id: str, activity_id: str) -> Response:
    ctx, data = _activity_call(student_id, activity_id, lambda: load_json(ActivityRequest()))
    return ok(services().amend_activity(student_id, activity_id, _details(data), ctx))


@bp.post("/students/<student_id>/activities/<activity_id>/withdrawal")
@access(WRITE)
def withdraw_activity(student_id: str, activity_id: str) -> Response:
    ctx, data = _activity_call(student_id, activity_id, lambda: load_empty_or_json(WithdrawActivityRequest()))
    return ok(services().withdraw_activity(student_id, activity_id, data["reason"], ctx))


@bp.post("/students/<student_id>/attachments")
@access(WRITE)
def upload_attachment(student_id: str) -> Response:
    check_student_id(student_id)
    ctx = context()
    if request.mimetype == "application/pdf":
        content, filename = request.get_data(), request.headers.get("X-Filename")
    elif request.mimetype == "multipart/form-data" and "file" in request.files:
        upload = request.files["file"]
        content, filename = upload.read(current_app.config["CIM_MAX_UPLOAD_BYTES"] + 1), upload.filename
    else:
        raise UnsupportedMediaType("Send the PDF as application/pdf, or as multipart field 'file'.")
    return created(services().upload_attachment(student_id, content, filename, ctx))


@bp.post("/students/<student_id>/reports")
@access(WRITE)
def submit_report(student_id: str) -> Response:
    ctx, data = _student_call(student_id, lambda: load_json(SubmitReportRequest()))
    outcome = services().submit_report(
        student_id, data["answers"], data["activity_ids"], data["attachment_id"], ctx
    )
    return created(outcome)


@bp.post("/students/<student_id>/reports/<report_id>/resubmission")
@access(WRITE)
def resubmit_report(student_id: str, report_id: str) -> Response:
    """A new round of a report whose revision was requested: the same body as a submission."""
    ctx, data = _student_call(student_id, lambda: load_json(SubmitReportRequest()))
    outcome = services().resubmit_report(
        student_id, report_id, data["answers"], data["activity_ids"], data["attachment_id"], ctx
    )
    return created(outcome)


@bp.post("/students/<student_id>/studies-completed")
@access(WRITE)
def complete_studies(student_id: str) -> Response:
    ctx, data = _student_call(student_id, lambda: load_json(CompleteStudiesRequest()))
    return ok(services().complete_studies(student_id, data["completed_on"], data["term"], ctx))


@bp.post("/students/<student_id>/withdrawal")
@access(WRITE)
def withdraw_registration(student_id: str) -> Response:
    ctx, data = _student_call(student_id, lambda: load_empty_or_json(WithdrawRegistrationRequest()))
    return ok(services().withdraw_registration(student_id, data["reason"], ctx))


@bp.get("/students/<student_id>/attachments/<attachment_id>")
@access(ATTACHMENT_READ)
def student_attachment(student_id: str, attachment_id: str) -> Response:
    """A report's PDF, for the assessment service's report page (assessment_service/intake_files.py)."""
    check_student_id(student_id)
    _filename, content = services().attachment(student_id, attachment_id)
    audit_staff_access(student_id, "attachment")  # a member of staff's own token is a staff read
    return download(content, "application/pdf", f"{attachment_id}.pdf")


@bp.get("/students/<student_id>/events")
@access(READ)
def student_events(student_id: str) -> Response:
    """The student's stream with its personal fields opened. A member of staff's read (a
    coordinator's account token) is recorded before it is answered, as the pages' are."""
    events = services().history(student_id)
    audit_staff_access(student_id, "events")
    response = jsonify(
        {
            "student_id": student_id,
            "version": len(events),
            "events": [event_to_json(e) for e in events],
        }
    )
    response.headers["ETag"] = f'"{len(events)}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/events")
@access(FEED)
def feed() -> Response:
    repeated = sorted(k for k in request.args if len(request.args.getlist(k)) > 1)
    if repeated:
        raise ValidationFailed("Bad query.", {k: ["Give this parameter once."] for k in repeated})
    try:
        query = FeedQuery().load(request.args.to_dict())
    except ValidationError as exc:
        raise ValidationFailed("Bad query.", flatten_errors(exc.messages)) from None
    store = services().store
    events = services().feed(query["after"], query["limit"])
    next_after = events[-1].position if events else query["after"]
    # A page shorter than asked for holds every event committed past `after` when it was read:
    # its last position is the head it saw (one query fewer on the path of every wake-up).
    head = next_after if 0 < len(events) < query["limit"] else max(store.head(), next_after)
    page = {
        "events": [event_to_json(e) for e in events],
        "next_after": next_after,
        "head": head,
    }
    # orjson: a page of 2,000 events in 0.7 ms instead of the 15 ms of Flask's json (sorted
    # keys, pure Python); the feed is what every catch-up and rebuild reads.
    return Response(orjson.dumps(page), mimetype="application/json")


#: The same feed view alone, for the intake's feed server (`create_feed_app`).
feed_bp = Blueprint("intake_feed", __name__, url_prefix="/api/v1")
feed_bp.add_url_rule("/events", view_func=feed, methods=["GET"])


@bp.get("/openapi.json")
@access(PUBLIC)
def openapi() -> Response:
    from intake_service.openapi import build_spec

    return jsonify(build_spec(services().catalogue))
