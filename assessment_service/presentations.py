"""PURE presentation decisions on one occasion's stream (`presentation-occasion-<id>`).

A coordinator publishes an occasion (an international café, a lecture slot, an information
session, a web seminar: when, where or which link, how many may present). A student whose report
is approved books a place at an upcoming occasion of their department, one booking at a time;
the student or a coordinator cancels it before the occasion starts. Once it has started, the
coordinator records who presented (`PresentationHeld`) and who did not show
(`PresentationMissed`, after which the student may book again). Cancelling an occasion cancels
its bookings.

`fold_occasion(events)` builds the state; the `decide_*` functions return the events to record or
raise. No I/O: the service reads what the read side knows about the student (`StudentFacts`:
approved report, booking elsewhere, already presented, withdrawn) and the time, and passes them in.
Capacity is decided here on the occasion's own stream, so two students can never take its last
place at once; "one booking at a time" spans occasions and is checked against the read model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from assessment_service.events import (
    BOOKING_CANCEL_REASONS,
    OCCASION_KINDS,
    BookingCancelled,
    OccasionCancelled,
    OccasionEvent,
    OccasionPublished,
    PresentationBooked,
    PresentationHeld,
    PresentationMissed,
)
from shared.errors import NotFound, Reason, RuleViolated, ValidationFailed

#: How long an occasion may last, and how far ahead one may be published.
LONGEST = timedelta(hours=12)
FURTHEST = timedelta(days=2 * 366)
MAX_PLACE = 300
MAX_CAPACITY = 1000
NO_SUCH_OCCASION = "No such presentation occasion."

#: Every reason a booking or a record of attendance is refused (the pages have a text for each).
REASONS = (
    OCCASION_CANCELLED, OCCASION_STARTED, OCCASION_FULL, NOT_APPROVED, BOOKED_ELSEWHERE, ALREADY_BOOKED,
    ALREADY_PRESENTED, STUDENT_WITHDRAWN, NOT_BOOKED, NOT_STARTED, ALREADY_RECORDED,
) = (
    Reason("occasion_cancelled", "This occasion has been cancelled."),
    Reason("occasion_started", "This occasion has already started: bookings can no longer change."),
    Reason("occasion_full", "This occasion is fully booked. Choose another one."),
    Reason("report_not_approved", "A presentation can be booked once the report is approved."),
    Reason("booked_elsewhere", "There is already a booked presentation. Cancel it before booking another."),
    Reason("already_booked", "This place is already booked."),
    Reason("already_presented", "The presentation has already been held."),
    Reason("student_withdrawn", "The student has withdrawn from CIM."),
    Reason("not_booked", "This student has no booking at this occasion."),
    Reason("occasion_not_started", "Attendance can be recorded once the occasion has started."),
    Reason("attendance_recorded", "Attendance has already been recorded for this student."),
)


@dataclass
class OccasionState:
    published: OccasionPublished | None = None
    cancelled: bool = False
    #: student id -> the booked report, for the bookings that stand (not cancelled).
    booked: dict[str, str] = field(default_factory=dict)
    #: student id -> "held" or "missed", once recorded.
    attendance: dict[str, str] = field(default_factory=dict)

    @property
    def taken(self) -> int:
        """Places taken: standing bookings, and those who presented (a no-show frees the place)."""
        return len(self.booked) + sum(1 for status in self.attendance.values() if status == "held")


def fold_occasion(events: Iterable[OccasionEvent]) -> OccasionState:
    state = OccasionState()
    for event in events:
        match event:
            case OccasionPublished():
                state.published = event
            case OccasionCancelled():
                state.cancelled = True
            case PresentationBooked():
                state.booked[event.student_id] = event.report_id
                state.attendance.pop(event.student_id, None)
            case BookingCancelled():
                state.booked.pop(event.student_id, None)
            case PresentationHeld():
                state.booked.pop(event.student_id, None)
                state.attendance[event.student_id] = "held"
            case PresentationMissed():
                state.booked.pop(event.student_id, None)
                state.attendance[event.student_id] = "missed"
    return state


@dataclass(frozen=True)
class PublishOccasion:
    occasion_id: str
    department: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    place: str
    capacity: int
    published_by: str


@dataclass(frozen=True)
class StudentFacts:
    """What the read side knows about the student booking or being booked."""

    student_id: str
    department: str
    #: The student's approved report, or None.
    approved_report_id: str | None
    #: The occasion of a standing booking elsewhere, or None.
    booked_occasion_id: str | None
    presented: bool
    withdrawn: bool


def decide_publish(command: PublishOccasion, now: datetime) -> list[OccasionEvent]:
    """A coordinator of the department publishes an occasion in the future (the access rule and
    the service check the role)."""
    errors: dict[str, list[str]] = {}
    if command.kind not in OCCASION_KINDS:
        errors["kind"] = ["Choose the kind of occasion."]
    if command.starts_at <= now:
        errors["starts_at"] = ["Choose a time in the future."]
    elif command.starts_at > now + FURTHEST:
        errors["starts_at"] = ["Choose a time within the next two years."]
    if command.ends_at <= command.starts_at:
        errors["ends_at"] = ["The occasion must end after it starts."]
    elif command.ends_at - command.starts_at > LONGEST:
        errors["ends_at"] = ["An occasion lasts at most 12 hours."]
    place = command.place.strip()
    if not place:
        errors["place"] = ["Say where the occasion is held, or give its link."]
    elif len(place) > MAX_PLACE:
        errors["place"] = [f"Write at most {MAX_PLACE} characters."]
    if not 1 <= command.capacity <= MAX_CAPACITY:
        errors["capacity"] = [f"Give a number from 1 to {MAX_CAPACITY}."]
    if errors:
        raise ValidationFailed("The occasion is not complete.", errors)
    # Stored in UTC, so the read models' ISO strings sort and compare as times do.
    return [OccasionPublished(
        command.occasion_id, command.department, command.kind, command.starts_at.astimezone(UTC),
        command.ends_at.astimezone(UTC), place, command.capacity, command.published_by,
    )]


def _occasion(state: OccasionState) -> OccasionPublished:
    if state.published is None:
        raise NotFound(NO_SUCH_OCCASION)
    return state.published


def _before_start(state: OccasionState, now: datetime) -> OccasionPublished:
    occasion = _occasion(state)
    if state.cancelled:
        raise RuleViolated(OCCASION_CANCELLED())
    if now >= occasion.starts_at:
        raise RuleViolated(OCCASION_STARTED())
    return occasion


def decide_cancel_occasion(state: OccasionState, by: str, now: datetime) -> list[OccasionEvent]:
    """Cancel an occasion before it starts; its standing bookings are cancelled with it."""
    occasion = _before_start(state, now)
    events: list[OccasionEvent] = [OccasionCancelled(occasion.occasion_id, occasion.department, by)]
    events += [
        BookingCancelled(occasion.occasion_id, student_id, occasion.department, "occasion_cancelled", by)
        for student_id in sorted(state.booked)
    ]
    return events


def decide_book(state: OccasionState, student: StudentFacts, by: str, now: datetime) -> list[OccasionEvent]:
    """Book the student a place: an occasion of their department, not started, with a free place;
    the student's report approved, no booking elsewhere, not presented yet."""
    occasion = _occasion(state)
    if occasion.department != student.department:
        raise NotFound(NO_SUCH_OCCASION)  # another department's occasions are not offered
    if student.withdrawn:
        raise RuleViolated(STUDENT_WITHDRAWN())
    if student.student_id in state.booked:
        raise RuleViolated(ALREADY_BOOKED())
    _before_start(state, now)
    if student.presented:
        raise RuleViolated(ALREADY_PRESENTED())
    if student.approved_report_id is None:
        raise RuleViolated(NOT_APPROVED())
    if student.booked_occasion_id is not None and student.booked_occasion_id != occasion.occasion_id:
        raise RuleViolated(BOOKED_ELSEWHERE())
    if state.taken >= occasion.capacity:
        raise RuleViolated(OCCASION_FULL())
    return [PresentationBooked(
        occasion.occasion_id, student.student_id, occasion.department, student.approved_report_id, by,
    )]


def decide_cancel_booking(
    state: OccasionState, student_id: str, by: str, now: datetime, *, reason_code: str
) -> list[OccasionEvent]:
    """Cancel a standing booking before the occasion starts."""
    if reason_code not in BOOKING_CANCEL_REASONS:
        raise ValidationFailed("Unknown reason.", {"reason_code": ["Choose a reason."]})
    occasion = _occasion(state)
    if student_id not in state.booked:
        raise RuleViolated(NOT_BOOKED())
    _before_start(state, now)
    return [BookingCancelled(occasion.occasion_id, student_id, occasion.department, reason_code, by)]


def decide_attendance(
    state: OccasionState, student_id: str, held: bool, by: str, now: datetime
) -> list[OccasionEvent]:
    """Once the occasion has started, record whether a booked student presented or did not show."""
    occasion = _occasion(state)
    if student_id in state.attendance:
        raise RuleViolated(ALREADY_RECORDED())
    if student_id not in state.booked:
        raise RuleViolated(NOT_BOOKED())
    if state.cancelled:
        raise RuleViolated(OCCASION_CANCELLED())
    if now < occasion.starts_at:
        raise RuleViolated(NOT_STARTED())
    made = PresentationHeld if held else PresentationMissed
    return [made(occasion.occasion_id, student_id, occasion.department, by)]
