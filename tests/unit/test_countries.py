"""The country list (issue 17): real countries only, sorted as a reader of the language expects."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from intake_service.web.forms import country_choices
from shared.validation import country_codes, validate_country


def _names(locale: str) -> list[str]:
    return [choice.label for choice in country_choices(locale)]


@pytest.mark.parametrize("code", ["XA", "XB", "ZZ", "EU", "AA", "QO", "IC"])
def test_pseudo_regions_and_groupings_are_neither_offered_nor_accepted(code: str) -> None:
    assert code not in country_codes()
    assert code not in {choice.value for choice in country_choices("en")}
    with pytest.raises(ValidationError):
        validate_country(code)


@pytest.mark.parametrize("code", ["SE", "DE", "CI", "AX", "XK", "GB"])
def test_real_countries_are_offered(code: str) -> None:
    assert code in country_codes()
    validate_country(code)


def test_english_sorts_accented_letters_with_their_base_letter() -> None:
    names = _names("en")
    assert "Pseudo-Accents" not in names
    assert names.index("Albania") > names.index("Åland Islands") > names.index("Afghanistan")  # among the A's
    assert names.index("Côte d’Ivoire") < names.index("Croatia")


def test_swedish_sorts_a_ring_a_diaeresis_and_o_diaeresis_after_z() -> None:
    names = _names("sv")
    assert names[-3:] == ["Åland", "Österrike", "Östtimor"]
    assert names.index("Zimbabwe") < names.index("Åland")
