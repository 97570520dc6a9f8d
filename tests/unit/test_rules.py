"""The completion rule engine over the four shipped rule shapes, table-driven: each row a student's
activities and, per requirement of the rule set, whether it is met and by which activities."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from shared.catalogue import Catalogue
from shared.completion import (
    SETTING_NOT_ALLOWED,
    UNKNOWN_KIND,
    WITHDRAWN,
    ActivityFact,
    Checklist,
    evaluate,
)

CATALOGUE = Catalogue.load(Path(__file__).resolve().parents[2] / "config" / "departments.toml")


def act(activity_id: str, kind: str, setting: str, month: str = "2026-07", *, withdrawn: bool = False) -> ActivityFact:
    """A synthetic activity; its title says what it is, so failures read plainly."""
    return ActivityFact(
        activity_id=activity_id,
        kind=kind,
        setting=setting,
        title=f"{kind} {setting} {activity_id}",
        start_date=date.fromisoformat(f"{month}-01"),
        withdrawn=withdrawn,
    )


def met_by(checklist: Checklist) -> list[tuple[bool, list[str]]]:
    """Each requirement: met or not, and the ids of the activities that meet it."""
    return [(item.met, [a.activity_id for a in item.activities]) for item in checklist.items]


# -- School of Social Work: at least three activities, at least one abroad -----------------------------
SOCSW_CASES = [
    pytest.param(
        [act("a1", "summer-school", "abroad"), act("a2", "seminar", "digital"),
         act("a3", "international-cafe", "at_home")],
        [(True, ["a1", "a2", "a3"]), (True, ["a1"])],
        id="three-with-one-abroad",
    ),
    pytest.param(
        [act("a1", "seminar", "digital"), act("a2", "guest-lecture", "at_home"),
         act("a3", "international-cafe", "at_home")],
        [(True, ["a1", "a2", "a3"]), (False, [])],
        id="three-none-abroad",
    ),
    pytest.param(
        [act("a1", "exchange", "abroad"), act("a2", "internship-abroad", "abroad")],
        [(False, ["a1", "a2"]), (True, ["a1", "a2"])],
        id="two-both-abroad",
    ),
    pytest.param(
        [act("a1", "exchange", "abroad", withdrawn=True), act("a2", "seminar", "digital"),
         act("a3", "seminar", "at_home"), act("a4", "international-cafe", "at_home")],
        [(True, ["a2", "a3", "a4"]), (False, [])],
        id="withdrawn-abroad-does-not-count",
    ),
    pytest.param(
        [act("a1", "clinical-elective-abroad", "abroad"), act("a2", "seminar", "digital"),
         act("a3", "seminar", "digital")],
        [(False, ["a2", "a3"]), (False, [])],
        id="kind-of-another-department-does-not-count",
    ),
    pytest.param([], [(False, []), (False, [])], id="nothing-logged"),
]


@pytest.mark.parametrize(("activities", "expected"), SOCSW_CASES)
def test_school_of_social_work_rule(activities, expected):
    assert met_by(evaluate(CATALOGUE.department("SOCSW"), activities)) == expected


# -- Faculty of Social Sciences: three of different kinds, one abroad, one in Sweden -------------------
SAMF_CASES = [
    pytest.param(
        [act("a1", "exchange", "abroad", "2025-09"), act("a2", "international-cafe", "at_home", "2026-02"),
         act("a3", "seminar", "digital", "2026-03")],
        [(True, ["a1", "a2", "a3"]), (True, ["a1", "a2", "a3"]), (True, ["a1"]), (True, ["a2"])],
        id="all-met",
    ),
    pytest.param(
        [act("a1", "seminar", "digital", "2026-01"), act("a2", "seminar", "at_home", "2026-02"),
         act("a3", "exchange", "abroad", "2026-03")],
        [(True, ["a1", "a2", "a3"]), (False, ["a1", "a3"]), (True, ["a3"]), (True, ["a2"])],
        id="two-seminars-are-one-kind",
    ),
    pytest.param(
        [act("a1", "exchange", "abroad", "2026-01"), act("a2", "field-study-abroad", "abroad", "2026-02"),
         act("a3", "seminar", "digital", "2026-03")],
        [(True, ["a1", "a2", "a3"]), (True, ["a1", "a2", "a3"]), (True, ["a1", "a2"]), (False, [])],
        id="nothing-in-sweden",
    ),
    pytest.param(
        [act("a1", "buddy-programme", "at_home", "2026-01"), act("a2", "international-cafe", "at_home", "2026-02"),
         act("a3", "seminar", "digital", "2026-03"), act("a4", "exchange", "abroad", "2026-04", withdrawn=True)],
        [(True, ["a1", "a2", "a3"]), (True, ["a1", "a2", "a3"]), (False, []), (True, ["a1", "a2"])],
        id="withdrawn-exchange-leaves-nothing-abroad",
    ),
]


@pytest.mark.parametrize(("activities", "expected"), SAMF_CASES)
def test_faculty_of_social_sciences_rule(activities, expected):
    assert met_by(evaluate(CATALOGUE.department("SAMF"), activities)) == expected


# -- Humanities and Theology: one A and two B; three C may replace one B -------------------------------
HT_CASES = [
    pytest.param(
        [act("a", "exchange", "abroad", "2025-09"), act("b1", "summer-school", "digital", "2026-06"),
         act("b2", "language-course", "at_home", "2026-08")],
        [(True, ["a"]), (True, ["b1", "b2"])],
        id="one-A-two-B",
    ),
    pytest.param(
        [act("a", "online-exchange", "digital", "2025-09"), act("b1", "summer-school", "at_home", "2026-06"),
         act("c1", "seminar", "digital", "2026-01"), act("c2", "guest-lecture", "at_home", "2026-02"),
         act("c3", "international-cafe", "at_home", "2026-03")],
        [(True, ["a"]), (True, ["b1", "c1", "c2", "c3"])],
        id="three-C-replace-one-B",
    ),
    pytest.param(
        [act("a", "exchange", "abroad", "2025-09"), act("c1", "seminar", "digital", "2026-01"),
         act("c2", "seminar", "digital", "2026-02"), act("c3", "seminar", "digital", "2026-03"),
         act("c4", "seminar", "digital", "2026-04"), act("c5", "seminar", "digital", "2026-05"),
         act("c6", "seminar", "digital", "2026-06")],
        [(True, ["a"]), (True, ["c1", "c2", "c3", "c4", "c5", "c6"])],
        id="six-C-replace-both-B",
    ),
    pytest.param(
        [act("a", "exchange", "abroad", "2025-09"), act("b1", "summer-school", "abroad", "2026-06"),
         act("c1", "seminar", "digital", "2026-01"), act("c2", "seminar", "digital", "2026-02")],
        [(True, ["a"]), (False, ["b1"])],
        id="two-C-are-not-enough",
    ),
    pytest.param(
        [act("b1", "summer-school", "abroad", "2026-06"), act("b2", "conference-volunteer", "at_home", "2026-07"),
         act("b3", "language-course", "digital", "2026-08")],
        [(False, []), (True, ["b1", "b2"])],
        id="B-cannot-stand-in-for-A",
    ),
    pytest.param(
        [act("a1", "exchange", "abroad", "2025-09"), act("a2", "internship-international", "at_home", "2026-01"),
         act("b1", "summer-school", "abroad", "2026-06")],
        [(True, ["a1"]), (False, ["b1"])],
        id="a-second-A-is-not-a-B",
    ),
    pytest.param(
        [act("a", "exchange", "abroad", "2025-09"), act("b1", "summer-school", "abroad", "2026-06"),
         act("b2", "language-course", "abroad", "2026-07", withdrawn=True), act("c1", "seminar", "digital", "2026-01"),
         act("c2", "seminar", "digital", "2026-02"), act("c3", "seminar", "digital", "2026-03", withdrawn=True)],
        [(True, ["a"]), (False, ["b1"])],
        id="withdrawn-B-and-C-do-not-count",
    ),
]


@pytest.mark.parametrize(("activities", "expected"), HT_CASES)
def test_humanities_and_theology_rule(activities, expected):
    assert met_by(evaluate(CATALOGUE.department("HT"), activities)) == expected


def test_humanities_asks_a_final_summary_reflection():
    questions = CATALOGUE.department("HT").reflection_questions
    assert "summary" in [q.code for q in questions]
    summary = next(q for q in questions if q.code == "summary")
    assert "summary" in summary.text.en.lower()
    assert "sammanfattande" in summary.text.sv


# -- Faculty of Medicine: activities abroad not required -----------------------------------------------
MED_CASES = [
    pytest.param(
        [act("a1", "buddy-programme", "at_home"), act("a2", "seminar", "digital")],
        [(True, ["a1", "a2"])],
        id="two-at-home-suffice",
    ),
    pytest.param(
        [act("a1", "clinical-elective-abroad", "abroad")],
        [(False, ["a1"])],
        id="one-abroad-is-too-few",
    ),
    pytest.param(
        [act("a1", "global-health-course", "abroad"), act("a2", "seminar", "at_home", withdrawn=True)],
        [(False, ["a1"])],
        id="withdrawn-does-not-count",
    ),
]


@pytest.mark.parametrize(("activities", "expected"), MED_CASES)
def test_faculty_of_medicine_rule(activities, expected):
    assert met_by(evaluate(CATALOGUE.department("MED"), activities)) == expected


def test_medicine_names_no_requirement_abroad():
    med = CATALOGUE.department("MED")
    assert not med.requires_abroad
    assert all(r.setting != "abroad" for r in med.completion)


# -- the checklist itself ------------------------------------------------------------------------------
def test_checklist_names_the_activities_that_meet_each_requirement_in_both_languages():
    berlin = ActivityFact("a1", "summer-school", "abroad", "Summer school in Berlin", date(2026, 7, 6))
    checklist = evaluate(CATALOGUE.department("SOCSW"), [berlin])
    abroad = checklist.items[1]
    assert abroad.describe("en") == "At least one activity abroad: yes — Summer school in Berlin, 2026-07"
    assert abroad.describe("sv") == "Minst en aktivitet utomlands: ja — Summer school in Berlin, 2026-07"
    count = checklist.items[0]
    assert (count.met, count.found, count.needed) == (False, 1, 3)
    assert count.describe("en").startswith("At least three activities: no")
    assert checklist.rules == "SOCSW@1"
    assert not checklist.all_met
    assert checklist.summary("en") == "1 of 2 requirements met"
    assert checklist.summary("sv") == "1 av 2 krav uppfyllda"


def test_class_requirement_is_worded_with_its_substitution():
    checklist = evaluate(CATALOGUE.department("HT"), [])
    assert checklist.items[1].label.en == "At least two class B activities (three class C activities may replace one)"
    assert checklist.items[1].label.sv == "Minst två aktiviteter i klass B (tre aktiviteter i klass C kan ersätta en)"


def test_a_label_in_the_rule_set_overrides_the_generated_wording():
    checklist = evaluate(CATALOGUE.department("SAMF"), [])
    assert checklist.items[3].label.en == "At least one activity in Sweden"


def test_activities_left_out_are_listed_with_the_reason():
    activities = [
        act("w", "exchange", "abroad", withdrawn=True),
        act("u", "other", "abroad"),
        act("s", "exchange", "digital"),
        act("ok", "seminar", "digital"),
    ]
    checklist = evaluate(CATALOGUE.department("SOCSW"), activities)
    assert {(u.activity.activity_id, u.reason) for u in checklist.uncounted} == {
        ("w", WITHDRAWN), ("u", UNKNOWN_KIND), ("s", SETTING_NOT_ALLOWED),
    }
    assert checklist.items[0].found == 1


def test_the_order_activities_arrive_in_does_not_change_the_checklist():
    activities = [act(f"c{n}", "seminar", "digital", f"2026-0{n}") for n in range(1, 7)] + [
        act("b1", "summer-school", "abroad", "2026-08"), act("a1", "exchange", "abroad", "2025-01"),
    ]
    rule_set = CATALOGUE.department("HT")
    assert evaluate(rule_set, activities) == evaluate(rule_set, list(reversed(activities)))


def test_checklist_survives_a_round_trip_through_json_primitives():
    activities = [act("a1", "exchange", "abroad"), act("w", "seminar", "digital", withdrawn=True)]
    checklist = evaluate(CATALOGUE.department("SOCSW"), activities)
    assert Checklist.from_dict(checklist.to_dict()) == checklist


def test_an_activity_counted_for_one_class_is_not_counted_again_as_a_stand_in():
    # A rule set where an A activity may also replace a B: one A cannot do both jobs.
    catalogue = Catalogue.parse({"departments": {"X": {
        "name": "X", "programmes": [{"code": "P", "name": "P"}], "classes": ["A", "B"],
        "activity_kinds": [{"code": "big", "name": "Big", "class": "A"},
                           {"code": "small", "name": "Small", "class": "B"}],
        "reflection_questions": [{"code": "q", "text": "Q?"}],
        "completion": [
            {"requirement": "min_of_class", "class": "A", "count": 1},
            {"requirement": "min_of_class", "class": "B", "count": 1, "substitutes": [{"class": "A", "count": 1}]},
        ],
    }}})
    rule_set = catalogue.department("X")
    one_big = [act("a1", "big", "abroad")]
    assert met_by(evaluate(rule_set, one_big)) == [(True, ["a1"]), (False, [])]
    two_big = [act("a1", "big", "abroad", "2026-01"), act("a2", "big", "digital", "2026-02")]
    assert met_by(evaluate(rule_set, two_big)) == [(True, ["a1"]), (True, ["a2"])]
