"""The student pages' forms: WTForms classes with translated labels and messages, a one-time
form token against double submits, and the translation of domain messages shown beside fields."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from functools import cache
from types import MappingProxyType
from typing import Any, TypeAlias, cast

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from marshmallow import ValidationError as MarshmallowError
from marshmallow import validate as mm_validate
from wtforms import (
    DateField,
    EmailField,
    Field,
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
from shared.catalogue import SETTINGS, Catalogue, Department
from shared.errors import Problem
from shared.events import fields_of
from shared.validation import TERM_PATTERN, country_codes
from shared.web.collation import collation_key
from shared.web.forms import TokenForm

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
    # how far from today: the intake's rule (domain.term_problems), with today's date the
    # service's clock gives (the form checks it first; the use case checks it again)
    for problem in domain.term_problems(value, _today()):
        raise ValidationError(domain_text(problem))


def _today() -> date:
    from flask import current_app

    return cast(date, current_app.extensions["cim.intake"].clock.now().date())


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
class PageForm(TokenForm):
    """Every student page form: CSRF, the one-time token and error placement of
    `shared.web.forms.TokenForm`, with this service's domain messages translated."""

    reused_message = _l("This form was already sent with other values. Check My CIM, then send it again if needed.")

    def translate(self, problem: Problem) -> str:
        return domain_text(problem)


class MultiCheckboxField(SelectMultipleField):
    """A group of checkboxes (the page macro wraps them in a fieldset with a legend)."""

    option_widget = CheckboxInput()


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

    def command(self) -> domain.RegisterStudent:
        return domain.RegisterStudent(
            name=self.name.data,
            email=self.email.data,
            university_id=self.university_id.data,
            department=self.department.data,
            programme=self.programme.data,
            expected_end_term=self.expected_end_term.data,
        )


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
        choices=[SelectChoice(code, SETTING_LABELS[code]) for code in SETTINGS],
    )
    country_code = SelectField(
        _l("Country"),
        description=_l("Required for an activity abroad; leave it empty for one at home or online."),
        # the domain's rule (intake_service.domain.country_problems) names a code that is no country
        validate_choice=False,
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
            # activities stored before `setting` existed carry SE at home: shown as none
            country = details.country_code if details.setting == "abroad" else None
            data = {**fields_of(domain.ActivityDetails, details), "country_code": country or ""}
        form = cls(data=data)
        form.kind.choices = [
            SelectChoice("", _("Choose…")),
            *(SelectChoice(k.code, k.name.get(locale)) for k in dept.activity_kinds),
            # A kind the catalogue lacks: it waits for the assessor group's ruling (docs/rulings.md).
            SelectChoice(domain.OTHER_KIND, _("Another kind (the assessor group decides whether it counts)")),
        ]
        form.country_code.choices = [
            SelectChoice("", _("None (online or in Sweden)")),
            *country_choices(locale),
        ]
        return form

    def validate_country_code(self, field: Field) -> None:
        # the intake's rule, as the JSON API applies it: a country for an activity at home or
        # online is refused with a word, never silently dropped
        for problem in domain.country_problems(self.setting.data or "", field.data or None):
            raise ValidationError(domain_text(problem))

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
            # as stated: the rule refuses a country that contradicts the setting
            country_code=self.country_code.data or None,
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


@cache
def country_choices(locale: str) -> Choices:
    """ISO country codes with their names in the page's language, sorted as a reader of that
    language expects (ICU's collation: "Åland" among the A's in English, after Z in Swedish)."""
    from babel import Locale

    names = Locale.parse(locale).territories
    key = collation_key(locale)
    named = sorted(((str(names.get(code, code)), code) for code in country_codes()), key=lambda c: key(c[0]))
    return [SelectChoice(code, name) for name, code in named]


def country_name(code: str | None, locale: str) -> str:
    if not code:
        return ""
    from babel import Locale

    return str(Locale.parse(locale).territories.get(code, code))


# -- domain problems in the page's language ----------------------------------------------------
# The use cases answer with problem codes (and English for the JSON API); the pages show their
# own words for each code. A problem without a text here is shown as its English message.
#: A text, or a function of the problem's parameters that writes one.
PageText: TypeAlias = Callable[[Mapping[str, Any]], str] | LazyString


def _settings_only(params: Mapping[str, Any]) -> str:
    words = [str(SETTING_WORDS.get(code, code)) for code in params.get("settings", ())]
    return _("This kind of activity can only take place %(settings)s.", settings=_(" or ").join(words))


def _max_file_size(params: Mapping[str, Any]) -> str:
    return _("The file must be at most %(size)s MB.", size=max(1, int(params["max_bytes"]) // (1024 * 1024)))


_NOT_FOUND = _l("The page you asked for does not exist.")

PAGE_TEXTS: dict[str, PageText] = {
    # the intake's decisions (intake_service.domain.REASONS)
    "no_such_student": _NOT_FOUND,
    "no_such_activity": _NOT_FOUND,
    "registration_withdrawn": _l("This registration has been withdrawn; nothing more can be recorded."),
    "already_registered": _l("This student is already registered."),
    "unknown_programme": _l("Choose a programme of the department you chose."),
    "not_a_programme": _l("Choose a programme of the department you chose."),
    "activity_invalid": _l("The activity is not valid."),
    "not_a_kind": _l("Choose a kind of activity of your department."),
    "setting_not_allowed": _settings_only,
    "country_required": _l("Choose the country of an activity abroad."),
    "abroad_in_sweden": _l("An activity abroad cannot be in Sweden."),
    "not_a_country": _l("Choose a country from the list."),
    "country_at_home": _l(
        "An activity at home takes place in Sweden: leave Country empty, or choose Abroad if it was in another country."
    ),
    "country_online": _l("An online activity has no country: leave Country empty, or choose Abroad."),
    "not_a_term": _l("Enter a term such as HT2026 (autumn) or VT2027 (spring)."),
    "term_too_far": lambda p: _(
        "Enter a term at most %(years)s years before or after this year.", years=p["years"]
    ),
    "date_not_in_term": lambda p: _(
        "This date is not in %(term)s: a day of %(term)s lies between %(first)s and %(last)s.",
        term=p["term"], first=p["first"], last=p["last"],
    ),
    "end_before_start": _l("Must not be before the start date."),
    "dates_out_of_range": _l("Dates must lie between 2000 and ten years ahead."),
    "activity_already_logged": _l("This activity is already logged."),
    "withdrawn_activity_not_amendable": _l("A withdrawn activity cannot be amended."),
    "report_invalid": _l("The report is not valid."),
    "answers_missing": _l("Answer every reflection question."),
    "answers_unknown": _l("Answer every reflection question."),
    "answers_blank": _l("Answer every reflection question."),
    "no_activities": _l("Choose at least one of your activities."),
    "foreign_activities": _l("Some activities are not yours or do not exist."),
    "withdrawn_activities": _l("Withdrawn activities cannot be covered."),
    "activity_listed_twice": _l("An activity is listed twice."),
    "no_such_attachment": _l("No such attachment of yours."),
    "completed_in_future": _l("Must not be after today."),
    "after_today": _l("Must not be after today."),
    "no_such_report": _NOT_FOUND,
    "report_waiting": _l("Your report is waiting for review or in review; you cannot submit another one now."),
    "report_already_approved": _l("Your report is approved; you cannot submit another one."),
    "revision_requested_resubmit": _l(
        "A revision of your report was requested: revise and resubmit that report instead."
    ),
    "no_revision_requested": _l("No revision of this report has been requested."),
    "already_resubmitted": _l("This report has already been resubmitted; the new round is waiting for review."),
    "student_deregistered": _l(
        "You were deregistered from CIM when your deadline passed: nothing new can be recorded until your "
        "coordinator reinstates you."
    ),
    # the services' own (intake_service.services)
    "unknown_department": _l("Not a CIM department."),
    "not_a_department": _l("Not a CIM department."),
    # the upload checks (intake_service.uploads.REASONS)
    "file_empty": _l("The file is empty."),
    "not_a_pdf": _l("The file is not a PDF."),
    "pdf_active": _l("PDFs with scripts, actions or embedded files are not accepted."),
    "pdf_encrypted": _l("Encrypted PDFs are not accepted."),
    "pdf_unreadable": _l("The PDF could not be read."),
    "pdf_no_pages": _l("The PDF has no pages."),
    "pdf_too_many_pages": lambda p: _("The PDF has too many pages (at most %(pages)s).", pages=p["max_pages"]),
    "file_too_large": _max_file_size,
    "max_file_size": _max_file_size,
}


def known_text(problem: Problem | str) -> str | None:
    """The page-language text of a problem the use cases give, or None if its code has none (or
    it is plain text, as an HTTP error's description is)."""
    if not isinstance(problem, Problem):
        return None
    text = PAGE_TEXTS.get(problem.code)
    if text is None:
        return None
    return str(text) if isinstance(text, LazyString) else text(problem.params)


def domain_text(problem: Problem | str) -> str:
    return known_text(problem) or str(problem)
