"""Deadline pages.

For coordinators: `/deadlines` (their departments' students by deadline: sortable, filtered to
those close to the line, the deregistered or the extended), `/deadlines/what-if?day=` (who would
be reminded or deregistered on a chosen day: the sweep's own rule, nothing recorded), and
`/students/<id>/deadline` (the deadline and its history; extend it, or reinstate a deregistered
student). The student sees their own deadline page and makes or revokes their personal calendar
link there. `/calendar/<token>.ics` is that secret link (no sign-in: the token is the key).
Someone who may not see a student gets 404, as for an unknown one.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectChoice, SelectField
from wtforms.validators import AnyOf, InputRequired

from assessment_service import (
    calendar_feeds,
    deadline_queries,
    deadline_services,
    deadlines,
    presentation_queries,
    presentation_services,
    queries,
    services,
)
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import EXTENSION_REASONS, REINSTATEMENT_REASONS
from assessment_service.web.forms import DecisionForm, labels_for
from assessment_service.web.presentation_api import PERSON, _principal
from shared.application import RequestContext
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.validation import is_uuid
from shared.web.access import PUBLIC, access, current_caller
from shared.web.branding import show_department_look
from shared.web.errors import correlation_id

bp = Blueprint("deadline_pages", __name__)

EXTENSION_LABELS = labels_for(EXTENSION_REASONS, {
    "by_agreement": _l("By agreement with the student"),
    "illness": _l("Illness"),
    "parental_leave": _l("Parental leave"),
    "studies_prolonged": _l("Studies prolonged"),
    "other": _l("Another reason"),
})
REINSTATEMENT_LABELS = labels_for(REINSTATEMENT_REASONS, {
    "by_agreement": _l("By agreement with the student"),
    "deregistered_in_error": _l("Deregistered in error"),
    "other": _l("Another reason"),
})
DEADLINE_TEXTS = labels_for(tuple(reason.code for reason in deadlines.REASONS), {
    "no_deadline": _l("This student has no deadline yet: their studies are not recorded as completed."),
    "student_deregistered": _l("The student is deregistered: reinstate them with a new deadline instead."),
    "not_deregistered": _l("The student is not deregistered."),
    "deadline_not_later": _l("An extended deadline must be later than the current one."),
    "outside_term_calendar": _l("The term calendar does not reach this date yet: add its terms first."),
})
FIELD_TEXTS = {
    "Give the new deadline as a date.": _l("Give the new deadline as a date."),
    "Choose a date after today.": _l("Choose a date after today."),
    "Choose a date within the next three years.": _l("Choose a date within the next three years."),
    "Choose a reason.": _l("Choose a reason."),
}
FILTER_LABELS = {
    "all": _l("Everyone"), "close": _l("Close to the line (60 days)"), "deregistered": _l("Deregistered"),
    "extended": _l("Extended"),
}
SORT_LABELS = {"deadline": _l("Deadline"), "department": _l("Department"), "name": _l("Name")}


class DeadlineForm(DecisionForm):
    deadline = DateField(_l("New deadline"), [InputRequired(_l("Give the new deadline as a date."))],
                         description=_l("For example 2027-06-06: the last day a report may be submitted."))

    def translate(self, problem: Any) -> str:
        text = DEADLINE_TEXTS.get(problem.code) or FIELD_TEXTS.get(problem.message)
        return str(text) if text is not None else super().translate(problem)


class ExtendForm(DeadlineForm):
    reason_code = SelectField(
        _l("Reason"), [InputRequired(_l("Choose a reason.")), AnyOf(EXTENSION_REASONS, message=_l("Choose a reason."))],
        validate_choice=False,
        choices=[SelectChoice("", _l("Choose…"))] + [SelectChoice(k, v) for k, v in EXTENSION_LABELS.items()],
        description=_l("Only the reason code is recorded, never free text about the student."),
    )


class ReinstateForm(DeadlineForm):
    reason_code = SelectField(
        _l("Reason"),
        [InputRequired(_l("Choose a reason.")), AnyOf(REINSTATEMENT_REASONS, message=_l("Choose a reason."))],
        validate_choice=False,
        choices=[SelectChoice("", _l("Choose…"))] + [SelectChoice(k, v) for k, v in REINSTATEMENT_LABELS.items()],
        description=_l("Only the reason code is recorded, never free text about the student."),
    )


class LinkForm(DecisionForm):
    """Make or revoke the calendar link: CSRF and a one-time token."""


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _coordinated(principal: Principal) -> list[str]:
    departments = sorted(principal.departments(Role.COORDINATOR))
    if not departments:
        raise NotFound("No such page.")
    return departments


def _request(form: DecisionForm) -> RequestContext:
    return RequestContext(actor=current_caller().actor, correlation_id=correlation_id(), idempotency_key=form.token)


def _record_views(principal: Principal, student_ids: list[str]) -> None:
    """Staff shown students' names: recorded before the page is sent (503 and nothing shown if it
    cannot be), as every staff view of personal data is (`student_overview`)."""
    if student_ids:
        req = RequestContext(actor=current_caller().actor, correlation_id=correlation_id())
        services.record_views(_context(), student_ids, principal.account_id, "student_overview", req)


@bp.get("/deadlines")
@access(PERSON)
def overview() -> str:
    principal = _principal()
    departments = _coordinated(principal)
    sort = request.args.get("sort", "deadline")
    sort = sort if sort in deadline_queries.SORTS else "deadline"
    show = request.args.get("show", "all")
    show = show if show in deadline_queries.FILTERS else "all"
    descending = request.args.get("dir") == "desc"
    today = deadline_services.today(_context())
    with _context().reader.connect() as conn:
        rows = deadline_queries.overview(conn, departments, today, sort=sort, descending=descending, show=show)
    _record_views(principal, [item["row"].student_id for item in rows if item["name"]])
    return render_template("deadlines.html", rows=rows, sort=sort, show=show, descending=descending, today=today,
                           filters=FILTER_LABELS, sorts=SORT_LABELS, departments=departments)


@bp.get("/deadlines/what-if")
@access(PERSON)
def what_if() -> tuple[str, int]:
    principal = _principal()
    departments = _coordinated(principal)
    today = deadline_services.today(_context())
    raw = request.args.get("day", "")
    error, day = None, today
    if raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            error = _("Give a date, for example 2027-01-18.")
        else:
            if not today <= day <= today + timedelta(days=3 * 366):
                error, day = _("Choose a date from today to three years ahead."), today
    planned = [] if error else deadline_services.plan(_context(), day, departments)
    with _context().reader.connect() as conn:
        names = deadline_queries.names_of(conn, [p.row.student_id for p in planned])
    _record_views(principal, [sid for sid, name in names.items() if name])
    return render_template("what_if.html", day=day, raw=raw, error=error, planned=planned, names=names,
                           today=today), 422 if error else 200


def _student(student_id: str) -> tuple[Principal, deadline_queries.DeadlineRow | None, bool]:
    """The viewer, the student's deadline row and whether the viewer coordinates them; 404 for
    anyone but the student and a coordinator of their department."""
    principal = _principal()
    row = None
    if is_uuid(student_id):
        with _context().reader.connect() as conn:
            row = deadline_queries.deadline_of(conn, student_id)
            department = row.department if row else queries.department_of(conn, student_id)
    else:
        department = None
    own = principal.account.student_id == student_id and is_uuid(student_id)
    coordinates = department is not None and presentation_services.may_manage(principal, department)
    if not (own or coordinates):
        raise NotFound(deadline_services.NO_SUCH_STUDENT)
    show_department_look(department)  # the student's department's look (config/branding.toml)
    return principal, row, coordinates


def _student_page(student_id: str, failed: DeadlineForm | None = None, status: int = 200,
                  new_link: str | None = None) -> tuple[str, int]:
    principal, row, coordinates = _student(student_id)
    own = principal.account.student_id == student_id
    extend_form = failed if isinstance(failed, ExtendForm) else ExtendForm(formdata=None)
    reinstate_form = failed if isinstance(failed, ReinstateForm) else ReinstateForm(formdata=None)
    for form in (extend_form, reinstate_form):
        form.ensure_token()
    link_form = LinkForm(formdata=None)
    link_form.ensure_token()
    history = deadline_services.history(_context(), student_id) if row else []
    return render_template(
        "student_deadline.html", student_id=student_id, row=row, coordinates=coordinates, own=own,
        history=history, extend_form=extend_form, reinstate_form=reinstate_form, link_form=link_form,
        extension_labels=EXTENSION_LABELS, reinstatement_labels=REINSTATEMENT_LABELS,
        has_link=calendar_feeds.has_link(_context().engine, student_id), new_link=new_link,
    ), status


@bp.get("/students/<student_id>/deadline")
@access(PERSON)
def student_deadline(student_id: str) -> tuple[str, int]:
    return _student_page(student_id)


def _decide(student_id: str, form: DeadlineForm, action: Any, done: str) -> Any:
    principal, _row, coordinates = _student(student_id)
    if not coordinates:
        raise NotFound(deadline_services.NO_SUCH_STUDENT)
    if form.validate():
        fields = {"deadline": form.deadline.data, "reason_code": form.reason_code.data}  # type: ignore[attr-defined]
        if form.attempt(lambda: action(_context(), principal, student_id, fields, _request(form))) is not None:
            flash(done, "info")
            return redirect(url_for("deadline_pages.student_deadline", student_id=student_id), 303)
    return _student_page(student_id, form, 422)


@bp.post("/students/<student_id>/deadline/extend")
@access(PERSON)
def extend(student_id: str) -> Any:
    return _decide(student_id, ExtendForm(), deadline_services.extend, _("The deadline is extended."))


@bp.post("/students/<student_id>/deadline/reinstate")
@access(PERSON)
def reinstate(student_id: str) -> Any:
    return _decide(student_id, ReinstateForm(), deadline_services.reinstate,
                   _("The student is reinstated with a new deadline."))


def _own(student_id: str) -> None:
    principal = _principal()
    if not is_uuid(student_id) or principal.account.student_id != student_id:
        raise NotFound(deadline_services.NO_SUCH_STUDENT)


@bp.post("/students/<student_id>/calendar")
@access(PERSON)
def make_link(student_id: str) -> Any:
    _own(student_id)
    form = LinkForm()
    if not form.validate():
        return _student_page(student_id, None, 422)
    token = calendar_feeds.new_link(_context().engine, student_id, _context().clock.now())
    return _student_page(student_id, new_link=url_for("deadline_pages.calendar", token=token, _external=True))


@bp.post("/students/<student_id>/calendar/revoke")
@access(PERSON)
def revoke_link(student_id: str) -> Any:
    _own(student_id)
    form = LinkForm()
    if form.validate():
        calendar_feeds.revoke(_context().engine, student_id, _context().clock.now())
        flash(_("The calendar link is revoked: calendars using it get nothing more."), "info")
        return redirect(url_for("deadline_pages.student_deadline", student_id=student_id), 303)
    return _student_page(student_id, None, 422)


@bp.get("/calendar/<token>.ics")
@access(PUBLIC)
def calendar(token: str) -> Response:
    """The personal iCalendar feed behind a secret link (no sign-in; 404 once revoked)."""
    student_id = calendar_feeds.student_of(_context().engine, token)
    if student_id is None:
        raise NotFound("No such calendar.")
    with _context().reader.connect() as conn:
        row = deadline_queries.deadline_of(conn, student_id)
        booking = presentation_queries.student_presentation(conn, student_id)["booking"]
    body = calendar_feeds.feed(
        student_id, row.deadline if row else None, bool(row and row.deregistered), booking, _context().clock.now(),
        titles={"calendar": _("CIM"), "deadline": _("CIM: last day to submit your report"),
                "presentation": _("CIM: your presentation")},
    )
    response = Response(body, mimetype="text/calendar")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/api/v1/students/<student_id>/deadline")
@access(PERSON)
def deadline_json(student_id: str) -> Response:
    """The student's deadline and its history as JSON: the student, or a coordinator of their
    department (404 for anyone else, and before a deadline is known)."""
    _viewer, row, _coordinates = _student(student_id)
    if row is None or row.deadline is None:
        raise NotFound(deadline_services.NO_SUCH_STUDENT)
    history = [
        {"type": recorded.type, "at": recorded.occurred_at.isoformat(), "deadline": event.deadline.isoformat(),
         **({"offset_days": event.offset_days} if recorded.type == "DeadlineReminderDue" else {}),
         **({"reason_code": event.reason_code} if hasattr(event, "reason_code") else {})}
        for recorded, event in deadline_services.history(_context(), student_id)
    ]
    body = {
        "student_id": student_id, "department": row.department, "deadline": row.deadline.isoformat(),
        "extended": row.extended, "deregistered": row.deregistered, "approved": row.approved,
        "completed_on": row.completed_on, "term": row.term, "reminder_days": list(row.reminder_days),
        "reminded": list(row.reminded), "history": history,
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "private, no-store"
    return response
