"""The JSON API of diplomas (on the assessment API blueprint, /api/v1):

- GET  /students/<id>/diplomas              the student's diplomas (the student, staff of the department)
- POST /students/<id>/diplomas              a coordinator issues one by hand: `{"reason"}`
- GET  /diplomas/<id>                        one diploma (the holder, staff of the department)
- POST /diplomas/<id>/revocation             a coordinator revokes it: `{"reason"}`
- POST /diplomas/<id>/reissue                a coordinator re-issues a corrected one: `{"reason"}`
- GET  /departments/<code>/diplomas          the department's diplomas (its staff)

Only people: a session, or a token made for their account with the scope `assessment:diplomas`
(an integration's token: 403). Someone who may not see a student, diploma or department gets
404, as for an unknown one. `Idempotency-Key` makes a repeated call answer once. The public
verification is `/verify/<code>.json` (assessment_service/web/diploma_pages.py).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from marshmallow import Schema, fields, validate

from assessment_service import diploma_queries, diploma_services, diplomas
from assessment_service.presentation_services import may_manage
from assessment_service.web.access_rules import with_token_scope
from assessment_service.web.api import _no_store, bp, context
from assessment_service.web.presentation_api import _person, _principal
from assessment_service.web.reviews_api import _created, _request
from shared.errors import NotFound
from shared.web.access import Rule, access
from shared.web.json_body import load_json

SCOPE_DIPLOMAS = "assessment:diplomas"
PERSON = with_token_scope(Rule("diplomas:person", _person), SCOPE_DIPLOMAS)

#: What the API answers of a diploma (never the sealed reasons).
_FIELDS = ("diploma_id", "student_id", "department", "number", "year", "sequence", "status_index", "issued_on",
           "rule_set", "verification_code", "merits", "signatories", "issued_by", "by_hand", "status", "revoked_at",
           "revoked_by", "replaces", "replaced_by", "pdf_sha256", "holder_name", "erased")


class ReasonRequest(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, diplomas.MAX_REASON))


def _public(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: item.get(k) for k in _FIELDS}
    out["verify_url"] = diploma_services.verify_url(context(), item["verification_code"])
    return out


@bp.get("/students/<student_id>/diplomas")
@access(PERSON)
def student_diplomas(student_id: str) -> Response:
    principal = _principal()
    diploma_services.student_for(context(), principal, student_id)  # 404 unless allowed
    with context().reader.connect() as conn:
        items = [_public(i) for i in diploma_queries.of_student(conn, student_id)]
    if principal.account.student_id != student_id and items:
        from assessment_service.web.diploma_pages import _record_view

        _record_view(principal, student_id)
    return _no_store(jsonify({"items": items, "count": len(items)}))


@bp.post("/students/<student_id>/diplomas")
@access(PERSON)
def issue_diploma(student_id: str) -> Response:
    data = load_json(ReasonRequest())
    principal = _principal()
    student = diploma_services.student_for(context(), principal, student_id)
    if not may_manage(principal, student["department"]):
        raise NotFound(diploma_services.NO_SUCH_STUDENT)
    return _created(diploma_services.issue_by_hand(context(), principal, student_id, data["reason"], _request()))


@bp.get("/diplomas/<diploma_id>")
@access(PERSON)
def diploma(diploma_id: str) -> Response:
    found = diploma_services.diploma_for(context(), _principal(), diploma_id)
    return _no_store(jsonify(_public(found)))


@bp.post("/diplomas/<diploma_id>/revocation")
@access(PERSON)
def revoke_diploma(diploma_id: str) -> Response:
    data = load_json(ReasonRequest())
    return _created(diploma_services.revoke(context(), _principal(), diploma_id, data["reason"], _request()))


@bp.post("/diplomas/<diploma_id>/reissue")
@access(PERSON)
def reissue_diploma(diploma_id: str) -> Response:
    data = load_json(ReasonRequest())
    return _created(diploma_services.reissue(context(), _principal(), diploma_id, data["reason"], _request()))


@bp.get("/departments/<code>/diplomas")
@access(PERSON)
def department_diplomas(code: str) -> Response:
    principal = _principal()
    if not diploma_services.may_read(principal, code):
        raise NotFound("No such department.")
    with context().reader.connect() as conn:
        items = [_public(i) for i in diploma_queries.of_department(conn, code)]
    named = [i["student_id"] for i in items if i["holder_name"]]
    if named:
        from assessment_service import services
        from shared.application import RequestContext
        from shared.web.access import current_caller
        from shared.web.errors import correlation_id

        req = RequestContext(actor=current_caller().actor, correlation_id=correlation_id())
        services.record_views(context(), named, principal.account_id, "student_overview", req)
    return _no_store(jsonify({"items": items, "count": len(items)}))
