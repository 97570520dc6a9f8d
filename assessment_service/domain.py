"""PURE assessment decisions about one report: assign and unassign assessors, declare conflicts.

`fold(events)` builds a report's state from its own stream; `decide_*(state, command, facts)`
return the events to record (an empty list: nothing to do, e.g. a repeated assignment) or raise
RuleViolated naming the form field. No I/O here: the service gathers the facts (the report's
department, the assessor's roles, conflicts on the student's other reports) and passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from assessment_service.events import (
    CONFLICT_REASONS,
    AssessorAssigned,
    AssessorUnassigned,
    ConflictOfInterestDeclared,
    ReportEvent,
)
from shared.errors import Reason, RuleViolated, ValidationFailed

# What can be wrong with a decision (codes the pages translate; the English is the JSON API's).
NOT_WAITING = Reason("report_not_waiting", "This report is no longer waiting for review.")
NOT_AN_ASSESSOR_THERE = Reason("not_an_assessor_there", "Choose an assessor of this report's department.")
ASSESSOR_CONFLICTED = Reason(
    "assessor_conflicted", "This assessor has declared a conflict of interest with this student."
)
NO_REASON = Reason("no_reason", "Choose a reason.")
NOT_A_LISTED_REASON = Reason("not_a_listed_reason", "Choose one of the listed reasons.")
NOT_ASSIGNED = Reason(
    "not_assigned", "Only an assessor assigned to this report can declare a conflict of interest on it."
)
#: Every reason a decision gives (the pages have a text for each).
REASONS = (NOT_WAITING, NOT_AN_ASSESSOR_THERE, ASSESSOR_CONFLICTED, NO_REASON, NOT_A_LISTED_REASON, NOT_ASSIGNED)


@dataclass(frozen=True)
class ReportFacts:
    """What the read side knows about a report: whose it is, where, and whether it still waits."""

    report_id: str
    student_id: str
    department: str
    waiting: bool


@dataclass
class ReportAssignment:
    """One report's assignment state, folded from its `assessment-report-<id>` stream."""

    assessors: set[str] = field(default_factory=set)
    conflicts: dict[str, str] = field(default_factory=dict)  # assessor -> reason code


def fold(events: Iterable[ReportEvent]) -> ReportAssignment:
    state = ReportAssignment()
    for event in events:
        match event:
            case AssessorAssigned(assessor_account_id=who):
                state.assessors.add(who)
            case AssessorUnassigned(assessor_account_id=who):
                state.assessors.discard(who)
            case ConflictOfInterestDeclared(assessor_account_id=who, reason_code=reason):
                state.conflicts[who] = reason
    return state


@dataclass(frozen=True)
class AssignAssessor:
    assessor_account_id: str
    #: The assessor holds the assessor role in the report's department (checked by the service).
    is_assessor_there: bool
    #: The assessor declared a conflict on another report of the same student.
    conflicted_with_student: bool


def decide_assign(state: ReportAssignment, facts: ReportFacts, command: AssignAssessor) -> list[ReportEvent]:
    who = command.assessor_account_id
    if not facts.waiting:
        raise RuleViolated(NOT_WAITING())
    if not command.is_assessor_there:
        raise RuleViolated(NOT_AN_ASSESSOR_THERE(), field="assessor")
    if who in state.conflicts or command.conflicted_with_student:
        raise RuleViolated(ASSESSOR_CONFLICTED(), field="assessor")
    if who in state.assessors:
        return []  # already assigned: nothing new to record
    return [AssessorAssigned(facts.report_id, facts.student_id, facts.department, who)]


@dataclass(frozen=True)
class UnassignAssessor:
    assessor_account_id: str


@dataclass(frozen=True)
class DeclareConflict:
    #: The assessor who declares (the caller).
    assessor_account_id: str
    reason_code: str


def decide_unassign(state: ReportAssignment, facts: ReportFacts, command: UnassignAssessor) -> list[ReportEvent]:
    assessor_account_id = command.assessor_account_id
    if assessor_account_id not in state.assessors:
        return []  # not (or no longer) assigned: a repeated click changes nothing
    return [
        AssessorUnassigned(
            facts.report_id, facts.student_id, facts.department, assessor_account_id, "coordinator_decision"
        )
    ]


def decide_declare_conflict(
    state: ReportAssignment, facts: ReportFacts, command: DeclareConflict
) -> list[ReportEvent]:
    """Only an assessor assigned to the report declares; they are taken off it in the same append."""
    assessor_account_id, reason_code = command.assessor_account_id, command.reason_code
    if reason_code not in CONFLICT_REASONS:
        raise ValidationFailed(NO_REASON(), {"reason": [NOT_A_LISTED_REASON()]})
    if assessor_account_id in state.conflicts:
        return []  # declared already
    if assessor_account_id not in state.assessors:
        raise RuleViolated(NOT_ASSIGNED())
    return [
        ConflictOfInterestDeclared(
            facts.report_id, facts.student_id, facts.department, assessor_account_id, reason_code
        ),
        AssessorUnassigned(
            facts.report_id, facts.student_id, facts.department, assessor_account_id, "conflict_of_interest"
        ),
    ]
