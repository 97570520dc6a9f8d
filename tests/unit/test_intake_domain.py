"""The pure intake rules: decide_* functions over folded state, without any I/O."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from intake_service import domain
from intake_service.events import ActivityLogged, RegistrationWithdrawn, StudentRegistered
from shared.catalogue import Catalogue
from shared.errors import NotFound, RuleViolated, ValidationFailed
from shared.events import fields_of

CATALOGUE = Catalogue.load(Path(__file__).resolve().parents[2] / "config" / "departments.toml")
SOCSW = CATALOGUE.department("SOCSW")
TODAY = date(2026, 11, 28)
REGISTERED = StudentRegistered("s1", "Tova Exempel", "t@example.org", "tx1", "SOCSW", "SSASK", "VT2028", "SOCSW@1")


def details(**changes) -> domain.ActivityDetails:
    base = {
        "kind": "summer-school", "title": "Summer school in Oslo", "organiser": "A Nordic university",
        "setting": "abroad", "country_code": "NO", "start_date": date(2026, 6, 1),
        "end_date": date(2026, 6, 14), "hours": 60, "description": "",
    }
    return domain.ActivityDetails(**{**base, **changes})


def test_registration_records_the_rule_set_version_it_was_checked_with():
    cmd = domain.RegisterStudent("Tova Exempel", "t@example.org", "tx1", "SOCSW", "SSASK", "VT2028")
    [event] = domain.decide_register(domain.StudentState(), cmd, SOCSW, "s1", date(2026, 11, 28))
    assert event.rules == "SOCSW@1"


def test_unknown_programme_is_refused_naming_the_field():
    cmd = domain.RegisterStudent("Tova", "t@example.org", "tx1", "SOCSW", "MALAK", "VT2028")
    with pytest.raises(ValidationFailed) as err:
        domain.decide_register(domain.StudentState(), cmd, SOCSW, "s1", date(2026, 11, 28))
    assert "programme" in err.value.fields


def test_nothing_is_recorded_for_an_unknown_student():
    with pytest.raises(NotFound):
        domain.decide_log_activity(domain.StudentState(), domain.LogActivity("a1", details()), SOCSW, TODAY)


def test_nothing_is_recorded_after_withdrawal():
    state = domain.fold([REGISTERED, RegistrationWithdrawn("moved")])
    with pytest.raises(RuleViolated):
        domain.decide_log_activity(state, domain.LogActivity("a1", details()), SOCSW, TODAY)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"end_date": date(2026, 5, 1)}, "end_date"),
        ({"kind": "clinical-elective-abroad"}, "kind"),
        ({"kind": "exchange", "setting": "digital"}, "setting"),
        ({"country_code": None}, "country_code"),
        ({"country_code": "SE"}, "country_code"),
    ],
)
def test_activity_rules_name_the_broken_field(changes, field):
    state = domain.fold([REGISTERED])
    with pytest.raises(ValidationFailed) as err:
        domain.decide_log_activity(state, domain.LogActivity("a1", details(**changes)), SOCSW, TODAY)
    assert field in err.value.fields


def test_amending_with_identical_values_records_nothing():
    logged = ActivityLogged("a1", **fields_of(domain.ActivityDetails, details()))
    state = domain.fold([REGISTERED, logged])
    assert domain.decide_amend_activity(state, domain.AmendActivity("a1", details()), SOCSW, TODAY) == []
    [amended] = domain.decide_amend_activity(state, domain.AmendActivity("a1", details(hours=70)), SOCSW, TODAY)
    assert amended.hours == 70


def test_amending_an_unknown_activity_is_not_found():
    state = domain.fold([REGISTERED])
    with pytest.raises(NotFound):
        domain.decide_amend_activity(state, domain.AmendActivity("zz", details()), SOCSW, TODAY)


def test_report_needs_every_question_answered_and_own_activities():
    logged = ActivityLogged("a1", **fields_of(domain.ActivityDetails, details()))
    state = domain.fold([REGISTERED, logged])
    ok = domain.SubmitReport("r1", {"learning": "a", "profession": "b", "perspective": "c"}, ["a1"], None)
    [event] = domain.decide_submit_report(state, ok, SOCSW, {})
    assert event.activity_ids == ["a1"]
    assert event.rules == "SOCSW@1"
    bad = domain.SubmitReport("r2", {"learning": "a"}, ["a1", "a1", "nope"], "missing")
    with pytest.raises(ValidationFailed) as err:
        domain.decide_submit_report(state, bad, SOCSW, {})
    assert set(err.value.fields) == {"answers", "activity_ids", "attachment_id"}


def test_catalogue_rejects_a_department_without_questions():
    with pytest.raises(ValueError, match="reflection_questions"):
        Catalogue.parse({"departments": {"X": {"name": "X", "programmes": [{"code": "P", "name": "P"}],
                                               "activity_kinds": [{"code": "k", "name": "K"}]}}})
