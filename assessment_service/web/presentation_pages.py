"""Presentation pages.

For coordinators: `/presentations` (publish an occasion; the department's occasions to come and
past) and `/presentations/<id>` (who booked; record who presented or did not show; cancel a
booking or the occasion). For the student (or a coordinator for them):
`/students/<id>/presentation` (book a place once the report is approved, cancel it, see whether
they are eligible for the diploma). Someone who may not see an occasion or a student gets 404,
as for an unknown one. Times are entered and shown in Lund's time zone.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from types import MappingProxyType
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import DateField, HiddenField, IntegerField, SelectChoice, SelectField, StringField, TimeField
from wtforms.validators import InputRequired, NumberRange, Optional

from assessment_service import presentation_queries, presentation_services, presentations
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import OCCASION_KINDS
from assessment_service.web.forms import DecisionForm, labels_for
from assessment_service.web.presentation_api import PERSON, _principal
from assessment_service.web.presentation_api import _managed_occasion as _managed
from shared.application import RequestContext
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.web.access import access, current_caller
from shared.web.branding import show_department_look
from shared.web.errors import correlation_id
from shared.web.times import LOCAL, local_time

bp = Blueprint("presentation_pages", __name__)


KIND_LABELS = labels_for(OCCASION_KINDS, {
    "international_cafe": _l("International café"),
    "lecture": _l("Lecture slot"),
    "information_session": _l("Information session"),
    "web_seminar": _l("Web seminar"),
})
STATUS_LABELS = {
    "booked": _l("Booked"), "cancelled": _l("Cancelled"), "held": _l("Presented"), "missed": _l("Did not show"),
}

PRESENTATION_TEXTS = labels_for(tuple(reason.code for reason in presentations.REASONS), {
    "occasion_cancelled": _l("This occasion has been cancelled."),
    "occasion_started": _l("This occasion has already started: bookings can no longer change."),
    "occasion_full": _l("This occasion is fully booked. Choose another one."),
    "report_not_approved": _l("A presentation can be booked once the report is approved."),
    "booked_elsewhere": _l("There is already a booked presentation. Cancel it before booking another."),
    "already_booked": _l("This place is already booked."),
    "already_presented": _l("The presentation has already been held."),
    "student_withdrawn": _l("The student has withdrawn from CIM."),
    "not_booked": _l("This student has no booking at this occasion."),
    "occasion_not_started": _l("Attendance can be recorded once the occasion has started."),
    "attendance_recorded": _l("Attendance has already been recorded for this student."),
})

FIELD_TEXTS = {
    "Choose a time in the future.": _l("Choose a time in the future."),
    "Choose a time within the next two years.": _l("Choose a time within the next two years."),
    "The occasion must end after it starts.": _l("The occasion must end after it starts."),
    "An occasion lasts at most 12 hours.": _l("An occasion lasts at most 12 hours."),
    "Say where the occasion is held, or give its link.": _l("Say where the occasion is held, or give its link."),
    "Choose the kind of occasion.": _l("Choose the kind of occasion."),
}


class PresentationForm(DecisionForm):
    def translate(self, problem: Any) -> str:
        text = PRESENTATION_TEXTS.get(problem.code) or FIELD_TEXTS.get(problem.message)
        return str(text) if text is not None else super().translate(problem)


class OccasionForm(PresentationForm):
    department = SelectField(_l("Department"), validate_choice=False)
    kind = SelectField(
        _l("Kind of occasion"), [InputRequired(_l("Choose the kind of occasion."))], validate_choice=False,
        choices=[SelectChoice("", _l("Choose…"))] + [SelectChoice(k, v) for k, v in KIND_LABELS.items()],
    )
    day = DateField(_l("Date"), [InputRequired(_l("Give the date."))], description=_l("For example 2027-03-18."))
    starts = TimeField(_l("Starts at"), [InputRequired(_l("Give the time it starts."))],
                       description=_l("Lund time: for example 15:00."))
    ends = TimeField(_l("Ends at"), [InputRequired(_l("Give the time it ends."))],
                     description=_l("Lund time: for example 16:30."))
    place = StringField(
        _l("Place or link"), [InputRequired(_l("Say where the occasion is held, or give its link."))],
        description=_l("A room and building, or the web seminar's link."),
    )
    capacity = IntegerField(
        _l("Places"), [InputRequired(_l("Give how many students may present.")),
                       NumberRange(1, presentations.MAX_CAPACITY, _l("Give a number from 1 to 1000."))],
        description=_l("How many students may present at this occasion."),
    )
    field_map = MappingProxyType({"starts_at": "starts", "ends_at": "ends"})

    def validate_department(self, field: Any) -> None:
        from wtforms.validators import ValidationError

        if field.data not in {c.value for c in field.choices}:
            raise ValidationError(str(_l("Choose one of your departments.")))


class RowForm(PresentationForm):
    """A row's action (book, cancel, record attendance): CSRF and its own one-time token."""

    student = HiddenField(validators=[Optional()])
    occasion = HiddenField(validators=[Optional()])
    outcome = HiddenField(validators=[Optional()])


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _request(form: DecisionForm) -> RequestContext:
    return RequestContext(actor=current_caller().actor, correlation_id=correlation_id(), idempotency_key=form.token)


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {
        "local_time": local_time,
        "occasion_kind": lambda code: str(KIND_LABELS.get(code, code)),
        "booking_status": lambda code: str(STATUS_LABELS.get(code, code)),
        "fresh_token": lambda: str(uuid.uuid4()),
    }


def _coordinated(principal: Principal) -> list[str]:
    departments = sorted(principal.departments(Role.COORDINATOR))
    if not departments:
        raise NotFound("No such page.")
    return departments


def _occasions_page(form: OccasionForm | None = None, status: int = 200) -> tuple[str, int]:
    departments = _coordinated(_principal())
    if form is None:
        form = OccasionForm(formdata=None, department=departments[0], capacity=10)
        form.ensure_token()
    form.department.choices = [SelectChoice(code, code) for code in departments]
    now = _context().clock.now()
    with _context().reader.connect() as conn:
        coming = presentation_queries.occasions(conn, departments, after=now.isoformat())
        since = (now - timedelta(days=180)).isoformat()
        earlier = [o for o in presentation_queries.occasions(conn, departments, after=since, limit=500)
                   if o["starts_at"] <= now.isoformat()]
    return render_template(
        "presentations.html", form=form, coming=coming, earlier=list(reversed(earlier)), departments=departments,
    ), status


@bp.get("/presentations")
@access(PERSON)
def occasions() -> tuple[str, int]:
    return _occasions_page()


@bp.post("/presentations")
@access(PERSON)
def publish() -> Any:
    principal = _principal()
    departments = _coordinated(principal)
    form = OccasionForm()
    form.department.choices = [SelectChoice(code, code) for code in departments]
    if form.validate():
        starts = datetime.combine(form.day.data, form.starts.data or time(), LOCAL)
        ends = datetime.combine(form.day.data, form.ends.data or time(), LOCAL)
        fields = {"department": form.department.data, "kind": form.kind.data, "starts_at": starts,
                  "ends_at": ends, "place": form.place.data or "", "capacity": form.capacity.data}
        outcome = form.attempt(
            lambda: presentation_services.publish_occasion(_context(), principal, fields, _request(form))
        )
        if outcome is not None:
            flash(_("The occasion is published: students whose report is approved can book it."), "info")
            return redirect(url_for("presentation_pages.occasion", occasion_id=outcome.result["occasion_id"]), 303)
    return _occasions_page(form, 422)


def _occasion_page(occasion_id: str, failed: RowForm | None = None, status: int = 200) -> tuple[str, int]:
    found = _managed(occasion_id)
    with _context().reader.connect() as conn:
        booked = presentation_queries.bookings(conn, occasion_id)
    started = _context().clock.now().isoformat() >= found["starts_at"]
    return render_template(
        "occasion.html", occasion=found, bookings=booked, started=started, failed=failed,
    ), status


@bp.get("/presentations/<occasion_id>")
@access(PERSON)
def occasion(occasion_id: str) -> tuple[str, int]:
    return _occasion_page(occasion_id)


def _act(action: Any, done: str, then: str, page: Any) -> Any:
    """Run a row's one-button form: flash `done` and see `then`, or show `page` with the refusal."""
    form = RowForm()
    if form.validate() and form.attempt(lambda: action(form)) is not None:
        flash(done, "info")
        return redirect(then, 303)
    if not form.form_errors and not any(f.errors for f in form):
        form.form_errors.append(str(_l("The form could not be sent. Try again.")))
    return page(form, 422)


def _row_action(occasion_id: str, action: Any, done: str) -> Any:
    then = url_for("presentation_pages.occasion", occasion_id=occasion_id)
    return _act(action, done, then, lambda form, status: _occasion_page(occasion_id, form, status))


@bp.post("/presentations/<occasion_id>/attendance")
@access(PERSON)
def attendance(occasion_id: str) -> Any:
    _managed(occasion_id)
    held = request.form.get("outcome") == "held"
    return _row_action(
        occasion_id,
        lambda form: presentation_services.record_attendance(
            _context(), _principal(), occasion_id, form.student.data or "", held, _request(form)),
        _("Recorded: presented.") if held else _("Recorded: did not show."),
    )


@bp.post("/presentations/<occasion_id>/bookings/cancel")
@access(PERSON)
def cancel_booking(occasion_id: str) -> Any:
    _managed(occasion_id)
    return _row_action(
        occasion_id,
        lambda form: presentation_services.cancel_booking(
            _context(), _principal(), occasion_id, form.student.data or "", _request(form)),
        _("The booking is cancelled."),
    )


@bp.post("/presentations/<occasion_id>/cancel")
@access(PERSON)
def cancel_occasion(occasion_id: str) -> Any:
    _managed(occasion_id)
    return _row_action(
        occasion_id,
        lambda form: presentation_services.cancel_occasion(_context(), _principal(), occasion_id, _request(form)),
        _("The occasion is cancelled, and so are its bookings."),
    )


# -- the student's page ----------------------------------------------------------------------------


def _student_page(student_id: str, failed: RowForm | None = None, status: int = 200) -> tuple[str, int]:
    principal = _principal()
    facts = presentation_services.student_facts(_context(), principal, student_id)
    show_department_look(facts.department)  # the student's department's look (config/branding.toml)
    now = _context().clock.now().isoformat()
    with _context().reader.connect() as conn:
        mine = presentation_queries.student_presentation(conn, student_id)
        offered = presentation_queries.occasions(conn, [facts.department], after=now, open_only=True)
    may_book = (facts.approved_report_id is not None and facts.booked_occasion_id is None
                and not facts.presented and not facts.withdrawn)
    return render_template(
        "student_presentation.html", student_id=student_id, facts=facts, mine=mine,
        offered=offered if may_book else [], may_book=may_book, failed=failed,
        own=principal.account.student_id == student_id, now=now,
    ), status


@bp.get("/students/<student_id>/presentation")
@access(PERSON)
def student_presentation(student_id: str) -> tuple[str, int]:
    return _student_page(student_id)


def _student_action(student_id: str, action: Any, done: str) -> Any:
    presentation_services.student_facts(_context(), _principal(), student_id)  # 404 unless allowed
    then = url_for("presentation_pages.student_presentation", student_id=student_id)
    return _act(action, done, then, lambda form, status: _student_page(student_id, form, status))


@bp.post("/students/<student_id>/presentation")
@access(PERSON)
def book(student_id: str) -> Any:
    return _student_action(
        student_id,
        lambda form: presentation_services.book(
            _context(), _principal(), form.occasion.data or "", student_id, _request(form)),
        _("The presentation is booked."),
    )


@bp.post("/students/<student_id>/presentation/cancel")
@access(PERSON)
def unbook(student_id: str) -> Any:
    return _student_action(
        student_id,
        lambda form: presentation_services.cancel_booking(
            _context(), _principal(), form.occasion.data or "", student_id, _request(form)),
        _("The booking is cancelled."),
    )
