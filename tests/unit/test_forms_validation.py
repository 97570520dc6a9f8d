"""The page forms on their own: what they accept, what they refuse, and how they put domain
errors beside fields."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.datastructures import MultiDict

from intake_service import create_app, domain
from intake_service.services import IntakeServices
from intake_service.web.forms import ActivityForm, RegisterForm, StudiesCompletedForm, WithdrawForm
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import Problem, RuleViolated, ValidationFailed
from tests.authkit import make_identity
from tests.factories import STUDENT

ACTIVITY = {
    "kind": "exchange",
    "title": "  Exchange in Berlin ",
    "organiser": "Humboldt-Universität",
    "setting": "abroad",
    "country_code": "DE",
    "start_date": "2026-01-10",
    "end_date": "2026-06-01",
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://")
    clock = FixedClock(datetime(2026, 11, 28, tzinfo=UTC))
    app = create_app(settings, store=InMemoryEventStore(), clock=clock, identity=make_identity(clock))
    app.config["WTF_CSRF_ENABLED"] = False
    with app.test_request_context("/", method="POST"):
        yield app


def services(app: Flask) -> IntakeServices:
    return app.extensions["cim.intake"]


def register_form(app: Flask, **changes: str) -> RegisterForm:
    form = RegisterForm(formdata=MultiDict({**STUDENT, **changes}))
    built = RegisterForm.build(services(app).catalogue, "en")
    form.department.choices, form.programme.choices = built.department.choices, built.programme.choices
    form.catalogue = built.catalogue
    return form


def activity_form(app: Flask, **changes: str) -> ActivityForm:
    dept = services(app).catalogue.department("SOCSW")
    assert dept is not None
    built = ActivityForm.build(dept, "en")
    form = ActivityForm(formdata=MultiDict({**ACTIVITY, **changes}))
    form.kind.choices, form.country_code.choices = built.kind.choices, built.country_code.choices
    return form


def test_a_valid_registration_becomes_the_command(app: Flask) -> None:
    form = register_form(app, expected_end_term="vt2028", name="  Astrid Lindqvist ")
    assert form.validate(), form.errors
    assert form.command() == domain.RegisterStudent(**{**STUDENT, "expected_end_term": "VT2028"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("programme", "MALAK", "Choose a programme of the department you chose."),
        ("email", "astrid@", "Enter an email address such as name@example.com."),
        ("university_id", "a b", "Use 2–32 letters, digits or hyphens."),
        ("expected_end_term", "spring 2028", "Enter a term such as HT2026 (autumn) or VT2027 (spring)."),
        ("name", "Astrid\x00", "Must not contain control characters."),
        ("name", "   ", "Enter your full name."),
    ],
)
def test_registration_refusals_name_the_field(app: Flask, field: str, value: str, message: str) -> None:
    form = register_form(app, **{field: value})
    assert not form.validate()
    assert [str(m) for m in form[field].errors] == [message]


def test_an_activity_abroad_needs_a_country_outside_sweden(app: Flask) -> None:
    assert not (form := activity_form(app, country_code="")).validate()
    assert form.country_code.errors == ["Choose the country of an activity abroad."]
    assert not (form := activity_form(app, country_code="SE")).validate()
    assert form.country_code.errors == ["An activity abroad cannot be in Sweden."]


def test_an_activity_online_without_a_country_becomes_the_details(app: Flask) -> None:
    form = activity_form(app, kind="seminar", setting="digital", country_code="", hours="2")
    assert form.validate(), form.errors
    details = form.details()
    assert details.country_code is None
    assert details.title == "Exchange in Berlin"
    assert details.hours == 2
    assert details.start_date == date(2026, 1, 10)


@pytest.mark.parametrize(
    ("setting", "country", "message"),
    [
        ("digital", "DE", "An online activity has no country: leave Country empty, or choose Abroad."),
        ("at_home", "DE", "An activity at home takes place in Sweden: leave Country empty, or choose Abroad if "
                          "it was in another country."),
        ("abroad", "XA", "Choose a country from the list."),
    ],
)
def test_a_country_that_contradicts_the_setting_is_refused_not_dropped(
    app: Flask, setting: str, country: str, message: str
) -> None:
    form = activity_form(app, kind="seminar", setting=setting, country_code=country)
    assert not form.validate()
    assert form.country_code.errors == [message]


def test_a_term_decades_away_is_refused_beside_the_field(app: Flask) -> None:
    form = register_form(app, expected_end_term="HT2062")
    assert not form.validate()
    assert form.expected_end_term.errors == ["Enter a term at most 8 years before or after this year."]
    assert register_form(app, expected_end_term="VT2034").validate()


def test_activity_dates_and_hours_are_checked(app: Flask) -> None:
    form = activity_form(app, end_date="2025-12-31", hours="-1")
    assert not form.validate()
    assert form.end_date.errors == ["Must not be before the start date."]
    assert form.hours.errors == ["Enter a whole number from 0 to 10000."]
    form = activity_form(app, start_date="", hours="many")
    assert not form.validate()
    assert form.start_date.errors == ["Enter the start date."]
    assert len(form.hours.errors) == 1


def test_domain_errors_go_beside_their_field_or_to_the_top(app: Flask) -> None:
    dept = services(app).catalogue.department("SOCSW")
    assert dept is not None
    exchange_at_home = domain.ActivityDetails(
        kind="exchange", title="Exchange", organiser="Uni", setting="at_home", country_code=None,
        start_date=date(2026, 1, 10), end_date=date(2026, 6, 1), hours=None, description="",
    )
    with pytest.raises(ValidationFailed) as refused:
        domain.check_activity(exchange_at_home, dept, date(2026, 11, 28))
    refused.value.problems["mystery"] = [Problem("mystery", "Odd.")]  # a field the form lacks
    form = activity_form(app)
    form.validate()
    form.add_domain_errors(refused.value)
    assert form.setting.errors == ["This kind of activity can only take place abroad."]
    assert form.form_errors == ["Odd."]
    assert form.error_summary() == [
        ("", "Odd."),
        ("setting-0", "This kind of activity can only take place abroad."),
    ]
    form = WithdrawForm(formdata=MultiDict({}))
    form.add_domain_errors(RuleViolated(domain.REGISTRATION_WITHDRAWN()))
    assert form.form_errors == ["This registration has been withdrawn; nothing more can be recorded."]


def test_the_form_token_is_made_once_and_must_be_a_uuid(app: Flask) -> None:
    form = StudiesCompletedForm(formdata=MultiDict({"form_token": "not-a-uuid"}))
    assert form.token is None
    form.ensure_token()
    token = form.token
    assert token is not None
    form.ensure_token()
    assert form.token == token
    form.renew_token()
    assert form.token != token
