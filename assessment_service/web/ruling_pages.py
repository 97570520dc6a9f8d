"""Pages for rulings on activities of a kind the catalogue lacks (assessment_service/rulings.py):
the assessor group's list of activities awaiting a ruling (`/rulings`), the ruling form
(`/rulings/<activity_id>`) and the departments' precedents (`/precedents`). For coordinators and
assessors; an activity of another department answers 404 like an unknown one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from assessment_service import queries, ruling_services
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import RULING_OUTCOMES
from assessment_service.web.forms import DecisionForm, labels_for
from assessment_service.web.ruling_api import RULING_STAFF
from shared.application import RequestContext
from shared.catalogue import Department
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.web.access import access, current_caller
from shared.web.errors import correlation_id

bp = Blueprint("ruling_pages", __name__)

OUTCOME_LABELS = labels_for(RULING_OUTCOMES, {
    "accepted_as_existing": _l("Accepted, as one of the catalogue's kinds"),
    "accepted_as_new": _l("Accepted, as a new kind"),
    "not_accepted": _l("Not accepted"),
})

class RulingForm(DecisionForm):
    kind_label = StringField(
        _l("The kind of activity"), [Optional()],
        description=_l("Name the kind, not the person: e.g. \"Model UN conference\". It is shown to later students."),
    )
    outcome = RadioField(
        _l("Ruling"), choices=[SelectChoice(k, v) for k, v in OUTCOME_LABELS.items()], validate_choice=False
    )
    kind = SelectField(_l("Counted as the catalogue's kind"), validate_choice=False,
                       description=_l("Only when accepted as one of the catalogue's kinds."))
    new_kind = StringField(_l("Code of the new kind"), [Optional()],
                           description=_l("Only when accepted as a new kind: lower-case letters, digits, - and _."))
    activity_class = SelectField(_l("Class of the new kind"), validate_choice=False,
                                 description=_l("Only when accepted as a new kind, where the department uses classes."))
    rationale = TextAreaField(
        _l("Rationale"), [Optional()],
        description=_l("Write about the kind of activity, not the student: the ruling is published as a precedent."),
    )

    @classmethod
    def build(cls, rule_set: Department, locale: str, **kwargs: Any) -> RulingForm:
        form = cls(**kwargs)
        form.kind.choices = [SelectChoice("", str(_l("Choose…")))] + [
            SelectChoice(k.code, k.name.get(locale) + (f" ({k.activity_class})" if k.activity_class else ""))
            for k in rule_set.activity_kinds
        ]
        form.activity_class.choices = [SelectChoice("", str(_l("No class")))] + [
            SelectChoice(c, c) for c in rule_set.classes
        ]
        form.field_map = {"kind": "new_kind" if form.outcome.data == "accepted_as_new" else "kind"}
        return form


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _principal() -> Principal:
    principal = current_caller().principal
    if principal is None:  # the rule lets only people through
        raise NotFound("No such page.")
    return principal


def _departments(principal: Principal) -> list[str]:
    return sorted(principal.departments(Role.COORDINATOR) | principal.departments(Role.ASSESSOR))


def _locale() -> str:
    from flask_babel import get_locale

    return str(get_locale() or "en")


@bp.get("/rulings")
@access(RULING_STAFF)
def awaiting() -> str:
    ctx = _context()
    groups = []
    with ctx.reader.connect() as conn:
        for code in _departments(_principal()):
            rule_set = ctx.catalogue.department(code)
            listed = [k.code for k in rule_set.activity_kinds] if rule_set else []
            groups.append((code, queries.kinds_awaiting_ruling(conn, code, listed)))
    return render_template("rulings.html", groups=groups)


@bp.get("/precedents")
@access(RULING_STAFF)
def precedents() -> str:
    with _context().reader.connect() as conn:
        groups = [(code, queries.precedents(conn, code)) for code in _departments(_principal())]
    return render_template("precedents.html", groups=groups, outcome_labels=OUTCOME_LABELS)


def _ruling_page(activity_id: str, form: RulingForm | None, status: int = 200) -> tuple[str, int]:
    principal = _principal()
    facts, rule_set = ruling_services.activity_facts(_context(), activity_id)
    if not ruling_services.is_staff_of(principal, facts.department):
        raise NotFound("No such activity.")
    with _context().reader.connect() as conn:
        ruled = queries.ruling_of(conn, activity_id)
        earlier = queries.precedents(conn, facts.department)
    if form is None:
        form = RulingForm.build(rule_set, _locale())
        form.ensure_token()
    return render_template(
        "ruling.html", activity=facts, rule_set=rule_set, form=form, ruled=ruled, earlier=earlier,
        awaits=rule_set.kind(facts.kind) is None and not facts.withdrawn, outcome_labels=OUTCOME_LABELS,
    ), status


@bp.get("/rulings/<activity_id>")
@access(RULING_STAFF)
def ruling(activity_id: str) -> tuple[str, int]:
    return _ruling_page(activity_id, None)


@bp.post("/rulings/<activity_id>")
@access(RULING_STAFF)
def rule(activity_id: str) -> Any:
    principal = _principal()
    _facts, rule_set = ruling_services.activity_facts(_context(), activity_id)
    form = RulingForm.build(rule_set, _locale())
    outcome = form.outcome.data or ""
    body = {
        "kind_label": form.kind_label.data, "outcome": outcome, "rationale": form.rationale.data,
        "kind": form.new_kind.data if outcome == "accepted_as_new" else form.kind.data,
        "activity_class": form.activity_class.data,
    }

    def decide() -> bool:
        req = RequestContext(actor=current_caller().actor, correlation_id=correlation_id(), idempotency_key=form.token)
        ruling_services.record_ruling(_context(), principal, activity_id, body, req)
        return True

    if form.validate() and form.attempt(decide):
        flash(_("The ruling is recorded and published as a precedent."), "info")
        return redirect(url_for("ruling_pages.ruling", activity_id=activity_id), code=303)
    return _ruling_page(activity_id, form, status=422)
