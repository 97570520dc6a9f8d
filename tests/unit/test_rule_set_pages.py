"""The rule sets staff read: `/rules`, `/rules/<code>` (the current version, `?version=N` an
earlier one kept) and `GET /api/v1/rule-sets/<code>`, in English and Swedish; staff of the
department and administrators only, another department's answering 404 like an unknown one."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from assessment_service.reviews import CRITERIA
from shared.catalogue import Catalogue
from shared.clock import FixedClock
from shared.config import Settings
from tests.unit.test_assessment_access import World, assign, build_world

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "departments.toml"


@pytest.fixture
def world(tmp_path: Path, clock: FixedClock) -> World:
    return build_world(Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://"),
                       clock)


def test_the_list_shows_the_callers_departments_and_an_administrator_all(world: World) -> None:
    mine = world.browser("coordinator").get("/rules")
    assert mine.status_code == 200
    assert "SOCSW@1" in mine.text
    assert "MED@1" not in mine.text
    assert "At least three activities; At least one activity abroad" in mine.text
    everything = world.browser("administrator").get("/rules").text
    assert all(f"{code}@1" in everything for code in ("SOCSW", "MED", "SAMF", "HT"))
    assert world.browser("med_assessor").get("/rules").text.count("@1</td>") == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("SOCSW", ["At least three activities", "At least one activity abroad",
                   "The department's coordinator decides", "Exchange studies"]),
        ("SAMF", ["At least three different kinds of activity", "At least one activity in Sweden"]),
        ("HT", ["At least one class A activity",
                "At least two class B activities (three class C activities may replace one)",
                "The assessor group decides", "<th scope=\"col\">Class</th>", "Final summary reflection"]),
        ("MED", ["At least two activities"]),
    ],
)
def test_a_rule_set_says_everything_in_words(world: World, code: str, expected: list[str]) -> None:
    page = world.browser("administrator").get(f"/rules/{code}")
    assert page.status_code == 200
    for text in [f"{code}@1", "Approvals required", "30 days", "1 term", "The report is complete", *expected]:
        assert text in page.text, text
    assert ("<th scope=\"col\">Class</th>" in page.text) == (code == "HT")  # only where classes are used


def test_the_page_in_swedish(world: World) -> None:
    page = world.browser("coordinator").get("/rules/SOCSW", headers={"Accept-Language": "sv"})
    assert page.status_code == 200
    for text in ("Regelverk", "Minst tre aktiviteter", "Minst en aktivitet utomlands",
                 "Institutionens samordnare beslutar", "Rapporten är fullständig", "Godkännanden som krävs",
                 "30 dagar", "1 termin", "Socialhögskolan"):
        assert text in page.text, text


@pytest.mark.parametrize(
    ("who", "url", "status"),
    [
        ("coordinator", "/rules/MED", 404),  # another department's: like an unknown one
        ("coordinator", "/rules/NOPE", 404),
        ("assigned", "/rules/SOCSW", 200),  # an assessor of the department
        ("other_coordinator", "/rules/MED", 200),
        ("student_A", "/rules", 403),
        ("student_A", "/rules/SOCSW", 403),
        ("administrator", "/rules/NOPE", 404),
        ("coordinator", "/rules/SOCSW?version=2", 404),  # no such version
        ("coordinator", "/rules/SOCSW?version=x", 404),
        ("coordinator", "/rules/SOCSW?version=1", 200),  # the current one, asked for by number
    ],
)
def test_who_reads_which_rule_set(world: World, who: str, url: str, status: int) -> None:
    assert world.browser(who).get(url).status_code == status


def test_a_foreign_rule_set_answers_exactly_as_an_unknown_one(world: World) -> None:
    browser = world.browser("coordinator")
    foreign, unknown = browser.get("/rules/MED"), browser.get("/rules/NOPE")
    assert (foreign.status_code, unknown.status_code) == (404, 404)
    assert foreign.text.replace("/rules/MED", "") == unknown.text.replace("/rules/NOPE", "")


def test_signed_out_visitors_go_to_sign_in(world: World) -> None:
    assert world.browser(None).get("/rules").status_code == 303


def test_the_assessment_nav_links_the_rule_sets(world: World) -> None:
    assert 'href="/rules"' in world.browser("coordinator").get("/review-queue").text


def test_an_earlier_version_is_shown_as_it_was_with_a_link_to_the_current_one(world: World) -> None:
    # The coordinator raised the version when changing the completion rule; version 1 is kept.
    text = SHIPPED.read_text(encoding="utf-8").replace(
        "[departments.SOCSW]\nversion = 1\n", "[departments.SOCSW]\nversion = 2\n", 1)
    text += "\n[[departments.SOCSW.earlier]]\nversion = 1\ncompletion = [{ requirement = \"min_count\", count = 2 }]\n"
    world.ctx.catalogue = Catalogue.parse(tomllib.loads(text))
    browser = world.browser("coordinator")
    now = browser.get("/rules/SOCSW").text
    assert "SOCSW@2" in now
    assert 'href="/rules/SOCSW?version=1"' in now
    assert "At least three activities" in now
    before = browser.get("/rules/SOCSW?version=1")
    assert before.status_code == 200
    assert "This is an earlier version" in before.text
    assert "At least two activities" in before.text
    assert "At least three activities" not in before.text
    assert world.token("coordinator").get("/api/v1/rule-sets/SOCSW?version=1").json["rule_set"] == "SOCSW@1"


# -- the JSON ----------------------------------------------------------------------------------------
def test_the_json_gives_every_field_in_both_languages(world: World) -> None:
    answer = world.token("administrator").get("/api/v1/rule-sets/HT")
    assert answer.status_code == 200
    body = answer.json
    assert body["rule_set"] == "HT@1"
    assert (body["version"], body["current"], body["versions"]) == (1, True, [1])
    assert body["classes"] == ["A", "B", "C"]
    assert body["completion"][1] == {
        "requirement": "min_of_class", "count": 2, "setting": None, "class": "B",
        "substitutes": [{"class": "C", "count": 3}],
        "label": {"en": "At least two class B activities (three class C activities may replace one)",
                  "sv": "Minst två aktiviteter i klass B (tre aktiviteter i klass C kan ersätta en)"},
    }
    exchange = next(k for k in body["activity_kinds"] if k["code"] == "exchange")
    assert exchange == {"code": "exchange", "name": {"en": "Exchange studies", "sv": "Utbytesstudier"},
                        "class": "A", "settings": ["abroad"]}
    assert [q["code"] for q in body["reflection_questions"]] == ["learning", "profession", "summary"]
    assert {k: body[k] for k in ("report_required", "presentation_required", "preparatory_lecture_required",
                                 "grace_terms", "approvals_required", "on_disagreement", "review_target_days",
                                 "review_days")} == {
        "report_required": True, "presentation_required": True, "preparatory_lecture_required": True,
        "grace_terms": 1, "approvals_required": 2, "on_disagreement": "assessor_group", "review_target_days": 30,
        "review_days": 14,
    }
    assert [c["code"] for c in body["criteria"]] == [
        "activities_meet_requirements", "reflection_compares_contexts", "reflection_relates_to_profession",
        "report_complete",
    ]


@pytest.mark.parametrize(
    ("who", "scopes", "code", "status"),
    [
        ("coordinator", ("assessment:read",), "SOCSW", 200),
        ("coordinator", ("assessment:read",), "MED", 404),
        ("coordinator", ("intake:read",), "SOCSW", 403),  # a person's token without the scope
        ("student_A", ("assessment:read",), "SOCSW", 403),
        (None, ("assessment:read",), "MED", 200),  # an integration reads every rule set
        (None, ("assessment:read",), "NOPE", 404),
        (None, ("intake:read",), "SOCSW", 403),
    ],
)
def test_who_reads_the_json(world: World, who: str | None, scopes: tuple[str, ...], code: str, status: int) -> None:
    assert world.token(who, *scopes).get(f"/api/v1/rule-sets/{code}").status_code == status



def test_the_json_takes_tokens_not_sessions(world: World) -> None:
    # Like the rest of the API: a person calls it with a token made for their account.
    assert world.browser("coordinator").get("/api/v1/rule-sets/SOCSW").status_code == 401
    assert world.token("administrator").get("/api/v1/rule-sets/MED").json["rule_set"] == "MED@1"


def test_the_reviews_history_links_the_rule_set_each_step_applied(world: World) -> None:
    assign(world, "A", "assigned")
    reviewed = world.token("assigned", "assessment:read", "assessment:review").post(
        f"/api/v1/reports/{world.reports['A']}/reviews",
        json={"verdicts": dict.fromkeys(CRITERIA, "met"), "recommendation": "revise"})
    assert reviewed.status_code == 201, reviewed.json
    page = world.browser("coordinator").get(f"/reports/{world.reports['A']}/reviews").text
    assert 'href="/rules/SOCSW?version=1">SOCSW@1</a>' in page
