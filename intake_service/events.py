"""The intake service's events: what students (and forms acting for them) state.

Each event is a frozen dataclass, declared once: stored under its class name (never renamed),
with its schema derived from the fields' types and `rules` (shared/events.py) and a
schema version. Fields marked `personal` are sealed with the student's own key
(shared/personal.py) and read as None once that key is destroyed by erasure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TypeAlias

from marshmallow import validate

from shared.catalogue import SETTINGS
from shared.events import JSON, EventRegistry, fields_of, rules

#: Which view showed a student's personal data to a member of staff.
VIEWED_WHAT = ("my_cim", "export", "attachment", "events")


@dataclass(frozen=True)
class ActivityDetails:
    """What a student states about one activity: the shape of ActivityLogged and ActivityAmended,
    and of the commands that record them, declared once."""

    kind: str
    # Free text typed by the student: a title or organiser can name or describe a person
    # ("placement at my aunt's clinic"), so both are sealed like the description (events stored
    # before 2026-12-03 hold them in clear; opening passes clear values through unchanged).
    title: str = field(metadata=rules(validate.Length(1, 200), personal=True))
    organiser: str = field(metadata=rules(validate.Length(1, 200), personal=True))
    setting: str = field(metadata=rules(validate.OneOf(SETTINGS)))
    country_code: str | None
    start_date: date
    end_date: date
    hours: int | None = field(metadata=rules(validate.Range(0, 10000)))
    description: str = field(metadata=rules(validate.Length(0, 5000), personal=True))

    @classmethod
    def of(cls, source: object) -> ActivityDetails:
        """The details an activity event (or anything carrying them) states."""
        return cls(**fields_of(cls, source))


@dataclass(frozen=True)
class _ActivityId:
    activity_id: str


@dataclass(frozen=True)
class RegistrationDetails:
    """What a student states when registering: the shape of StudentRegistered and of the command
    that records it (domain.RegisterStudent), declared once."""

    name: str = field(metadata=rules(validate.Length(1, 200), personal=True))
    email: str = field(metadata=rules(personal=True, email=True))
    university_id: str = field(metadata=rules(validate.Length(1, 64), personal=True))
    department: str
    programme: str
    expected_end_term: str


@dataclass(frozen=True)
class _StudentId:
    student_id: str


# A dataclass lists the fields of its last base first: the stored data starts with the id.
@dataclass(frozen=True)
class StudentRegistered(RegistrationDetails, _StudentId):
    """A student registered for CIM in a department's programme. Recorded by the student."""

    rules: str


@dataclass(frozen=True)
class ActivityLogged(ActivityDetails, _ActivityId):
    """A student logged an international activity. Recorded by the student."""


@dataclass(frozen=True)
class ActivityAmended(ActivityDetails, _ActivityId):
    """A student corrected a logged activity; the new values replace the old. Recorded by the student."""


@dataclass(frozen=True)
class ActivityWithdrawn:
    """A student withdrew a logged activity; it no longer counts. Recorded by the student."""

    activity_id: str
    # Free text a student writes may name people or health matters: sealed like other personal
    # fields (events stored before this was marked stay plain; opening passes them through).
    reason: str | None = field(metadata=rules(validate.Length(0, 1000), personal=True))


@dataclass(frozen=True)
class AttachmentUploaded:
    """A student uploaded a checked PDF for a report; the file lives under the upload root."""

    attachment_id: str
    filename: str = field(metadata=rules(validate.Length(1, 200), personal=True))
    size: int
    sha256: str = field(metadata=rules(validate.Length(64, 64)))
    pages: int


@dataclass(frozen=True)
class ReportContent:
    """What a report states, in each round: answers to the reflection questions, the activities it
    covers, an optional PDF, and the rule set (`CODE@version`) it was written under."""

    answers: dict[str, str] = field(metadata=rules(personal=True))
    activity_ids: list[str] = field(metadata=rules(validate.Length(min=1)))
    attachment_id: str | None
    rules: str


@dataclass(frozen=True)
class _ReportId:
    report_id: str


@dataclass(frozen=True)
class _ReportRound(_ReportId):
    round: int = field(metadata=rules(validate.Range(2, 1000)))


@dataclass(frozen=True)
class ReportSubmitted(ReportContent, _ReportId):
    """A student submitted the CIM report: answers to the reflection questions over activities."""


@dataclass(frozen=True)
class ReportResubmitted(ReportContent, _ReportRound):
    """A student resubmitted a report after a revision was requested: a new round of the same
    report (`round` 2, 3, ...), with its answers and activities as they now stand. Recorded by the
    student; goes back to the same assessors."""


@dataclass(frozen=True)
class StudiesCompleted:
    """A student (or a form for them) stated that their studies ended; the grace period starts."""

    completed_on: date
    term: str


@dataclass(frozen=True)
class RegistrationWithdrawn:
    """A student withdrew from CIM. Nothing more is recorded for them afterwards."""

    reason: str | None = field(metadata=rules(validate.Length(0, 1000), personal=True))


@dataclass(frozen=True)
class StudentErased:
    """The student's personal data was erased (GDPR): their key is destroyed, and read models
    must forget what they copied. Recorded by staff or by the student's own request."""

    reason: str = field(metadata=rules(validate.Length(0, 200)))


@dataclass(frozen=True)
class PersonalDataViewed:
    """A member of staff (not the student) opened a student's personal data: My CIM, the access
    export, an attachment or the event history (API). Recorded by the intake app in the stream
    `audit-<student_id>`, so the student's own stream (and its version) is untouched. Ids only:
    no name, no content."""

    student_id: str = field(metadata=rules(validate.Length(1, 64)))
    viewer_account_id: str = field(metadata=rules(validate.Length(1, 64)))
    what: str = field(metadata=rules(validate.OneOf(VIEWED_WHAT)))


@dataclass(frozen=True)
class RecordsDisposed:
    """Records were disposed of under the retention rules ("gallring"). Recorded by the disposal
    run in the stream `retention-<kind>`; ids only, and the rule it applied (`decided_by`)."""

    kind: str = field(metadata=rules(validate.Length(1, 64)))
    count: int = field(metadata=rules(validate.Range(min=0)))
    ids: list[str] = field(metadata=rules(items=[validate.Length(1, 200)]))
    decided_by: str = field(metadata=rules(validate.Length(1, 200)))


def upcast_activity_logged_v1_to_v2(data: JSON) -> JSON:
    """v1 knew only abroad or not (`abroad: bool`, `country`); v2 adds digital activities after
    the assessor group decided web-based activities count, as `setting` and `country_code`."""
    abroad = bool(data.pop("abroad", False))
    country = data.pop("country", None)
    data["setting"] = "abroad" if abroad else "at_home"
    data["country_code"] = country or ("SE" if not abroad else None)
    data.setdefault("hours", None)
    return data


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(StudentRegistered)
    registry.register(
        ActivityLogged,
        version=2,
        upcasters={1: upcast_activity_logged_v1_to_v2},
    )
    registry.register(ActivityAmended)
    registry.register(ActivityWithdrawn)
    registry.register(AttachmentUploaded)
    registry.register(ReportSubmitted)
    registry.register(ReportResubmitted)
    registry.register(StudiesCompleted)
    registry.register(RegistrationWithdrawn)
    registry.register(StudentErased)
    registry.register(PersonalDataViewed)
    registry.register(RecordsDisposed)
    return registry


REGISTRY = build_registry()

#: Every event of a student's stream: what `domain.evolve` folds and the deciders return.
#: (PersonalDataViewed lives in `audit-<id>` streams, RecordsDisposed in the retention stream.)
IntakeEvent: TypeAlias = (
    StudentRegistered | ActivityLogged | ActivityAmended | ActivityWithdrawn | AttachmentUploaded
    | ReportSubmitted | ReportResubmitted | StudiesCompleted | RegistrationWithdrawn | StudentErased
)
