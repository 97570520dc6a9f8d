"""The assessment service's own events: what staff decide about reports, and who viewed whose data.

Stored in the assessment service's own event store (the `events` table of its database, next to
the read models). Each event is a frozen dataclass, declared once: stored under its class name
(never renamed), with its schema derived from its fields (shared/events.py) and a schema version.
Reasons for assignment decisions are chosen from short code lists. The free text a review or a
decision carries (comments, the joint summary for the student, reasons) is personal data: those
fields are marked `personal` and sealed with the student's own key in this service's key table,
which the student's erasure (arriving through the intake feed) destroys.

Streams: `assessment-report-<report_id>` (assignment, conflicts, reviews and decisions of one
report; optimistic concurrency per report), `presentation-occasion-<occasion_id>` (an occasion
and its bookings; capacity is decided on one stream) and `audit-<student_id>` (staff views of one
student's personal data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypeAlias

from marshmallow import validate

from shared.events import EventRegistry, rules

#: Why an assessor declared a conflict of interest (shown translated on the page).
CONFLICT_REASONS = ("personal_relationship", "professional_relationship", "supervised_student", "other")
#: Why an assessor was taken off a report.
UNASSIGN_REASONS = ("coordinator_decision", "conflict_of_interest")
#: Which view showed a student's personal data to a member of staff.
VIEWED_WHAT = ("report", "review_queue", "student_overview", "my_data", "reviews", "presentations", "accounts")
#: What a reviewer judges each criterion (the rule set names the criteria).
CRITERION_VERDICTS = ("met", "not_met")
#: A reviewer's recommendation.
RECOMMENDATIONS = ("approve", "revise", "reject")
#: The kinds of presentation occasion a coordinator publishes.
OCCASION_KINDS = ("international_cafe", "lecture", "information_session", "web_seminar")
#: Why a booking was cancelled.
BOOKING_CANCEL_REASONS = ("student_cancelled", "coordinator_cancelled", "occasion_cancelled")

_UUID = validate.Regexp(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DEPARTMENT = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def report_stream(report_id: str) -> str:
    return f"assessment-report-{report_id}"


def audit_stream(student_id: str) -> str:
    return f"audit-{student_id}"


def occasion_stream(occasion_id: str) -> str:
    return f"presentation-occasion-{occasion_id}"


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


# -- reviews and decisions (stream assessment-report-<report_id>) ------------------------------


@dataclass(frozen=True)
class _ReportRound:
    """What every review and decision names: the report, its student and department, the round
    (1 for the first submission, +1 per resubmission) and the rule set `CODE@version` applied."""

    report_id: str = field(metadata=rules(_UUID))
    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    round: int = field(metadata=rules(validate.Range(1, 1000)))
    rule_set: str = field(metadata=rules(validate.Length(1, 80)))


@dataclass(frozen=True)
class ReviewSubmitted(_ReportRound):
    """An assigned assessor reviewed one round of a report: each of the rule set's criteria met or
    not (`verdicts`: criterion code -> "met" | "not_met"), a comment per criterion (free text about
    the student: sealed), and a recommendation. One per assessor and round. Recorded by the
    assessor."""

    assessor_account_id: str = field(metadata=rules(validate.Length(1, 36)))
    verdicts: dict[str, str]
    comments: dict[str, str] = field(metadata=rules(personal=True))
    recommendation: str = field(metadata=rules(validate.OneOf(RECOMMENDATIONS)))


@dataclass(frozen=True)
class _Decision(_ReportRound):
    """A decision on one round: who decided (an account id, or "policy" when the rule set's
    policy decided on agreeing reviews) and the reviews it rests on (their event ids)."""

    decided_by: str = field(metadata=rules(validate.Length(1, 36)))
    rests_on: list[str] = field(metadata=rules(validate.Length(min=1)))


@dataclass(frozen=True)
class ReportApproved(_Decision):
    """The round was approved: the report requirement is met."""


@dataclass(frozen=True)
class RevisionRequested(_Decision):
    """The round needs revision; `summary` is the joint summary written for the student (sealed).
    The student may resubmit (intake's ReportResubmitted), which opens the next round."""

    summary: str = field(metadata=rules(validate.Length(1, 10000), personal=True))


@dataclass(frozen=True)
class ReportRejected(_Decision):
    """The round was rejected, with the reasons written for the student (sealed)."""

    summary: str = field(metadata=rules(validate.Length(1, 10000), personal=True))


# -- presentations (stream presentation-occasion-<occasion_id>) ----------------------------------


@dataclass(frozen=True)
class OccasionPublished:
    """A coordinator published a presentation occasion of their department: when, where (a place
    or a link), how many may present. Recorded by the coordinator."""

    occasion_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    kind: str = field(metadata=rules(validate.OneOf(OCCASION_KINDS)))
    starts_at: datetime
    ends_at: datetime
    place: str = field(metadata=rules(validate.Length(1, 300)))
    capacity: int = field(metadata=rules(validate.Range(1, 1000)))
    published_by: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class OccasionCancelled:
    """A coordinator cancelled an occasion; its bookings are cancelled with it."""

    occasion_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    cancelled_by: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class _Booking:
    occasion_id: str = field(metadata=rules(_UUID))
    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))


@dataclass(frozen=True)
class PresentationBooked(_Booking):
    """A student whose report is approved booked a place at an occasion (capacity decided on the
    occasion's stream). Recorded by the student (or a coordinator for them)."""

    report_id: str = field(metadata=rules(_UUID))
    booked_by: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class BookingCancelled(_Booking):
    """A booking was cancelled, by the student or a coordinator, or with its occasion."""

    reason_code: str = field(metadata=rules(validate.OneOf(BOOKING_CANCEL_REASONS)))
    cancelled_by: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class PresentationHeld(_Booking):
    """The coordinator recorded that the student presented at the occasion: with an approved
    report (as the rule set requires) the student is eligible for the diploma."""

    recorded_by: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class PresentationMissed(_Booking):
    """The coordinator recorded that the booked student did not show; they may book again."""

    recorded_by: str = field(metadata=rules(validate.Length(1, 36)))


# -- rulings on new activity kinds (stream activity-ruling-<activity_id>) ----------------------

#: How the assessor group ruled on an activity of a kind the department's catalogue lacks.
RULING_OUTCOMES = ("accepted_as_existing", "accepted_as_new", "not_accepted")


def ruling_stream(activity_id: str) -> str:
    return f"activity-ruling-{activity_id}"


@dataclass(frozen=True)
class ActivityKindRuled:
    """A coordinator or assessor of the department recorded the assessor group's ruling on an
    activity of a kind its catalogue lacks. `kind_label` names the KIND as ruled on ("Model UN
    conference"); `kind` and `activity_class` say what it counts as (an existing kind of the
    catalogue, or a new kind code with its class; None when not accepted); `rationale` is written
    about the kind, not the person, because the ruling is published as a precedent (not sealed).
    A later ruling on the same activity supersedes an earlier one."""

    activity_id: str = field(metadata=rules(_UUID))
    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    kind_label: str = field(metadata=rules(validate.Length(1, 120)))
    outcome: str = field(metadata=rules(validate.OneOf(RULING_OUTCOMES)))
    kind: str | None = field(metadata=rules(validate.Regexp(r"^[a-z][a-z0-9_-]{0,59}$")))
    activity_class: str | None = field(metadata=rules(validate.Length(1, 10)))
    rationale: str = field(metadata=rules(validate.Length(1, 2000)))
    ruled_by: str = field(metadata=rules(validate.Length(1, 36)))


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(AssessorAssigned)
    registry.register(AssessorUnassigned)
    registry.register(ConflictOfInterestDeclared)
    registry.register(PersonalDataViewed)
    later: tuple[type, ...] = (
        ReviewSubmitted, ReportApproved, RevisionRequested, ReportRejected,
        OccasionPublished, OccasionCancelled, PresentationBooked, BookingCancelled, PresentationHeld,
        PresentationMissed, ActivityKindRuled,
    )
    for event in later:
        registry.register(event)
    return registry


REGISTRY = build_registry()

#: The events of an `assessment-report-<id>` stream: what `domain.fold` reads and the deciders return.
ReportEvent: TypeAlias = (
    AssessorAssigned | AssessorUnassigned | ConflictOfInterestDeclared | ReviewSubmitted | ReportApproved
    | RevisionRequested | ReportRejected
)
#: The decisions that close a round.
Decision: TypeAlias = ReportApproved | RevisionRequested | ReportRejected
#: The events of a `presentation-occasion-<id>` stream.
OccasionEvent: TypeAlias = (
    OccasionPublished | OccasionCancelled | PresentationBooked | BookingCancelled | PresentationHeld
    | PresentationMissed
)


# -- deadlines (stream deadline-<student_id>) ---------------------------------------------------
# Recorded by the daily sweep (actor "system:deadlines") and by coordinators. Reasons are codes,
# never free text, so nothing here is personal data. See docs/deadlines.md.

#: Why a coordinator extended a deadline.
EXTENSION_REASONS = ("by_agreement", "illness", "parental_leave", "studies_prolonged", "other")
#: Why a student was deregistered (the sweep knows one reason).
DEREGISTRATION_REASONS = ("deadline_passed",)
#: Why a coordinator reinstated a deregistered student.
REINSTATEMENT_REASONS = ("by_agreement", "deregistered_in_error", "other")
#: Who records what the daily sweep decides.
SYSTEM_ACTOR = "system:deadlines"


def deadline_stream(student_id: str) -> str:
    return f"deadline-{student_id}"


@dataclass(frozen=True)
class _DeadlineFact:
    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    #: The deadline the fact concerns (the new one, for a change).
    deadline: date


@dataclass(frozen=True)
class DeadlineSet(_DeadlineFact):
    """The student's deadline became known or changed with their completion date: the last day
    of the term `grace_terms` after the term `term` in which studies were completed on
    `completed_on`, by `rule_set`; the reminders fall `reminder_days` before it. `basis_position`
    is the intake feed position of the StudiesCompleted it follows. Recorded by the sweep."""

    rule_set: str = field(metadata=rules(validate.Length(1, 80)))
    completed_on: date
    term: str = field(metadata=rules(validate.Length(1, 10)))
    grace_terms: int = field(metadata=rules(validate.Range(0, 20)))
    reminder_days: list[int] = field(metadata=rules(items=(validate.Range(1, 366),)))
    basis_position: int = field(metadata=rules(validate.Range(0)))


@dataclass(frozen=True)
class DeadlineExtended(_DeadlineFact):
    """A coordinator of the student's department extended the deadline by agreement to
    `deadline` (a reason code). Recorded by the coordinator."""

    reason_code: str = field(metadata=rules(validate.OneOf(EXTENSION_REASONS)))
    extended_by: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class DeadlineReminderDue(_DeadlineFact):
    """The student is `offset_days` before `deadline` without a report under review or approved:
    one reminder is due (what the mail policy keys the reminder on). Recorded by the sweep, once
    per deadline and offset."""

    offset_days: int = field(metadata=rules(validate.Range(1, 366)))


@dataclass(frozen=True)
class StudentDeregistered(_DeadlineFact):
    """The deadline passed without a report under review or approved: the student is deregistered
    from CIM (the intake refuses new activities and reports until reinstated). Recorded by the
    sweep (`deregistered_by` "system:deadlines") under the rule set `rule_set`."""

    reason_code: str = field(metadata=rules(validate.OneOf(DEREGISTRATION_REASONS)))
    rule_set: str = field(metadata=rules(validate.Length(1, 80)))
    deregistered_by: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class StudentReinstated(_DeadlineFact):
    """A coordinator reinstated a deregistered student with a new deadline `deadline`."""

    reason_code: str = field(metadata=rules(validate.OneOf(REINSTATEMENT_REASONS)))
    reinstated_by: str = field(metadata=rules(validate.Length(1, 36)))


for _deadline_event in (DeadlineSet, DeadlineExtended, DeadlineReminderDue, StudentDeregistered, StudentReinstated):
    REGISTRY.register(_deadline_event)

#: The events of a `deadline-<student_id>` stream.
DeadlineEvent: TypeAlias = (
    DeadlineSet | DeadlineExtended | DeadlineReminderDue | StudentDeregistered | StudentReinstated
)


# -- voided registrations (stream registration-void-<student_id>, issue 15) -----------------------
#: Why a coordinator voids a registration: a student of another faculty, a duplicate registration,
#: registered by mistake, or another reason.
VOID_REASONS = ("other_faculty", "duplicate", "in_error", "other")


def void_stream(student_id: str) -> str:
    return f"registration-void-{student_id}"


@dataclass(frozen=True)
class RegistrationVoided:
    """A coordinator of the student's department voided a mis-registration (a reason code): the
    registration is counted out of CIM in numbers from the day it was voided, and shown beside the
    figure as voided. Once per student. Recorded by the coordinator."""

    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    reason_code: str = field(metadata=rules(validate.OneOf(VOID_REASONS)))
    voided_by: str = field(metadata=rules(validate.Length(1, 36)))


REGISTRY.register(RegistrationVoided)


@dataclass(frozen=True)
class RegistrationVoidUndone:
    """A coordinator of the student's department undid a void (it was a mistake): the registration
    is counted in again from the day it was undone (before that day the figures stay as they were).
    Allowed only while the registration stands voided; it may be voided again later. Recorded by
    the coordinator."""

    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    undone_by: str = field(metadata=rules(validate.Length(1, 36)))


REGISTRY.register(RegistrationVoidUndone)


# -- diplomas (stream diplomas-<department>) ------------------------------------------------------
# One stream per department: numbering (per department and year), the status-list index (per
# department, across years) and "one live diploma per student" are decided on it with optimistic
# concurrency (assessment_service/diplomas.py). Reasons written by a coordinator are free text
# about the student: sealed with the student's key. See docs/diplomas.md.

#: Who issues diplomas when no person does (the beat's issuing sweep).
DIPLOMA_SYSTEM_ACTOR = "system:diplomas"
_DIPLOMA_NUMBER = validate.Regexp(r"^CIM-[A-Z0-9]{1,20}-\d{4}-\d{4,}$")
_VERIFICATION_CODE = validate.Regexp(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")


def diploma_stream(department: str) -> str:
    return f"diplomas-{department}"


@dataclass(frozen=True)
class DiplomaIssued:
    """A diploma was issued to an eligible student: by the issuing sweep (`issued_by`
    "system:diplomas") or by a coordinator of the department by hand (`reason`, sealed). `number`
    (`CIM-<DEPT>-<year>-<sequence>`) is unique per department and year; `status_index` is the
    diploma's place in the department's revocation status list (unique across years).
    `merits` are the activity ids the diploma lists; the signatories are those of the
    configuration on `issued_on` (Lund date). `replaces`: the revoked diploma it corrects."""

    diploma_id: str = field(metadata=rules(_UUID))
    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    number: str = field(metadata=rules(_DIPLOMA_NUMBER))
    year: int = field(metadata=rules(validate.Range(2000, 9999)))
    sequence: int = field(metadata=rules(validate.Range(1, 999999)))
    status_index: int = field(metadata=rules(validate.Range(0, 10_000_000)))
    issued_on: date
    rule_set: str = field(metadata=rules(validate.Length(1, 80)))
    verification_code: str = field(metadata=rules(_VERIFICATION_CODE))
    merits: list[str] = field(metadata=rules(items=(_UUID,)))
    signatory_names: list[str] = field(metadata=rules(items=(validate.Length(1, 120),)))
    signatory_titles_en: list[str] = field(metadata=rules(items=(validate.Length(1, 120),)))
    signatory_titles_sv: list[str] = field(metadata=rules(items=(validate.Length(1, 120),)))
    issued_by: str = field(metadata=rules(validate.Length(1, 36)))
    replaces: str | None = field(metadata=rules(_UUID))
    reason: str | None = field(metadata=rules(validate.Length(1, 2000), personal=True))


@dataclass(frozen=True)
class DiplomaRevoked:
    """A coordinator of the department revoked a diploma, with a reason (sealed). The diploma's
    number stays taken; the student may be issued a corrected one."""

    diploma_id: str = field(metadata=rules(_UUID))
    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    reason: str = field(metadata=rules(validate.Length(1, 2000), personal=True))
    revoked_by: str = field(metadata=rules(validate.Length(1, 36)))


@dataclass(frozen=True)
class DiplomaRendered:
    """The diploma's PDF was rendered and stored (`<data>/diplomas/<number>.pdf`) with this
    SHA-256 and size. Recorded once per diploma by the render task (its idempotency key)."""

    diploma_id: str = field(metadata=rules(_UUID))
    student_id: str = field(metadata=rules(_UUID))
    department: str = field(metadata=rules(_DEPARTMENT))
    sha256: str = field(metadata=rules(validate.Regexp(r"^[0-9a-f]{64}$")))
    size: int = field(metadata=rules(validate.Range(1)))


for _diploma_event in (DiplomaIssued, DiplomaRevoked, DiplomaRendered):
    REGISTRY.register(_diploma_event)

#: The events of a `diplomas-<department>` stream.
DiplomaEvent: TypeAlias = DiplomaIssued | DiplomaRevoked | DiplomaRendered
