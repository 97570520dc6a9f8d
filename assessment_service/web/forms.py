"""The assessment pages' forms: CSRF (Flask-WTF), a one-time form token used as the idempotency
key (a double click records one decision), translated labels, and errors placed beside fields."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import Field, HiddenField, RadioField, SelectChoice, SelectField
from wtforms.validators import AnyOf, InputRequired, ValidationError

from assessment_service.events import CONFLICT_REASONS
from shared.validation import is_uuid
from shared.web.forms import TokenForm

CONFLICT_REASON_LABELS = {
    "personal_relationship": _l("A personal relationship with the student"),
    "professional_relationship": _l("A professional relationship with the student"),
    "supervised_student": _l("I supervise or have supervised the student"),
    "other": _l("Another reason (tell the coordinator)"),
}
assert set(CONFLICT_REASON_LABELS) == set(CONFLICT_REASONS)

# Messages the use cases raise, shown translated beside the field they name.
DOMAIN_MESSAGES = {
    "This report is no longer waiting for review.": _l("This report is no longer waiting for review."),
    "Choose an assessor of this report's department.": _l("Choose an assessor of this report's department."),
    "This assessor has declared a conflict of interest with this student.": _l(
        "This assessor has declared a conflict of interest with this student."
    ),
    "Only an assessor assigned to this report can declare a conflict of interest on it.": _l(
        "Only an assessor assigned to this report can declare a conflict of interest on it."
    ),
    "Choose one of the listed reasons.": _l("Choose one of the listed reasons."),
}


def domain_text(message: str) -> str:
    return str(DOMAIN_MESSAGES.get(message, message))


class DecisionForm(TokenForm):
    """Every decision form: CSRF, the one-time token and error placement of
    `shared.web.forms.TokenForm`, with this service's domain messages translated."""

    reused_message = _l("This form was already sent with other values. Check the report, then send it again.")

    def translate(self, message: str) -> str:
        return domain_text(message)


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
