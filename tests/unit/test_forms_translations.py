"""The Swedish catalogue is complete: every marked string of the pages has a translation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask import Flask

from assessment_service import domain as assessment_domain
from assessment_service.web import forms as assessment_forms
from intake_service import create_app, domain, services, uploads
from intake_service.web.forms import PAGE_TEXTS, domain_text, known_text
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import ROOT, Settings
from shared.errors import Problem
from tests.authkit import make_identity
from tests.factories import PO, compile_swedish

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def extracted() -> set[str | tuple[str, ...]]:
    with open(ROOT / "babel.cfg") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}
    found: set[str | tuple[str, ...]] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=keywords
    ):
        found.add(message)
    return found


def swedish() -> dict[str | tuple[str, ...], str | tuple[str, ...]]:
    with open(PO, "rb") as handle:
        catalog = read_po(handle, locale="sv")
    return {m.id: m.string for m in catalog if m.id and not m.fuzzy}


def test_every_marked_string_has_a_swedish_translation() -> None:
    messages = extracted()
    assert len(messages) > 100  # the extraction really ran over code and templates
    translations = swedish()
    missing = sorted(str(m) for m in messages if not translations.get(m))
    assert missing == [], "run pybabel extract/update and translate these"


def test_translations_keep_their_placeholders() -> None:
    for msgid, msgstr in swedish().items():
        ids = msgid if isinstance(msgid, tuple) else (msgid,)
        strs = msgstr if isinstance(msgstr, tuple) else (msgstr,)
        for source, target in zip(ids, strs, strict=False):
            assert sorted(PLACEHOLDER.findall(source)) == sorted(PLACEHOLDER.findall(target)), source


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://")
    clock = FixedClock(datetime(2026, 11, 28, tzinfo=UTC))
    return create_app(settings, store=InMemoryEventStore(), clock=clock, identity=make_identity(clock))


@pytest.mark.parametrize(
    ("problem", "english"),
    [
        (domain.NOT_A_PROGRAMME(department="SOCSW"), "Choose a programme of the department you chose."),
        (domain.SETTING_NOT_ALLOWED(kind="exchange", settings=("abroad",)),
         "This kind of activity can only take place abroad."),
        (
            domain.SETTING_NOT_ALLOWED(kind="seminar", settings=("at_home", "digital")),
            "This kind of activity can only take place at home in Sweden or online.",
        ),
        (uploads.MAX_FILE_SIZE(max_bytes=10485760), "The file must be at most 10 MB."),
        (uploads.MSG_TOO_MANY_PAGES(max_pages=500), "The PDF has too many pages (at most 500)."),
        (domain.ANSWERS_MISSING(questions=["profession"]), "Answer every reflection question."),
        (domain.AFTER_TODAY(), "Must not be after today."),
    ],
)
def test_domain_problems_are_put_in_the_page_language(app: Flask, problem: Problem, english: str) -> None:
    with app.test_request_context("/?lang=en"):
        assert known_text(problem) == english


def test_every_problem_the_use_cases_give_has_a_page_text() -> None:
    intake = {r.code for r in (*domain.REASONS, *uploads.REASONS, services.UNKNOWN_DEPARTMENT,
                               services.NOT_A_DEPARTMENT)}
    assert sorted(intake - set(PAGE_TEXTS)) == []
    assert sorted({r.code for r in assessment_domain.REASONS} - set(assessment_forms.PAGE_TEXTS)) == []


def test_domain_problems_in_swedish_and_unknown_codes_as_their_english(app: Flask) -> None:
    compile_swedish()
    with app.test_request_context("/?lang=sv"):
        assert domain_text(domain.AFTER_TODAY()) == "Får inte vara efter i dag."
        assert (domain_text(domain.SETTING_NOT_ALLOWED(kind="exchange", settings=("abroad",)))
                == "Den här typen av aktivitet kan bara äga rum utomlands.")
        brand_new = Problem("brand_new_rule", "Some brand-new rule.")
        assert known_text(brand_new) is None
        assert domain_text(brand_new) == "Some brand-new rule."
        # Pages go by code: an English sentence on its own is not recognised.
        assert known_text("Must not be after today.") is None
