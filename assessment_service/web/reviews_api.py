"""The JSON API of reviews and decisions (on the assessment API blueprint, /api/v1):

- POST /reports/<id>/assessors a coordinator assigns an assessor of the department
- POST /reports/<id>/reviews   an assigned assessor reviews the current round
- POST /reports/<id>/decision  a coordinator of the department decides the current round
- GET  /reports/<id>/reviews   the reviews and decisions the caller may read
- GET  /reports/<id>/history   who was assigned, reviewed and decided, when, under which rule set

Writes need a person: a session, or a token made for their account with the scope
`assessment:review` (an integration's token decides nothing). A review is for an assessor
assigned to the report, a decision for a coordinator of its department: the other of the two
gets 403, anyone else 404, like an unknown report. `Idempotency-Key` makes a repeated call answer once.
"""

from __future__ import annotations

import re

from flask import Response, jsonify, request
from marshmallow import Schema, fields, validate

from assessment_service import reviews, services
from assessment_service.web.access_rules import report_coordinator, report_reader, report_reviewer, with_token_scope
from assessment_service.web.api import SCOPE_READ, _no_store, _record_staff_view, bp, context
from shared.errors import NotFound, ValidationFailed
from shared.identity.models import Principal
from shared.web.access import Forbidden, access, current_caller
from shared.web.auth import identity
from shared.web.errors import correlation_id
from shared.web.json_body import load_json

SCOPE_REVIEW = "assessment:review"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class ReviewRequest(Schema):
    verdicts = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    comments = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    recommendation = fields.String(required=True)


class DecisionRequest(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(reviews.OUTCOMES))
    summary = fields.String(load_default="", validate=validate.Length(max=reviews.MAX_SUMMARY))


def _staff() -> Principal:
    principal = current_caller().principal
    if principal is None:  # the rule lets no one else through
        raise NotFound("No such report.")
    return principal


def _request() -> services.RequestContext:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.match(key):
        raise ValidationFailed(
            "Bad Idempotency-Key header.", {"Idempotency-Key": ["Use 1-200 visible ASCII characters."]}
        )
    return services.RequestContext(actor=current_caller().actor, correlation_id=correlation_id(), idempotency_key=key)


def _created(outcome: services.Outcome) -> Response:
    response = jsonify({**outcome.result, "version": outcome.version})
    response.status_code = 200 if outcome.replayed else 201
    return _no_store(response)


class AssignRequest(Schema):
    assessor_account_id = fields.String(required=True, validate=validate.Length(1, 36))


@bp.post("/reports/<report_id>/assessors")
@access(with_token_scope(report_coordinator(), SCOPE_REVIEW))
def assign(report_id: str) -> Response:
    """A coordinator of the report's department assigns one of its assessors (as the report page's
    form does): 201, or 200 when they were assigned already."""
    by = _staff()
    data = load_json(AssignRequest())
    outcome = services.assign_assessor(context(), identity(), by, report_id, data["assessor_account_id"], _request())
    return _created(outcome)


@bp.post("/reports/<report_id>/reviews")
@access(with_token_scope(report_reviewer(), SCOPE_REVIEW))
def submit_review(report_id: str) -> Response:
    by = _staff()
    data = load_json(ReviewRequest())
    review = reviews.SubmitReview(by.account_id, data["verdicts"], data["comments"], data["recommendation"])
    return _created(services.submit_review(context(), by, report_id, review, _request()))


@bp.post("/reports/<report_id>/decision")
@access(with_token_scope(report_coordinator(), SCOPE_REVIEW))
def decide(report_id: str) -> Response:
    by = _staff()
    data = load_json(DecisionRequest())
    return _created(services.decide_report(context(), by, report_id, data["outcome"], data["summary"], _request()))


@bp.get("/reports/<report_id>/reviews")
@access(report_reader(scope=SCOPE_READ))
def report_reviews(report_id: str) -> Response:
    by = current_caller().principal
    if by is None:  # an integration's token: reviews are for the people who review
        raise Forbidden("Reviews are shown to the report's assessors and coordinators.")
    record = services.review_record(context(), by, report_id)
    _record_staff_view([record["student_id"]], "reviews")
    return _no_store(jsonify(record))


@bp.get("/reports/<report_id>/history")
@access(report_reader(scope=SCOPE_READ))
def report_history(report_id: str) -> Response:
    return _no_store(jsonify({"report_id": report_id, "history": services.report_history(context(), report_id)}))
