"""The intake service's events: what students (and forms acting for them) state.

Each event is a frozen dataclass, stored under its class name (never renamed) with a marshmallow
schema and a schema version. Fields marked `personal` are sealed with the student's own key
(shared/personal.py) and read as None once that key is destroyed by erasure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from shared.events import JSON, EventRegistry

SETTING = validate.OneOf(["abroad", "at_home", "digital"])
PERSONAL = {"personal": True}


@dataclass(frozen=True)
class StudentRegistered:
    """A student registered for CIM in a department's programme. Recorded by the student."""

    student_id: str
    name: str
    email: str
    university_id: str
    department: str
    programme: str
    expected_end_term: str
    rules: str


@dataclass(frozen=True)
class ActivityLogged:
    """A student logged an international activity. Recorded by the student."""

    activity_id: str
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
class ActivityAmended:
    """A student corrected a logged activity; the new values replace the old. Recorded by the student."""

    activity_id: str
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
class ActivityWithdrawn:
    """A student withdrew a logged activity; it no longer counts. Recorded by the student."""

    activity_id: str
    reason: str | None  # personal (sealed); None once the student is erased


@dataclass(frozen=True)
class AttachmentUploaded:
    """A student uploaded a checked PDF for a report; the file lives under the upload root."""

    attachment_id: str
    filename: str
    size: int
    sha256: str
    pages: int


@dataclass(frozen=True)
class ReportSubmitted:
    """A student submitted the CIM report: answers to the reflection questions over activities."""

    report_id: str
    answers: dict[str, str]
    activity_ids: list[str]
    attachment_id: str | None
    rules: str


@dataclass(frozen=True)
class StudiesCompleted:
    """A student (or a form for them) stated that their studies ended; the grace period starts."""

    completed_on: date
    term: str


@dataclass(frozen=True)
class RegistrationWithdrawn:
    """A student withdrew from CIM. Nothing more is recorded for them afterwards."""

    reason: str | None  # personal (sealed); None once the student is erased


@dataclass(frozen=True)
class StudentErased:
    """The student's personal data was erased (GDPR): their key is destroyed, and read models
    must forget what they copied. Recorded by staff or by the student's own request."""

    reason: str


@dataclass(frozen=True)
class PersonalDataViewed:
    """A member of staff (not the student) opened a student's personal data: My CIM, the access
    export, an attachment or the event history (API). Recorded by the intake app in the stream
    `audit-<student_id>`, so the student's own stream (and its version) is untouched. Ids only:
    no name, no content."""

    student_id: str
    viewer_account_id: str
    what: str


@dataclass(frozen=True)
class RecordsDisposed:
    """Records were disposed of under the retention rules ("gallring"). Recorded by the disposal
    run in the stream `retention-<kind>`; ids only, and the rule it applied (`decided_by`)."""

    kind: str
    count: int
    ids: list[str]
    decided_by: str


class _EventSchema(Schema):
    event_class: type

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Any:
        return self.event_class(**data)


class StudentRegisteredSchema(_EventSchema):
    event_class = StudentRegistered
    student_id = fields.String(required=True)
    name = fields.String(required=True, allow_none=True, validate=validate.Length(1, 200), metadata=PERSONAL)
    email = fields.Email(required=True, allow_none=True, metadata=PERSONAL)
    university_id = fields.String(
        required=True, allow_none=True, validate=validate.Length(1, 64), metadata=PERSONAL
    )
    department = fields.String(required=True)
    programme = fields.String(required=True)
    expected_end_term = fields.String(required=True)
    rules = fields.String(required=True)


class _ActivityFieldsSchema(_EventSchema):
    activity_id = fields.String(required=True)
    kind = fields.String(required=True)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    organiser = fields.String(required=True, validate=validate.Length(1, 200))
    setting = fields.String(required=True, validate=SETTING)
    country_code = fields.String(required=True, allow_none=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    hours = fields.Integer(required=True, allow_none=True, validate=validate.Range(0, 10000))
    description = fields.String(
        required=True, allow_none=True, validate=validate.Length(0, 5000), metadata=PERSONAL
    )


class ActivityLoggedSchema(_ActivityFieldsSchema):
    event_class = ActivityLogged


class ActivityAmendedSchema(_ActivityFieldsSchema):
    event_class = ActivityAmended


class ActivityWithdrawnSchema(_EventSchema):
    event_class = ActivityWithdrawn
    activity_id = fields.String(required=True)
    # Free text a student writes may name people or health matters: sealed like other personal
    # fields (events stored before this was marked stay plain; opening passes them through).
    reason = fields.String(required=True, allow_none=True, validate=validate.Length(0, 1000), metadata=PERSONAL)


class AttachmentUploadedSchema(_EventSchema):
    event_class = AttachmentUploaded
    attachment_id = fields.String(required=True)
    filename = fields.String(required=True, allow_none=True, validate=validate.Length(1, 200), metadata=PERSONAL)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True, validate=validate.Length(64, 64))
    pages = fields.Integer(required=True)


class ReportSubmittedSchema(_EventSchema):
    event_class = ReportSubmitted
    report_id = fields.String(required=True)
    answers = fields.Dict(
        keys=fields.String(), values=fields.String(), required=True, allow_none=True, metadata=PERSONAL
    )
    activity_ids = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    attachment_id = fields.String(required=True, allow_none=True)
    rules = fields.String(required=True)


class StudiesCompletedSchema(_EventSchema):
    event_class = StudiesCompleted
    completed_on = fields.Date(required=True)
    term = fields.String(required=True)


class RegistrationWithdrawnSchema(_EventSchema):
    event_class = RegistrationWithdrawn
    reason = fields.String(required=True, allow_none=True, validate=validate.Length(0, 1000), metadata=PERSONAL)


class StudentErasedSchema(_EventSchema):
    event_class = StudentErased
    reason = fields.String(required=True, validate=validate.Length(0, 200))


class PersonalDataViewedSchema(_EventSchema):
    event_class = PersonalDataViewed
    student_id = fields.String(required=True, validate=validate.Length(1, 64))
    viewer_account_id = fields.String(required=True, validate=validate.Length(1, 64))
    what = fields.String(required=True, validate=validate.OneOf(["my_cim", "export", "attachment", "events"]))


class RecordsDisposedSchema(_EventSchema):
    event_class = RecordsDisposed
    kind = fields.String(required=True, validate=validate.Length(1, 64))
    count = fields.Integer(required=True, validate=validate.Range(min=0))
    ids = fields.List(fields.String(validate=validate.Length(1, 200)), required=True)
    decided_by = fields.String(required=True, validate=validate.Length(1, 200))


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
    registry.register(StudentRegistered, StudentRegisteredSchema())
    registry.register(
        ActivityLogged,
        ActivityLoggedSchema(),
        version=2,
        upcasters={1: upcast_activity_logged_v1_to_v2},
    )
    registry.register(ActivityAmended, ActivityAmendedSchema())
    registry.register(ActivityWithdrawn, ActivityWithdrawnSchema())
    registry.register(AttachmentUploaded, AttachmentUploadedSchema())
    registry.register(ReportSubmitted, ReportSubmittedSchema())
    registry.register(StudiesCompleted, StudiesCompletedSchema())
    registry.register(RegistrationWithdrawn, RegistrationWithdrawnSchema())
    registry.register(StudentErased, StudentErasedSchema())
    registry.register(PersonalDataViewed, PersonalDataViewedSchema())
    registry.register(RecordsDisposed, RecordsDisposedSchema())
    return registry


REGISTRY = build_registry()
