"""The page-form base both services share (shared.web.forms.TokenForm): the one-time token that
becomes the idempotency key, and domain errors placed where the person filling in the form sees
them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import MappingProxyType

import pytest
from flask import Flask
from wtforms import RadioField, SelectChoice, StringField

from shared.errors import IdempotencyKeyReused, Problem, Reason, RuleViolated, ValidationFailed
from shared.web.forms import TokenForm, input_attributes


class TripForm(TokenForm):
    title = StringField("Title", description="What it was called")
    setting = RadioField("Setting", choices=[SelectChoice("abroad", "Abroad"), SelectChoice("digital", "Digital")])
    field_map = MappingProxyType({"name_of_trip": "title"})
    reused_message = "Sent before with other values."

    def translate(self, problem: Problem) -> str:
        return f"[sv:{problem.code}] {problem.message}"


TOO_LONG = Reason("too_long", "Too long.")


@pytest.fixture
def request_context() -> Iterator[None]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="x" * 32, WTF_CSRF_ENABLED=False)
    with app.test_request_context(method="POST"):
        yield


@pytest.mark.usefixtures("request_context")
def test_a_domain_error_lands_beside_the_field_it_names_translated_by_the_service() -> None:
    form = TripForm()
    form.add_domain_errors(ValidationFailed("Not accepted.", {"name_of_trip": [TOO_LONG()], "unknown": ["Odd."]}))
    assert form.title.errors == ["[sv:too_long] Too long."]
    # a name the form does not have goes to the summary
    assert form.form_errors == ["[sv:validation_failed] Odd."]


@pytest.mark.usefixtures("request_context")
def test_a_domain_error_naming_no_field_shows_its_message_in_the_summary() -> None:
    form = TripForm()
    form.add_domain_errors(RuleViolated("This registration has been withdrawn."))
    assert form.error_summary() == [("", "[sv:rule_violated] This registration has been withdrawn.")]


@pytest.mark.usefixtures("request_context")
def test_the_summary_lists_form_errors_first_and_links_a_radio_group_to_its_first_option() -> None:
    form = TripForm()
    form.form_errors.append("Check the form.")
    form.setting.errors = ["Choose one."]
    form.title.errors = ["Give a title."]
    form.form_token.errors = ["hidden fields are never linked"]
    assert form.error_summary() == [
        ("", "Check the form."),
        ("title", "Give a title."),
        ("setting-0", "Choose one."),
    ]


@pytest.mark.usefixtures("request_context")
def test_a_shown_form_keeps_its_token_and_a_missing_or_forged_one_is_replaced() -> None:
    kept = str(uuid.uuid4())
    form = TripForm(data={"form_token": kept})
    form.ensure_token()
    assert form.token == kept  # a form re-shown with errors submits as the same request
    forged = TripForm(data={"form_token": "<script>"})
    assert forged.token is None
    forged.ensure_token()
    assert forged.token is not None
    assert forged.token != "<script>"
    before = forged.token
    forged.renew_token()
    assert forged.token != before


@pytest.mark.usefixtures("request_context")
def test_input_attributes_tie_a_field_to_its_hint_and_errors() -> None:
    form = TripForm()
    assert input_attributes(form.title, class_="input") == {"class_": "input", "aria-describedby": "title-hint"}
    form.title.errors = ["Give a title."]
    assert input_attributes(form.title) == {"aria-describedby": "title-hint title-error", "aria-invalid": "true"}


@pytest.mark.usefixtures("request_context")
def test_a_refused_use_case_puts_its_reason_on_the_form_and_a_taken_action_returns_its_result() -> None:
    form = TripForm()
    assert form.attempt(lambda: "stored") == "stored"

    def refuse_title() -> str:
        raise RuleViolated("A title is needed.", field="name_of_trip")

    assert form.attempt(refuse_title) is None
    assert form.title.errors == ["[sv:rule_violated] A title is needed."]

    def refuse_fields() -> str:
        raise ValidationFailed("Invalid.", {"setting": ["Choose a setting."]})

    assert form.attempt(refuse_fields) is None
    assert form.setting.errors == ["[sv:validation_failed] Choose a setting."]


@pytest.mark.usefixtures("request_context")
def test_a_token_used_before_with_other_values_is_replaced_so_the_form_can_be_sent_again() -> None:
    form = TripForm()
    form.ensure_token()
    first = form.token

    def reused() -> str:
        raise IdempotencyKeyReused("The key was used for another request.")

    assert form.attempt(reused) is None
    assert form.token is not None
    assert form.token != first
    assert form.form_errors == ["Sent before with other values."]
