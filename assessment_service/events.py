"""The assessment service's own events: what staff decide about reports, and who viewed whose data.

Stored in the assessment service's own event store (the `events` table of its database, next to
the read models). Each event is a frozen dataclass stored under its class name (never renamed),
with a marshmallow schema and a schema version. They carry ids and codes only, never free text:
a reason typed about a person would be personal data, so reasons are chosen from short code lists.

Streams: `assessment-report-<report_id>` (assignment and conflicts of one report; optimistic
concurrency per report) and `audit-<student_id>` (staff views of one student's personal data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from marshmallow import Schema, fields, post_load, validate

from shared.events import EventRegistry

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
class AssessorAssigned:
    """A coordinator of the report's department assigned an assessor of that department to it."""

    report_id: str
    student_id: str
    department: str
    assessor_account_id: str


@dataclass(frozen=True)
class AssessorUnassigned:
    """An assessor was taken off a report: by a coordinator, or at once when they declared a
    conflict of interest (recorded by the same request as the declaration)."""

    report_id: str
    student_id: str
    department: str
    assessor_account_id: str
    reason_code: str


@dataclass(frozen=True)
class ConflictOfInterestDeclared:
    """An assessor declared a conflict of interest with the student of a report. It bars them from
    every report of that student. Recorded by the assessor."""

    report_id: str
    student_id: str
    department: str
    assessor_account_id: str
    reason_code: str


@dataclass(frozen=True)
class PersonalDataViewed:
    """A member of staff was shown a student's personal data (`what`: which view). Recorded by the
    request that showed it, before showing it."""

    student_id: str
    viewer_account_id: str
    what: str


class _EventSchema(Schema):
    event_class: type

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Any:
        return self.event_class(**data)


class _ReportDecisionSchema(_EventSchema):
    report_id = fields.String(required=True, validate=_UUID)
    student_id = fields.String(required=True, validate=_UUID)
    department = fields.String(required=True, validate=_DEPARTMENT)
    assessor_account_id = fields.String(required=True, validate=validate.Length(1, 36))


class AssessorAssignedSchema(_ReportDecisionSchema):
    event_class = AssessorAssigned


class AssessorUnassignedSchema(_ReportDecisionSchema):
    event_class = AssessorUnassigned
    reason_code = fields.String(required=True, validate=validate.OneOf(UNASSIGN_REASONS))


class ConflictOfInterestDeclaredSchema(_ReportDecisionSchema):
    event_class = ConflictOfInterestDeclared
    reason_code = fields.String(required=True, validate=validate.OneOf(CONFLICT_REASONS))


class PersonalDataViewedSchema(_EventSchema):
    event_class = PersonalDataViewed
    student_id = fields.String(required=True, validate=_UUID)
    viewer_account_id = fields.String(required=True, validate=validate.Length(1, 36))
    what = fields.String(required=True, validate=validate.OneOf(VIEWED_WHAT))


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(AssessorAssigned, AssessorAssignedSchema())
    registry.register(AssessorUnassigned, AssessorUnassignedSchema())
    registry.register(ConflictOfInterestDeclared, ConflictOfInterestDeclaredSchema())
    registry.register(PersonalDataViewed, PersonalDataViewedSchema())
    return registry


REGISTRY = build_registry()

#: The events of an `assessment-report-<id>` stream: what `domain.fold` reads and the deciders return.
ReportEvent: TypeAlias = AssessorAssigned | AssessorUnassigned | ConflictOfInterestDeclared
