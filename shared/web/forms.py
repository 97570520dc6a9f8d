"""What every page form of both services has: CSRF (Flask-WTF), a one-time form token used as the
idempotency key (a double-clicked form stores one event), a use case's refusal put back on the
form (errors beside the field they name), an error summary for the top of the page, and the ARIA
attributes that tie a field to its hint and errors (templates/_macros.html calls
`input_attributes`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField

from shared.errors import CimError, IdempotencyKeyReused, Problem, RuleViolated, ValidationFailed
from shared.validation import is_uuid

T = TypeVar("T")

#: Fields that never take an error beside them: their errors go to the summary.
_HIDDEN_TYPES = ("CSRFTokenField", "HiddenField")


class TokenForm(FlaskForm):
    """The base of every page form. `token` is the idempotency key of the use case it submits to;
    a form shown again (with errors) keeps its token, so the retried submit is the same request."""

    form_token = HiddenField()

    #: domain field name -> form field name, for errors the use cases report
    field_map: Mapping[str, str] = {}

    #: Shown when the token was already used with other values (each service says where to look).
    reused_message: Any = "This form was already sent with other values."

    def ensure_token(self) -> None:
        if not is_uuid(self.form_token.data or ""):
            self.form_token.data = str(uuid.uuid4())

    def renew_token(self) -> None:
        self.form_token.data = str(uuid.uuid4())

    @property
    def token(self) -> str | None:
        value = self.form_token.data or ""
        return value if is_uuid(value) else None

    def attempt(self, action: Callable[[], T]) -> T | None:
        """Run the use case this (valid) form submits to. A refusal goes onto the form, beside the
        field it names, and None is returned so the page is shown again; a token already used with
        other values is replaced, so the corrected form can be sent."""
        try:
            return action()
        except (ValidationFailed, RuleViolated) as exc:
            self.add_domain_errors(exc)
        except IdempotencyKeyReused:
            self.renew_token()
            self.form_errors.append(str(self.reused_message))
        return None

    def translate(self, problem: Problem) -> str:
        """A use case's problem as the page shows it, translated by its code (each service words
        its own); a problem without a text of its own shows its English message."""
        return problem.message

    def add_domain_errors(self, error: CimError) -> None:
        """Show a use case's refusal (ValidationFailed, RuleViolated) in the page's language,
        beside each field it names; what names no field of this form goes to the summary."""
        for name, problems in error.problems.items():
            target = self._fields.get(self.field_map.get(name, name))
            texts = [self.translate(p) for p in problems]
            if target is None or name in ("csrf_token", "form_token"):
                self.form_errors.extend(texts)
            else:
                target.errors = [*target.errors, *texts]
        if not error.problems:
            self.form_errors.append(self.translate(error.problem))

    def error_summary(self) -> list[tuple[str, str]]:
        """(anchor id, message) for the summary at the top of the page, in field order."""
        out = [("", str(m)) for m in self.form_errors]
        for field in self:
            if field.type in _HIDDEN_TYPES:
                continue
            for message in field.errors:
                out.append((anchor_id(field), str(message)))
        return out


def anchor_id(field: Field) -> str:
    """The element an error summary link focuses: the field, or the first of a group."""
    if field.type in ("RadioField", "MultiCheckboxField"):
        return f"{field.id}-0"
    return str(field.id)


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
