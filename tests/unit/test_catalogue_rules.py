"""The departments file as versioned rule sets: what the shipped one says, and how a malformed one is
refused at load with a message naming the department and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.catalogue import MIN_OF_CLASS, Catalogue, CatalogueError

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "departments.toml"
CATALOGUE = Catalogue.load(SHIPPED)

# A small valid department; each malformed case below changes one thing in it.
VALID = """
[departments.TEST]
version = 2
name = { en = "Test department", sv = "Testinstitutionen" }
programmes = [{ code = "P1", name = "Programme" }]
classes = ["A", "B", "C"]
approvals_required = 2
on_disagreement = "coordinator"
review_target_days = 30
grace_terms = 1

[[departments.TEST.completion]]
requirement = "min_of_class"
class = "A"
count = 1
substitutes = [{ class = "C", count = 3 }]

[[departments.TEST.completion]]
requirement = "min_with_setting"
setting = "abroad"

[[departments.TEST.activity_kinds]]
code = "exchange"
name = "Exchange"
settings = ["abroad"]
class = "A"

[[departments.TEST.activity_kinds]]
code = "cafe"
name = "Café"
settings = ["at_home"]
class = "C"

[[departments.TEST.reflection_questions]]
code = "learning"
text = { en = "What did you learn?", sv = "Vad lärde du dig?" }
"""


def load(tmp_path: Path, text: str) -> Catalogue:
    path = tmp_path / "departments.toml"
    path.write_text(text, encoding="utf-8")
    return Catalogue.load(path)


def test_the_small_valid_file_loads(tmp_path):
    dept = load(tmp_path, VALID).department("TEST")
    assert dept.rules_ref == "TEST@2"
    assert dept.completion[0].requirement == MIN_OF_CLASS
    assert dept.kind("cafe").activity_class == "C"
    assert (dept.approvals_required, dept.on_disagreement, dept.review_target_days) == (2, "coordinator", 30)


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        pytest.param('version = 2', 'version = "two"', "departments.TEST.version", id="version-not-a-number"),
        pytest.param('version = 2', 'version = 0', "departments.TEST.version", id="version-zero"),
        pytest.param('approvals_required = 2', 'approvals_required = 0',
                     "departments.TEST.approvals_required", id="no-approvals"),
        pytest.param('on_disagreement = "coordinator"', 'on_disagreement = "dean"',
                     "departments.TEST.on_disagreement", id="unknown-decider"),
        pytest.param('on_disagreement = "coordinator"', 'on_disagreement = "third_assessor"',
                     "departments.TEST.on_disagreement: 'third_assessor' is not supported yet",
                     id="decider-not-built"),
        pytest.param('review_target_days = 30', 'review_target_days = -1',
                     "departments.TEST.review_target_days", id="negative-target"),
        pytest.param('grace_terms = 1', 'grace_terms = 1.5', "departments.TEST.grace_terms", id="fractional-grace"),
        pytest.param('grace_terms = 1', 'grace_terms = 1\npresentation_required = "yes"',
                     "departments.TEST.presentation_required", id="flag-not-boolean"),
        pytest.param('grace_terms = 1', 'grace_terms = 1\nrequire_abroad = true',
                     "departments.TEST: unknown field(s) require_abroad", id="misspelt-field"),
        pytest.param('requirement = "min_with_setting"', 'requirement = "at_least"',
                     "departments.TEST.completion[1].requirement", id="unknown-requirement"),
        pytest.param('setting = "abroad"\n\n[[departments.TEST.activity_kinds]]',
                     'setting = "overseas"\n\n[[departments.TEST.activity_kinds]]',
                     "departments.TEST.completion[1].setting", id="unknown-setting-in-rule"),
        pytest.param('setting = "abroad"\n\n[[departments.TEST.activity_kinds]]',
                     'setting = "digital"\n\n[[departments.TEST.activity_kinds]]',
                     "departments.TEST.completion[1].setting: no activity kind can be digital",
                     id="rule-no-kind-can-meet"),
        pytest.param('class = "A"\ncount = 1', 'class = "D"\ncount = 1',
                     "departments.TEST.completion[0].class", id="rule-names-unknown-class"),
        pytest.param('substitutes = [{ class = "C", count = 3 }]', 'substitutes = [{ class = "C", count = 0 }]',
                     "departments.TEST.completion[0].substitutes[0].count", id="substitute-count-zero"),
        pytest.param('substitutes = [{ class = "C", count = 3 }]', 'substitutes = [{ class = "A", count = 3 }]',
                     "departments.TEST.completion[0].substitutes[0].class", id="substitute-same-class"),
        pytest.param('settings = ["at_home"]\nclass = "C"', 'settings = ["at_home"]\nclass = "E"',
                     "departments.TEST.activity_kinds[1].class", id="kind-of-unknown-class"),
        pytest.param('settings = ["at_home"]', 'settings = ["at_home", "space"]',
                     "departments.TEST.activity_kinds[1].settings", id="kind-unknown-setting"),
        pytest.param('code = "cafe"', 'code = "exchange"',
                     "departments.TEST.activity_kinds: code named twice: exchange", id="kind-twice"),
        pytest.param('text = { en = "What did you learn?", sv = "Vad lärde du dig?" }', 'text = 42',
                     "departments.TEST.reflection_questions[0].text", id="question-text-not-text"),
        pytest.param('grace_terms = 1', 'grace_terms = 1\nmin_activities = 3',
                     "departments.TEST.completion: give either a completion rule or min_activities",
                     id="old-and-new-rule-together"),
    ],
)
def test_malformed_rule_set_is_refused_naming_department_and_field(tmp_path, old, new, names):
    assert old in VALID
    with pytest.raises(CatalogueError) as err:
        load(tmp_path, VALID.replace(old, new, 1))
    assert names in str(err.value)
    assert str(tmp_path / "departments.toml") in str(err.value)


def test_a_file_that_is_not_toml_is_refused_with_its_path(tmp_path):
    with pytest.raises(CatalogueError, match="not valid TOML"):
        load(tmp_path, VALID + "\n[departments.TEST\n")


def test_class_without_declared_classes_is_refused(tmp_path):
    text = VALID.replace('classes = ["A", "B", "C"]\n', "")
    with pytest.raises(CatalogueError, match=r"TEST\.activity_kinds\[0\]\.class: the department declares no"):
        load(tmp_path, text)


def test_the_first_file_shape_still_loads_as_a_completion_rule():
    catalogue = Catalogue.parse({"departments": {"OLD": {
        "name": "Old", "programmes": [{"code": "P", "name": "P"}], "requires_abroad": True, "min_activities": 3,
        "activity_kinds": [{"code": "k", "name": "K", "settings": ["abroad"]}],
        "reflection_questions": [{"code": "q", "text": "Q?"}],
    }}})
    old = catalogue.department("OLD")
    assert (old.min_activities, old.requires_abroad) == (3, True)
    assert [(r.requirement, r.count, r.setting) for r in old.completion] == [
        ("min_count", 3, None), ("min_with_setting", 1, "abroad"),
    ]


def test_an_earlier_version_is_kept_and_found_by_its_reference(tmp_path):
    text = VALID + """
[[departments.TEST.earlier]]
version = 1
approvals_required = 1
completion = [{ requirement = "min_count", count = 2 }]
"""
    catalogue = load(tmp_path, text)
    now = catalogue.rule_set("TEST@2")
    before = catalogue.rule_set("TEST@1")
    assert now is catalogue.department("TEST")
    assert before is not None
    assert (before.version, before.approvals_required, before.rules_ref) == (1, 1, "TEST@1")
    assert [(r.requirement, r.count) for r in before.completion] == [("min_count", 2)]
    assert before.activity_kinds == now.activity_kinds  # what the earlier version did not override
    assert catalogue.rule_set("TEST@3") is None
    assert catalogue.rule_set("NOPE@1") is None
    assert catalogue.rule_set("TEST") is None


def test_an_earlier_version_must_be_older_than_the_current_one(tmp_path):
    with pytest.raises(CatalogueError, match=r"departments\.TEST\.earlier\[0\]\.version"):
        load(tmp_path, VALID + "\n[[departments.TEST.earlier]]\nversion = 2\n")


# -- the shipped file ------------------------------------------------------------------------------------
def test_shipped_rule_sets_keep_the_versions_registrations_recorded():
    # SOCSW and MED say what they said at version 1 (three activities one abroad; two activities):
    # the new fields only spell out what version 1 implied, so their recorded references stay valid.
    assert CATALOGUE.department("SOCSW").rules_ref == "SOCSW@1"
    assert CATALOGUE.department("MED").rules_ref == "MED@1"
    assert CATALOGUE.department("SOCSW").min_activities == 3
    assert CATALOGUE.department("SOCSW").requires_abroad


@pytest.mark.parametrize("code", ["SOCSW", "SAMF", "HT", "MED"])
def test_every_shipped_rule_set_is_complete_in_english_and_swedish(code):
    dept = CATALOGUE.department(code)
    texts = [dept.name, dept.faculty, *(k.name for k in dept.activity_kinds),
             *(q.text for q in dept.reflection_questions), *(p.name for p in dept.programmes)]
    assert all(t.en and t.sv for t in texts)
    assert dept.approvals_required == 2
    assert dept.review_target_days == 30
    assert dept.grace_terms == 1
    assert dept.completion


@pytest.mark.parametrize(
    ("code", "shape"),
    [
        ("SOCSW", [("min_count", 3, None, None), ("min_with_setting", 1, "abroad", None)]),
        ("SAMF", [("min_count", 3, None, None), ("min_distinct_kinds", 3, None, None),
                  ("min_with_setting", 1, "abroad", None), ("min_with_setting", 1, "at_home", None)]),
        ("HT", [("min_of_class", 1, None, "A"), ("min_of_class", 2, None, "B")]),
        ("MED", [("min_count", 2, None, None)]),
    ],
)
def test_shipped_completion_rules_have_the_agreed_shape(code, shape):
    completion = CATALOGUE.department(code).completion
    assert [(r.requirement, r.count, r.setting, r.activity_class) for r in completion] == shape


def test_humanities_lets_three_c_activities_replace_one_b():
    b_rule = CATALOGUE.department("HT").completion[1]
    assert [(s.activity_class, s.count) for s in b_rule.substitutes] == [("C", 3)]
    assert {k.activity_class for k in CATALOGUE.department("HT").activity_kinds} == {"A", "B", "C"}
