"""Contradictions caught where they are typed (issue 17): the intake's pure rules on terms,
completion dates and countries, which the pages and the JSON API both apply."""

from __future__ import annotations

from datetime import date

import pytest

from intake_service import domain

TODAY = date(2026, 11, 28)


@pytest.mark.parametrize(
    ("code", "span"),
    [
        ("HT2026", (date(2026, 8, 1), date(2027, 1, 31))),
        ("VT2027", (date(2027, 1, 1), date(2027, 8, 31))),
        ("autumn", None),
        ("HT26", None),
    ],
)
def test_a_term_spans_its_months(code: str, span: tuple[date, date] | None) -> None:
    assert domain.term_span(code) == span


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("VT2028", None),
        ("HT2034", None),  # 8 years ahead: the bound itself
        ("VT2018", None),  # 8 years back
        ("HT2035", "term_too_far"),
        ("VT2017", "term_too_far"),
        ("HT2062", "term_too_far"),
        ("spring 2028", "not_a_term"),
    ],
)
def test_a_term_must_lie_within_eight_years_of_today(code: str, problem: str | None) -> None:
    found = domain.term_problems(code, TODAY)
    assert [p.code for p in found] == ([problem] if problem else [])


@pytest.mark.parametrize(
    ("completed_on", "term", "errors"),
    [
        (date(2026, 6, 5), "VT2026", {}),
        (date(2026, 8, 20), "VT2026", {}),  # the summer belongs to the VT before it
        (date(2026, 1, 15), "HT2025", {}),  # an HT ends in January
        (date(2026, 1, 25), "VT2026", {}),
        (date(2026, 3, 10), "HT2026", {"completed_on": ["date_not_in_term"]}),
        (date(2026, 10, 1), "VT2026", {"completed_on": ["date_not_in_term"]}),
        (date(2026, 2, 1), "HT2025", {"completed_on": ["date_not_in_term"]}),
        (date(2027, 1, 10), "HT2026", {"completed_on": ["after_today"]}),
        (date(2027, 9, 1), "VT2027", {"completed_on": ["after_today", "date_not_in_term"]}),
        (date(2006, 5, 1), "VT2006", {"term": ["term_too_far"]}),
    ],
)
def test_a_completion_date_must_fall_in_the_stated_term(
    completed_on: date, term: str, errors: dict[str, list[str]]
) -> None:
    found = domain.completion_problems(completed_on, term, TODAY)
    assert {name: [p.code for p in problems] for name, problems in found.items()} == errors


@pytest.mark.parametrize(
    ("setting", "country", "problem"),
    [
        ("abroad", "DE", None),
        ("abroad", None, "country_required"),
        ("abroad", "SE", "abroad_in_sweden"),
        ("abroad", "XA", "not_a_country"),  # a pseudo-region CLDR knows, not a country
        ("abroad", "ZZ", "not_a_country"),
        ("at_home", None, None),
        ("at_home", "SE", None),  # what activities stored before `setting` existed carry
        ("at_home", "DE", "country_at_home"),
        ("digital", None, None),
        ("digital", "DE", "country_online"),
        ("digital", "SE", "country_online"),
    ],
)
def test_a_country_must_be_real_and_agree_with_the_setting(
    setting: str, country: str | None, problem: str | None
) -> None:
    found = domain.country_problems(setting, country)
    assert [p.code for p in found] == ([problem] if problem else [])


def test_a_completion_that_contradicts_its_term_is_refused_by_the_decider() -> None:
    state = domain.StudentState(registered=True)
    with pytest.raises(domain.ValidationFailed) as refused:
        domain.decide_complete_studies(state, domain.CompleteStudies(date(2026, 3, 10), "HT2026"), TODAY)
    assert refused.value.fields == {"completed_on": ["A day of HT2026 lies between 2026-08-01 and 2027-01-31."]}
