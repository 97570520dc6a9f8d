"""The intake rules, pure: decide_*(state, command) -> events, and evolve(state, event) -> state.

No I/O here; the catalogue department and today's date are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from intake_service.events import (  # ActivityDetails: the activity's shape, declared with its events
    ActivityAmended,
    ActivityDetails,
    ActivityLogged,
    ActivityWithdrawn,
    AttachmentUploaded,
    IntakeEvent,
    RegistrationDetails,
    RegistrationWithdrawn,
    ReportResubmitted,
    ReportSubmitted,
    StudentErased,
    StudentRegistered,
    StudiesCompleted,
)
from shared.catalogue import Department
from shared.errors import NotFound, Problem, Reason, RuleViolated, ValidationFailed
from shared.events import fields_of
from shared.validation import TERM_PATTERN, country_codes


# -- commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterStudent(RegistrationDetails):
    """Register for CIM; the service gives the new student their id."""


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
class ResubmitReport:
    """A new round of a report whose revision was requested: the answers and activities as they
    now stand (the same shape as a submission)."""

    report_id: str
    answers: dict[str, str]
    activity_ids: list[str]
    attachment_id: str | None


@dataclass(frozen=True)
class AssessmentStep:
    """Where a report's latest round stands on the assessment side, as its events delivered it to
    the intake (`intake_report_decisions`): passed in by the service, never read here."""

    round: int
    #: "in_review", "revision_requested", "approved" or "rejected"
    state: str


@dataclass(frozen=True)
class CompleteStudies:
    completed_on: date
    term: str


@dataclass(frozen=True)
class WithdrawRegistration:
    reason: str


@dataclass(frozen=True)
class UploadAttachment:
    """Record a PDF the service has checked (and stored under `attachment_id`)."""

    attachment_id: str
    filename: str
    size: int
    sha256: str
    pages: int


@dataclass(frozen=True)
class EraseStudent:
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
    #: Each report's current round: 1 when submitted, +1 per resubmission.
    report_rounds: Mapping[str, int] = field(default_factory=dict)
    studies_completed_on: date | None = None


def evolve(state: StudentState, event: IntakeEvent) -> StudentState:
    """Apply one event to the state. Unknown events leave it unchanged."""
    match event:
        case StudentRegistered():
            return replace(state, registered=True, department=event.department)
        case ActivityLogged() | ActivityAmended():
            activities = dict(state.activities)
            activities[event.activity_id] = Activity(event.activity_id, ActivityDetails.of(event))
            return replace(state, activities=activities)
        case ActivityWithdrawn():
            activities = dict(state.activities)
            if event.activity_id in activities:
                activities[event.activity_id] = replace(activities[event.activity_id], withdrawn=True)
            return replace(state, activities=activities)
        case AttachmentUploaded():
            return replace(state, attachments=state.attachments | {event.attachment_id})
        case ReportSubmitted():
            rounds = {**state.report_rounds, event.report_id: 1}
            return replace(state, reports=(*state.reports, event.report_id), report_rounds=rounds)
        case ReportResubmitted():
            return replace(state, report_rounds={**state.report_rounds, event.report_id: event.round})
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


# -- what can be wrong (codes the pages translate; the English is the JSON API's) ---------------
NO_SUCH_STUDENT = Reason("no_such_student", "No such student.")
NO_SUCH_ACTIVITY = Reason("no_such_activity", "No such activity.")
REGISTRATION_WITHDRAWN = Reason(
    "registration_withdrawn", "This registration has been withdrawn; nothing more can be recorded."
)
ALREADY_REGISTERED = Reason("already_registered", "This student is already registered.")
UNKNOWN_PROGRAMME = Reason("unknown_programme", "Unknown programme.")
NOT_A_PROGRAMME = Reason("not_a_programme", "Not a programme of {department}.")
ACTIVITY_INVALID = Reason("activity_invalid", "The activity is not valid.")
NOT_A_KIND = Reason("not_a_kind", "Not an activity kind of {department}.")
SETTING_NOT_ALLOWED = Reason("setting_not_allowed", "{kind} can only be: {settings}.")
COUNTRY_REQUIRED = Reason("country_required", "Give the country of an activity abroad.")
ABROAD_IN_SWEDEN = Reason("abroad_in_sweden", "An activity abroad cannot be in Sweden.")
NOT_A_COUNTRY = Reason("not_a_country", "Not a country: give an ISO 3166 two-letter code such as DE or FR.")
COUNTRY_AT_HOME = Reason(
    "country_at_home", "An activity at home is in Sweden: leave the country empty, or choose abroad."
)
COUNTRY_ONLINE = Reason("country_online", "An online activity has no country: leave the country empty.")
NOT_A_TERM = Reason("not_a_term", "Must be a term such as HT2026 (autumn) or VT2027 (spring).")
TERM_TOO_FAR = Reason("term_too_far", "Give a term at most {years} years before or after today.")
DATE_NOT_IN_TERM = Reason("date_not_in_term", "A day of {term} lies between {first} and {last}.")
END_BEFORE_START = Reason("end_before_start", "Must not be before the start date.")
DATES_OUT_OF_RANGE = Reason("dates_out_of_range", "Dates must lie between 2000 and ten years ahead.")
ALREADY_LOGGED = Reason("activity_already_logged", "This activity is already logged.")
WITHDRAWN_NOT_AMENDABLE = Reason("withdrawn_activity_not_amendable", "A withdrawn activity cannot be amended.")
REPORT_INVALID = Reason("report_invalid", "The report is not valid.")
ANSWERS_MISSING = Reason("answers_missing", "Answer every reflection question; missing: {questions}.")
ANSWERS_UNKNOWN = Reason("answers_unknown", "Unknown questions: {questions}.")
ANSWERS_BLANK = Reason("answers_blank", "Blank answers: {questions}.")
NO_ACTIVITIES = Reason("no_activities", "Choose at least one of your activities.")
FOREIGN_ACTIVITIES = Reason("foreign_activities", "Some activities are not yours or do not exist.")
WITHDRAWN_ACTIVITIES = Reason("withdrawn_activities", "Withdrawn activities cannot be covered.")
ACTIVITY_TWICE = Reason("activity_listed_twice", "An activity is listed twice.")
NO_SUCH_ATTACHMENT = Reason("no_such_attachment", "No such attachment of yours.")
COMPLETED_IN_FUTURE = Reason("completed_in_future", "Studies cannot be completed in the future.")
AFTER_TODAY = Reason("after_today", "Must not be after today.")
NO_SUCH_REPORT = Reason("no_such_report", "No such report.")
REPORT_WAITING = Reason(
    "report_waiting", "Your report is waiting for review or in review; you cannot submit another one now."
)
REPORT_APPROVED = Reason("report_already_approved", "Your report is approved; you cannot submit another one.")
RESUBMIT_INSTEAD = Reason(
    "revision_requested_resubmit", "A revision of your report was requested: revise and resubmit that report instead."
)
NO_REVISION_REQUESTED = Reason("no_revision_requested", "No revision of this report has been requested.")
ALREADY_RESUBMITTED = Reason(
    "already_resubmitted", "This report has already been resubmitted; the new round is waiting for review."
)
DEREGISTERED = Reason(
    "student_deregistered",
    "You were deregistered from CIM when your deadline passed: nothing new can be recorded until your "
    "coordinator reinstates you.",
)

#: Every reason a decision gives (the pages have a text for each).
REASONS = (
    NO_SUCH_STUDENT, NO_SUCH_ACTIVITY, REGISTRATION_WITHDRAWN, ALREADY_REGISTERED, UNKNOWN_PROGRAMME,
    NOT_A_PROGRAMME, ACTIVITY_INVALID, NOT_A_KIND, SETTING_NOT_ALLOWED, COUNTRY_REQUIRED, ABROAD_IN_SWEDEN,
    NOT_A_COUNTRY, COUNTRY_AT_HOME, COUNTRY_ONLINE, NOT_A_TERM, TERM_TOO_FAR, DATE_NOT_IN_TERM,
    END_BEFORE_START, DATES_OUT_OF_RANGE, ALREADY_LOGGED, WITHDRAWN_NOT_AMENDABLE, REPORT_INVALID,
    ANSWERS_MISSING, ANSWERS_UNKNOWN, ANSWERS_BLANK, NO_ACTIVITIES, FOREIGN_ACTIVITIES, WITHDRAWN_ACTIVITIES,
    ACTIVITY_TWICE, NO_SUCH_ATTACHMENT, COMPLETED_IN_FUTURE, AFTER_TODAY, NO_SUCH_REPORT, REPORT_WAITING,
    REPORT_APPROVED, RESUBMIT_INSTEAD, NO_REVISION_REQUESTED, ALREADY_RESUBMITTED, DEREGISTERED,
)


# -- decisions -----------------------------------------------------------------------------
def _require_active(state: StudentState) -> None:
    if not state.registered or state.erased:
        raise NotFound(NO_SUCH_STUDENT())
    if state.withdrawn:
        raise RuleViolated(REGISTRATION_WITHDRAWN())


def check_not_deregistered(deregistered: bool) -> None:
    """Raise RuleViolated while the student is deregistered (the assessment service's
    StudentDeregistered, undone by StudentReinstated; the service passes the flag in)."""
    if deregistered:
        raise RuleViolated(DEREGISTERED())


# -- contradictions caught where they are typed (issue 17) ------------------------------------
#: How far from today's year a stated term may lie, either way: a study programme runs at most a
#: few years, and a student may register or report their completion some years late; a term
#: decades away is a typing mistake (HT2062 for HT2026). The term calendar (config/terms.toml)
#: holds the years before and after today that deadlines need, which this bound stays inside.
TERM_YEARS_AROUND = 8


def term_span(code: str) -> tuple[date, date] | None:
    """PURE: the widest span of days term `code` can cover, or None for a code that is not a
    term. HT<y> (autumn) runs from 1 August y to 31 January y+1, VT<y> (spring) from 1 January to
    31 August y: the summer belongs to the VT before it (as in config/terms.toml), and the span
    takes in every year's own first and last day (the calendar's HT starts late August or early
    September and ends mid-January; its VT starts mid-January), so January lies in both HT<y-1>
    and VT<y>, August in both VT<y> and HT<y>."""
    match = TERM_PATTERN.match(code)
    if match is None:
        return None
    year = int(match.group(2))
    if match.group(1) == "HT":
        return date(year, 8, 1), date(year + 1, 1, 31)
    return date(year, 1, 1), date(year, 8, 31)


def term_problems(code: str, today: date) -> list[Problem]:
    """PURE: what is wrong with a stated term ([] when it is a term within TERM_YEARS_AROUND of today)."""
    match = TERM_PATTERN.match(code)
    if match is None:
        return [NOT_A_TERM()]
    if abs(int(match.group(2)) - today.year) > TERM_YEARS_AROUND:
        return [TERM_TOO_FAR(years=TERM_YEARS_AROUND)]
    return []


def completion_problems(completed_on: date, term: str, today: date) -> dict[str, list[Problem]]:
    """PURE: each field of a stated completion that contradicts today or the other field."""
    errors: dict[str, list[Problem]] = {}
    if completed_on > today:
        errors["completed_on"] = [AFTER_TODAY()]
    if found := term_problems(term, today):
        errors["term"] = found
    elif (span := term_span(term)) is not None and not span[0] <= completed_on <= span[1]:
        first, last = span
        errors.setdefault("completed_on", []).append(
            DATE_NOT_IN_TERM(term=term, first=first.isoformat(), last=last.isoformat())
        )
    return errors


def country_problems(setting: str, country_code: str | None) -> list[Problem]:
    """PURE: what is wrong with the country stated for an activity in `setting` ([] when none).
    Abroad needs a real country other than Sweden; at home the activity is in Sweden, so no
    country or SE (what activities stored before `setting` existed carry); online, none."""
    if country_code and country_code not in country_codes():
        return [NOT_A_COUNTRY()]
    if setting == "abroad" and not country_code:
        return [COUNTRY_REQUIRED()]
    if setting == "abroad" and country_code == "SE":
        return [ABROAD_IN_SWEDEN()]
    if setting == "at_home" and country_code not in (None, "", "SE"):
        return [COUNTRY_AT_HOME()]
    if setting == "digital" and country_code:
        return [COUNTRY_ONLINE()]
    return []


def decide_register(
    state: StudentState, cmd: RegisterStudent, dept: Department, student_id: str, today: date
) -> list[IntakeEvent]:
    if state.registered:
        raise RuleViolated(ALREADY_REGISTERED())
    if dept.programme(cmd.programme) is None:
        raise ValidationFailed(UNKNOWN_PROGRAMME(), {"programme": [NOT_A_PROGRAMME(department=dept.code)]})
    if found := term_problems(cmd.expected_end_term, today):
        raise ValidationFailed(found[0], {"expected_end_term": found})
    return [StudentRegistered(student_id=student_id, rules=dept.rules_ref, **fields_of(RegistrationDetails, cmd))]


#: The kind a student logs when the department's catalogue lacks theirs (assessment_service/rulings.py).
OTHER_KIND = "other"


def check_activity(details: ActivityDetails, dept: Department, today: date) -> None:
    """Raise ValidationFailed naming each field that breaks the department's catalogue rules."""
    errors: dict[str, list[Problem]] = {}
    kind = dept.kind(details.kind)
    if details.kind == OTHER_KIND:
        pass  # a kind the catalogue lacks: any setting; it waits for the assessor group's ruling
    elif kind is None:
        errors["kind"] = [NOT_A_KIND(department=dept.code)]
    elif details.setting not in kind.settings:
        errors["setting"] = [SETTING_NOT_ALLOWED(kind=kind.code, settings=kind.settings)]
    if found := country_problems(details.setting, details.country_code):
        errors["country_code"] = found
    if details.end_date < details.start_date:
        errors["end_date"] = [END_BEFORE_START()]
    if details.start_date.year < 2000 or details.end_date.year > today.year + 10:
        errors.setdefault("start_date", []).append(DATES_OUT_OF_RANGE())
    if errors:
        raise ValidationFailed(ACTIVITY_INVALID(), errors)


def decide_log_activity(
    state: StudentState, cmd: LogActivity, dept: Department, today: date, *, deregistered: bool = False
) -> list[IntakeEvent]:
    _require_active(state)
    check_not_deregistered(deregistered)
    if cmd.activity_id in state.activities:
        raise RuleViolated(ALREADY_LOGGED())
    check_activity(cmd.details, dept, today)
    return [ActivityLogged(activity_id=cmd.activity_id, **fields_of(ActivityDetails, cmd.details))]


def decide_amend_activity(
    state: StudentState, cmd: AmendActivity, dept: Department, today: date
) -> list[IntakeEvent]:
    _require_active(state)
    activity = state.activities.get(cmd.activity_id)
    if activity is None:
        raise NotFound(NO_SUCH_ACTIVITY())
    if activity.withdrawn:
        raise RuleViolated(WITHDRAWN_NOT_AMENDABLE())
    check_activity(cmd.details, dept, today)
    if activity.details == cmd.details:
        return []
    return [ActivityAmended(activity_id=cmd.activity_id, **fields_of(ActivityDetails, cmd.details))]


def decide_withdraw_activity(state: StudentState, cmd: WithdrawActivity) -> list[IntakeEvent]:
    _require_active(state)
    activity = state.activities.get(cmd.activity_id)
    if activity is None:
        raise NotFound(NO_SUCH_ACTIVITY())
    if activity.withdrawn:
        return []
    return [ActivityWithdrawn(activity_id=cmd.activity_id, reason=cmd.reason)]


def decide_upload_attachment(state: StudentState, cmd: UploadAttachment) -> list[IntakeEvent]:
    _require_active(state)
    return [
        AttachmentUploaded(
            attachment_id=cmd.attachment_id, filename=cmd.filename, size=cmd.size, sha256=cmd.sha256, pages=cmd.pages
        )
    ]


def _check_report_content(
    state: StudentState, answers: Mapping[str, str], activity_ids: list[str], attachment_id: str | None,
    dept: Department,
) -> None:
    """Raise ValidationFailed naming each field of a report's content (a submission's or a
    resubmission's) that breaks the department's questions or the student's own record."""
    errors: dict[str, list[Problem]] = {}
    codes = {q.code for q in dept.reflection_questions}
    missing = sorted(codes - set(answers))
    unknown = sorted(set(answers) - codes)
    if missing:
        errors["answers"] = [ANSWERS_MISSING(questions=missing)]
    if unknown:
        errors.setdefault("answers", []).append(ANSWERS_UNKNOWN(questions=unknown))
    blank = sorted(code for code, text in answers.items() if not text.strip())
    if blank:
        errors.setdefault("answers", []).append(ANSWERS_BLANK(questions=blank))
    if not activity_ids:
        errors["activity_ids"] = [NO_ACTIVITIES()]
    foreign = [a for a in activity_ids if a not in state.activities]
    withdrawn = [a for a in activity_ids if a in state.activities and state.activities[a].withdrawn]
    if foreign:
        errors.setdefault("activity_ids", []).append(FOREIGN_ACTIVITIES())
    if withdrawn:
        errors.setdefault("activity_ids", []).append(WITHDRAWN_ACTIVITIES())
    if len(set(activity_ids)) != len(activity_ids):
        errors.setdefault("activity_ids", []).append(ACTIVITY_TWICE())
    if attachment_id is not None and attachment_id not in state.attachments:
        errors["attachment_id"] = [NO_SUCH_ATTACHMENT()]
    if errors:
        raise ValidationFailed(REPORT_INVALID(), errors)


def _current_step(state: StudentState, report_id: str, steps: Mapping[str, AssessmentStep]) -> str:
    """Where the report's CURRENT round stands: "waiting" until the assessment side has said
    something about that round (a step about an earlier round is old news), else the step."""
    step = steps.get(report_id)
    if step is None or step.round < state.report_rounds.get(report_id, 1):
        return "waiting"
    return step.state


def check_new_report_allowed(state: StudentState, steps: Mapping[str, AssessmentStep]) -> None:
    """Raise RuleViolated while one of the student's reports waits, is in review, awaits their
    revision or is approved: only a rejected report makes room for a new one (what My CIM asks
    before it offers the report form, and the decision before it records one)."""
    for report_id in state.reports:
        match _current_step(state, report_id, steps):
            case "rejected":
                continue
            case "approved":
                raise RuleViolated(REPORT_APPROVED())
            case "revision_requested":
                raise RuleViolated(RESUBMIT_INSTEAD())
            case _:
                raise RuleViolated(REPORT_WAITING())


def decide_submit_report(
    state: StudentState, cmd: SubmitReport, dept: Department, steps: Mapping[str, AssessmentStep], *,
    deregistered: bool = False,
) -> list[IntakeEvent]:
    """A new report, unless another stands in its way (check_new_report_allowed) or the student
    is deregistered. `steps`: each report's latest step on the assessment side (see AssessmentStep)."""
    _require_active(state)
    check_not_deregistered(deregistered)
    check_new_report_allowed(state, steps)
    _check_report_content(state, cmd.answers, cmd.activity_ids, cmd.attachment_id, dept)
    return [
        ReportSubmitted(
            report_id=cmd.report_id,
            answers=dict(cmd.answers),
            activity_ids=list(cmd.activity_ids),
            attachment_id=cmd.attachment_id,
            rules=dept.rules_ref,
        )
    ]


def check_resubmission_allowed(state: StudentState, report_id: str, latest: AssessmentStep | None) -> int:
    """The report's current round, if the latest decision on that round asks for a revision;
    else NotFound (no such report of theirs) or RuleViolated saying why not."""
    current = state.report_rounds.get(report_id)
    if current is None:
        raise NotFound(NO_SUCH_REPORT())
    step = _current_step(state, report_id, {report_id: latest} if latest else {})
    if step == "waiting" and current > 1:
        raise RuleViolated(ALREADY_RESUBMITTED())
    if step != "revision_requested":
        raise RuleViolated(NO_REVISION_REQUESTED())
    return current


def decide_resubmit_report(
    state: StudentState, cmd: ResubmitReport, dept: Department, latest: AssessmentStep | None, *,
    deregistered: bool = False,
) -> list[ReportResubmitted]:
    """A new round of the report, only while the latest decision on its current round asks for
    a revision and the student is not deregistered. `latest`: the report's latest step on the
    assessment side (None: nothing yet)."""
    _require_active(state)
    check_not_deregistered(deregistered)
    current = check_resubmission_allowed(state, cmd.report_id, latest)
    _check_report_content(state, cmd.answers, cmd.activity_ids, cmd.attachment_id, dept)
    return [
        ReportResubmitted(
            report_id=cmd.report_id,
            round=current + 1,
            answers=dict(cmd.answers),
            activity_ids=list(cmd.activity_ids),
            attachment_id=cmd.attachment_id,
            rules=dept.rules_ref,
        )
    ]


def decide_complete_studies(state: StudentState, cmd: CompleteStudies, today: date) -> list[IntakeEvent]:
    _require_active(state)
    if errors := completion_problems(cmd.completed_on, cmd.term, today):
        future = cmd.completed_on > today
        raise ValidationFailed(COMPLETED_IN_FUTURE() if future else next(iter(errors.values()))[0], errors)
    if state.studies_completed_on == cmd.completed_on:
        return []
    return [StudiesCompleted(completed_on=cmd.completed_on, term=cmd.term)]


def decide_erase(state: StudentState, cmd: EraseStudent) -> list[IntakeEvent]:
    if not state.registered:
        raise NotFound(NO_SUCH_STUDENT())
    if state.erased:
        return []
    return [StudentErased(reason=cmd.reason)]


def decide_withdraw_registration(state: StudentState, cmd: WithdrawRegistration) -> list[IntakeEvent]:
    if not state.registered or state.erased:
        raise NotFound(NO_SUCH_STUDENT())
    if state.withdrawn:
        return []
    return [RegistrationWithdrawn(reason=cmd.reason)]
