"""Recording the assessor group's ruling on an activity of a kind the catalogue lacks: load the
activity's `activity-ruling-<id>` stream -> `rulings.decide_ruling` -> append with the expected
version (a ruling recorded in between is decided again; a repeated request is replayed)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from assessment_service import rulings
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import REGISTRY, ActivityKindRuled, ruling_stream
from assessment_service.projections.activities import activities
from assessment_service.projections.students import students
from assessment_service.services import _application
from shared.application import Outcome, RequestContext
from shared.catalogue import Department
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.validation import is_uuid

NO_SUCH_ACTIVITY = "No such activity."


def is_staff_of(by: Principal, department: str) -> bool:
    """A coordinator or assessor of the department: who may rule and read its precedents."""
    return by.has_role(Role.COORDINATOR, department) or by.has_role(Role.ASSESSOR, department)


def activity_facts(ctx: AssessmentContext, activity_id: str) -> tuple[rulings.ActivityFacts, Department]:
    """The activity ruled on and its student's rule set; NotFound when unknown."""
    if not is_uuid(activity_id):
        raise NotFound(NO_SUCH_ACTIVITY)
    query = (
        sa.select(activities.c.activity_id, activities.c.student_id, activities.c.kind, activities.c.withdrawn,
                  students.c.department, students.c.rules)
        .join(students, students.c.student_id == activities.c.student_id)
        .where(activities.c.activity_id == activity_id)
    )
    with ctx.reader.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFound(NO_SUCH_ACTIVITY)
    rule_set = ctx.catalogue.rule_set(row.rules) or ctx.catalogue.department(row.department)
    if rule_set is None:
        raise NotFound(NO_SUCH_ACTIVITY)
    facts = rulings.ActivityFacts(row.activity_id, row.student_id, row.department, row.kind, bool(row.withdrawn))
    return facts, rule_set


def record_ruling(
    ctx: AssessmentContext, by: Principal, activity_id: str, form: dict[str, Any], req: RequestContext
) -> Outcome:
    """A coordinator or assessor of the activity's department records the group's ruling. Staff of
    another department get 404, as for an unknown activity."""
    facts, rule_set = activity_facts(ctx, activity_id)
    if not is_staff_of(by, facts.department):
        raise NotFound(NO_SUCH_ACTIVITY)
    command = rulings.RuleOnKind(
        ruled_by=by.account_id,
        is_staff_there=True,
        kind_label=str(form.get("kind_label") or ""),
        outcome=str(form.get("outcome") or ""),
        rationale=str(form.get("rationale") or ""),
        kind=(str(form["kind"]) if form.get("kind") else None),
        activity_class=(str(form["activity_class"]) if form.get("activity_class") else None),
    )
    stream = ruling_stream(activity_id)

    def load() -> tuple[ActivityKindRuled | None, int]:
        recorded = ctx.store.read_stream(stream)
        decoded = [REGISTRY.decode_recorded(e) for e in recorded]
        prior = decoded[-1] if decoded and isinstance(decoded[-1], ActivityKindRuled) else None
        return prior, (recorded[-1].version if recorded else 0)

    request = ("rule", activity_id, command.outcome, command.kind, command.activity_class, command.kind_label,
               command.rationale)
    return _application(ctx).execute(
        stream, req, scope=stream, request=request, load=load,
        decide=lambda prior: rulings.decide_ruling(rule_set, facts, prior, command),
        result={"activity_id": activity_id},
    )
