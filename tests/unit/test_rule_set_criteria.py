"""Review criteria per rule set: a rule set may name its own (`criteria` in the departments file);
a report is reviewed on the criteria of the rule set it was submitted under (its `CODE@version`,
earlier versions included); the default is the four criteria of the issue."""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from assessment_service.events import AssessorAssigned, ReviewSubmitted
from assessment_service.reviews import CRITERIA, ReviewFacts, SubmitReview, decide_review, fold_reviews
from shared.catalogue import DEFAULT_CRITERIA, Catalogue, CatalogueError
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import ValidationFailed
from shared.identity.models import Role
from tests.authkit import make_account
from tests.unit.test_assessment_access import World, assign, build_world
from tests.unit.test_catalogue_rules import VALID, load

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "departments.toml"
OWN = ("activities_documented", "reflection_critical")
OWN_TOML = (
    "criteria = [\n"
    '  { code = "activities_documented", '
    'label = { en = "Every activity is documented", sv = "Varje aktivitet är dokumenterad" } },\n'
    '  { code = "reflection_critical", '
    'label = { en = "The reflection is critical", sv = "Reflektionen är kritisk" } },\n'
    "]\n"
)
REPORT = "3f2e1d0c-9b8a-4766-a554-433221100fed"
STUDENT = "0b7f3c1e-5d2a-4c8e-9f10-2a3b4c5d6e7f"


def with_criteria(text: str, criteria: str = OWN_TOML, department: str = "SOCSW") -> str:
    """`text` with `criteria` added to the department's top-level fields."""
    head = f"[departments.{department}]\n"
    return text.replace(head, head + criteria, 1)


# -- the catalogue -------------------------------------------------------------------------------------
def test_a_rule_set_without_criteria_has_the_default_four() -> None:
    catalogue = Catalogue.load(SHIPPED)
    for dept in catalogue.departments.values():
        assert dept.criteria == DEFAULT_CRITERIA
        assert dept.criterion_codes == CRITERIA
    assert DEFAULT_CRITERIA[0].label.sv == "Aktiviteterna uppfyller kraven"


def test_a_rule_set_names_its_own_criteria_with_their_wording(tmp_path: Path) -> None:
    dept = load(tmp_path, with_criteria(VALID, department="TEST")).department("TEST")
    assert dept is not None
    assert dept.criterion_codes == OWN
    assert dept.criteria[1].label.get("sv") == "Reflektionen är kritisk"
    assert dept.criteria[1].label.get("en") == "The reflection is critical"


def test_an_earlier_version_keeps_the_criteria_it_had(tmp_path: Path) -> None:
    text = with_criteria(VALID, department="TEST") + "\n[[departments.TEST.earlier]]\nversion = 1\ncriteria = [\n" \
        '  { code = "report_complete", label = { en = "Complete", sv = "Fullständig" } },\n]\n'
    catalogue = load(tmp_path, text)
    assert catalogue.rule_set("TEST@2").criterion_codes == OWN  # type: ignore[union-attr]
    assert catalogue.rule_set("TEST@1").criterion_codes == ("report_complete",)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ("criteria = []\n", r"departments\.TEST\.criteria: name at least one"),
        ('criteria = [{ code = "Has space", label = "x" }]\n', r"criteria\[0\]\.code: 'Has space' must be"),
        ('criteria = [{ code = "a", label = "x" }, { code = "a", label = "y" }]\n', r"criteria: code named twice: a"),
        ('criteria = [{ code = "a" }]\n', r"criteria\[0\]: needs a code and a label"),
        ('criteria = [{ code = "a", label = "x", weight = 2 }]\n', r"criteria\[0\]: unknown field\(s\) weight"),
        ('criteria = "all"\n', r"departments\.TEST\.criteria: expected a list"),
    ],
)
def test_malformed_criteria_are_refused_with_their_place(tmp_path: Path, criteria: str, message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        load(tmp_path, with_criteria(VALID, criteria, department="TEST"))


# -- the pure review rules, table-driven over two criteria lists ---------------------------------------
def facts(criteria: tuple[str, ...]) -> ReviewFacts:
    return ReviewFacts(REPORT, STUDENT, "SOCSW", 1, "SOCSW@2", approvals_required=2, withdrawn=False,
                       criteria=criteria)


STATE = fold_reviews([AssessorAssigned(REPORT, STUDENT, "SOCSW", "ann")])


@pytest.mark.parametrize(
    ("criteria", "verdicts", "errors"),
    [
        pytest.param(CRITERIA, dict.fromkeys(CRITERIA, "met"), None, id="default-all-given"),
        pytest.param(OWN, dict.fromkeys(OWN, "not_met"), None, id="own-all-given"),
        pytest.param(OWN, dict.fromkeys(CRITERIA, "met"),
                     {"verdicts.activities_documented", "verdicts.reflection_critical",
                      *(f"verdicts.{c}" for c in CRITERIA)}, id="own-judged-on-the-default-is-refused"),
        pytest.param(OWN, {"activities_documented": "met"}, {"verdicts.reflection_critical"}, id="own-one-missing"),
        pytest.param(CRITERIA, dict.fromkeys(OWN, "met"),
                     {*(f"verdicts.{c}" for c in CRITERIA), *(f"verdicts.{c}" for c in OWN)},
                     id="default-judged-on-another-list-is-refused"),
    ],
)
def test_a_review_answers_the_criteria_of_its_rule_set(
    criteria: tuple[str, ...], verdicts: dict[str, str], errors: set[str] | None
) -> None:
    command = SubmitReview("ann", verdicts, {}, "approve")
    if errors is not None:
        with pytest.raises(ValidationFailed) as refused:
            decide_review(STATE, facts(criteria), command)
        assert set(refused.value.problems) == errors
        return
    (review,) = decide_review(STATE, facts(criteria), command)
    assert isinstance(review, ReviewSubmitted)
    assert tuple(review.verdicts) == criteria  # in the rule set's order


def test_a_comment_on_a_criterion_of_another_rule_set_is_refused() -> None:
    command = SubmitReview("ann", dict.fromkeys(OWN, "met"), {"report_complete": "Fine."}, "approve")
    with pytest.raises(ValidationFailed) as refused:
        decide_review(STATE, facts(OWN), command)
    assert set(refused.value.problems) == {"verdicts.report_complete"}


# -- through the apps: the API, the page and the record follow the rule set ----------------------------
@pytest.fixture
def world(tmp_path: Path, clock: FixedClock) -> World:
    """SOCSW's rule set names its own two criteria; report A has two assessors."""
    departments = tmp_path / "departments.toml"
    departments.write_text(with_criteria(SHIPPED.read_text(encoding="utf-8")), encoding="utf-8")
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://",
                        departments_file=departments)
    world = build_world(settings, clock)
    world.accounts["second"] = make_account(world.identity, "Staff second", grants=[(Role.ASSESSOR, "SOCSW")])
    assign(world, "A", "assigned")
    assign(world, "A", "second")
    return world


def api_review(world: World, who: str, verdicts: dict[str, str], **body: Any) -> Any:
    client = world.token(who, "assessment:read", "assessment:review")
    return client.post(f"/api/v1/reports/{world.reports['A']}/reviews",
                       json={"verdicts": verdicts, "recommendation": "approve", **body},
                       headers={"Idempotency-Key": str(uuid.uuid4())})


def test_the_api_asks_the_rule_sets_criteria_and_refuses_the_default_ones(world: World) -> None:
    refused = api_review(world, "assigned", dict.fromkeys(CRITERIA, "met"))
    assert refused.status_code == 422
    assert "verdicts.activities_documented" in refused.json["errors"]
    assert "verdicts.report_complete" in refused.json["errors"]
    assert "ReviewSubmitted" not in world.report_events("A")
    assert api_review(world, "assigned", dict.fromkeys(OWN, "met")).status_code == 201
    assert api_review(world, "second", dict.fromkeys(OWN, "met")).status_code == 201
    assert world.report_events("A")[-1] == "ReportApproved"
    record = world.token("coordinator").get(f"/api/v1/reports/{world.reports['A']}/reviews").json
    assert record["criteria"] == list(OWN)
    assert record["criterion_labels"]["reflection_critical"] == {
        "en": "The reflection is critical", "sv": "Reflektionen är kritisk"}
    assert {tuple(r["verdicts"]) for r in record["rounds"][0]["reviews"]} == {OWN}


def test_the_review_form_has_one_field_per_criterion_of_the_rule_set(world: World) -> None:
    url = f"/reports/{world.reports['A']}/reviews"
    browser = world.browser("assigned")
    page = browser.get(url).text
    assert 'name="verdict_activities_documented"' in page
    assert 'name="comment_reflection_critical"' in page
    assert 'name="verdict_report_complete"' not in page
    assert "Every activity is documented" in page
    swedish = browser.get(url, headers={"Accept-Language": "sv"}).text
    assert "Varje aktivitet är dokumenterad" in swedish
    missing = browser.post(url, data={"verdict_activities_documented": "met", "recommendation": "revise",
                                      "form_token": str(uuid.uuid4())})
    assert missing.status_code == 422  # shown again, the missing criterion beside its field
    assert 'id="verdict_reflection_critical-error"' in missing.text or "verdict_reflection_critical" in missing.text
    assert "ReviewSubmitted" not in world.report_events("A")
    done = browser.post(url, data={"verdict_activities_documented": "met", "verdict_reflection_critical": "not_met",
                                   "comment_reflection_critical": "Describe more.", "recommendation": "revise",
                                   "form_token": str(uuid.uuid4())})
    assert done.status_code == 303
    after = browser.get(url).text
    assert "The reflection is critical" in after  # the recorded review, in its rule set's wording
    assert "Describe more." in after


def test_a_report_submitted_under_an_earlier_version_is_reviewed_on_that_versions_criteria(world: World) -> None:
    # The coordinator bumps SOCSW to version 2 with other criteria and keeps what version 1 said;
    # report A was submitted under @1.
    shipped = SHIPPED.read_text(encoding="utf-8").replace(
        "[departments.SOCSW]\nversion = 1\n",
        '[departments.SOCSW]\nversion = 2\ncriteria = [{ code = "new_only", label = "Only in version 2" }]\n', 1)
    bumped = shipped + "\n[[departments.SOCSW.earlier]]\nversion = 1\n" + OWN_TOML
    world.ctx.catalogue = Catalogue.parse(tomllib.loads(bumped))
    assert world.ctx.catalogue.department("SOCSW").rules_ref == "SOCSW@2"  # type: ignore[union-attr]
    assert api_review(world, "assigned", {"new_only": "met"}).status_code == 422
    accepted = api_review(world, "assigned", dict.fromkeys(OWN, "met"))
    assert accepted.status_code == 201, accepted.json


def test_a_review_on_criteria_the_file_no_longer_has_still_reads(world: World) -> None:
    assert api_review(world, "assigned", dict.fromkeys(OWN, "met"), recommendation="revise").status_code == 201
    # Someone dropped the criteria without a new version (`rules check --against` refuses that).
    world.ctx.catalogue = Catalogue.load(SHIPPED)
    record = world.token("coordinator").get(f"/api/v1/reports/{world.reports['A']}/reviews").json
    assert record["criteria"] == list(CRITERIA)  # the round is now asked the default ones
    assert record["criterion_labels"]["reflection_critical"] == {"en": "reflection_critical",
                                                                 "sv": "reflection_critical"}
    page = world.browser("coordinator").get(f"/reports/{world.reports['A']}/reviews")
    assert page.status_code == 200
    assert "<dt>reflection_critical</dt>" in page.text
