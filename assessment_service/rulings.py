"""PURE rulings on activities of a kind the department's catalogue lacks.

A student may log an activity of a kind the department's rule set does not list; it waits for the
assessor group. A coordinator or assessor of the department records the group's ruling: accepted
as an existing kind of the catalogue (with that kind's class), accepted as a new kind with its
class, or not accepted; always with a rationale written about the KIND (it is published as a
precedent to later assessors and students, so it is not sealed and must not describe the person).

`decide_ruling(rule_set, activity, prior, command)` returns the events to record (an empty list
when the same ruling is recorded again: a double submit stores once) or raises ValidationFailed
(naming the form fields) / RuleViolated. No I/O: the service gathers the facts and passes them in.
`counted_kind(ruling)` says what an accepted ruling makes the activity count as in the checklist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from assessment_service.events import RULING_OUTCOMES, ActivityKindRuled
from shared.catalogue import SETTINGS, ActivityKind, Department, Text
from shared.completion import ActivityFact, Checklist, evaluate
from shared.errors import Problem, Reason, RuleViolated, ValidationFailed

#: Every reason a ruling gives (the pages have a text for each).
REASONS = (
    NOT_STAFF_THERE, KIND_IS_LISTED, ACTIVITY_WITHDRAWN, ALREADY_RULED, RULING_INVALID, NO_LABEL,
    NO_RATIONALE, NO_OUTCOME, NOT_A_LISTED_KIND, NEW_KIND_CODE, NOT_A_CLASS, NO_CLASSES_HERE,
) = (
    Reason("not_staff_there", "Only a coordinator or assessor of the department can rule on this activity."),
    Reason("kind_is_listed", "This activity is of a kind the catalogue lists: it needs no ruling."),
    Reason("activity_withdrawn", "The student has withdrawn this activity."),
    Reason("already_ruled", "The assessor group has already ruled on this activity."),
    Reason("ruling_invalid", "The ruling is incomplete: see the fields marked."),
    Reason("no_kind_label", "Name the kind of activity (at most 120 characters)."),
    Reason("no_rationale", "Write the rationale about the kind of activity (at most 2000 characters)."),
    Reason("no_outcome", "Choose whether the kind is accepted, and how."),
    Reason("not_a_listed_kind", "Choose one of the catalogue's kinds."),
    Reason(
        "new_kind_code",
        "Give the new kind a code of lower-case letters, digits, - and _ that the catalogue does not use.",
    ),
    Reason("not_a_class", "Choose one of the department's classes: {classes}."),
    Reason("no_classes_here", "This department does not use classes: leave the class empty."),
)

_CODE = re.compile(r"^[a-z][a-z0-9_-]{0,59}$")


@dataclass(frozen=True)
class ActivityFacts:
    """What the read side knows about the activity ruled on (no personal fields)."""

    activity_id: str
    student_id: str
    department: str
    kind: str
    withdrawn: bool = False


@dataclass(frozen=True)
class RuleOnKind:
    """The ruling as a coordinator or assessor states it (form or JSON)."""

    ruled_by: str
    #: The caller is a coordinator or assessor of the activity's department (checked by the service).
    is_staff_there: bool
    kind_label: str
    outcome: str
    rationale: str
    kind: str | None = None
    activity_class: str | None = None


def awaits_ruling(rule_set: Department, kind: str) -> bool:
    """An activity of `kind` waits for a ruling when the department's rule set does not list it."""
    return rule_set.kind(kind) is None


def decide_ruling(
    rule_set: Department, activity: ActivityFacts, prior: ActivityKindRuled | None, command: RuleOnKind
) -> list[ActivityKindRuled]:
    if not command.is_staff_there:
        raise RuleViolated(NOT_STAFF_THERE())
    event = _ruling(rule_set, activity, command)
    if prior is not None:
        if _same(prior, event):
            return []  # recorded already: a repeated submit stores once
        raise RuleViolated(ALREADY_RULED())
    if activity.withdrawn:
        raise RuleViolated(ACTIVITY_WITHDRAWN())
    if not awaits_ruling(rule_set, activity.kind):
        raise RuleViolated(KIND_IS_LISTED())
    return [event]


def _same(a: ActivityKindRuled, b: ActivityKindRuled) -> bool:
    keys = ("kind_label", "outcome", "kind", "activity_class", "rationale")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _ruling(rule_set: Department, activity: ActivityFacts, command: RuleOnKind) -> ActivityKindRuled:
    problems: dict[str, list[Problem]] = {}
    label, rationale = _blank(command.kind_label), _blank(command.rationale)
    kind, activity_class = _blank(command.kind), _blank(command.activity_class)
    if label is None or len(label) > 120:
        problems["kind_label"] = [NO_LABEL()]
    if rationale is None or len(rationale) > 2000:
        problems["rationale"] = [NO_RATIONALE()]
    outcome = command.outcome
    if outcome not in RULING_OUTCOMES:
        problems["outcome"] = [NO_OUTCOME()]
    elif outcome == "accepted_as_existing":
        listed = rule_set.kind(kind or "")
        if listed is None:
            problems["kind"] = [NOT_A_LISTED_KIND()]
        else:
            activity_class = listed.activity_class  # an existing kind counts with its own class
    elif outcome == "accepted_as_new":
        if kind is None or not _CODE.match(kind) or rule_set.kind(kind) is not None:
            problems["kind"] = [NEW_KIND_CODE()]
        if rule_set.classes and activity_class not in rule_set.classes:
            problems["activity_class"] = [NOT_A_CLASS(classes=list(rule_set.classes))]
        elif not rule_set.classes and activity_class is not None:
            problems["activity_class"] = [NO_CLASSES_HERE()]
    else:  # not accepted: it counts as nothing
        kind = activity_class = None
    if problems or label is None or rationale is None:
        raise ValidationFailed(RULING_INVALID(), problems)
    return ActivityKindRuled(
        activity_id=activity.activity_id,
        student_id=activity.student_id,
        department=activity.department,
        kind_label=label,
        outcome=outcome,
        kind=kind,
        activity_class=activity_class,
        rationale=rationale,
        ruled_by=command.ruled_by,
    )


def counted_kind(ruling: ActivityKindRuled | None) -> tuple[str, str | None] | None:
    """What the checklist counts a ruled activity as: (kind, class), or None (not accepted / no ruling)."""
    if ruling is None or ruling.outcome == "not_accepted" or ruling.kind is None:
        return None
    return ruling.kind, ruling.activity_class


# -- the checklist with the rulings applied ----------------------------------------------------
#: activity_id -> (kind, class) it counts as (`ruling_queries.rulings_for` reads it from the read model).
Ruled = Mapping[str, tuple[str, str | None]]


def rule_set_with_rulings(rule_set: Department, ruled: Ruled) -> Department:
    """The rule set with each kind newly accepted by a ruling added (with its class, in any
    setting), so the completion rule counts it; existing kinds keep their allowed settings."""
    new: dict[str, ActivityKind] = {}
    for kind, activity_class in ruled.values():
        if rule_set.kind(kind) is None and kind not in new:
            new[kind] = ActivityKind(kind, Text(kind, kind), SETTINGS, activity_class)
    if not new:
        return rule_set
    return replace(rule_set, activity_kinds=(*rule_set.activity_kinds, *new.values()))


def facts_with_rulings(facts: Iterable[ActivityFact], ruled: Ruled) -> list[ActivityFact]:
    """The activities with each accepted one counted as the kind it was ruled to be."""
    return [replace(f, kind=ruled[f.activity_id][0]) if f.activity_id in ruled else f for f in facts]


def checklist_with_rulings(rule_set: Department, facts: Iterable[ActivityFact], ruled: Ruled) -> Checklist:
    """`rules.evaluate` with the accepted rulings applied: what the review queue shows."""
    return evaluate(rule_set_with_rulings(rule_set, ruled), facts_with_rulings(facts, ruled))
