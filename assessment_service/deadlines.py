"""PURE deadline rules on one student's stream (`deadline-<student_id>`).

A student's deadline is the last day of the term `grace_terms` (the rule set's) after the term in
which their studies were completed (terms: `assessment_service/terms.py`). A coordinator extends
it by agreement (`DeadlineExtended`). Before it, reminders fall due at the rule set's
`reminder_days` (one `DeadlineReminderDue` per deadline and offset); the day after it, the student
is deregistered (`StudentDeregistered`), until a coordinator reinstates them with a new deadline
(`StudentReinstated`). A report under review or approved stops the clock: no reminder, no
deregistration while it stands. A withdrawn student is neither reminded nor deregistered.

`fold_deadline(events)` builds the state; `due_action` is the ONE rule of what is due on a day
(the sweep, the "what if" page and the read model's `next_due_on` all use it); the `decide_*`
functions return the events to record or raise. No I/O, no clock: `today` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from assessment_service.events import (
    EXTENSION_REASONS,
    REINSTATEMENT_REASONS,
    SYSTEM_ACTOR,
    DeadlineEvent,
    DeadlineExtended,
    DeadlineReminderDue,
    DeadlineSet,
    StudentDeregistered,
    StudentReinstated,
)
from assessment_service.terms import TermCalendar, TermCalendarError
from shared.catalogue import Department
from shared.errors import Reason, RuleViolated, ValidationFailed

#: How far ahead a coordinator may move a deadline.
FURTHEST = timedelta(days=3 * 366)

REMIND = "remind"
DEREGISTER = "deregister"

REASONS = (NO_DEADLINE, DEREGISTERED, NOT_DEREGISTERED, NOT_LATER, OUTSIDE_CALENDAR) = (
    Reason("no_deadline", "This student has no deadline yet: their studies are not recorded as completed."),
    Reason("student_deregistered", "The student is deregistered: reinstate them with a new deadline instead."),
    Reason("not_deregistered", "The student is not deregistered."),
    Reason("deadline_not_later", "An extended deadline must be later than the current one."),
    Reason("outside_term_calendar", "The term calendar does not reach this date yet: add its terms first."),
)


@dataclass(frozen=True)
class DeadlineState:
    """One student's deadline as their stream says."""

    set_by: DeadlineSet | None = None
    deadline: date | None = None
    #: True once a coordinator set the deadline (extension or reinstatement).
    extended: bool = False
    reminder_days: tuple[int, ...] = ()
    #: The offsets already recorded for the current deadline.
    reminded: frozenset[int] = frozenset()
    deregistered: bool = False

    @property
    def department(self) -> str | None:
        return self.set_by.department if self.set_by else None


def fold_deadline(events: Iterable[DeadlineEvent]) -> DeadlineState:
    state = DeadlineState()
    for event in events:
        match event:
            case DeadlineSet():
                # A corrected completion date sets the deadline anew; a later extension stands.
                keep = state.extended and state.deadline is not None and state.deadline >= event.deadline
                deadline = state.deadline if keep else event.deadline
                state = DeadlineState(
                    event, deadline, keep, tuple(event.reminder_days),
                    state.reminded if deadline == state.deadline else frozenset(), state.deregistered,
                )
            case DeadlineExtended():
                state = DeadlineState(state.set_by, event.deadline, True, state.reminder_days, frozenset(),
                                      state.deregistered)
            case DeadlineReminderDue():
                if event.deadline == state.deadline:
                    state = DeadlineState(state.set_by, state.deadline, state.extended, state.reminder_days,
                                          state.reminded | {event.offset_days}, state.deregistered)
            case StudentDeregistered():
                state = DeadlineState(state.set_by, state.deadline, state.extended, state.reminder_days,
                                      state.reminded, True)
            case StudentReinstated():
                state = DeadlineState(state.set_by, event.deadline, True, state.reminder_days, frozenset(), False)
    return state


def deadline_for(calendar: TermCalendar, completed_on: date, grace_terms: int) -> tuple[str, date]:
    """The term studies were completed in, and the deadline: the end of the term `grace_terms`
    after it. TermCalendarError when the calendar does not reach that far."""
    term = calendar.term_of(completed_on)
    return term.code, calendar.term_after(term, grace_terms).ends


# -- what is due on a day: the one rule ---------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """What the sweep records for one student on a day: a reminder at `offset_days`, or the
    deregistration."""

    action: str
    deadline: date
    offset_days: int | None = None


def due_action(
    deadline: date | None, reminder_days: Sequence[int], reminded: Iterable[int], today: date, *,
    clock_stopped: bool = False, deregistered: bool = False, withdrawn: bool = False,
) -> Due | None:
    """What is due on `today`: nothing while the clock is stopped (a report under review or
    approved), for a withdrawn or deregistered student, or without a deadline; deregistration once
    `today` is past the deadline; otherwise the reminder of the smallest offset reached, unless it
    (or a smaller one) was recorded — a larger offset missed (studies completed late, a sweep
    missed) is not sent after a smaller one is due, so a student never gets two on one day."""
    if deadline is None or clock_stopped or deregistered or withdrawn:
        return None
    if today > deadline:
        return Due(DEREGISTER, deadline)
    reached = [offset for offset in reminder_days if deadline - timedelta(days=offset) <= today]
    if not reached:
        return None
    offset = min(reached)
    if any(sent <= offset for sent in reminded):
        return None
    return Due(REMIND, deadline, offset)


def next_due_on(
    deadline: date | None, reminder_days: Sequence[int], reminded: Iterable[int], *, deregistered: bool = False
) -> date | None:
    """The first day on which `due_action` may find something for this student (the read model's
    indexed column the sweep selects by): the next reminder not yet superseded, or the day after
    the deadline. None when nothing can fall due (no deadline, deregistered)."""
    if deadline is None or deregistered:
        return None
    smallest_sent = min(reminded, default=None)
    days = [
        deadline - timedelta(days=offset) for offset in reminder_days
        if smallest_sent is None or offset < smallest_sent
    ]
    return min([*days, deadline + timedelta(days=1)])


# -- decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Basis:
    """What the intake feed says a deadline follows from: the student's department and rule set,
    their completion date, and the feed position of that StudiesCompleted."""

    student_id: str
    department: str
    rule_set: str
    completed_on: date
    position: int


def decide_set(state: DeadlineState, basis: Basis, rules: Department, calendar: TermCalendar) -> list[DeadlineEvent]:
    """Set (or reset, after a corrected completion date) the student's deadline. Nothing when the
    stream already follows this completion date under this rule set: a repeated sweep records it once."""
    before = state.set_by
    if before is not None and before.completed_on == basis.completed_on and before.rule_set == basis.rule_set:
        return []
    term, deadline = deadline_for(calendar, basis.completed_on, rules.grace_terms)
    return [DeadlineSet(
        basis.student_id, basis.department, deadline, basis.rule_set, basis.completed_on, term, rules.grace_terms,
        list(rules.reminder_days), basis.position,
    )]


@dataclass(frozen=True)
class SweepFacts:
    """What the read side knows about the student on the sweep's day."""

    clock_stopped: bool
    withdrawn: bool


def decide_sweep(state: DeadlineState, student_id: str, today: date, facts: SweepFacts) -> list[DeadlineEvent]:
    """The reminder or the deregistration due on `today` (`due_action`), decided on the stream, so
    a second sweep (another beat, a retried task) finds it recorded and records nothing."""
    if state.set_by is None:
        return []
    due = due_action(
        state.deadline, state.reminder_days, state.reminded, today, clock_stopped=facts.clock_stopped,
        deregistered=state.deregistered, withdrawn=facts.withdrawn,
    )
    department = state.set_by.department
    if due is None:
        return []
    if due.action == DEREGISTER:
        return [StudentDeregistered(
            student_id, department, due.deadline, "deadline_passed", state.set_by.rule_set, SYSTEM_ACTOR,
        )]
    assert due.offset_days is not None
    return [DeadlineReminderDue(student_id, department, due.deadline, due.offset_days)]


def _check_new_date(new: date | None, reason_code: str, reasons: Sequence[str], today: date,
                    calendar: TermCalendar | None) -> date:
    errors: dict[str, list[str]] = {}
    if new is None:
        errors["deadline"] = ["Give the new deadline as a date."]
    elif new <= today:
        errors["deadline"] = ["Choose a date after today."]
    elif new > today + FURTHEST:
        errors["deadline"] = ["Choose a date within the next three years."]
    if reason_code not in reasons:
        errors["reason_code"] = ["Choose a reason."]
    if errors:
        raise ValidationFailed("The new deadline is not complete.", errors)
    assert new is not None
    if calendar is not None:
        try:
            calendar.term_of(new)
        except TermCalendarError:
            raise RuleViolated(OUTSIDE_CALENDAR()) from None
    return new


def decide_extend(
    state: DeadlineState, student_id: str, new: date | None, reason_code: str, by: str, today: date,
    calendar: TermCalendar | None = None,
) -> list[DeadlineEvent]:
    """A coordinator moves the deadline later, by agreement (not for a deregistered student:
    reinstating them does that)."""
    new = _check_new_date(new, reason_code, EXTENSION_REASONS, today, calendar)
    if state.set_by is None or state.deadline is None:
        raise RuleViolated(NO_DEADLINE())
    if state.deregistered:
        raise RuleViolated(DEREGISTERED())
    if new <= state.deadline:
        raise RuleViolated(NOT_LATER())
    return [DeadlineExtended(student_id, state.set_by.department, new, reason_code, by)]


def decide_reinstate(
    state: DeadlineState, student_id: str, new: date | None, reason_code: str, by: str, today: date,
    calendar: TermCalendar | None = None,
) -> list[DeadlineEvent]:
    """A coordinator reinstates a deregistered student with a new deadline after today."""
    new = _check_new_date(new, reason_code, REINSTATEMENT_REASONS, today, calendar)
    if state.set_by is None or not state.deregistered:
        raise RuleViolated(NOT_DEREGISTERED())
    return [StudentReinstated(student_id, state.set_by.department, new, reason_code, by)]


__all__ = [
    "DEREGISTER", "REASONS", "REMIND", "Basis", "DeadlineState", "Due", "SweepFacts", "deadline_for", "decide_extend",
    "decide_reinstate", "decide_set", "decide_sweep", "due_action", "fold_deadline", "next_due_on",
]
