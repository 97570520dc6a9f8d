"""Voiding a mis-registration (issue 15): a coordinator of the student's department records
`RegistrationVoided` with a reason code on the stream `registration-void-<student_id>`, once.
CIM in numbers counts the registration out from the day it was voided and shows it beside the
figure (docs/statistics.md)."""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import VOID_REASONS, RegistrationVoided, void_stream
from assessment_service.presentation_services import may_manage
from assessment_service.projections.students import students
from assessment_service.services import _application
from shared.application import Outcome, RequestContext
from shared.errors import NotFound, Reason, RuleViolated, ValidationFailed
from shared.identity.models import Principal
from shared.validation import is_uuid

NO_SUCH_STUDENT = "No such student."
ALREADY_VOIDED = Reason("registration_voided", "This registration is already voided.")


def decide_void(already: bool, student_id: str, department: str, reason_code: str, by: str) -> list[RegistrationVoided]:
    """Void the registration once, with a known reason code."""
    if reason_code not in VOID_REASONS:
        raise ValidationFailed("Choose a reason.", {"reason_code": [f"Choose one of: {', '.join(VOID_REASONS)}."]})
    if already:
        raise RuleViolated(ALREADY_VOIDED())
    return [RegistrationVoided(student_id, department, reason_code, by)]


def void_registration(ctx: AssessmentContext, by: Principal, student_id: str, reason_code: str,
                      req: RequestContext) -> Outcome:
    """A coordinator of the student's department voids their registration; NotFound for anyone
    else, an unknown or a malformed id alike."""
    department = None
    if is_uuid(student_id):
        with ctx.reader.connect() as conn:
            department = conn.execute(
                sa.select(students.c.department).where(students.c.student_id == student_id)).scalar()
    if department is None or not may_manage(by, department):
        raise NotFound(NO_SUCH_STUDENT)
    stream = void_stream(student_id)

    def load() -> tuple[bool, int]:
        recorded = ctx.store.read_stream(stream)
        return bool(recorded), recorded[-1].version if recorded else 0

    return _application(ctx).execute(
        stream, req, scope=stream, request=("void", student_id, reason_code),
        load=load, decide=lambda already: decide_void(already, student_id, department, reason_code, by.account_id),
        result={"student_id": student_id},
    )
