"""The assessment pages' forms: CSRF (Flask-WTF), a one-time form token used as the idempotency
key (a double click records one decision), translated labels, and errors placed beside fields."""

from __future__ import annotations

import uuid
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, RadioField, SelectChoice, SelectField
from wtforms.validators import AnyOf, InputRequired, ValidationError

from assessment_service.events import CONFLICT_REASONS
from shared.errors import CimError, Problem
from shared.validation import is_uuid

CONFLICT_REASON_LABELS = {
    "personal_relationship": _l("A personal relationship with the student"),
    "professional_relationship": _l("A professional relationship with the student"),
    "supervised_student": _l("I supervise or have supervised the student"),
    "other": _l("Another reason (tell the coordinator)"),
}
assert set(CONFLICT_REASON_LABELS) == set(CONFLICT_REASONS)

# The decisions' problem codes (assessment_service.domain.REASONS), shown in the page's language.
PAGE_TEXTS = {
    "report_not_waiting": _l("This report is no longer waiting for review."),
    "not_an_assessor_there": _l("Choose an assessor of this report's department."),
    "assessor_conflicted": _l("This assessor has declared a conflict of interest with this student."),
    "no_reason": _l("Choose one of the listed reasons."),
    "not_a_listed_reason": _l("Choose one of the listed reasons."),
    "not_assigned": _l("Only an assessor assigned to this report can declare a conflict of interest on it."),
}


def domain_text(problem: Problem) -> str:
    """A problem in the page's language; one without a text here as its English message."""
    text = PAGE_TEXTS.get(problem.code)
    return problem.message if text is None else str(text)


class DecisionForm(FlaskForm):
    """Every decision form: CSRF plus a one-time token made when the form is shown."""

    form_token = HiddenField()

    def ensure_token(self) -> None:
        if not is_uuid(self.form_token.data or ""):
            self.form_token.data = str(uuid.uuid4())

    @property
    def token(self) -> str | None:
        value = self.form_token.data or ""
        return value if is_uuid(value) else None

    def add_domain_errors(self, error: CimError) -> None:
        """Show a use case's refusal (ValidationFailed, RuleViolated) in the page's language,
        beside each field it names, or at the top when it names none."""
        for name, problems in error.problems.items():
            target = self._fields.get(name)
            texts = [domain_text(p) for p in problems]
            if target is None or name in ("csrf_token", "form_token"):
                self.form_errors.extend(texts)
            else:
                target.errors = [*target.errors, *texts]
        if not error.problems:
            self.form_errors.append(domain_text(error.problem))

    def error_summary(self) -> list[tuple[str, str]]:
        out = [("", str(m)) for m in self.form_errors]
        for field in self:
            if field.type in ("CSRFTokenField", "HiddenField"):
                continue
            for message in field.errors:
                anchor = f"{field.id}-0" if field.type == "RadioField" else str(field.id)
                out.append((anchor, str(message)))
        return out


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


def input_attributes(field: Field, **extra: Any) -> dict[str, Any]:
    """ARIA attributes tying a field to its hint and its errors."""
    described = []
    if field.description:
        described.append(f"{field.id}-hint")
    if field.errors:
        described.append(f"{field.id}-error")
    attrs: dict[str, Any] = dict(extra)
    if described:
        attrs["aria-describedby"] = " ".join(described)
    if field.errors:
        attrs["aria-invalid"] = "true"
    return attrs
