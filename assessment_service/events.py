"""The assessment service's own events: what staff decide about reports, and who viewed whose data.

Stored in the assessment service's own event store (the `events` table of its database, next to
the read models). Each event is a frozen dataclass, declared once: stored under its class name
(never renamed), with its schema derived from its fields (shared/events.py) and a schema version.
They carry ids and codes only, never free text: a reason typed about a person would be personal
data, so reasons are chosen from short code lists.

Streams: `assessment-report-<report_id>` (assignment and conflicts of one report; optimistic
concurrency per report) and `audit-<student_id>` (staff views of one student's personal data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from marshmallow import validate

from shared.events import EventRegistry, rules

#: Why an assessor declared a conflict of interest (shown translated on the page).
CONFLICT_REASONS = ("personal_relationship", "professional_relationship", "supervised_student", "other")
#: Why an assessor was taken off a report.
UNASSIGN_REASONS = ("coordinator_decision", "conflict_of_interest")
#: Which view showed a student's personal data to a member of staff.
VIEWED_WHAT = ("report", "review_queue", "student_overview", "my_data")

_UUID = validate.Regexp(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DEPARTMENT = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def report_stream(report_id: str) -> str:
    return f"assessment-report-{report_id}"


def audit_stream(student_id: str) -> str:
    return f"audit-{student_id}"


@dataclass(frozen=True)
class _ReportDecision:
    """What every decision about a report names: the report, its student and department, and the
    assessor it concerns."""

    report_id: str = field(metadata=rules(_UUID))
    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    assessor_account_id: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class AssessorAssigned(_ReportDecision):
    """A coordinator of the report's department assigned an assessor of that department to it."""


@dataclass(frozen=True)
class AssessorUnassigned(_ReportDecision):
    """An assessor was taken off a report: by a coordinator, or at once when they declared a
    conflict of interest (recorded by the same request as the declaration)."""

    reason_code: str = field(metadata=rules(validate.OneOf(UNASSIGN_REASONS)))


@dataclass(frozen=True)
class ConflictOfInterestDeclared(_ReportDecision):
    """An assessor declared a conflict of interest with the student of a report. It bars them from
    every report of that student. Recorded by the assessor."""

    reason_code: str = field(metadata=rules(validate.OneOf(CONFLICT_REASONS)))


@dataclass(frozen=True)
class PersonalDataViewed:
    """A member of staff was shown a student's personal data (`what`: which view). Recorded by the
    request that showed it, before showing it."""

    student_id: str = field(metadata=rules(_UUID))
    viewer_account_id: str = field(metadata=rules(validate.Length(1, 36)))
    what: str = field(metadata=rules(validate.OneOf(VIEWED_WHAT)))


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(AssessorAssigned)
    registry.register(AssessorUnassigned)
    registry.register(ConflictOfInterestDeclared)
    registry.register(PersonalDataViewed)
    return registry


REGISTRY = build_registry()

#: The events of an `assessment-report-<id>` stream: what `domain.fold` reads and the deciders return.
ReportEvent: TypeAlias = AssessorAssigned | AssessorUnassigned | ConflictOfInterestDeclared
