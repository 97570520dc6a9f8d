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
from shared.errors import RuleViolated, ValidationFailed


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
        raise RuleViolated("This report is no longer waiting for review.")
    if not command.is_assessor_there:
        raise RuleViolated("Choose an assessor of this report's department.", field="assessor")
    if who in state.conflicts or command.conflicted_with_student:
        raise RuleViolated("This assessor has declared a conflict of interest with this student.", field="assessor")
    if who in state.assessors:
        return []  # already assigned: nothing new to record
    return [AssessorAssigned(facts.report_id, facts.student_id, facts.department, who)]


def decide_unassign(state: ReportAssignment, facts: ReportFacts, assessor_account_id: str) -> list[ReportEvent]:
    if assessor_account_id not in state.assessors:
        return []  # not (or no longer) assigned: a repeated click changes nothing
    return [
        AssessorUnassigned(
            facts.report_id, facts.student_id, facts.department, assessor_account_id, "coordinator_decision"
        )
    ]


def decide_declare_conflict(
    state: ReportAssignment, facts: ReportFacts, assessor_account_id: str, reason_code: str
) -> list[ReportEvent]:
    """Only an assessor assigned to the report declares; they are taken off it in the same append."""
    if reason_code not in CONFLICT_REASONS:
        raise ValidationFailed("Choose a reason.", {"reason": ["Choose one of the listed reasons."]})
    if assessor_account_id in state.conflicts:
        return []  # declared already
    if assessor_account_id not in state.assessors:
        raise RuleViolated("Only an assessor assigned to this report can declare a conflict of interest on it.")
    return [
        ConflictOfInterestDeclared(
            facts.report_id, facts.student_id, facts.department, assessor_account_id, reason_code
        ),
        AssessorUnassigned(
            facts.report_id, facts.student_id, facts.department, assessor_account_id, "conflict_of_interest"
        ),
    ]
