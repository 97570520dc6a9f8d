"""A department's rule set as staff read it: everything it says, in English and Swedish, as JSON
primitives (the rule sets page and `GET /api/v1/rule-sets/<code>` both show this). Pure: the
rule set (`shared.catalogue.Department`) in, a dict out; the completion rule in the same words
the review checklist uses (`rules.label_of`)."""

from __future__ import annotations

from typing import Any

from shared.catalogue import Catalogue, Department, Text
from shared.completion import label_of
from shared.identity.models import Principal, Role


def _text(text: Text) -> dict[str, str]:
    return {"en": text.en, "sv": text.sv or text.en}


def describe(rule_set: Department, current: Department | None = None) -> dict[str, Any]:
    """Everything `rule_set` says; `current` is the department's current rule set (itself unless
    `rule_set` is an earlier version), whose kept versions are listed."""
    current = current or rule_set
    return {
        "rule_set": rule_set.rules_ref,
        "code": rule_set.code,
        "version": rule_set.version,
        "current": rule_set.version == current.version,
        "current_version": current.version,
        "versions": sorted({current.version, *current.earlier}, reverse=True),
        "name": _text(rule_set.name),
        "faculty": _text(rule_set.faculty),
        "programmes": [{"code": p.code, "name": _text(p.name)} for p in rule_set.programmes],
        "classes": list(rule_set.classes),
        "activity_kinds": [
            {"code": k.code, "name": _text(k.name), "class": k.activity_class, "settings": list(k.settings)}
            for k in rule_set.activity_kinds
        ],
        "completion": [
            {
                "requirement": r.requirement, "count": r.count, "setting": r.setting, "class": r.activity_class,
                "substitutes": [{"class": s.activity_class, "count": s.count} for s in r.substitutes],
                "label": _text(r.label or label_of(r)),
            }
            for r in rule_set.completion
        ],
        "reflection_questions": [{"code": q.code, "text": _text(q.text)} for q in rule_set.reflection_questions],
        "report_required": rule_set.report_required,
        "presentation_required": rule_set.presentation_required,
        "preparatory_lecture_required": rule_set.preparatory_lecture_required,
        "grace_terms": rule_set.grace_terms,
        "approvals_required": rule_set.approvals_required,
        "on_disagreement": rule_set.on_disagreement,
        "review_target_days": rule_set.review_target_days,
        "review_days": rule_set.review_days,
        "criteria": [{"code": c.code, "label": _text(c.label)} for c in rule_set.criteria],
    }


def readable_by(principal: Principal, catalogue: Catalogue) -> list[str]:
    """The department codes whose rule sets `principal` reads: where they coordinate or assess;
    an administrator every department."""
    if principal.is_administrator:
        return sorted(catalogue.departments)
    mine = principal.departments(Role.COORDINATOR) | principal.departments(Role.ASSESSOR)
    return sorted(code for code in mine if code in catalogue.departments)


def may_read(principal: Principal, code: str) -> bool:
    return (principal.is_administrator or principal.has_role(Role.COORDINATOR, code)
            or principal.has_role(Role.ASSESSOR, code))
