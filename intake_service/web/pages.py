"""The student pages: server-rendered forms over the intake use cases (works without JavaScript).

Every form carries a one-time token used as the idempotency key; every successful POST answers
303 (post/redirect/get); a refused form is shown again with its errors (422), nothing stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from babel.dates import format_interval
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_date, get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as Redirect

from intake_service import domain
from intake_service.events import (
    REGISTRY,
    ActivityAmended,
    ActivityLogged,
    ActivityWithdrawn,
    AttachmentUploaded,
    IntakeEvent,
    RegistrationWithdrawn,
    ReportResubmitted,
    ReportSubmitted,
    StudentErased,
    StudentRegistered,
    StudiesCompleted,
)
from intake_service.identity import current_actor
from intake_service.registration import MIN_DURATION_SECONDS, Registration
from intake_service.services import IntakeServices, Outcome, RequestContext
from intake_service.web.forms import (
    SETTING_LABELS,
    ActivityForm,
    PageForm,
    RegisterForm,
    StudiesCompletedForm,
    WithdrawForm,
    country_name,
    known_text,
    report_form,
)
from intake_service.web.precedents import activity_rulings, department_precedents
from intake_service.web.privacy import audit_staff_access
from shared.catalogue import Department, Text
from shared.completion import ActivityFact, Checklist, evaluate
from shared.errors import NotFound, Problem, RuleViolated
from shared.identity.models import Account
from shared.validation import is_uuid
from shared.web.access import PUBLIC, SIGNED_IN, access, current_caller, student_record
from shared.web.auth import identity, rotate_session
from shared.web.auth_pages import send_sign_in_link
from shared.web.branding import show_department_look
from shared.web.errors import correlation_id
from shared.web.forms import input_attributes
from shared.web.limits import signin_limited
from shared.web.setup import LOCALES

bp = Blueprint("forms", __name__)

T = TypeVar("T")

STUDENT_READ = student_record(write=False)
STUDENT_WRITE = student_record(write=True)

LANG_COOKIE_SECONDS = 365 * 24 * 3600


def services() -> IntakeServices:
    return current_app.extensions["cim.intake"]


def locale() -> str:
    return str(get_locale() or "en")


# -- what the pages show of a student ----------------------------------------------------------
@dataclass(frozen=True)
class TimelineEntry:
    occurred_at: datetime
    text: str


@dataclass(frozen=True)
class SubmittedReport:
    """A report as its latest round states it (`round` 1 when submitted, +1 per resubmission)."""

    occurred_at: datetime
    activity_titles: list[str]
    attachment: str | None
    report_id: str = ""
    round: int = 1
    answers: dict[str, str] | None = None  # None once erased
    activity_ids: tuple[str, ...] = ()
    attachment_id: str | None = None
    resubmitted_at: datetime | None = None


@dataclass(frozen=True)
class StudentPage:
    """One read of the student's stream, shaped for the pages."""

    student_id: str
    registration: StudentRegistered
    state: domain.StudentState
    department: Department | None
    timeline: list[TimelineEntry]  # newest first
    reports: list[SubmittedReport]
    studies_completed: StudiesCompleted | None

    @property
    def active(self) -> bool:
        return not self.state.withdrawn

    @property
    def current_activities(self) -> list[domain.Activity]:
        """The student's activities, the latest first (as the history and the reports)."""
        return by_date([a for a in self.state.activities.values() if not a.withdrawn])

    @property
    def withdrawn_activities(self) -> list[domain.Activity]:
        return by_date([a for a in self.state.activities.values() if a.withdrawn])

    @property
    def reports_newest_first(self) -> list[tuple[SubmittedReport, SubmittedReport | None]]:
        """Each report with the later report that replaced it (None for the latest), newest first."""
        later: list[SubmittedReport | None] = [*self.reports[1:], None]
        return list(zip(self.reports, later, strict=False))[::-1]  # no reports: none

    def report(self, report_id: str) -> SubmittedReport:
        found = next((r for r in self.reports if r.report_id == report_id), None) if is_uuid(report_id) else None
        if found is None:
            raise NotFound("No such report.")
        return found

    def activity(self, activity_id: str) -> domain.Activity:
        found = self.state.activities.get(activity_id) if is_uuid(activity_id) else None
        if found is None or found.withdrawn:
            raise NotFound("No such activity.")
        return found


def by_date(activities: list[domain.Activity]) -> list[domain.Activity]:
    """When the activity took place, the latest first: by start, then end, then title."""
    return sorted(
        activities, key=lambda a: (a.details.start_date, a.details.end_date, a.details.title.casefold()), reverse=True
    )


def own_student(student_id: str) -> StudentPage:
    """The student's page data. The endpoint's access rule (`STUDENT_READ`/`STUDENT_WRITE`) has
    already let only the student themself (or, for reads, a coordinator of their department)
    through; everyone else got the same 404 as for an unknown id."""
    if not is_uuid(student_id):
        raise NotFound("No such student.")
    return load_student(student_id)


def load_student(student_id: str) -> StudentPage:
    svc = services()
    recorded = svc.history(student_id)
    lang = locale()
    state = domain.StudentState()
    department: Department | None = None
    registration: StudentRegistered | None = None
    studies: StudiesCompleted | None = None
    attachments: dict[str, AttachmentUploaded] = {}
    timeline: list[TimelineEntry] = []
    reports: list[SubmittedReport] = []
    for stored in recorded:
        event = REGISTRY.decode_recorded(stored)
        if isinstance(event, StudentRegistered):
            registration = event
            department = svc.catalogue.department(event.department)
        elif isinstance(event, AttachmentUploaded):
            attachments[event.attachment_id] = event
        elif isinstance(event, StudiesCompleted):
            studies = event
        elif isinstance(event, ReportSubmitted | ReportResubmitted):
            titles = [
                state.activities[a].details.title if a in state.activities else "?" for a in event.activity_ids
            ]
            attached = attachments.get(event.attachment_id or "")
            earlier = next((r for r in reports if r.report_id == event.report_id), None)
            report = SubmittedReport(
                earlier.occurred_at if earlier else stored.occurred_at, titles, attached.filename if attached else None,
                event.report_id, getattr(event, "round", 1), event.answers, tuple(event.activity_ids),
                event.attachment_id, stored.occurred_at if earlier else None,
            )
            reports = [report if r is earlier else r for r in reports] if earlier else [*reports, report]
        timeline.append(TimelineEntry(stored.occurred_at, describe(event, state, department, lang)))
        state = domain.evolve(state, event)
    if registration is None:  # a stream without its registration is nobody's page
        raise NotFound("No such student.")
    # the student's pages wear their department's look (config/branding.toml)
    show_department_look(registration.department)
    timeline.reverse()
    return StudentPage(student_id, registration, state, department, timeline, reports, studies)


# -- readable texts ----------------------------------------------------------------------------
def text_of(value: Text | None, fallback: str, lang: str) -> str:
    return value.get(lang) if value is not None else fallback


def date_range(start: date, end: date) -> str:
    """'10 Jan – 1 Jun 2026' in the page's language."""
    if start == end:
        return format_date(start, "medium")
    return format_interval(start, end, skeleton="yMMMd", locale=locale())


def kind_name(department: Department | None, code: str, lang: str) -> str:
    kind = department.kind(code) if department else None
    return text_of(kind.name if kind else None, code, lang)


def activity_line(details: domain.ActivityDetails, lang: str) -> str:
    """'Exchange in Berlin (Germany), 10 Jan – 1 Jun 2026'."""
    if details.country_code:
        return _(
            "%(title)s (%(country)s), %(dates)s",
            title=details.title,
            country=country_name(details.country_code, lang),
            dates=date_range(details.start_date, details.end_date),
        )
    return _("%(title)s, %(dates)s", title=details.title, dates=date_range(details.start_date, details.end_date))


def describe(event: IntakeEvent, before: domain.StudentState, department: Department | None, lang: str) -> str:
    """One timeline line for an event, given the state before it."""
    match event:
        case StudentRegistered():
            dept = department
            programme = dept.programme(event.programme) if dept else None
            return _(
                "Registered for CIM: %(programme)s, %(department)s. Expected end of studies: %(term)s.",
                programme=text_of(programme.name if programme else None, event.programme, lang),
                department=text_of(dept.name if dept else None, event.department, lang),
                term=event.expected_end_term,
            )
        case ActivityLogged():
            return _("Activity logged: %(activity)s", activity=activity_line(event, lang))
        case ActivityAmended():
            return _("Activity amended: %(activity)s", activity=activity_line(event, lang))
        case ActivityWithdrawn():
            activity = before.activities.get(event.activity_id)
            title = activity.details.title if activity else "?"
            return _("Activity withdrawn: %(title)s", title=title)
        case AttachmentUploaded():
            return ngettext(
                "PDF uploaded: %(filename)s (%(num)d page)",
                "PDF uploaded: %(filename)s (%(num)d pages)",
                event.pages,
                filename=event.filename,
            )
        case ReportSubmitted():
            return ngettext(
                "CIM report submitted, covering %(num)d activity",
                "CIM report submitted, covering %(num)d activities",
                len(event.activity_ids),
            )
        case ReportResubmitted():
            return ngettext(
                "CIM report resubmitted (round %(round)s), covering %(num)d activity",
                "CIM report resubmitted (round %(round)s), covering %(num)d activities",
                len(event.activity_ids),
                round=event.round,
            )
        case StudiesCompleted():
            return _(
                "Studies completed on %(date)s (%(term)s)",
                date=format_date(event.completed_on, "long"),
                term=event.term,
            )
        case RegistrationWithdrawn():
            return _("Registration for CIM withdrawn")
        case StudentErased():
            return _("Your personal data was erased")
    return _("Something else was recorded.")


# -- form plumbing -----------------------------------------------------------------------------
def context(form: PageForm, purpose: str = "") -> RequestContext:
    token = form.token
    key = f"{token}{purpose}" if token else None
    return RequestContext(actor=current_actor(), correlation_id=correlation_id(), idempotency_key=key)


def run(form: PageForm, action: Callable[[RequestContext], T]) -> T | None:
    """Run a use case for a valid form. A refusal is put on the form (and None returned)."""
    return form.attempt(lambda: action(context(form)))


def submitted(form: PageForm, action: Callable[[RequestContext], Outcome]) -> bool:
    """True when this is a POST whose form is valid and whose use case took it."""
    return request.method == "POST" and form.validate() and run(form, action) is not None


def show(template: str, form: PageForm, **values: Any) -> tuple[str, int]:
    """Render a form page: 422 when it comes back refused, 200 when first shown."""
    form.ensure_token()
    status = 422 if request.method == "POST" else 200
    return render_template(template, form=form, **values), status


def see_other(endpoint: str, **values: Any) -> Redirect:
    return redirect(url_for(endpoint, **values), code=303)


def to_my_cim(student_id: str) -> Redirect:
    return see_other("forms.my_cim", student_id=student_id)


def closed(student: StudentPage) -> Redirect | None:
    """A withdrawn registration takes no more forms: back to My CIM with a note."""
    if student.active or request.method == "POST":
        return None
    flash(_("This registration has been withdrawn; nothing more can be recorded."), "info")
    return to_my_cim(student.student_id)


# -- language ----------------------------------------------------------------------------------
@bp.after_request
def remember_language(response: Response) -> Response:
    chosen = request.args.get("lang")
    if chosen in LOCALES:
        response.set_cookie(
            "lang",
            chosen,
            max_age=LANG_COOKIE_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=current_app.config["CIM_SETTINGS"].cookie_secure,  # as the session cookie
        )
    return response


@bp.app_context_processor
def page_globals() -> dict[str, Any]:
    def language_url(code: str) -> str:
        args = request.args.to_dict()
        args["lang"] = code
        return f"{request.path}?{urlencode(args)}"

    return {
        "current_locale": locale(),
        "language_url": language_url,
        "session_student": current_caller().student_id,
        "caller": current_caller(),
        "known_text": known_text,
        "input_attributes": input_attributes,
    }


# -- pages -------------------------------------------------------------------------------------
@bp.get("/")
@access(PUBLIC)
def home() -> str:
    return render_template("home.html")


@bp.get("/my-cim")
@access(SIGNED_IN)
def my_own_cim() -> Any:
    """A student's own page without their id in the address: where the assessment pages' header
    links (staff go to the start page)."""
    student_id = current_caller().student_id
    return see_other("forms.my_cim", student_id=student_id) if student_id else see_other("forms.home")


def registration() -> Registration:
    """The register use case, wired to this app's intake services, identity and mailer."""

    def send_link(account: Account, token: str, *, key: str | None) -> bool:
        return send_sign_in_link(account, token, None, key=key)

    min_duration = current_app.config.get("CIM_REGISTER_MIN_SECONDS", MIN_DURATION_SECONDS)
    return Registration(services(), identity(), send_link, min_duration=min_duration)


@bp.route("/register", methods=["GET", "POST"])
@access(PUBLIC)
@signin_limited(methods=("POST",))
def register() -> Any:
    """Register for CIM (intake_service.registration says what happens). Anonymous: the answer
    is "check your e-mail" whether or not the address was known. Signed in without a student
    record (first SSO sign-in): on to My CIM. A signed-in student goes to My CIM."""
    caller = current_caller()
    if caller.student_id:
        return to_my_cim(caller.student_id)
    signed_in = caller.principal is not None
    if not signed_in and identity().oidc is not None:
        # With the university's SSO, students register after signing in with it.
        return redirect(url_for("auth.sign_in_page", next=url_for("forms.register")), code=303)
    form = RegisterForm.build(services().catalogue, locale())
    if signed_in and request.method == "GET" and caller.principal is not None:
        # what the university account told us, to correct if need be
        form.name.data = form.name.data or caller.principal.account.display_name
        form.email.data = form.email.data or caller.principal.account.email
    if request.method == "POST":
        # The same browser sending the same form again (back button, second click after the
        # first answer arrived) gets the first answer again.
        if not signed_in and form.token and form.token == session.get("register_token"):
            return see_other("auth.check_email", registered=1)
        if form.validate():
            use_case = registration()
            if signed_in:
                assert caller.account_id is not None
                account_id = caller.account_id
                done = run(form, lambda ctx: use_case.register_signed_in(account_id, form.command(), ctx, locale()))
                if done is not None and done.student_id is not None:
                    rotate_session()  # a privilege change (the student role)
                    flash(_("You are registered for CIM. Welcome!"), "success")
                    return to_my_cim(done.student_id)
            elif run(form, lambda ctx: use_case.register_anonymous(form.command(), ctx, locale())) is not None:
                session["register_token"] = form.token
                return see_other("auth.check_email", registered=1)
    return show("register.html", form)


@bp.get("/students/<student_id>")
@access(STUDENT_READ)
def my_cim(student_id: str) -> str:
    student = own_student(student_id)
    audit_staff_access(student_id, "my_cim")
    decisions = report_steps(student)
    booking = presentation(student_id)
    issued = diploma(student_id)
    own_page = current_caller().student_id == student_id
    return render_template(
        "my_cim.html",
        student=student,
        own_page=own_page,
        assessment_status=workflow_status(student, decisions, booking, issued, own_page=own_page)
        or assessment_status(student_id, student, own_page=own_page),
        diploma=issued,
        decisions=decisions,
        may_submit=new_report_refusal(student) is None,
        to_revise=report_to_revise(student, decisions),
        presentation=booking,
        deadline=deadline(student_id),
        rulings=activity_rulings(student_id, student.department, list(student.state.activities), locale()),
        assessment_url=current_app.config["CIM_SETTINGS"].assessment_url.rstrip("/"),
        kind_name=lambda code: kind_name(student.department, code, locale()),
        setting_label=lambda code: SETTING_LABELS.get(code, code),
        country=lambda code: country_name(code, locale()),
        dates=lambda details: date_range(details.start_date, details.end_date),
        department_name=text_of(
            student.department.name if student.department else None, student.registration.department, locale()
        ),
        programme_name=programme_name(student),
    )


ASSESSMENT_STATUS = {
    "registered": _l("Registered. Log your activities; submit your report when you are ready."),
    "studies completed": _l("Studies completed. Submit your report before the deadline."),
    "report submitted": _l("Report submitted. It is waiting for review by the assessors."),
    "withdrawn": _l("Withdrawn from CIM."),
}


#: The status ladder: a later step never shows an earlier one.
_STATUS_ORDER = ("registered", "studies completed", "report submitted", "withdrawn")


def own_status(student: StudentPage) -> str:
    """The step the student's own record shows: what they submitted is a fact the intake holds,
    so My CIM shows it at once, before the assessment side's status arrives."""
    if not student.active:
        return "withdrawn"
    if student.reports:
        return "report submitted"
    if student.studies_completed:
        return "studies completed"
    return "registered"


def assessment_status(student_id: str, student: StudentPage, *, own_page: bool = True) -> str | None:
    """The later of the student's own step and what the assessment side last said about them
    (delivered to intake by events). The page works without the assessment side's view."""
    from intake_service.assessment_view import status_for

    try:
        status = status_for(current_app._get_current_object(), student_id)  # type: ignore[attr-defined]
    except Exception:  # the view is a convenience; the student's own timeline is the record
        current_app.logger.warning("assessment status view unavailable", exc_info=True)
        status = None
    steps = [s for s in (status, own_status(student)) if s in _STATUS_ORDER]
    labels = ASSESSMENT_STATUS if own_page else STAFF_ASSESSMENT_STATUS
    label = labels.get(max(steps, key=_STATUS_ORDER.index)) if steps else None
    return str(label) if label else None


WORKFLOW_STATUS = {
    "diploma_issued": _l("Your diploma is issued."),
    "diploma_revoked": _l("Your diploma was revoked. Your coordinator can tell you why and what happens next."),
    "eligible": _l("Eligible for the diploma: your report is approved and your presentation held."),
    "eligible_without_presentation": _l("Eligible for the diploma: your report is approved."),
    "presentation_booked": _l("Report approved and presentation booked."),
    "approved": _l("Report approved. Book an occasion to present it."),
    "revision_requested": _l("Revision requested. Revise your report and resubmit it."),
    "rejected": _l("Report not approved. The assessors' reasons are shown with the report."),
    "in_review": _l("Report in review by the assessors."),
    "resubmitted": _l("Report resubmitted. It is waiting for review by the assessors."),
}


def workflow_step(student: StudentPage, decisions: dict[str, dict[str, Any]],
                  booking: dict[str, Any] | None, diploma: dict[str, Any] | None = None) -> str | None:
    """The student's step after submitting, from their latest report's round on the assessment
    side, their presentation and their diploma (all delivered by events); None before any of it.
    A diploma is the last step: issued, or revoked (a reissue shows as issued again)."""
    if not student.active or not student.reports:
        return None
    if diploma is not None:
        return "diploma_revoked" if diploma.get("revoked_at") else "diploma_issued"
    latest = decisions.get(student.reports[-1].report_id)
    state = latest["state"] if latest else None
    if state != "approved":
        return state if state in WORKFLOW_STATUS else None
    required = student.department.presentation_required if student.department else True
    if not required:
        return "eligible_without_presentation"
    if booking is not None and booking["status"] == "held":
        return "eligible"
    if booking is not None and booking["status"] == "booked" and not booking["cancelled"]:
        return "presentation_booked"
    return "approved"


#: The same steps as a member of staff reads them on a student's page: about the student, not to them.
STAFF_WORKFLOW_STATUS = {
    "diploma_issued": _l("The student's diploma is issued."),
    "diploma_revoked": _l("The student's diploma was revoked."),
    "eligible": _l("Eligible for the diploma: the report is approved and the presentation held."),
    "eligible_without_presentation": _l("Eligible for the diploma: the report is approved."),
    "presentation_booked": _l("Report approved and presentation booked."),
    "approved": _l("Report approved. The student books an occasion to present it."),
    "revision_requested": _l("Revision requested. The student revises the report and resubmits it."),
    "rejected": _l("Report not approved. The assessors' reasons are shown with the report."),
    "in_review": _l("Report in review by the assessors."),
    "resubmitted": _l("Report resubmitted. It is waiting for review by the assessors."),
}

STAFF_ASSESSMENT_STATUS = {
    "registered": _l("Registered. The student logs activities and submits a report when ready."),
    "studies completed": _l("Studies completed. The student submits a report before the deadline."),
    "report submitted": _l("Report submitted. It is waiting for review by the assessors."),
    "withdrawn": _l("Withdrawn from CIM."),
}


def workflow_status(student: StudentPage, decisions: dict[str, dict[str, Any]],
                    booking: dict[str, Any] | None, diploma: dict[str, Any] | None = None,
                    *, own_page: bool = True) -> str | None:
    step = workflow_step(student, decisions, booking, diploma)
    return str((WORKFLOW_STATUS if own_page else STAFF_WORKFLOW_STATUS)[step]) if step else None


REPORT_STATES = {
    "in_review": _l("In review by the assessors."),
    "revision_requested": _l("Revision requested. The assessors' summary:"),
    "approved": _l("Approved."),
    "rejected": _l("Not approved. The assessors' reasons:"),
    "resubmitted": _l("Resubmitted. It is waiting for review by the assessors."),
}


def report_decisions(student_id: str) -> dict[str, dict[str, Any]]:
    """Where each report stands on the assessment side, delivered by its events (empty when the
    view cannot be read: the page still works)."""
    from intake_service.assessment_view import decisions_for

    try:
        found = decisions_for(current_app._get_current_object(), student_id)  # type: ignore[attr-defined]
    except Exception:
        current_app.logger.warning("report decisions view unavailable", exc_info=True)
        return {}
    return {rid: {**d, "label": str(REPORT_STATES.get(d["state"], ""))} for rid, d in found.items()}


def deadline(student_id: str) -> dict[str, Any] | None:
    """The student's deadline (a date), extended or not, and whether they are deregistered, as
    delivered by the assessment service's events; None before one is known."""
    from intake_service.assessment_view import deadline_for

    found = deadline_for(current_app._get_current_object(), student_id)  # type: ignore[attr-defined]
    if found is None:
        return None
    return {**found, "deadline": date.fromisoformat(found["deadline"])}


def diploma(student_id: str) -> dict[str, Any] | None:
    """The student's latest diploma (number, date, revoked or not), delivered by the assessment
    service's events; None before one is issued or when the view cannot be read now."""
    from intake_service.assessment_view import diploma_for

    try:
        return diploma_for(current_app._get_current_object(), student_id)  # type: ignore[attr-defined]
    except Exception:
        current_app.logger.warning("diploma view unavailable", exc_info=True)
        return None


def presentation(student_id: str) -> dict[str, Any] | None:
    """The student's latest presentation booking, delivered by the assessment service's events."""
    from intake_service.assessment_view import presentation_for

    try:
        return presentation_for(current_app._get_current_object(), student_id)  # type: ignore[attr-defined]
    except Exception:
        current_app.logger.warning("presentation view unavailable", exc_info=True)
        return None


def report_steps(student: StudentPage) -> dict[str, dict[str, Any]]:
    """`report_decisions`, with each report the student resubmitted since its last decision
    shown as "resubmitted" in its new round (the intake's own fact, shown at once)."""
    steps = report_decisions(student.student_id)
    for report in student.reports:
        step = steps.get(report.report_id)
        if report.round > 1 and (step is None or step["round"] < report.round):
            label = str(REPORT_STATES["resubmitted"])
            steps[report.report_id] = {"round": report.round, "state": "resubmitted", "summary": None, "label": label}
    return steps


def report_to_revise(student: StudentPage, decisions: dict[str, dict[str, Any]]) -> SubmittedReport | None:
    """The student's latest report when the assessors asked for its revision: My CIM's main
    action is then to resubmit it (a new round), not to submit another report."""
    latest = student.reports[-1] if student.reports and student.active else None
    step = decisions.get(latest.report_id) if latest else None
    return latest if step and step["state"] == "revision_requested" else None


def new_report_refusal(student: StudentPage) -> Problem | None:
    """Why the student cannot submit a new report now (one waits, is in review, awaits their
    revision or is approved), or None: the decider's own check, on what the intake knows."""
    try:
        domain.check_not_deregistered(services().deregistered(student.student_id))
        domain.check_new_report_allowed(student.state, services().assessment_steps(student.student_id))
    except RuleViolated as refused:
        return refused.problem
    return None


def programme_name(student: StudentPage) -> str:
    dept, code = student.department, student.registration.programme
    programme = dept.programme(code) if dept else None
    return text_of(programme.name if programme else None, code, locale())


@bp.route("/students/<student_id>/activities/new", methods=["GET", "POST"])
@access(STUDENT_WRITE)
def log_activity(student_id: str) -> Any:
    student = own_student(student_id)
    if (back := closed(student)) or student.department is None:
        return back or to_my_cim(student_id)
    form = ActivityForm.build(student.department, locale())
    if submitted(form, lambda ctx: services().log_activity(student_id, form.details(), ctx)):
        flash(_("Activity logged."), "success")
        return to_my_cim(student_id)
    return show("activity_form.html", form, student=student, activity=None, heading=_("Log an activity"),
                precedents=department_precedents(student.department, locale()))


@bp.route("/students/<student_id>/activities/<activity_id>/edit", methods=["GET", "POST"])
@access(STUDENT_WRITE)
def amend_activity(student_id: str, activity_id: str) -> Any:
    student = own_student(student_id)
    activity = student.activity(activity_id)
    if (back := closed(student)) or student.department is None:
        return back or to_my_cim(student_id)
    form = ActivityForm.build(student.department, locale(), activity.details)
    if submitted(form, lambda ctx: services().amend_activity(student_id, activity_id, form.details(), ctx)):
        flash(_("Activity amended."), "success")
        return to_my_cim(student_id)
    return show("activity_form.html", form, student=student, activity=activity, heading=_("Amend activity"),
                precedents=department_precedents(student.department, locale()))


@bp.route("/students/<student_id>/activities/<activity_id>/withdraw", methods=["GET", "POST"])
@access(STUDENT_WRITE)
def withdraw_activity(student_id: str, activity_id: str) -> Any:
    student = own_student(student_id)
    if request.method == "POST" and is_uuid(activity_id) and activity_id in student.state.activities:
        activity = student.state.activities[activity_id]  # a second click finds it withdrawn already
    else:
        activity = student.activity(activity_id)
    if back := closed(student):
        return back
    form = WithdrawForm()
    if submitted(form, lambda ctx: services().withdraw_activity(student_id, activity_id, form.reason.data, ctx)):
        flash(_("Activity withdrawn."), "success")
        return to_my_cim(student_id)
    line = activity_line(activity.details, locale())
    return show("withdraw_activity.html", form, student=student, activity=activity, activity_line=line)


@bp.route("/students/<student_id>/report", methods=["GET", "POST"])
@access(STUDENT_WRITE)
def submit_report(student_id: str) -> Any:
    student = own_student(student_id)
    if (back := closed(student)) or student.department is None:
        return back or to_my_cim(student_id)
    refused = new_report_refusal(student) if request.method == "GET" else None
    if refused is not None:  # a sent form gets the same refusal beside it, from the decider
        flash(known_text(refused) or refused.message, "info")
        return to_my_cim(student_id)
    svc = services()
    form = report_form(student.department, locale(), student.current_activities)

    def upload_then_submit(ctx: RequestContext) -> Outcome:
        attachment_id = uploaded(form, student_id, ctx)
        return svc.submit_report(student_id, form.answers(), list(form.activities.data or []), attachment_id, ctx)

    if submitted(form, upload_then_submit):
        flash(_("Your CIM report is submitted."), "success")
        return to_my_cim(student_id)
    return show("report.html", form, student=student, requirements=requirements(student))


#: The form endpoints that take a PDF: their bodies may be larger (intake_service/__init__.py).
REPORT_FORMS = frozenset({"forms.submit_report", "forms.resubmit_report"})


def requirements(student: StudentPage) -> Checklist | None:
    """The department's completion rule against the student's current activities, shown on the
    report forms before they submit: it warns; the assessors decide."""
    if student.department is None or not student.department.completion:
        return None
    facts = [
        ActivityFact(a.activity_id, a.details.kind, a.details.setting, a.details.title, a.details.start_date)
        for a in student.current_activities
    ]
    return evaluate(student.department, facts)


def uploaded(form: Any, student_id: str, ctx: RequestContext) -> str | None:
    """The id of the PDF sent with a report form, recorded first, or None if none was sent."""
    upload = form.attachment.data
    if not upload:
        return None
    svc = services()
    content = upload.read(svc.max_upload_bytes + 1)
    # Its own key: a double submit replays the upload, then the report.
    upload_ctx = dataclasses.replace(ctx, idempotency_key=context(form, ".attachment").idempotency_key)
    return str(svc.upload_attachment(student_id, content, upload.filename, upload_ctx).result["attachment_id"])


@bp.route("/students/<student_id>/reports/<report_id>/resubmit", methods=["GET", "POST"])
@access(STUDENT_WRITE)
def resubmit_report(student_id: str, report_id: str) -> Any:
    """A new round of a report whose revision was requested: the form prefilled with the latest
    round's answers and activities (those still logged), the assessors' summary above it."""
    student = own_student(student_id)
    report = student.report(report_id)
    if (back := closed(student)) or student.department is None:
        return back or to_my_cim(student_id)
    step = report_steps(student).get(report_id)
    if request.method == "GET":  # a sent form gets the decider's refusal beside it
        try:
            domain.check_resubmission_allowed(
                student.state, report_id, services().assessment_steps(student_id).get(report_id)
            )
        except RuleViolated as refused:
            flash(known_text(refused.problem) or refused.message, "info")
            return to_my_cim(student_id)
    svc = services()
    form = report_form(student.department, locale(), student.current_activities)
    if request.method == "GET":
        earlier = report.answers or {}
        for code, name in form.questions:
            form[name].data = earlier.get(code, "")
        current = {a.activity_id for a in student.current_activities}
        form.activities.data = [a for a in report.activity_ids if a in current]

    def upload_then_resubmit(ctx: RequestContext) -> Outcome:
        # Without a new PDF the earlier round's stays attached.
        attachment_id = uploaded(form, student_id, ctx) or report.attachment_id
        activities = list(form.activities.data or [])
        return svc.resubmit_report(student_id, report_id, form.answers(), activities, attachment_id, ctx)

    if submitted(form, upload_then_resubmit):
        flash(_("Your revised CIM report is submitted."), "success")
        return to_my_cim(student_id)
    return show("resubmit.html", form, student=student, report=report, step=step, requirements=requirements(student))


@bp.route("/students/<student_id>/studies-completed", methods=["GET", "POST"])
@access(STUDENT_WRITE)
def complete_studies(student_id: str) -> Any:
    student = own_student(student_id)
    if back := closed(student):
        return back
    form = StudiesCompletedForm()
    if submitted(
        form, lambda ctx: services().complete_studies(student_id, form.completed_on_date, form.term.data, ctx)
    ):
        flash(_("The end of your studies is recorded."), "success")
        return to_my_cim(student_id)
    return show("studies_completed.html", form, student=student)


@bp.route("/students/<student_id>/withdraw", methods=["GET", "POST"])
@access(STUDENT_WRITE)
def withdraw_registration(student_id: str) -> Any:
    student = own_student(student_id)
    if back := closed(student):
        return back
    form = WithdrawForm()
    if submitted(form, lambda ctx: services().withdraw_registration(student_id, form.reason.data, ctx)):
        flash(_("Your registration for CIM is withdrawn."), "success")
        return to_my_cim(student_id)
    return show("withdraw_registration.html", form, student=student)
