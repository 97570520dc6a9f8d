"""Presentation use cases: publish and cancel occasions, book and cancel places, record who
presented. Each loads the occasion's stream -> decides (assessment_service/presentations.py) ->
appends with the version it decided on (a stream moved in between is decided again; a repeated
request is replayed). Who may act is checked here as well as by the access rules: a coordinator
of the occasion's department, or the student for their own booking."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from assessment_service import presentation_queries, presentations
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import REGISTRY, OccasionEvent, occasion_stream
from assessment_service.presentations import NO_SUCH_OCCASION, OccasionState, PublishOccasion, StudentFacts
from assessment_service.services import _application
from shared.application import Outcome, RequestContext
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.validation import is_uuid

NO_SUCH_STUDENT = "No such student."


def may_manage(by: Principal | None, department: str) -> bool:
    """A coordinator of the department: who publishes, cancels and records attendance."""
    return by is not None and by.has_role(Role.COORDINATOR, department)


def may_book_for(by: Principal | None, student: StudentFacts) -> bool:
    """The student themself, or a coordinator of their department."""
    if by is None:
        return False
    return by.account.student_id == student.student_id or may_manage(by, student.department)


def publish_occasion(ctx: AssessmentContext, by: Principal, fields: dict[str, Any], req: RequestContext) -> Outcome:
    """A coordinator of `fields["department"]` publishes an occasion; answers its new id."""
    department = str(fields.get("department") or "")
    if not may_manage(by, department):
        raise NotFound("No such department.")
    occasion_id = str(uuid.uuid4())
    command = PublishOccasion(
        occasion_id, department, str(fields.get("kind") or ""), fields["starts_at"], fields["ends_at"],
        str(fields.get("place") or ""), int(fields["capacity"]), by.account_id,
    )
    request = ("publish", department, command.kind, command.starts_at.isoformat(), command.ends_at.isoformat(),
               command.place, command.capacity)
    stream = occasion_stream(occasion_id)
    return _application(ctx).start(
        stream, req, scope=f"occasions-{department}", request=request,
        decide=lambda: presentations.decide_publish(command, ctx.clock.now()), result={"occasion_id": occasion_id},
    )


def _on_occasion(
    ctx: AssessmentContext, occasion_id: str, req: RequestContext, request: tuple[Any, ...],
    decide: Callable[[OccasionState, datetime], list[OccasionEvent]],
    result: dict[str, Any] | None = None,
) -> Outcome:
    if not is_uuid(occasion_id):
        raise NotFound(NO_SUCH_OCCASION)
    stream = occasion_stream(occasion_id)

    def load() -> tuple[OccasionState, int]:
        recorded = ctx.store.read_stream(stream)
        if not recorded:
            raise NotFound(NO_SUCH_OCCASION)
        return presentations.fold_occasion(REGISTRY.decode_recorded(e) for e in recorded), recorded[-1].version

    return _application(ctx).execute(
        stream, req, scope=stream, request=(occasion_id, *request), load=load,
        decide=lambda state: decide(state, ctx.clock.now()), result={"occasion_id": occasion_id, **(result or {})},
    )


def _managed(state: OccasionState, by: Principal) -> None:
    if state.published is None or not may_manage(by, state.published.department):
        raise NotFound(NO_SUCH_OCCASION)


def cancel_occasion(ctx: AssessmentContext, by: Principal, occasion_id: str, req: RequestContext) -> Outcome:
    def decide(state: OccasionState, now: datetime) -> list[OccasionEvent]:
        _managed(state, by)
        return presentations.decide_cancel_occasion(state, by.account_id, now)

    return _on_occasion(ctx, occasion_id, req, ("cancel",), decide)


def student_facts(ctx: AssessmentContext, by: Principal | None, student_id: str) -> StudentFacts:
    """The student as the read side knows them; NotFound for an unknown student or one `by` may
    not book for (the same answer)."""
    facts = None
    if is_uuid(student_id):
        with ctx.reader.connect() as conn:
            facts = presentation_queries.student_facts(conn, student_id)
    if facts is None or not may_book_for(by, facts):
        raise NotFound(NO_SUCH_STUDENT)
    return facts


def book(ctx: AssessmentContext, by: Principal, occasion_id: str, student_id: str, req: RequestContext) -> Outcome:
    """Book the student a place at the occasion (the student, or a coordinator for them)."""
    facts = [student_facts(ctx, by, student_id)]

    def decide(state: OccasionState, now: datetime) -> list[OccasionEvent]:
        facts[:] = [student_facts(ctx, by, student_id)]  # read again on a retry after a conflict
        return presentations.decide_book(state, facts[0], by.account_id, now)

    return _on_occasion(ctx, occasion_id, req, ("book", student_id), decide, {"student_id": student_id})


def cancel_booking(
    ctx: AssessmentContext, by: Principal, occasion_id: str, student_id: str, req: RequestContext
) -> Outcome:
    """Cancel the student's booking (the student, or a coordinator for them)."""
    facts = student_facts(ctx, by, student_id)
    reason = "student_cancelled" if by.account.student_id == student_id else "coordinator_cancelled"

    def decide(state: OccasionState, now: datetime) -> list[OccasionEvent]:
        if state.published is None or state.published.department != facts.department:
            raise NotFound(NO_SUCH_OCCASION)
        return presentations.decide_cancel_booking(state, student_id, by.account_id, now, reason_code=reason)

    return _on_occasion(ctx, occasion_id, req, ("unbook", student_id), decide, {"student_id": student_id})


def record_attendance(
    ctx: AssessmentContext, by: Principal, occasion_id: str, student_id: str, held: bool, req: RequestContext
) -> Outcome:
    """A coordinator records that the booked student presented (`held`) or did not show."""

    def decide(state: OccasionState, now: datetime) -> list[OccasionEvent]:
        _managed(state, by)
        return presentations.decide_attendance(state, student_id, held, by.account_id, now)

    return _on_occasion(ctx, occasion_id, req, ("attendance", student_id, held), decide, {"student_id": student_id})
