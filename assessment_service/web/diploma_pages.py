"""Diploma pages.

- `/students/<id>/diploma`: the student's diplomas (number, status, download, verification
  link); for staff of the department the Diploma Supplement line; for its coordinators the forms
  to revoke, re-issue a corrected one, or issue one by hand with a reason. The student sees their
  own (read only).
- `/diplomas/<id>.pdf`: the stored PDF, for the holder and staff of the department.
- `/departments/<code>/diplomas` (`.csv`): the department's issued diplomas, for its staff, and
  the CSV the registry imports.
- `/verify/<code>` (`.json`, or `Accept: application/json`): public, no sign-in: valid or revoked,
  for whom, what, when, by whom. After the holder's erasure: only that the number existed and
  when it was issued.

Someone who may not see a student, a diploma or a department gets 404, as for an unknown one.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import TextAreaField
from wtforms.validators import InputRequired, Length

from assessment_service import (
    credential_services,
    diploma_queries,
    diploma_services,
    diplomas,
    presentation_queries,
    services,
)
from assessment_service.bootstrap import AssessmentContext
from assessment_service.presentation_services import may_manage
from assessment_service.web.forms import DecisionForm, labels_for
from assessment_service.web.presentation_api import PERSON, _principal
from shared.application import RequestContext
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.web.access import PUBLIC, access, current_caller
from shared.web.errors import correlation_id

bp = Blueprint("diploma_pages", __name__)

_CODE = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")

DIPLOMA_TEXTS = labels_for(tuple(reason.code for reason in diplomas.REASONS), {
    "not_eligible": _l("The student is not eligible for the diploma."),
    "diploma_live": _l("The student already has a valid diploma. Revoke it first, or re-issue it."),
    "diploma_revoked": _l("This diploma is already revoked."),
    "no_signatories": _l("No signatory is configured for the department on this date."),
    "code_taken": _l("The verification code is taken; try again."),
    "student_erased": _l("The student's personal data has been erased: no diploma can be issued."),
})
FIELD_TEXTS = {"Write the reason.": _l("Write the reason.")}
STATUS_LABELS = {"valid": _l("Valid"), "revoked": _l("Revoked")}


class ReasonForm(DecisionForm):
    reason = TextAreaField(
        _l("Reason"), [InputRequired(_l("Write the reason.")), Length(max=diplomas.MAX_REASON,
                                                                     message=_l("Write at most 2000 characters."))],
        description=_l("Kept with the diploma's history; erased with the student's personal data."),
    )

    def translate(self, problem: Any) -> str:
        text = DIPLOMA_TEXTS.get(problem.code) or FIELD_TEXTS.get(problem.message)
        return str(text) if text is not None else super().translate(problem)


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _request(form: DecisionForm) -> RequestContext:
    return RequestContext(actor=current_caller().actor, correlation_id=correlation_id(), idempotency_key=form.token)


def _record_view(principal: Principal, student_id: str) -> None:
    """Staff shown a student's name: recorded before the page is sent (503 if it cannot be)."""
    if principal.account.student_id != student_id:
        req = RequestContext(actor=current_caller().actor, correlation_id=correlation_id())
        services.record_views(_context(), [student_id], principal.account_id, "student_overview", req)


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"diploma_status": lambda code: str(STATUS_LABELS.get(code, code))}


# -- the student's diplomas --------------------------------------------------------------------------


def _student_page(student_id: str, forms: dict[str, ReasonForm] | None = None, status: int = 200) -> tuple[str, int]:
    principal = _principal()
    ctx = _context()
    student = diploma_services.student_for(ctx, principal, student_id)
    own = principal.account.student_id == student_id
    coordinator = may_manage(principal, student["department"])
    with ctx.reader.connect() as conn:
        items = diploma_queries.of_student(conn, student_id)
        eligibility = presentation_queries.student_presentation(conn, student_id)
    _record_view(principal, student_id)
    forms = forms or {}
    for item in items:
        item["verify_url"] = diploma_services.verify_url(ctx, item["verification_code"])
        if not own:
            item["supplement"] = diploma_services.supplement_line(item, ctx)
            item["reasons"] = diploma_services.reasons(ctx, item)
    live = next((i for i in items if i["status"] == "valid"), None)
    may_issue = coordinator and live is None and eligibility["eligible"] and not student["erased"]

    def form(name: str) -> ReasonForm:
        found = forms.get(name)
        if found is None:
            found = ReasonForm(formdata=None, prefix=name)
            found.ensure_token()
        return found

    return render_template(
        "diplomas.html", student_id=student_id, student=student, items=items, own=own, coordinator=coordinator,
        eligible=eligibility["eligible"], may_issue=may_issue, live=live,
        issue_form=form("issue"), revoke_form=form("revoke"), reissue_form=form("reissue"),
        failed=next(iter(forms.values()), None),
    ), status


@bp.get("/students/<student_id>/diploma")
@access(PERSON)
def student_diploma(student_id: str) -> tuple[str, int]:
    return _student_page(student_id)


def _act(student_id: str, name: str, action: Any, done: str) -> Any:
    form = ReasonForm(prefix=name)
    if form.validate() and form.attempt(lambda: action(form)) is not None:
        flash(done, "info")
        return redirect(url_for("diploma_pages.student_diploma", student_id=student_id), 303)
    if not form.form_errors and not any(f.errors for f in form):
        form.form_errors.append(str(_l("The form could not be sent. Try again.")))
    return _student_page(student_id, {name: form}, 422)


@bp.post("/students/<student_id>/diploma/issue")
@access(PERSON)
def issue(student_id: str) -> Any:
    principal = _principal()
    student = diploma_services.student_for(_context(), principal, student_id)
    if not may_manage(principal, student["department"]):
        raise NotFound(diploma_services.NO_SUCH_STUDENT)
    return _act(student_id, "issue", lambda form: diploma_services.issue_by_hand(
        _context(), principal, student_id, form.reason.data, _request(form)),
        _("The diploma is issued. Its PDF is made within a few minutes."))


def _managed(diploma_id: str) -> dict[str, Any]:
    principal = _principal()
    found = diploma_services.diploma_for(_context(), principal, diploma_id)
    if not may_manage(principal, found["department"]):
        raise NotFound(diplomas.NO_SUCH_DIPLOMA)
    return found


@bp.post("/diplomas/<diploma_id>/revoke")
@access(PERSON)
def revoke(diploma_id: str) -> Any:
    found = _managed(diploma_id)
    return _act(found["student_id"], "revoke", lambda form: diploma_services.revoke(
        _context(), _principal(), diploma_id, form.reason.data, _request(form)),
        _("The diploma is revoked. Its verification page now says so."))


@bp.post("/diplomas/<diploma_id>/reissue")
@access(PERSON)
def reissue(diploma_id: str) -> Any:
    found = _managed(diploma_id)
    return _act(found["student_id"], "reissue", lambda form: diploma_services.reissue(
        _context(), _principal(), diploma_id, form.reason.data, _request(form)),
        _("A corrected diploma is issued and the earlier one revoked."))


@bp.get("/diplomas/<diploma_id>.pdf")
@access(PERSON)
def pdf(diploma_id: str) -> Response:
    """The stored PDF: the holder, or staff of the department (404 before it is rendered)."""
    principal = _principal()
    found = diploma_services.diploma_for(_context(), principal, diploma_id)
    body = diploma_services.stored_pdf(_context(), found)
    if body is None:
        raise NotFound("The diploma's PDF is not ready yet.")
    _record_view(principal, found["student_id"])
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{found["number"]}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- the department's list and the registry's CSV ---------------------------------------------------


def _department_items(code: str) -> list[dict[str, Any]]:
    principal = _principal()
    if not diploma_services.may_read(principal, code):
        raise NotFound("No such department.")
    with _context().reader.connect() as conn:
        items = diploma_queries.of_department(conn, code)
    student_ids = [i["student_id"] for i in items if i["holder_name"]]
    if student_ids:
        req = RequestContext(actor=current_caller().actor, correlation_id=correlation_id())
        services.record_views(_context(), student_ids, principal.account_id, "student_overview", req)
    return items


#: The registry's columns, in order (docs/diplomas.md).
CSV_COLUMNS = ("number", "status", "issued_on", "department", "student_id", "holder_name", "rule_set",
               "merits", "verification_code", "revoked_at", "replaces_number", "pdf_sha256")


@bp.get("/diplomas")
@access(PERSON)
def diplomas_home() -> Any:
    """Staff: their department's list (the nav's "Diplomas"); with several departments a choice."""
    principal = _principal()
    departments = sorted(set(principal.departments(Role.COORDINATOR)) | set(principal.departments(Role.ASSESSOR)))
    if not departments:
        raise NotFound("No such page.")
    if len(departments) == 1:
        return redirect(url_for("diploma_pages.department_diplomas", code=departments[0]), 303)
    return render_template("department_diplomas.html", code=None, departments=departments, items=[])


@bp.get("/departments/<code>/diplomas")
@access(PERSON)
def department_diplomas(code: str) -> str:
    items = _department_items(code)
    return render_template("department_diplomas.html", code=code, items=items)


@bp.get("/departments/<code>/diplomas.csv")
@access(PERSON)
def department_diplomas_csv(code: str) -> Response:
    items = _department_items(code)
    numbers = {i["diploma_id"]: i["number"] for i in items}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for i in items:
        writer.writerow([
            i["number"], i["status"], i["issued_on"], i["department"], i["student_id"], _cell(i["holder_name"] or ""),
            i["rule_set"], len(i["merits"]), i["verification_code"], i["revoked_at"] or "",
            numbers.get(i["replaces"] or "", ""), i["pdf_sha256"] or "",
        ])
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="cim-diplomas-{code}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _cell(value: str) -> str:
    """A spreadsheet must not read a name as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# -- the public verification page -------------------------------------------------------------------


def verification(ctx: AssessmentContext, code: str) -> dict[str, Any]:
    """What the public may know of the diploma with this code (NotFound for an unknown or
    malformed one): nothing more personal than the diploma itself shows; after the holder's
    erasure only the number and the date."""
    found = None
    if _CODE.match(code):
        with ctx.reader.connect() as conn:
            found = diploma_queries.by_code(conn, code)
    if found is None:
        raise NotFound("No such diploma.")
    body: dict[str, Any] = {"number": found["number"], "issued_on": found["issued_on"],
                            "status": found["status"], "erased": found["erased"]}
    if found["erased"] or not found["holder_name"]:
        body["erased"] = True
        return body
    department = ctx.catalogue.department(found["department"])
    doc_merits: list[dict[str, Any]] = []
    try:
        document = diploma_services.document(ctx, found)
    except Exception:  # the read models could not build it: show what the row says
        document = None
    if document is not None:
        doc_merits = [
            {"kind": {"en": m.kind.en, "sv": m.kind.sv}, "setting": m.setting, "country_code": m.country_code,
             "start_date": m.start_date.isoformat(), "end_date": m.end_date.isoformat()}
            for setting in ("abroad", "at_home", "digital") for m in document.merits_in(setting)
        ]
    body.update({
        "holder_name": found["holder_name"],
        "credential": "Certificate of International Merits (CIM)",
        "university": {"en": "Lund University", "sv": "Lunds universitet"},
        "department": {"code": found["department"],
                       "en": department.name.en if department else found["department"],
                       "sv": (department.name.sv or department.name.en) if department else found["department"]},
        "rule_set": found["rule_set"],
        "merits_count": len(found["merits"]),
        "merits": doc_merits,
        "signatories": [{"name": s["name"], "title": {"en": s["title_en"], "sv": s["title_sv"]}}
                        for s in found["signatories"]],
        "revoked_at": found["revoked_at"],
    })
    return body


def _swedish() -> bool:
    return str(get_locale() or "en").startswith("sv")


@bp.get("/verify/<code>")
@access(PUBLIC)
def verify(code: str) -> Any:
    as_json = code.endswith(".json")
    code = code.removesuffix(".json").upper()
    if not as_json:
        best = request.accept_mimetypes.best_match(["text/html", "application/json"])
        as_json = best == "application/json" and request.accept_mimetypes["application/json"] > \
            request.accept_mimetypes["text/html"]
    try:
        body = verification(_context(), code)
    except NotFound:
        if as_json:
            problem = jsonify({"type": "about:blank", "title": "Not Found", "status": 404,
                               "detail": "No diploma has this verification code."})
            problem.status_code = 404
            problem.mimetype = "application/problem+json"
            return problem
        return render_template("verify.html", found=None, code=code, sv=_swedish()), 404
    body["verification_code"] = code
    # The signed Open Badges 3.0 credential: /verify/<code>/credential.json (below).
    if not body.get("erased"):
        body["credential_url"] = url_for("diploma_pages.verify_credential", code=code)
    if as_json:
        response = jsonify(body)
    else:
        response = Response(render_template("verify.html", found=body, code=code, sv=_swedish()))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


# -- the Open Badges 3.0 credential (assessment_service/credential_services.py) ------------------------


def _json_document(body: dict[str, Any], filename: str | None = None) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False, indent=2), mimetype="application/json")
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Access-Control-Allow-Origin"] = "*"  # verifiers fetch these from anywhere
    return response


@bp.get("/verify/<code>/credential.json")
@access(PUBLIC)
def verify_credential(code: str) -> Response:
    """The holder's signed AchievementCredential (404 for an unknown code or an erased holder)."""
    code = code.upper()
    if not _CODE.match(code):
        raise NotFound("No such diploma.")
    signed = credential_services.credential(_context(), code)
    return _json_document(signed, f"cim-credential-{code}.json")


@bp.get("/credentials/issuers/<code>")
@access(PUBLIC)
def credential_issuer(code: str) -> Response:
    """The department's (issuer's) public keys: every key it ever signed with, so old credentials verify."""
    return _json_document(credential_services.issuer_document(_context(), code))


@bp.get("/credentials/status/<code>")
@access(PUBLIC)
def credential_status(code: str) -> Response:
    """The department's signed revocation list (W3C Bitstring Status List)."""
    return _json_document(credential_services.status_list(_context(), code))
