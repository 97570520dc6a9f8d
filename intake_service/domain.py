"""The intake rules, pure: decide_*(state, command) -> events, and evolve(state, event) -> state.

No I/O here; the catalogue department and today's date are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from intake_service.events import (
    ActivityAmended,
    ActivityLogged,
    ActivityWithdrawn,
    AttachmentUploaded,
    IntakeEvent,
    RegistrationWithdrawn,
    ReportSubmitted,
    StudentErased,
    StudentRegistered,
    StudiesCompleted,
)
from shared.catalogue import Department
from shared.errors import NotFound, RuleViolated, ValidationFailed


# -- commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterStudent:
    student_id: str
    name: str
    email: str
    university_id: str
    department: str
    programme: str
    expected_end_term: str


@dataclass(frozen=True)
class ActivityDetails:
    kind: str
    title: str
    organiser: str
    setting: str
    country_code: str | None
    start_date: date
    end_date: date
    hours: int | None
    description: str


@dataclass(frozen=True)
class LogActivity:
    activity_id: str
    details: ActivityDetails


@dataclass(frozen=True)
class AmendActivity:
    activity_id: str
    details: ActivityDetails


@dataclass(frozen=True)
class WithdrawActivity:
    activity_id: str
    reason: str


@dataclass(frozen=True)
class SubmitReport:
    report_id: str
    answers: dict[str, str]
    activity_ids: list[str]
    attachment_id: str | None


@dataclass(frozen=True)
class CompleteStudies:
    completed_on: date
    term: str


@dataclass(frozen=True)
class WithdrawRegistration:
    reason: str


# -- state ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Activity:
    activity_id: str
    details: ActivityDetails
    withdrawn: bool = False


@dataclass(frozen=True)
class StudentState:
    registered: bool = False
    withdrawn: bool = False
    erased: bool = False
    department: str = ""
    activities: dict[str, Activity] = field(default_factory=dict)
    attachments: frozenset[str] = frozenset()
    reports: tuple[str, ...] = ()
    studies_completed_on: date | None = None


def _details(event: ActivityLogged | ActivityAmended) -> ActivityDetails:
    return ActivityDetails(
        kind=event.kind,
        title=event.title,
        organiser=event.organiser,
        setting=event.setting,
        country_code=event.country_code,
        start_date=event.start_date,
        end_date=event.end_date,
        hours=event.hours,
        description=event.description,
    )


def evolve(state: StudentState, event: IntakeEvent) -> StudentState:
    """Apply one event to the state. Unknown events leave it unchanged."""
    match event:
        case StudentRegistered():
            return replace(state, registered=True, department=event.department)
        case ActivityLogged() | ActivityAmended():
            activities = dict(state.activities)
            activities[event.activity_id] = Activity(event.activity_id, _details(event))
            return replace(state, activities=activities)
        case ActivityWithdrawn():
            activities = dict(state.activities)
            if event.activity_id in activities:
                activities[event.activity_id] = replace(activities[event.activity_id], withdrawn=True)
            return replace(state, activities=activities)
        case AttachmentUploaded():
            return replace(state, attachments=state.attachments | {event.attachment_id})
        case ReportSubmitted():
            return replace(state, reports=(*state.reports, event.report_id))
        case StudiesCompleted():
            return replace(state, studies_completed_on=event.completed_on)
        case RegistrationWithdrawn():
            return replace(state, withdrawn=True)
        case StudentErased():
            return replace(state, erased=True, withdrawn=True)
    return state


def fold(events: Iterable[IntakeEvent]) -> StudentState:
    state = StudentState()
    for event in events:
        state = evolve(state, event)
    return state


# -- decisions -----------------------------------------------------------------------------
def _require_active(state: StudentState) -> None:
    if not state.registered or state.erased:
        raise NotFound("No such student.")
    if state.withdrawn:
        raise RuleViolated("This registration has been withdrawn; nothing more can be recorded.")


def decide_register(state: StudentState, cmd: RegisterStudent, dept: Department) -> list[IntakeEvent]:
    if state.registered:
        raise RuleViolated("This student is already registered.")
    if dept.programme(cmd.programme) is None:
        raise ValidationFailed(
            "Unknown programme.", {"programme": [f"Not a programme of {dept.code}."]}
        )
    return [
        StudentRegistered(
            student_id=cmd.student_id,
            name=cmd.name,
            email=cmd.email,
            university_id=cmd.university_id,
            department=cmd.department,
            programme=cmd.programme,
            expected_end_term=cmd.expected_end_term,
            rules=dept.rules_ref,
        )
    ]


def check_activity(details: ActivityDetails, dept: Department, today: date) -> None:
    """Raise ValidationFailed naming each field that breaks the department's catalogue rules."""
    errors: dict[str, list[str]] = {}
    kind = dept.kind(details.kind)
    if kind is None:
        errors["kind"] = [f"Not an activity kind of {dept.code}."]
    elif details.setting not in kind.settings:
        errors["setting"] = [f"{kind.code} can only be: {', '.join(kind.settings)}."]
    if details.setting == "abroad" and not details.country_code:
        errors["country_code"] = ["Give the country of an activity abroad."]
    if details.setting == "abroad" and details.country_code == "SE":
        errors["country_code"] = ["An activity abroad cannot be in Sweden."]
    if details.end_date < details.start_date:
        errors["end_date"] = ["Must not be before the start date."]
    if details.start_date.year < 2000 or details.end_date.year > today.year + 10:
        errors.setdefault("start_date", []).append("Dates must lie between 2000 and ten years ahead.")
    if errors:
        raise ValidationFailed("The activity is not valid.", errors)


def decide_log_activity(
    state: StudentState, cmd: LogActivity, dept: Department, today: date
) -> list[IntakeEvent]:
    _require_active(state)
    if cmd.activity_id in state.activities:
        raise RuleViolated("This activity is already logged.")
    check_activity(cmd.details, dept, today)
    return [ActivityLogged(activity_id=cmd.activity_id, **_fields(cmd.details))]


def decide_amend_activity(
    state: StudentState, cmd: AmendActivity, dept: Department, today: date
) -> list[IntakeEvent]:
    _require_active(state)
    activity = state.activities.get(cmd.activity_id)
    if activity is None:
        raise NotFound("No such activity.")
    if activity.withdrawn:
        raise RuleViolated("A withdrawn activity cannot be amended.")
    check_activity(cmd.details, dept, today)
    if activity.details == cmd.details:
        return []
    return [ActivityAmended(activity_id=cmd.activity_id, **_fields(cmd.details))]


def decide_withdraw_activity(state: StudentState, cmd: WithdrawActivity) -> list[IntakeEvent]:
    _require_active(state)
    activity = state.activities.get(cmd.activity_id)
    if activity is None:
        raise NotFound("No such activity.")
    if activity.withdrawn:
        return []
    return [ActivityWithdrawn(activity_id=cmd.activity_id, reason=cmd.reason)]


def decide_upload_attachment(state: StudentState, event: AttachmentUploaded) -> list[IntakeEvent]:
    _require_active(state)
    return [event]


def decide_submit_report(state: StudentState, cmd: SubmitReport, dept: Department) -> list[IntakeEvent]:
    _require_active(state)
    errors: dict[str, list[str]] = {}
    codes = {q.code for q in dept.reflection_questions}
    missing = sorted(codes - set(cmd.answers))
    unknown = sorted(set(cmd.answers) - codes)
    if missing:
        errors["answers"] = [f"Answer every reflection question; missing: {', '.join(missing)}."]
    if unknown:
        errors.setdefault("answers", []).append(f"Unknown questions: {', '.join(unknown)}.")
    blank = sorted(code for code, text in cmd.answers.items() if not text.strip())
    if blank:
        errors.setdefault("answers", []).append(f"Blank answers: {', '.join(blank)}.")
    if not cmd.activity_ids:
        errors["activity_ids"] = ["Choose at least one of your activities."]
    foreign = [a for a in cmd.activity_ids if a not in state.activities]
    withdrawn = [
        a for a in cmd.activity_ids if a in state.activities and state.activities[a].withdrawn
    ]
    if foreign:
        errors.setdefault("activity_ids", []).append("Some activities are not yours or do not exist.")
    if withdrawn:
        errors.setdefault("activity_ids", []).append("Withdrawn activities cannot be covered.")
    if len(set(cmd.activity_ids)) != len(cmd.activity_ids):
        errors.setdefault("activity_ids", []).append("An activity is listed twice.")
    if cmd.attachment_id is not None and cmd.attachment_id not in state.attachments:
        errors["attachment_id"] = ["No such attachment of yours."]
    if errors:
        raise ValidationFailed("The report is not valid.", errors)
    return [
        ReportSubmitted(
            report_id=cmd.report_id,
            answers=dict(cmd.answers),
            activity_ids=list(cmd.activity_ids),
            attachment_id=cmd.attachment_id,
            rules=dept.rules_ref,
        )
    ]


def decide_complete_studies(state: StudentState, cmd: CompleteStudies, today: date) -> list[IntakeEvent]:
    _require_active(state)
    if cmd.completed_on > today:
        raise ValidationFailed(
            "Studies cannot be completed in the future.",
            {"completed_on": ["Must not be after today."]},
        )
    if state.studies_completed_on == cmd.completed_on:
        return []
    return [StudiesCompleted(completed_on=cmd.completed_on, term=cmd.term)]


def decide_erase(state: StudentState, reason: str) -> list[IntakeEvent]:
    if not state.registered:
        raise NotFound("No such student.")
    if state.erased:
        return []
    return [StudentErased(reason=reason)]


def decide_withdraw_registration(state: StudentState, cmd: WithdrawRegistration) -> list[IntakeEvent]:
    if not state.registered or state.erased:
        raise NotFound("No such student.")
    if state.withdrawn:
        return []
    return [RegistrationWithdrawn(reason=cmd.reason)]


def _fields(details: ActivityDetails) -> dict[str, Any]:
    return {
        "kind": details.kind,
        "title": details.title,
        "organiser": details.organiser,
        "setting": details.setting,
        "country_code": details.country_code,
        "start_date": details.start_date,
        "end_date": details.end_date,
        "hours": details.hours,
        "description": details.description,
    }
