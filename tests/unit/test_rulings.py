"""The pure ruling decider on activities of a kind the catalogue lacks (assessment_service/rulings.py):
table-driven over the shipped rule sets (HT uses classes A/B/C, SOCSW none)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from assessment_service.events import ActivityKindRuled
from assessment_service.rulings import (
    ActivityFacts,
    RuleOnKind,
    checklist_with_rulings,
    counted_kind,
    decide_ruling,
    facts_with_rulings,
    rule_set_with_rulings,
)
from shared.catalogue import Catalogue
from shared.completion import ActivityFact
from shared.errors import RuleViolated, ValidationFailed

CATALOGUE = Catalogue.load(Path(__file__).resolve().parents[2] / "config" / "departments.toml")
STUDENT = "0b7f3c1e-5d2a-4c8e-9f10-2a3b4c5d6e7f"
ACTIVITY = "1c8e4d2f-6e3b-4d9f-8a21-3b4c5d6e7f80"


def facts(dept: str, kind: str = "other", *, withdrawn: bool = False) -> ActivityFacts:
    return ActivityFacts(ACTIVITY, STUDENT, dept, kind, withdrawn)


def command(**over: Any) -> RuleOnKind:
    base: dict[str, Any] = dict(
        ruled_by="acc-1", is_staff_there=True, kind_label="Model UN conference", outcome="accepted_as_existing",
        rationale="A conference with delegates from many countries.", kind="summer-school", activity_class=None,
    )
    base.update(over)
    return RuleOnKind(**base)


# (department, command overrides, expected (outcome, kind, class))
ACCEPTED = [
    ("HT", {}, ("accepted_as_existing", "summer-school", "B")),
    # the class of an existing kind is the catalogue's, whatever the form said
    ("HT", {"activity_class": "A"}, ("accepted_as_existing", "summer-school", "B")),
    ("HT", {"outcome": "accepted_as_new", "kind": "model-un", "activity_class": "B"},
     ("accepted_as_new", "model-un", "B")),
    ("SOCSW", {"outcome": "accepted_as_new", "kind": "model_un"}, ("accepted_as_new", "model_un", None)),
    ("SOCSW", {"outcome": "not_accepted", "kind": "seminar", "activity_class": "A"}, ("not_accepted", None, None)),
    ("SOCSW", {"kind_label": "  Model UN  ", "rationale": " Counts. "},
     ("accepted_as_existing", "summer-school", None)),
]


@pytest.mark.parametrize(("dept", "over", "expected"), ACCEPTED)
def test_a_valid_ruling_records_one_event(dept: str, over: dict[str, Any], expected: tuple[Any, ...]) -> None:
    rule_set = CATALOGUE.departments[dept]
    [event] = decide_ruling(rule_set, facts(dept), None, command(**over))
    assert (event.outcome, event.kind, event.activity_class) == expected
    assert (event.activity_id, event.student_id, event.department, event.ruled_by) == (ACTIVITY, STUDENT, dept, "acc-1")
    assert event.kind_label == event.kind_label.strip()
    assert event.rationale == event.rationale.strip()


# (department, command overrides, the fields named)
INVALID = [
    ("HT", {"kind_label": "  "}, {"kind_label"}),
    ("HT", {"kind_label": "x" * 121}, {"kind_label"}),
    ("HT", {"rationale": ""}, {"rationale"}),
    ("HT", {"outcome": "maybe"}, {"outcome"}),
    ("HT", {"kind": "no-such-kind"}, {"kind"}),
    ("HT", {"kind": None}, {"kind"}),
    ("HT", {"outcome": "accepted_as_new", "kind": "summer-school", "activity_class": "B"}, {"kind"}),
    ("HT", {"outcome": "accepted_as_new", "kind": "Model UN", "activity_class": "B"}, {"kind"}),
    ("HT", {"outcome": "accepted_as_new", "kind": "model-un", "activity_class": None}, {"activity_class"}),
    ("HT", {"outcome": "accepted_as_new", "kind": "model-un", "activity_class": "D"}, {"activity_class"}),
    ("SOCSW", {"outcome": "accepted_as_new", "kind": "model-un", "activity_class": "B"}, {"activity_class"}),
    ("SOCSW", {"kind_label": "", "rationale": "", "kind": "x y"}, {"kind_label", "rationale", "kind"}),
]


@pytest.mark.parametrize(("dept", "over", "fields"), INVALID)
def test_an_incomplete_ruling_names_its_fields(dept: str, over: dict[str, Any], fields: set[str]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decide_ruling(CATALOGUE.departments[dept], facts(dept), None, command(**over))
    assert set(caught.value.problems) == fields


def _prior() -> ActivityKindRuled:
    [event] = decide_ruling(CATALOGUE.departments["HT"], facts("HT"), None, command())
    return event


# (facts, prior ruling, command overrides, refusal code)
REFUSED = [
    (facts("HT"), None, {"is_staff_there": False}, "not_staff_there"),
    (facts("HT", "summer-school"), None, {}, "kind_is_listed"),
    (facts("HT", withdrawn=True), None, {}, "activity_withdrawn"),
    (facts("HT"), "prior", {"outcome": "not_accepted"}, "already_ruled"),
]


@pytest.mark.parametrize(("activity", "prior", "over", "code"), REFUSED)
def test_a_ruling_is_refused(activity: ActivityFacts, prior: str | None, over: dict[str, Any], code: str) -> None:
    with pytest.raises(RuleViolated) as caught:
        decide_ruling(CATALOGUE.departments["HT"], activity, _prior() if prior else None, command(**over))
    assert caught.value.problem.code == code


def test_the_same_ruling_again_stores_nothing() -> None:
    assert decide_ruling(CATALOGUE.departments["HT"], facts("HT"), _prior(), command()) == []


@pytest.mark.parametrize(
    ("outcome", "kind", "cls", "counted"),
    [
        ("accepted_as_existing", "summer-school", "B", ("summer-school", "B")),
        ("accepted_as_new", "model-un", None, ("model-un", None)),
        ("not_accepted", None, None, None),
    ],
)
def test_counted_kind(outcome: str, kind: str | None, cls: str | None, counted: object) -> None:
    ruling = ActivityKindRuled(ACTIVITY, STUDENT, "HT", "Model UN", outcome, kind, cls, "r", "acc-1")
    assert counted_kind(ruling) == counted
    assert counted_kind(None) is None


# -- the checklist counts an accepted activity as the ruled kind and class ----------------------
def _act(activity_id: str, kind: str, setting: str = "abroad") -> ActivityFact:
    return ActivityFact(activity_id, kind, setting, f"{kind} {activity_id}", date(2026, 7, 1))


HT_ACTIVITIES = [_act("a1", "exchange"), _act("b1", "summer-school"), _act("x1", "other")]


@pytest.mark.parametrize(
    ("ruled", "all_met", "counted_as"),
    [
        ({}, False, "other"),  # awaiting a ruling: not counted
        ({"x1": ("summer-school", "B")}, True, "summer-school"),  # accepted as an existing B kind
        ({"x1": ("model-un", "B")}, True, "model-un"),  # accepted as a new B kind
        ({"x1": ("model-un", "C")}, False, "model-un"),  # a new C kind: one C does not replace a B
    ],
)
def test_the_checklist_counts_an_accepted_activity_as_ruled(
    ruled: dict[str, tuple[str, str | None]], all_met: bool, counted_as: str
) -> None:
    checklist = checklist_with_rulings(CATALOGUE.departments["HT"], HT_ACTIVITIES, ruled)
    assert all(item.met for item in checklist.items) is all_met
    assert facts_with_rulings(HT_ACTIVITIES, ruled)[2].kind == counted_as
    counted_ids = {a.activity_id for item in checklist.items for a in item.activities}
    assert ("x1" in counted_ids) is (bool(ruled) and all_met)


def test_an_unruled_rule_set_is_the_same_object() -> None:
    rule_set = CATALOGUE.departments["HT"]
    assert rule_set_with_rulings(rule_set, {"x1": ("summer-school", "B")}) is rule_set
