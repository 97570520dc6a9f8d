"""Voiding a mis-registration (issue 15): a coordinator of the student's department records
`RegistrationVoided` with a reason code on the stream `registration-void-<student_id>`, while it
is not voided; `RegistrationVoidUndone` undoes a void (only while voided). CIM in numbers counts
the registration out from the day it was voided, shows it beside the figure, and counts it in
again from the day the void was undone (docs/statistics.md)."""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import VOID_REASONS, RegistrationVoided, RegistrationVoidUndone, void_stream
from assessment_service.presentation_services import may_manage
from assessment_service.projections.students import students
from assessment_service.services import _application
from shared.application import Outcome, RequestContext
from shared.errors import NotFound, Reason, RuleViolated, ValidationFailed
from shared.identity.models import Principal
from shared.validation import is_uuid

NO_SUCH_STUDENT = "No such student."
ALREADY_VOIDED = Reason("registration_voided", "This registration is already voided.")
NOT_VOIDED = Reason("registration_not_voided", "This registration is not voided.")


def decide_void(already: bool, student_id: str, department: str, reason_code: str, by: str) -> list[RegistrationVoided]:
    """Void the registration once, with a known reason code."""
    if reason_code not in VOID_REASONS:
        raise ValidationFailed("Choose a reason.", {"reason_code": [f"Choose one of: {', '.join(VOID_REASONS)}."]})
    if already:
        raise RuleViolated(ALREADY_VOIDED())
    return [RegistrationVoided(student_id, department, reason_code, by)]


def decide_undo(voided: bool, student_id: str, department: str, by: str) -> list[RegistrationVoidUndone]:
    """Undo a void, only while the registration stands voided."""
    if not voided:
        raise RuleViolated(NOT_VOIDED())
    return [RegistrationVoidUndone(student_id, department, by)]


def department_of(ctx: AssessmentContext, by: Principal, student_id: str) -> str:
    """The student's department if `by` coordinates it; NotFound for anyone else, an unknown or a
    malformed id alike."""
    department = None
    if is_uuid(student_id):
        with ctx.reader.connect() as conn:
            department = conn.execute(
                sa.select(students.c.department).where(students.c.student_id == student_id)).scalar()
    if department is None or not may_manage(by, department):
        raise NotFound(NO_SUCH_STUDENT)
    return str(department)


def void_status(ctx: AssessmentContext, student_id: str) -> tuple[bool, str | None]:
    """Whether the registration stands voided, and the reason code of its latest void."""
    voided, reason = False, None
    for event in ctx.store.read_stream(void_stream(student_id)):
        voided = event.type == RegistrationVoided.__name__
        if voided:
            reason = event.data.get("reason_code")
    return voided, reason


def _load(ctx: AssessmentContext, stream: str) -> tuple[bool, int]:
    recorded = ctx.store.read_stream(stream)
    voided = bool(recorded) and recorded[-1].type == RegistrationVoided.__name__
    return voided, recorded[-1].version if recorded else 0


def void_registration(ctx: AssessmentContext, by: Principal, student_id: str, reason_code: str,
                      req: RequestContext) -> Outcome:
    """A coordinator of the student's department voids their registration; NotFound for anyone
    else, an unknown or a malformed id alike."""
    department = department_of(ctx, by, student_id)
    stream = void_stream(student_id)
    return _application(ctx).execute(
        stream, req, scope=stream, request=("void", student_id, reason_code),
        load=lambda: _load(ctx, stream),
        decide=lambda voided: decide_void(voided, student_id, department, reason_code, by.account_id),
        result={"student_id": student_id},
    )


def undo_void(ctx: AssessmentContext, by: Principal, student_id: str, req: RequestContext) -> Outcome:
    """A coordinator of the student's department undoes the void of their registration."""
    department = department_of(ctx, by, student_id)
    stream = void_stream(student_id)
    return _application(ctx).execute(
        stream, req, scope=stream, request=("undo-void", student_id),
        load=lambda: _load(ctx, stream),
        decide=lambda voided: decide_undo(voided, student_id, department, by.account_id),
        result={"student_id": student_id},
    )
