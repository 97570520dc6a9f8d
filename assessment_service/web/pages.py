"""Server-rendered pages, in English and Swedish: the review queue, a report, and the decision
forms (assign and unassign assessors, declare a conflict of interest).

Every staff view of a student's personal data is recorded (`PersonalDataViewed`) before the page
is rendered. Forms carry a one-time token used as the idempotency key; a successful POST answers
303 (post/redirect/get); a refused form is shown again with its errors (422), nothing stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_interval
from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as Redirect

from assessment_service import queries, services
from assessment_service.bootstrap import AssessmentContext
from assessment_service.web.access_rules import (
    may_read_report,
    queue_reader,
    report_assignee,
    report_coordinator,
    report_facts,
    report_reader,
)
from assessment_service.web.forms import (
    CONFLICT_REASON_LABELS,
    PAGE_TEXTS,
    AssignForm,
    ConflictForm,
    DecisionForm,
    UnassignForm,
)
from assessment_service.web.freshness import pipeline_notice
from shared.catalogue import Catalogue
from shared.errors import NotFound, Problem
from shared.identity.models import Principal, Role
from shared.web.access import SIGNED_IN, Caller, access, current_caller
from shared.web.auth import identity
from shared.web.branding import show_department_look
from shared.web.errors import correlation_id
from shared.web.forms import input_attributes
from shared.web.privacy import download
from shared.web.setup import LOCALES
from shared.web.times import local_time
from shared.web.workspace import landing_path

bp = Blueprint("pages", __name__)

#: Assessors and coordinators; the page then shows each only what they may see.
REVIEWERS = queue_reader()

SETTINGS = {"abroad": _l("abroad"), "at_home": _l("at home"), "digital": _l("online")}


def _locale() -> str:
    return str(get_locale() or "en")


def _catalogue() -> Catalogue:
    return current_app.extensions["cim.assessment"].catalogue


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    lang = _locale()
    catalogue = _catalogue()

    def department_name(code: str | None) -> str:
        dept = catalogue.department(code or "")
        return dept.name.get(lang) if dept else (code or "")

    def programme_name(dept_code: str | None, code: str | None) -> str:
        dept = catalogue.department(dept_code or "")
        programme = dept.programme(code or "") if dept else None
        return programme.name.get(lang) if programme else (code or "")

    def kind_name(dept_code: str | None, code: str) -> str:
        dept = catalogue.department(dept_code or "")
        kind = dept.kind(code) if dept else None
        return kind.name.get(lang) if kind else code

    def question_text(dept_code: str | None, code: str) -> str:
        dept = catalogue.department(dept_code or "")
        question = next((q for q in dept.reflection_questions if q.code == code), None) if dept else None
        return question.text.get(lang) if question else code

    def ordered_answers(dept_code: str | None, answers: dict[str, str]) -> list[tuple[str, str]]:
        """Answers in the department's question order; any unknown codes after, by code."""
        dept = catalogue.department(dept_code or "")
        order = {q.code: i for i, q in enumerate(dept.reflection_questions)} if dept else {}
        return sorted(answers.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))

    def period(start: str | None, end: str | None) -> str:
        first, last = _day(start), _day(end)
        if first is None or last is None:
            return f"{start or ''}–{end or ''}"
        if first == last:
            return str(format_date(first, "medium"))
        return format_interval(first, last, "yMMMd", locale=lang)

    def when(value: str | None) -> str:
        return local_time(value, "d MMM y, HH:mm")  # Lund's time, 24-hour in both languages

    def language_url(code: str) -> str:
        args = request.args.to_dict()
        args["lang"] = code
        return f"{request.path}?{urlencode(args)}"

    caller = current_caller()

    def known_text(problem: object) -> str | None:
        """A refusal in the page's language when this service words its code (error pages)."""
        from assessment_service.web.presentation_pages import PRESENTATION_TEXTS

        if not isinstance(problem, Problem):
            return None
        text = PAGE_TEXTS.get(problem.code) or PRESENTATION_TEXTS.get(problem.code)
        return str(text) if text is not None else None

    return {
        "known_text": known_text,
        "staff_member": any(caller.has_role(role) for role in (Role.ASSESSOR, Role.COORDINATOR, Role.ADMINISTRATOR)),
        # Without the student's id: a page's header is the same whoever's page it is (S2).
        "my_cim_url": f"{current_app.config['CIM_SETTINGS'].intake_url.rstrip('/')}/my-cim"
        if caller.student_id else None,
        "current_locale": lang,
        # Staff pages say when the read models are behind or Redis is down (issue 16.3).
        "pipeline_notice": pipeline_notice,
        "department_name": department_name,
        "programme_name": programme_name,
        "kind_name": kind_name,
        "question_text": question_text,
        "ordered_answers": ordered_answers,
        "setting_name": lambda code: str(SETTINGS.get(code, code)),
        "country_name": country_name,
        "period": period,
        "when": when,
        "language_url": language_url,
        "input_attributes": input_attributes,
        "conflict_reason": lambda code: str(CONFLICT_REASON_LABELS.get(code, code)),
    }


@bp.after_app_request
def _remember_language(response: Response) -> Response:
    chosen = request.args.get("lang")
    if chosen in LOCALES:
        response.set_cookie("lang", chosen, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                            secure=current_app.config["CIM_SETTINGS"].cookie_secure)  # as the session cookie
    return response


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _staff() -> tuple[Caller, Principal]:
    caller = current_caller()
    if caller.principal is None:  # the rules let no one else through
        raise NotFound("No such report.")
    return caller, caller.principal


def _request(form: DecisionForm | None = None) -> services.RequestContext:
    caller = current_caller()
    return services.RequestContext(
        actor=caller.actor, correlation_id=correlation_id(), idempotency_key=form.token if form else None
    )


def _record_views(principal: Principal, student_ids: list[str], what: str) -> None:
    """Before rendering: a failure to record (503) shows nothing."""
    if student_ids:
        services.record_views(_context(), student_ids, principal.account_id, what, _request())


def _staff_names(account_ids: list[str]) -> dict[str, str]:
    store = identity().store
    out = {}
    for account_id in dict.fromkeys(account_ids):
        account = store.get_account(account_id)
        out[account_id] = account.display_name if account and account.display_name else _("Former member of staff")
    return out


def country_name(code: str | None) -> str:
    """A country's name in the page's language (Babel's CLDR data), its code if unknown."""
    from babel import Locale

    if not code:
        return ""
    return str(Locale.parse(str(get_locale() or "en")).territories.get(code, code))


def _see_report(report_id: str) -> Redirect:
    return redirect(url_for("pages.report", report_id=report_id), code=303)


def _see_reviews(report_id: str) -> Redirect:
    return redirect(url_for("pages.reviews_page", report_id=report_id), code=303)


@bp.get("/")
@access(SIGNED_IN)
def home() -> Redirect:
    """The service's address leads each person to their work (shared/web/workspace.py): staff to
    the queue (an administrator to the outbox), a student to My CIM on the intake."""
    caller = current_caller()
    work = landing_path(caller.principal)
    if work is not None:
        return redirect(work, code=303)
    intake = current_app.config["CIM_SETTINGS"].intake_url.rstrip("/")
    return redirect(f"{intake}/my-cim" if caller.student_id else f"{intake}/register", code=303)


@bp.get("/review-queue")
@bp.get("/queue")
@access(REVIEWERS)
def review_queue() -> tuple[str, int]:
    """The review queue as a table (assessment_service/web/queue_pages.py)."""
    from assessment_service.web.queue_pages import queue_view

    return queue_view()


def _assessor_choices(detail: dict[str, Any], *, include_assigned: bool = False) -> list[tuple[str, str]]:
    """The department's assessors not conflicted with the student; those assigned already are
    offered only when checking a sent form (a double click names one, and is answered)."""
    assigned = set() if include_assigned else set(detail["assessor_account_ids"])
    candidates = [
        (account_id, name)
        for account_id, name in services.assessors_of_department(identity(), detail["department"])
        if account_id not in assigned
    ]
    with _context().reader.connect() as conn:
        return [c for c in candidates if not queries.conflicted_with_student(conn, detail["student_id"], c[0])]


def _report_page(
    report_id: str,
    *,
    assign_form: AssignForm | None = None,
    conflict_form: ConflictForm | None = None,
    unassign_form: UnassignForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    _caller, principal = _staff()
    from assessment_service import queue_queries
    from assessment_service.web.queue_pages import STATE_LABELS  # it imports this module

    with _context().reader.connect() as conn:
        detail = queries.report_detail(conn, report_id)
        state = queue_queries.report_state(conn, report_id)
    facts = report_facts(report_id)
    if detail is None or facts is None or not may_read_report(principal, facts):
        raise NotFound("No such report.")
    _record_views(principal, [detail["student_id"]], "report")
    show_department_look(detail["department"])  # the report's department's look (config/branding.toml)
    coordinator = principal.has_role(Role.COORDINATOR, detail["department"])
    assigned = principal.account_id in detail["assessor_account_ids"]
    if coordinator and detail["waiting_for_review"]:
        assign_form = assign_form or AssignForm.build(_assessor_choices(detail), formdata=None)
        assign_form.ensure_token()
    else:
        assign_form = None
    if assigned:
        conflict_form = conflict_form or ConflictForm(formdata=None)
        conflict_form.ensure_token()
    else:
        conflict_form = None
    names = _staff_names(detail["assessor_account_ids"] + [c["assessor_account_id"] for c in detail["conflicts"]])
    return render_template(
        "report.html",
        report=detail,
        # "Waiting for review" (the template's) until assigned; then the state the queue shows.
        review_state=str(STATE_LABELS[state]) if state not in (None, "waiting") and detail["waiting_for_review"]
        else None,
        staff_names=names,
        coordinator=coordinator,
        assign_form=assign_form,
        conflict_form=conflict_form,
        unassign_form=unassign_form,
        new_token=lambda: str(uuid.uuid4()),
    ), status


def _decided(form: DecisionForm, action: Any) -> bool:
    """Run a decision for a valid form; a refusal goes onto the form (and False is returned)."""
    if not form.validate():
        return False

    def decide() -> bool:
        action(_request(form))
        return True

    return form.attempt(decide) is not None


@bp.get("/reports/<report_id>")
@access(report_reader())
def report(report_id: str) -> tuple[str, int]:
    return _report_page(report_id)


@bp.get("/reports/<report_id>/report.pdf")
@access(report_reader())
def report_pdf(report_id: str) -> Response:
    """The report's PDF for those who may read the report, fetched from the intake
    (assessment_service/intake_files.py); recorded as a staff view of the report."""
    _caller, principal = _staff()
    with _context().reader.connect() as conn:
        detail = queries.report_detail(conn, report_id)
    if detail is None or not detail.get("attachment_id"):
        raise NotFound("This report has no PDF.")
    content = current_app.extensions["cim.intake_files"](detail["student_id"], detail["attachment_id"])
    if content is None:
        raise NotFound("This report has no PDF.")
    _record_views(principal, [detail["student_id"]], "report")
    return download(content, "application/pdf", f"report-{report_id}.pdf")


@bp.post("/reports/<report_id>/assign")
@access(report_coordinator())
def assign(report_id: str) -> Any:
    _caller, principal = _staff()
    with _context().reader.connect() as conn:
        detail = queries.report_detail(conn, report_id)
    if detail is None:
        raise NotFound("No such report.")
    form = AssignForm.build(_assessor_choices(detail, include_assigned=True))
    chosen = form.assessor.data
    if _decided(form, lambda req: services.assign_assessor(_context(), identity(), principal, report_id, chosen, req)):
        flash(_("%(name)s is assigned to this report.", name=_staff_names([chosen])[chosen]), "info")
        return _see_report(report_id)
    form.assessor.choices = AssignForm.build(_assessor_choices(detail)).assessor.choices
    return _report_page(report_id, assign_form=form, status=422)


def _form_decision(
    report_id: str, form_name: str, form: DecisionForm, decide: Callable[[Principal, Any], Any],
    done: Callable[[], str], then: Redirect, page: Callable[..., tuple[str, int]] | None = None,
) -> Any:
    """Record the decision of a valid `form` (flashing `done()`, then redirecting), or show the
    page (the report page unless given) again with the form and its errors (422)."""
    _caller, principal = _staff()
    if _decided(form, lambda req: decide(principal, req)):
        flash(done(), "info")
        return then
    return (page or _report_page)(report_id, **{form_name: form}, status=422)


@bp.post("/reports/<report_id>/unassign")
@access(report_coordinator())
def unassign(report_id: str) -> Any:
    form = UnassignForm()
    chosen = form.assessor.data or ""
    return _form_decision(
        report_id, "unassign_form", form,
        lambda principal, req: services.unassign_assessor(_context(), principal, report_id, chosen, req),
        lambda: _("%(name)s is no longer assigned to this report.", name=_staff_names([chosen])[chosen]),
        _see_report(report_id),
    )


@bp.post("/reports/<report_id>/conflict")
@access(report_assignee())
def conflict(report_id: str) -> Any:
    form = ConflictForm()
    reason = form.reason.data or ""
    return _form_decision(
        report_id, "conflict_form", form,
        lambda principal, req: services.declare_conflict(_context(), principal, report_id, reason, req),
        lambda: _("Your conflict of interest is recorded, and you are no longer assigned to that report."),
        redirect(url_for("pages.review_queue"), code=303),
    )
