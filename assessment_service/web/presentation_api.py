"""The JSON API of presentations (on the assessment API blueprint, /api/v1):

- GET  /departments/<code>/occasions          the department's occasions to come (`?past=1`: all)
- POST /occasions                              a coordinator publishes an occasion
- GET  /occasions/<id>                         a coordinator: the occasion with its bookings
- POST /occasions/<id>/cancellation            a coordinator cancels it (and its bookings)
- POST /occasions/<id>/bookings                book a place: `{"student_id"}` (the student or a coordinator)
- POST /occasions/<id>/bookings/<sid>/cancellation   cancel that booking (the student or a coordinator)
- POST /occasions/<id>/attendance              a coordinator records `{"student_id", "presented": bool}`
- GET  /students/<id>/presentation             the student's bookings and eligibility for the diploma

Only people: a session, or a token made for their account with the scope
`assessment:presentations` (an integration's token: 403). Someone who may not see an occasion
or a student gets 404, as for an unknown one. `Idempotency-Key` makes a repeated call answer once.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from marshmallow import Schema, fields, validate

from assessment_service import presentation_queries, presentation_services, presentations
from assessment_service.events import OCCASION_KINDS
from assessment_service.web.access_rules import with_token_scope
from assessment_service.web.api import _no_store, bp, context
from assessment_service.web.reviews_api import _created, _request
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.validation import is_uuid
from shared.web.access import Caller, Rule, access, current_caller
from shared.web.json_body import load_json

SCOPE_PRESENTATIONS = "assessment:presentations"


def _person(caller: Caller, args: Any) -> bool:
    """A signed-in person; each view checks what they may do (404 otherwise)."""
    if caller.principal is None:
        raise NotFound("Not found.")
    return True


PERSON = with_token_scope(Rule("presentations:person", _person), SCOPE_PRESENTATIONS)


class OccasionRequest(Schema):
    department = fields.String(required=True, validate=validate.Length(1, 64))
    kind = fields.String(required=True, validate=validate.OneOf(OCCASION_KINDS))
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    place = fields.String(required=True, validate=validate.Length(1, presentations.MAX_PLACE))
    capacity = fields.Integer(required=True, strict=True, validate=validate.Range(1, presentations.MAX_CAPACITY))


class BookingRequest(Schema):
    student_id = fields.String(required=True, validate=validate.Length(1, 36))


class AttendanceRequest(Schema):
    student_id = fields.String(required=True, validate=validate.Length(1, 36))
    presented = fields.Boolean(required=True, truthy={True}, falsy={False})


def _principal() -> Principal:
    principal = current_caller().principal
    if principal is None:  # the rule lets only people through
        raise NotFound("Not found.")
    return principal


def _staff_departments(principal: Principal) -> set[str]:
    return set(principal.departments(Role.COORDINATOR)) | set(principal.departments(Role.ASSESSOR))


def _student_department(principal: Principal) -> str | None:
    student_id = principal.account.student_id
    if not student_id:
        return None
    with context().reader.connect() as conn:
        facts = presentation_queries.student_facts(conn, student_id)
    return facts.department if facts is not None else None


@bp.get("/departments/<code>/occasions")
@access(PERSON)
def department_occasions(code: str) -> Response:
    """Staff of the department, and its students, see its occasions to come; a coordinator may ask
    for the past ones too (`?past=1`)."""
    principal = _principal()
    staff = code in _staff_departments(principal)
    if not staff and _student_department(principal) != code:
        raise NotFound("No such department.")
    past = request.args.get("past") == "1" and principal.has_role(Role.COORDINATOR, code)
    after = None if past else context().clock.now().isoformat()
    with context().reader.connect() as conn:
        items = presentation_queries.occasions(conn, [code], after=after, open_only=not staff)
    return _no_store(jsonify({"items": items, "count": len(items)}))


@bp.post("/occasions")
@access(PERSON)
def publish_occasion() -> Response:
    data = load_json(OccasionRequest())
    outcome = presentation_services.publish_occasion(context(), _principal(), data, _request())
    return _created(outcome)


def _managed_occasion(occasion_id: str) -> dict[str, Any]:
    occasion = None
    if is_uuid(occasion_id):
        with context().reader.connect() as conn:
            occasion = presentation_queries.occasion(conn, occasion_id)
    if occasion is None or not presentation_services.may_manage(_principal(), occasion["department"]):
        raise NotFound(presentations.NO_SUCH_OCCASION)
    return occasion


@bp.get("/occasions/<occasion_id>")
@access(PERSON)
def occasion(occasion_id: str) -> Response:
    found = _managed_occasion(occasion_id)
    with context().reader.connect() as conn:
        found["bookings"] = presentation_queries.bookings(conn, occasion_id)
    return _no_store(jsonify(found))


@bp.post("/occasions/<occasion_id>/cancellation")
@access(PERSON)
def cancel_occasion(occasion_id: str) -> Response:
    return _created(presentation_services.cancel_occasion(context(), _principal(), occasion_id, _request()))


@bp.post("/occasions/<occasion_id>/bookings")
@access(PERSON)
def book(occasion_id: str) -> Response:
    data = load_json(BookingRequest())
    return _created(presentation_services.book(context(), _principal(), occasion_id, data["student_id"], _request()))


@bp.post("/occasions/<occasion_id>/bookings/<student_id>/cancellation")
@access(PERSON)
def cancel_booking(occasion_id: str, student_id: str) -> Response:
    outcome = presentation_services.cancel_booking(context(), _principal(), occasion_id, student_id, _request())
    return _created(outcome)


@bp.post("/occasions/<occasion_id>/attendance")
@access(PERSON)
def attendance(occasion_id: str) -> Response:
    data = load_json(AttendanceRequest())
    outcome = presentation_services.record_attendance(
        context(), _principal(), occasion_id, data["student_id"], data["presented"], _request()
    )
    return _created(outcome)


@bp.get("/students/<student_id>/presentation")
@access(PERSON)
def student_presentation(student_id: str) -> Response:
    presentation_services.student_facts(context(), _principal(), student_id)  # 404 unless allowed
    with context().reader.connect() as conn:
        found = presentation_queries.student_presentation(conn, student_id)
    return _no_store(jsonify(found))
