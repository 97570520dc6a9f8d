"""The student pages' forms: WTForms classes with translated labels and messages, a one-time
form token against double submits, and the translation of domain messages shown beside fields."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from types import MappingProxyType
from typing import Any, cast

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from marshmallow import ValidationError as MarshmallowError
from marshmallow import validate as mm_validate
from wtforms import (
    DateField,
    EmailField,
    Field,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length, Optional, StopValidation, ValidationError
from wtforms.widgets import CheckboxInput

from intake_service import domain
from shared.catalogue import Catalogue, Department
from shared.validation import TERM_PATTERN, country_codes, is_uuid

# Same characters the JSON API refuses (shared.validation.SafeText): the pages accept no more.
# ... and lone surrogates (U+D800-U+DFFF), which Werkzeug's form parser never produces today but
# which could not be sealed or stored if it did (issue 18.5).
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNIVERSITY_ID = re.compile(r"^[A-Za-z0-9-]{2,32}$")

SETTING_LABELS = {
    "abroad": _l("Abroad"),
    "at_home": _l("At home (on site in Sweden)"),
    "digital": _l("Online"),
}

# the same, inside a sentence
SETTING_WORDS = {
    "abroad": _l("abroad"),
    "at_home": _l("at home in Sweden"),
    "digital": _l("online"),
}

Choices = list[SelectChoice]


# -- validators and filters ------------------------------------------------------------------
def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def normalise_newlines(value: Any) -> Any:
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else value


class Required:
    """The field must have a value after its filters (so blank text is missing). A value the
    field could not read (a malformed date) keeps the field's own error instead."""

    field_flags = {"required": True}  # noqa: RUF012  (WTForms reads this class attribute)

    def __init__(self, message: Any) -> None:
        self.message = message

    def __call__(self, form: FlaskForm, field: Field) -> None:
        if field.process_errors:
            raise StopValidation()
        data = field.data.strip() if isinstance(field.data, str) else field.data
        if data is None or (isinstance(data, str | list | tuple) and not data):
            raise StopValidation(str(self.message))


def required(message: Any) -> Required:
    return Required(message)


def safe_text(multiline: bool = False) -> Callable[[FlaskForm, Field], None]:
    pattern = _CONTROL_MULTILINE if multiline else _CONTROL_SINGLE_LINE

    def check(form: FlaskForm, field: Field) -> None:
        if isinstance(field.data, str) and pattern.search(field.data):
            raise ValidationError(_("Must not contain control characters."))

    return check


def email_address(form: FlaskForm, field: Field) -> None:
    # marshmallow's rule, so the pages and the JSON API accept the same addresses
    try:
        mm_validate.Email()(field.data or "")
    except MarshmallowError:
        raise ValidationError(_("Enter an email address such as name@example.com.")) from None


def university_id(form: FlaskForm, field: Field) -> None:
    if not _UNIVERSITY_ID.match(field.data or ""):
        raise ValidationError(_("Use 2–32 letters, digits or hyphens."))


def academic_term(form: FlaskForm, field: Field) -> None:
    value = (field.data or "").upper()
    match = TERM_PATTERN.match(value)
    if not match or not 2000 <= int(match.group(2)) <= 2100:
        raise ValidationError(_("Enter a term such as HT2026 (autumn) or VT2027 (spring)."))
    field.data = value


def whole_number(low: int, high: int) -> Callable[[FlaskForm, Field], None]:
    def check(form: FlaskForm, field: Field) -> None:
        # a value that is not a number already has its error from the field itself
        if not field.process_errors and not (low <= field.data <= high):
            raise ValidationError(_("Enter a whole number from %(low)s to %(high)s.", low=low, high=high))

    return check


class DateInputField(DateField):
    """A date input (YYYY-MM-DD) where an empty value means 'not given', not 'malformed'."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist and not str(valuelist[0]).strip():
            self.data = None
            return
        super().process_formdata(valuelist)


# -- the form base ---------------------------------------------------------------------------
class PageForm(FlaskForm):
    """Every page form: CSRF (Flask-WTF) plus a one-time token made when the form is first shown.

    The token travels as the idempotency key, so a double-clicked form stores one event.
    """

    form_token = HiddenField()

    # domain field name -> form field name, for errors the use cases report
    field_map: Mapping[str, str] = {}

    def ensure_token(self) -> None:
        if not is_uuid(self.form_token.data or ""):
            self.form_token.data = str(uuid.uuid4())

    def renew_token(self) -> None:
        self.form_token.data = str(uuid.uuid4())

    @property
    def token(self) -> str | None:
        value = self.form_token.data or ""
        return value if is_uuid(value) else None

    def add_domain_errors(self, fields: Mapping[str, Sequence[str]], message: str | None = None) -> None:
        """Show a use case's ValidationFailed/RuleViolated beside the field it names."""
        placed = False
        for name, messages in fields.items():
            target = self._fields.get(self.field_map.get(name, name))
            texts = [domain_text(m) for m in messages]
            if target is None or name in ("csrf_token", "form_token"):
                self.form_errors.extend(texts)
            else:
                target.errors = [*target.errors, *texts]
            placed = True
        if not placed and message:
            self.form_errors.append(domain_text(message))

    def error_summary(self) -> list[tuple[str, str]]:
        """(anchor id, message) for the summary at the top of the page, in field order."""
        out = [("", str(m)) for m in self.form_errors]
        for field in self:
            if field.type in ("CSRFTokenField", "HiddenField"):
                continue
            for message in field.errors:
                out.append((anchor_id(field), str(message)))
        return out


def anchor_id(field: Field) -> str:
    """The element an error summary link focuses: the field, or the first of a group."""
    if field.type in ("RadioField", "MultiCheckboxField"):
        return f"{field.id}-0"
    return str(field.id)


class MultiCheckboxField(SelectMultipleField):
    """A group of checkboxes (the page macro wraps them in a fieldset with a legend)."""

    option_widget = CheckboxInput()


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


# -- the forms -------------------------------------------------------------------------------
class RegisterForm(PageForm):
    name = StringField(
        _l("Full name"),
        [required(_l("Enter your full name.")), Length(max=200), safe_text()],
        filters=[strip],
    )
    email = EmailField(
        _l("Email address"),
        [required(_l("Enter your email address.")), Length(max=254), email_address],
        filters=[strip],
    )
    university_id = StringField(
        _l("University ID"),
        [required(_l("Enter your university ID.")), university_id],
        filters=[strip],
        description=_l("As in your Lund University account, e.g. ab1234cd-s."),
    )
    department = SelectField(_l("Department"), [required(_l("Choose your department."))])
    programme = SelectField(_l("Programme"), [required(_l("Choose your programme."))])
    expected_end_term = StringField(
        _l("Expected end of studies"),
        [required(_l("Enter the term you expect to finish your studies.")), academic_term],
        filters=[strip],
        description=_l("HT (autumn) or VT (spring) and the year, e.g. VT2028."),
    )

    catalogue: Catalogue

    @classmethod
    def build(cls, catalogue: Catalogue, locale: str) -> RegisterForm:
        form = cls()
        form.catalogue = catalogue
        departments = sorted(catalogue.departments.values(), key=lambda d: d.name.get(locale))
        form.department.choices = [SelectChoice("", _("Choose…"))] + [
            SelectChoice(d.code, d.name.get(locale)) for d in departments
        ]
        # grouped per department; the chosen one is checked against the department too
        form.programme.choices = [SelectChoice("", _("Choose…"))] + [
            SelectChoice(p.code, p.name.get(locale), optgroup=d.name.get(locale))
            for d in departments
            for p in d.programmes
        ]
        return form

    def validate_programme(self, field: Field) -> None:
        dept = self.catalogue.department(self.department.data or "")
        if dept is not None and dept.programme(field.data) is None:
            raise ValidationError(_("Choose a programme of the department you chose."))

    def command(self) -> dict[str, Any]:
        return {
            "name": self.name.data,
            "email": self.email.data,
            "university_id": self.university_id.data,
            "department": self.department.data,
            "programme": self.programme.data,
            "expected_end_term": self.expected_end_term.data,
        }


class ActivityForm(PageForm):
    kind = SelectField(_l("Kind of activity"), [required(_l("Choose the kind of activity."))])
    title = StringField(
        _l("Title"),
        [required(_l("Enter a title.")), Length(max=200), safe_text()],
        filters=[strip],
        description=_l("A short name, e.g. Exchange in Berlin."),
    )
    organiser = StringField(
        _l("Organiser"),
        [required(_l("Enter the organiser.")), Length(max=200), safe_text()],
        filters=[strip],
        description=_l("The university, organisation or person that ran the activity."),
    )
    setting = RadioField(
        _l("Where did it take place?"),
        [required(_l("Choose where the activity took place."))],
        choices=[SelectChoice(code, label) for code, label in SETTING_LABELS.items()],
    )
    country_code = SelectField(
        _l("Country"),
        description=_l("Required for an activity abroad."),
    )
    start_date = DateInputField(
        _l("Start date"), [required(_l("Enter the start date."))], description=_l("For example 2026-01-10.")
    )
    end_date = DateInputField(
        _l("End date"), [required(_l("Enter the end date."))], description=_l("For example 2026-06-01.")
    )
    hours = IntegerField(
        _l("Hours (optional)"),
        [Optional(), whole_number(0, 10000)],
    )
    description = TextAreaField(
        _l("Description (optional)"),
        [Optional(), Length(max=5000), safe_text(multiline=True)],
        filters=[normalise_newlines],
    )

    @classmethod
    def build(cls, dept: Department, locale: str, details: domain.ActivityDetails | None = None) -> ActivityForm:
        data: dict[str, Any] | None = None
        if details is not None:
            data = {
                "kind": details.kind,
                "title": details.title,
                "organiser": details.organiser,
                "setting": details.setting,
                "country_code": details.country_code or "",
                "start_date": details.start_date,
                "end_date": details.end_date,
                "hours": details.hours,
                "description": details.description,
            }
        form = cls(data=data)
        form.kind.choices = [
            SelectChoice("", _("Choose…")),
            *(SelectChoice(k.code, k.name.get(locale)) for k in dept.activity_kinds),
        ]
        form.country_code.choices = [
            SelectChoice("", _("None (online or in Sweden)")),
            *country_choices(locale),
        ]
        return form

    def validate_country_code(self, field: Field) -> None:
        if self.setting.data == "abroad" and not field.data:
            raise ValidationError(_("Choose the country of an activity abroad."))
        if self.setting.data == "abroad" and field.data == "SE":
            raise ValidationError(_("An activity abroad cannot be in Sweden."))

    def validate_end_date(self, field: Field) -> None:
        start = self.start_date.data
        if start and field.data and field.data < start:
            raise ValidationError(_("Must not be before the start date."))

    def details(self) -> domain.ActivityDetails:
        setting = self.setting.data
        return domain.ActivityDetails(
            kind=self.kind.data,
            title=self.title.data,
            organiser=self.organiser.data,
            setting=setting,
            # an online activity has no country; one at home is in Sweden
            country_code=(self.country_code.data or None) if setting == "abroad" else None,
            start_date=cast(date, self.start_date.data),
            end_date=cast(date, self.end_date.data),
            hours=self.hours.data,
            description=self.description.data or "",
        )


class ReportForm(PageForm):
    """Base of the per-department report form: one textarea per reflection question is added
    by `report_form`."""

    activities = MultiCheckboxField(
        _l("Activities the report covers"),
        [required(_l("Choose at least one of your activities."))],
    )
    attachment = FileField(
        _l("Report as PDF (optional)"),
        description=_l("A PDF file without scripts or attachments, at most 10 MB."),
    )

    field_map: Mapping[str, str] = MappingProxyType({"activity_ids": "activities", "attachment_id": "attachment"})
    questions: list[tuple[str, str]]  # (question code, form field name)

    def answers(self) -> dict[str, str]:
        return {code: self[name].data for code, name in self.questions}


def report_form(dept: Department, locale: str, activities: Iterable[domain.Activity]) -> ReportForm:
    """A report form for the department's current reflection questions."""
    form_class = type("DepartmentReportForm", (ReportForm,), {})
    questions = []
    for index, question in enumerate(dept.reflection_questions):
        name = f"answer_{index}"
        setattr(
            form_class,
            name,
            TextAreaField(
                question.text.get(locale),
                [required(_l("Answer this question.")), Length(max=8000), safe_text(multiline=True)],
                filters=[normalise_newlines],
            ),
        )
        questions.append((question.code, name))
    form: ReportForm = form_class()
    form.questions = questions
    form.field_map = {**ReportForm.field_map, "answers": questions[0][1]} if questions else ReportForm.field_map
    form.activities.choices = [SelectChoice(a.activity_id, a.details.title) for a in activities]
    return form


class StudiesCompletedForm(PageForm):
    completed_on = DateInputField(
        _l("Date your studies ended"),
        [required(_l("Enter the date your studies ended."))],
        description=_l("For example 2026-06-05."),
    )
    term = StringField(
        _l("Term"),
        [required(_l("Enter the term your studies ended.")), academic_term],
        filters=[strip],
        description=_l("HT (autumn) or VT (spring) and the year, e.g. VT2028."),
    )

    @property
    def completed_on_date(self) -> date:
        return cast(date, self.completed_on.data)


class WithdrawForm(PageForm):
    reason = TextAreaField(
        _l("Reason (optional)"),
        [Optional(), Length(max=1000), safe_text(multiline=True)],
        filters=[normalise_newlines],
        default="",
    )


def country_choices(locale: str) -> Choices:
    """ISO country codes with their names in the page's language, sorted by name."""
    from babel import Locale

    names = Locale.parse(locale).territories
    named = sorted(((names.get(code, code), code) for code in country_codes()), key=lambda c: c[0])
    return [SelectChoice(code, name) for name, code in named]


def country_name(code: str | None, locale: str) -> str:
    if not code:
        return ""
    from babel import Locale

    return str(Locale.parse(locale).territories.get(code, code))


# -- domain messages in the page's language ---------------------------------------------------
# The use cases answer in English (the JSON API's language); the pages show their own words.
_DOMAIN_TEXTS: dict[str, Any] = {
    "Not a CIM department.": _l("Not a CIM department."),
    "Give the country of an activity abroad.": _l("Choose the country of an activity abroad."),
    "An activity abroad cannot be in Sweden.": _l("An activity abroad cannot be in Sweden."),
    "Must not be before the start date.": _l("Must not be before the start date."),
    "Dates must lie between 2000 and ten years ahead.": _l("Dates must lie between 2000 and ten years ahead."),
    "Choose at least one of your activities.": _l("Choose at least one of your activities."),
    "Some activities are not yours or do not exist.": _l("Some activities are not yours or do not exist."),
    "Withdrawn activities cannot be covered.": _l("Withdrawn activities cannot be covered."),
    "An activity is listed twice.": _l("An activity is listed twice."),
    "No such attachment of yours.": _l("No such attachment of yours."),
    "Must not be after today.": _l("Must not be after today."),
    "The file is empty.": _l("The file is empty."),
    "The file is not a PDF.": _l("The file is not a PDF."),
    "PDFs with scripts, actions or embedded files are not accepted.": _l(
        "PDFs with scripts, actions or embedded files are not accepted."
    ),
    "Encrypted PDFs are not accepted.": _l("Encrypted PDFs are not accepted."),
    "The PDF could not be read.": _l("The PDF could not be read."),
    "The PDF has no pages.": _l("The PDF has no pages."),
    "The PDF has too many pages (at most 500).": _l("The PDF has too many pages (at most 500)."),
    "Must not contain control characters.": _l("Must not contain control characters."),
    "This registration has been withdrawn; nothing more can be recorded.": _l(
        "This registration has been withdrawn; nothing more can be recorded."
    ),
    "A withdrawn activity cannot be amended.": _l("A withdrawn activity cannot be amended."),
    "This activity is already logged.": _l("This activity is already logged."),
    "This student is already registered.": _l("This student is already registered."),
    "No such student.": _l("The page you asked for does not exist."),
    "No such activity.": _l("The page you asked for does not exist."),
}
_NOT_A_PROGRAMME = re.compile(r"^Not a programme of [\w-]+\.$")
_NOT_A_KIND = re.compile(r"^Not an activity kind of [\w-]+\.$")
_SETTINGS_ONLY = re.compile(r"^[\w-]+ can only be: ([\w, ]+)\.$")
_TOO_LARGE = re.compile(r"^The file must be at most (\d+) bytes\.$")
_ANSWERS = re.compile(r"^(Answer every reflection question|Unknown questions|Blank answers)")


def known_text(message: str) -> str | None:
    """The page-language version of a message the use cases give, or None if it is not known."""
    if message in _DOMAIN_TEXTS:
        return str(_DOMAIN_TEXTS[message])
    if _NOT_A_PROGRAMME.match(message):
        return _("Choose a programme of the department you chose.")
    if _NOT_A_KIND.match(message):
        return _("Choose a kind of activity of your department.")
    match = _SETTINGS_ONLY.match(message)
    if match:
        settings = [str(SETTING_WORDS.get(s.strip(), s.strip())) for s in match.group(1).split(",")]
        return _("This kind of activity can only take place %(settings)s.", settings=_(" or ").join(settings))
    match = _TOO_LARGE.match(message)
    if match:
        megabytes = max(1, int(match.group(1)) // (1024 * 1024))
        return _("The file must be at most %(size)s MB.", size=megabytes)
    if _ANSWERS.match(message):
        return _("Answer every reflection question.")
    return None


def domain_text(message: str) -> str:
    return known_text(message) or message
