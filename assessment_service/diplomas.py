"""PURE diploma decisions on one department's stream (`diplomas-<department>`).

The stream holds every diploma of the department, so what must be unique is decided on it with
optimistic concurrency: the number (`CIM-<DEPT>-<year>-<sequence>`, the sequence counting from 1
each calendar year), the status-list index (counting from 0 across all years, the diploma's place
in the department's revocation status list) and "one live diploma per student". Two issuing
sweeps at once (two beat processes, a retried task) conflict on the append; the second decides
again on the moved stream and finds nothing left to issue.

The issuing sweep issues to an eligible student who has NEVER had a diploma: after a revocation
only a coordinator issues again (re-issue a corrected one, or issue by hand with a reason), so a
diploma revoked in error is never re-issued behind the coordinator's back.

`fold(events)` builds the state; the `decide_*` functions return the events to record or raise.
No I/O: the service reads eligibility, merits and signatories and passes them in.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date

from assessment_service.events import (
    DIPLOMA_SYSTEM_ACTOR,
    DiplomaEvent,
    DiplomaIssued,
    DiplomaRendered,
    DiplomaRevoked,
)
from shared.catalogue import Signatory
from shared.errors import NotFound, Reason, RuleViolated, ValidationFailed

NO_SUCH_DIPLOMA = "No such diploma."
MAX_REASON = 2000
#: Crockford-like base32 without 0, 1, I, O (read aloud and typed from paper without confusion).
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

REASONS = (NOT_ELIGIBLE, ALREADY_ISSUED, ALREADY_REVOKED, NO_SIGNATORIES, CODE_TAKEN, STUDENT_ERASED) = (
    Reason("not_eligible", "The student is not eligible for the diploma."),
    Reason("diploma_live", "The student already has a valid diploma. Revoke it first, or re-issue it."),
    Reason("diploma_revoked", "This diploma is already revoked."),
    Reason("no_signatories", "No signatory is configured for the department on this date."),
    Reason("code_taken", "The verification code is taken; try again."),
    Reason("student_erased", "The student's personal data has been erased: no diploma can be issued."),
)


def new_verification_code() -> str:
    """16 random characters of a 32-letter alphabet (80 bits) in groups of four: XXXX-XXXX-XXXX-XXXX."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def number_for(department: str, year: int, sequence: int) -> str:
    return f"CIM-{department.upper()}-{year:04d}-{sequence:04d}"


@dataclass(frozen=True)
class DiplomaRecord:
    diploma_id: str
    student_id: str
    number: str
    issued_on: date
    status_index: int
    revoked: bool = False
    rendered_sha256: str | None = None
    replaced_by: str | None = None


@dataclass
class DepartmentDiplomas:
    by_id: dict[str, DiplomaRecord] = field(default_factory=dict)
    #: student id -> the diploma ids issued to them, oldest first.
    of_student: dict[str, list[str]] = field(default_factory=dict)
    #: year -> the highest sequence used.
    last_sequence: dict[int, int] = field(default_factory=dict)
    next_status_index: int = 0
    codes: set[str] = field(default_factory=set)

    def live(self, student_id: str) -> DiplomaRecord | None:
        """The student's valid (not revoked) diploma, or None."""
        for diploma_id in reversed(self.of_student.get(student_id, [])):
            record = self.by_id[diploma_id]
            if not record.revoked:
                return record
        return None

    def latest(self, student_id: str) -> DiplomaRecord | None:
        ids = self.of_student.get(student_id, [])
        return self.by_id[ids[-1]] if ids else None


def evolve(state: DepartmentDiplomas, event: DiplomaEvent) -> DepartmentDiplomas:
    match event:
        case DiplomaIssued():
            state.by_id[event.diploma_id] = DiplomaRecord(
                event.diploma_id, event.student_id, event.number, event.issued_on, event.status_index,
            )
            state.of_student.setdefault(event.student_id, []).append(event.diploma_id)
            state.last_sequence[event.year] = max(state.last_sequence.get(event.year, 0), event.sequence)
            state.next_status_index = max(state.next_status_index, event.status_index + 1)
            state.codes.add(event.verification_code)
            if event.replaces in state.by_id:
                state.by_id[event.replaces] = replace(state.by_id[event.replaces], replaced_by=event.diploma_id)
        case DiplomaRevoked():
            if event.diploma_id in state.by_id:
                state.by_id[event.diploma_id] = replace(state.by_id[event.diploma_id], revoked=True)
        case DiplomaRendered():
            if event.diploma_id in state.by_id:
                state.by_id[event.diploma_id] = replace(state.by_id[event.diploma_id], rendered_sha256=event.sha256)
    return state


def fold(events: Iterable[DiplomaEvent]) -> DepartmentDiplomas:
    state = DepartmentDiplomas()
    for event in events:
        evolve(state, event)
    return state


@dataclass(frozen=True)
class IssueDiploma:
    """Issue a diploma to `student_id`. `issued_by` is DIPLOMA_SYSTEM_ACTOR for the sweep, or the
    coordinator's account id (then `reason` is required)."""

    diploma_id: str
    student_id: str
    department: str
    issued_on: date
    rule_set: str
    verification_code: str
    merits: tuple[str, ...]
    signatories: tuple[Signatory, ...]
    issued_by: str
    reason: str | None = None

    @property
    def by_hand(self) -> bool:
        return self.issued_by != DIPLOMA_SYSTEM_ACTOR


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("A reason is required.", {"reason": ["Write the reason."]})
    if len(text) > MAX_REASON:
        raise ValidationFailed("The reason is too long.", {"reason": [f"Write at most {MAX_REASON} characters."]})
    return text


def decide_issue(
    state: DepartmentDiplomas, command: IssueDiploma, *, eligible: bool, replaces: str | None = None
) -> list[DiplomaEvent]:
    """Issue the next number of the year. The sweep (not by hand) issues nothing to a student
    who has ever had a diploma (so a repeated sweep issues nothing twice); a coordinator may issue
    to an eligible student without a live diploma, with a reason."""
    if not command.by_hand and state.of_student.get(command.student_id):
        return []
    reason = _reason(command.reason) if command.by_hand else None
    if not eligible:
        raise RuleViolated(NOT_ELIGIBLE())
    if state.live(command.student_id) is not None:
        raise RuleViolated(ALREADY_ISSUED())
    signatories = command.signatories
    if not signatories:
        raise RuleViolated(NO_SIGNATORIES())
    if command.verification_code in state.codes:
        raise RuleViolated(CODE_TAKEN())
    if replaces is None:
        latest = state.latest(command.student_id)
        replaces = latest.diploma_id if latest is not None and latest.revoked and latest.replaced_by is None else None
    year = command.issued_on.year
    sequence = state.last_sequence.get(year, 0) + 1
    return [DiplomaIssued(
        diploma_id=command.diploma_id, student_id=command.student_id, department=command.department,
        number=number_for(command.department, year, sequence), year=year, sequence=sequence,
        status_index=state.next_status_index, issued_on=command.issued_on, rule_set=command.rule_set,
        verification_code=command.verification_code, merits=list(command.merits),
        signatory_names=[s.name for s in signatories], signatory_titles_en=[s.title.en for s in signatories],
        signatory_titles_sv=[s.title.sv or s.title.en for s in signatories], issued_by=command.issued_by,
        replaces=replaces, reason=reason,
    )]


def decide_issue_many(
    state: DepartmentDiplomas, commands: Iterable[IssueDiploma]
) -> list[DiplomaEvent]:
    """The sweep's batch: each eligible student who never had a diploma, numbered in order.
    Commands refused by a rule (no signatory on the day) are left out, not raised: one
    misconfigured day must not hold back the others (the service logs them)."""
    events: list[DiplomaEvent] = []
    for command in commands:
        try:
            made = decide_issue(state, command, eligible=True)
        except RuleViolated:
            continue
        for event in made:
            evolve(state, event)
        events += made
    return events


def _record(state: DepartmentDiplomas, diploma_id: str) -> DiplomaRecord:
    record = state.by_id.get(diploma_id)
    if record is None:
        raise NotFound(NO_SUCH_DIPLOMA)
    return record


def decide_revoke(
    state: DepartmentDiplomas, diploma_id: str, department: str, reason: str | None, by: str
) -> list[DiplomaEvent]:
    """Revoke a valid diploma with a reason; the number stays taken."""
    record = _record(state, diploma_id)
    text = _reason(reason)
    if record.revoked:
        raise RuleViolated(ALREADY_REVOKED())
    return [DiplomaRevoked(diploma_id, record.student_id, department, text, by)]


def decide_reissue(
    state: DepartmentDiplomas, diploma_id: str, command: IssueDiploma, *, eligible: bool
) -> list[DiplomaEvent]:
    """Revoke the diploma (if still valid) and issue a corrected one that replaces it, in one
    append: the student is never left with two valid diplomas, or none for a moment."""
    record = _record(state, diploma_id)
    if record.student_id != command.student_id:
        raise NotFound(NO_SUCH_DIPLOMA)
    if record.replaced_by is not None:
        raise RuleViolated(ALREADY_REVOKED())
    events: list[DiplomaEvent] = []
    if not record.revoked:
        events = decide_revoke(state, diploma_id, command.department, command.reason, command.issued_by)
        for event in events:
            evolve(state, event)
    return events + decide_issue(state, command, eligible=eligible, replaces=diploma_id)


def decide_rendered(state: DepartmentDiplomas, diploma_id: str, department: str, sha256: str,
                    size: int) -> list[DiplomaEvent]:
    """Record the stored PDF once; a second render of the same diploma records nothing."""
    record = _record(state, diploma_id)
    if record.rendered_sha256 is not None:
        return []
    return [DiplomaRendered(diploma_id, record.student_id, department, sha256, size)]
