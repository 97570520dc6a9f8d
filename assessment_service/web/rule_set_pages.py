"""The rule sets staff read (issue 12): `/rules` lists the rule sets of the caller's departments,
`/rules/<code>` shows one (the current version; `?version=N` an earlier one still kept), and
`GET /api/v1/rule-sets/<code>` gives the same as JSON (assessment_service/rule_sets.py).

Who: coordinators and assessors of the department, administrators every department; a rule set
of another department answers 404 like an unknown one. The JSON also answers an integration's
token with `assessment:read`. Rule sets are changed in config/departments.toml (docs/rules.md),
not here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_babel import lazy_gettext as _l

from assessment_service import rule_sets
from assessment_service.web.access_rules import _token_gate
from shared.catalogue import DISAGREEMENT_DECIDERS, Catalogue, Department
from shared.errors import NotFound
from shared.identity.models import Role
from shared.web.access import Caller, Rule, access, current_caller

bp = Blueprint("rule_sets", __name__)
api_bp = Blueprint("rule_sets_api", __name__, url_prefix="/api/v1")

SCOPE_READ = "assessment:read"
NO_SUCH_RULE_SET = "No such rule set."

DISAGREEMENT_LABELS = {
    "coordinator": _l("The department's coordinator decides"),
    "assessor_group": _l("The assessor group decides"),
}
assert set(DISAGREEMENT_LABELS) == set(DISAGREEMENT_DECIDERS)  # a new decider needs its words


def _catalogue() -> Catalogue:
    return current_app.extensions["cim.assessment"].catalogue


def _staff(*, scope: str | None = None) -> Rule:
    """Staff of some department, or an administrator (others signed in 403); with a `<code>`, a
    department they read (404 otherwise, as for an unknown code). With `scope`, an integration's
    token holding it reads any rule set."""

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        if _token_gate(caller, scope):
            return True  # an integration: the view answers 404 for an unknown code
        principal = caller.principal
        if principal is None:
            return False
        if not (principal.is_administrator or principal.has_role(Role.COORDINATOR)
                or principal.has_role(Role.ASSESSOR)):
            return False
        code = args.get("code")
        if code is not None and (_catalogue().department(str(code)) is None or not rule_sets.may_read(principal, code)):
            raise NotFound(NO_SUCH_RULE_SET)
        return True

    return Rule("rule-sets:read", check)


def _rule_set(code: str) -> tuple[Department, Department]:
    """The rule set asked for (`?version=N`, else the current one) and the current one, or 404."""
    current = _catalogue().department(code)
    if current is None:
        raise NotFound(NO_SUCH_RULE_SET)
    asked = request.args.get("version")
    if asked is None:
        return current, current
    shown = current.at_version(int(asked)) if asked.isdigit() and len(asked) < 6 else None
    if shown is None:
        raise NotFound("No such version of this rule set.")
    return shown, current


@bp.get("/rules")
@access(_staff())
def rule_sets_page() -> str:
    principal = current_caller().principal
    assert principal is not None  # the rule lets only people through
    catalogue = _catalogue()
    listed = [rule_sets.describe(catalogue.departments[code])
              for code in rule_sets.readable_by(principal, catalogue)]
    return render_template("rule_sets.html", rule_sets=listed)


@bp.get("/rules/<code>")
@access(_staff())
def rule_set_page(code: str) -> str:
    shown, current = _rule_set(code)
    return render_template("rule_set.html", rule_set=rule_sets.describe(shown, current),
                           disagreement_labels=DISAGREEMENT_LABELS)


@api_bp.get("/rule-sets/<code>")
@access(_staff(scope=SCOPE_READ))
def rule_set_json(code: str) -> Response:
    shown, current = _rule_set(code)
    return jsonify(rule_sets.describe(shown, current))
