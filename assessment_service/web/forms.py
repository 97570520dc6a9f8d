"""The assessment pages' forms: CSRF (Flask-WTF), a one-time form token used as the idempotency
key (a double click records one decision), translated labels, and errors placed beside fields."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import Field, HiddenField, RadioField, SelectChoice, SelectField
from wtforms.validators import AnyOf, InputRequired, ValidationError

from assessment_service.events import CONFLICT_REASONS
from shared.errors import Problem
from shared.validation import is_uuid
from shared.web.forms import TokenForm


def labels_for(codes: tuple[str, ...], labels: dict[str, Any]) -> dict[str, Any]:
    """`labels`, one for each of `codes` and no other (checked when the module loads)."""
    if set(labels) != set(codes):
        raise ValueError(f"labels for {sorted(labels)} do not match the codes {sorted(codes)}")
    return labels


CONFLICT_REASON_LABELS = labels_for(CONFLICT_REASONS, {
    "personal_relationship": _l("A personal relationship with the student"),
    "professional_relationship": _l("A professional relationship with the student"),
    "supervised_student": _l("I supervise or have supervised the student"),
    "other": _l("Another reason (tell the coordinator)"),
})

# Every problem code of this service's decisions (assessment_service.domain, .reviews and
# .rulings: their REASONS), shown in the page's language.
PAGE_TEXTS = {
    "report_not_waiting": _l("This report is no longer waiting for review."),
    "not_an_assessor_there": _l("Choose an assessor of this report's department."),
    "assessor_conflicted": _l("This assessor has declared a conflict of interest with this student."),
    "no_reason": _l("Choose one of the listed reasons."),
    "not_a_listed_reason": _l("Choose one of the listed reasons."),
    "not_assigned": _l("Only an assessor assigned to this report can declare a conflict of interest on it."),
    "report_withdrawn": _l("The student has withdrawn from CIM: this report is no longer reviewed."),
    "round_decided": _l("This round of the report has already been decided."),
    "already_reviewed": _l("You have already reviewed this round of the report."),
    "reviews_missing": _l("The reviews this decision rests on are not all in yet."),
    "report_not_in_review": _l("This report is not waiting for review."),
    # The rulings' (assessment_service.rulings.REASONS).
    "not_staff_there": _l("Only a coordinator or assessor of the department can rule on this activity."),
    "kind_is_listed": _l("This activity is of a kind the catalogue lists: it needs no ruling."),
    "activity_withdrawn": _l("The student has withdrawn this activity."),
    "already_ruled": _l("The assessor group has already ruled on this activity."),
    "ruling_invalid": _l("The ruling is incomplete: see the fields marked."),
    "no_kind_label": _l("Name the kind of activity (at most 120 characters)."),
    "no_rationale": _l("Write the rationale about the kind of activity (at most 2000 characters)."),
    "no_outcome": _l("Choose whether the kind is accepted, and how."),
    "not_a_listed_kind": _l("Choose one of the catalogue's kinds."),
    "new_kind_code": _l(
        "Give the new kind a code of lower-case letters, digits, - and _ that the catalogue does not use."
    ),
    "not_a_class": _l("Choose one of the department's classes."),
    "no_classes_here": _l("This department does not use classes: leave the class empty."),
}


def domain_text(problem: Problem) -> str:
    """A problem in the page's language; one without a text here as its English message."""
    text = PAGE_TEXTS.get(problem.code)
    return problem.message if text is None else str(text)


class DecisionForm(TokenForm):
    """Every decision form: CSRF, the one-time token and error placement of
    `shared.web.forms.TokenForm`, with this service's domain messages translated."""

    reused_message = _l("This form was already sent with other values. Check the report, then send it again.")

    def translate(self, problem: Problem) -> str:
        return domain_text(problem)


class AssignForm(DecisionForm):
    assessor = SelectField(
        _l("Assessor"),
        [InputRequired(_l("Choose an assessor."))],
        validate_choice=False,  # checked below, with a message that says what to do
        description=_l("Assessors of the report's department who have declared no conflict with this student."),
    )

    @classmethod
    def build(cls, assessors: list[tuple[str, str]], **kwargs: Any) -> AssignForm:
        form = cls(**kwargs)
        form.assessor.choices = [SelectChoice("", str(_l("Choose…")))] + [
            SelectChoice(account_id, name) for account_id, name in assessors
        ]
        return form

    def validate_assessor(self, field: Field) -> None:
        if field.data not in {choice.value for choice in field.choices if choice.value}:
            raise ValidationError(str(_l("Choose an assessor of this report's department.")))


class UnassignForm(DecisionForm):
    assessor = HiddenField()

    def validate_assessor(self, field: Field) -> None:
        if not is_uuid(field.data or ""):
            raise ValidationError(str(_l("Choose an assessor.")))

    def error_summary(self) -> list[tuple[str, str]]:
        # The only field is hidden: its error belongs in the summary.
        return [("", str(m)) for m in (*self.form_errors, *self.assessor.errors)]


class ConflictForm(DecisionForm):
    reason = RadioField(
        _l("Reason"),
        [
            InputRequired(_l("Choose one of the listed reasons.")),
            AnyOf(CONFLICT_REASONS, message=_l("Choose one of the listed reasons.")),
        ],
        validate_choice=False,
        choices=[SelectChoice(code, CONFLICT_REASON_LABELS[code]) for code in CONFLICT_REASONS],
        description=_l("Only the reason code is recorded, never free text about the student."),
    )
