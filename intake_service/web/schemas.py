"""Request and response schemas of the intake JSON API (also the source of its OpenAPI document)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.catalogue import SETTINGS
from shared.validation import CountryCode, SafeText, Term, UUIDString


class RegisterStudentRequest(Schema):
    name = SafeText(required=True, max_length=200, metadata={"description": "Full name"})
    email = fields.Email(required=True, validate=validate.Length(max=254))
    university_id = SafeText(
        required=True,
        max_length=32,
        metadata={"pattern": "^[A-Za-z0-9-]{2,32}$"},
        validate=validate.Regexp(r"^[A-Za-z0-9-]{2,32}$", error="Use 2-32 letters, digits or hyphens."),
    )
    department = SafeText(required=True, max_length=20, metadata={"description": "Department code, e.g. SOCSW"})
    programme = SafeText(required=True, max_length=20)
    expected_end_term = Term(required=True, metadata={"example": "VT2028"})


class ActivityRequest(Schema):
    kind = SafeText(required=True, max_length=60, metadata={"description": "A kind from the department's catalogue"})
    title = SafeText(required=True, max_length=200)
    organiser = SafeText(required=True, max_length=200)
    setting = fields.String(required=True, validate=validate.OneOf(SETTINGS))
    country_code = CountryCode(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "ISO 3166 alpha-2; required abroad (not SE), null or SE at home, null online"
            " (a contradiction is refused)"
        },
    )
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    hours = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 10000))
    description = SafeText(load_default="", max_length=5000, min_length=0, multiline=True)

    @validates_schema
    def _dates_in_order(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and end < start:
            raise ValidationError("Must not be before the start date.", "end_date")


class WithdrawActivityRequest(Schema):
    reason = SafeText(load_default="", max_length=1000, min_length=0, multiline=True)


class SubmitReportRequest(Schema):
    answers = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z0-9-]{1,60}$")),
        values=SafeText(max_length=8000, multiline=True),
        required=True,
        metadata={"description": "Answer per reflection question code"},
    )
    activity_ids = fields.List(UUIDString(), required=True, validate=validate.Length(1, 100))
    attachment_id = UUIDString(load_default=None, allow_none=True)


class CompleteStudiesRequest(Schema):
    completed_on = fields.Date(required=True)
    term = Term(required=True)


class WithdrawRegistrationRequest(Schema):
    reason = SafeText(load_default="", max_length=1000, min_length=0, multiline=True)


class CreatedResponse(Schema):
    student_id = fields.String()
    activity_id = fields.String()
    report_id = fields.String()
    round = fields.Integer(metadata={"description": "The report's new round (a resubmission)"})
    attachment_id = fields.String()
    pages = fields.Integer()
    size = fields.Integer()
    version = fields.Integer(required=True)


class EventResponse(Schema):
    position = fields.Integer(required=True)
    event_id = fields.String(required=True)
    stream_id = fields.String(required=True)
    version = fields.Integer(required=True)
    type = fields.String(required=True)
    schema_version = fields.Integer(required=True)
    data = fields.Dict(required=True)
    metadata = fields.Dict(required=True)
    occurred_at = fields.DateTime(required=True)
    recorded_at = fields.DateTime(required=True)


class StreamResponse(Schema):
    student_id = fields.String(required=True)
    version = fields.Integer(required=True)
    events = fields.List(fields.Nested(EventResponse), required=True)


class FeedResponse(Schema):
    events = fields.List(fields.Nested(EventResponse), required=True)
    next_after = fields.Integer(required=True)
    head = fields.Integer(required=True)


class FeedQuery(Schema):
    after = fields.Integer(load_default=0, validate=validate.Range(0, 2**62))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 5000))


class ProblemResponse(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
