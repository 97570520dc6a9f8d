"""Assessment use cases: keep the read models caught up with the intake feed and the own store;
record staff decisions (load the report's stream -> decide -> append with the expected version
and an idempotency key -> project) and the audit of staff views of personal data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from assessment_service import domain, queries
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import REGISTRY, PersonalDataViewed, ReportEvent, audit_stream, report_stream
from shared.application import Application, Outcome, RequestContext
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.identity.wiring import Identity
from shared.logs import correlation_id_var
from shared.validation import is_uuid

log = logging.getLogger(__name__)

__all__ = ["Outcome", "RequestContext", "catch_up_projections"]

#: A catch-up stops after this long and leaves the rest to the next wake-up or beat tick, so a
#: task never outlives the broker's visibility timeout (see workers/celery_app.py).
CATCH_UP_BUDGET_SECONDS = 30.0


def catch_up_projections(ctx: AssessmentContext, correlation_id: str | None = None, *, own: bool = True) -> int:
    """Apply every intake event past each projection's checkpoint and, with `own`, every event of
    the own store past the `assignments` checkpoint (the requests that record decisions project
    them at once; this is their backstop). Safe to run twice or at once."""
    token = correlation_id_var.set(correlation_id)
    try:
        applied = ctx.runner.catch_up(time_budget=CATCH_UP_BUDGET_SECONDS)
        if own:
            applied += ctx.own_runner.catch_up(time_budget=CATCH_UP_BUDGET_SECONDS)
        if applied:
            log.info("projections caught up", extra={"applied": applied})
        return applied
    finally:
        correlation_id_var.reset(token)


def _application(ctx: AssessmentContext) -> Application:
    return Application(ctx.store, REGISTRY, ctx.clock, after_commit=lambda _correlation_id: _project(ctx))


def _facts(ctx: AssessmentContext, report_id: str) -> domain.ReportFacts:
    if not is_uuid(report_id):
        raise NotFound("No such report.")
    with ctx.reader.connect() as conn:
        facts = queries.report_facts(conn, report_id)
    if facts is None:
        raise NotFound("No such report.")
    return facts


def _project(ctx: AssessmentContext) -> None:
    """Bring `assignments` up to date in this process, so the next page shows the decision. A
    failure here loses nothing: the event is stored, and the beat's catch-up projects it."""
    try:
        ctx.own_runner.catch_up()
    except Exception:
        log.exception("assignments could not catch up after a decision; the next catch-up will")


def _decide(
    ctx: AssessmentContext,
    report_id: str,
    req: RequestContext,
    request: tuple[Any, ...],
    decide: Callable[[domain.ReportAssignment, domain.ReportFacts], list[ReportEvent]],
) -> Outcome:
    """Load the report's stream, decide, append with the version it was decided on. A moved
    stream (another decision in between) is decided again; a repeated form is replayed."""
    stream = report_stream(report_id)
    facts: list[domain.ReportFacts] = []

    def load() -> tuple[domain.ReportAssignment, int]:
        facts[:] = [_facts(ctx, report_id)]
        recorded = ctx.store.read_stream(stream)
        version = recorded[-1].version if recorded else 0
        return domain.fold(REGISTRY.decode_recorded(e) for e in recorded), version

    return _application(ctx).execute(
        stream, req, scope=stream, request=(report_id, *request), load=load,
        decide=lambda state: decide(state, facts[0]), result={"report_id": report_id},
    )


def _require_coordinator(by: Principal, facts: domain.ReportFacts) -> None:
    # The access rule checked this already; a decision never rests on the web layer alone.
    if not by.has_role(Role.COORDINATOR, facts.department):
        raise NotFound("No such report.")


def assessors_of_department(identity: Identity, department: str) -> list[tuple[str, str]]:
    """(account id, display name) of every active assessor of the department, by name."""
    accounts = identity.store.accounts_with_role(Role.ASSESSOR, department)
    return sorted(((a.id, a.display_name) for a in accounts if not a.disabled), key=lambda p: (p[1].casefold(), p[0]))


def assign_assessor(
    ctx: AssessmentContext, identity: Identity, by: Principal, report_id: str, assessor_account_id: str,
    req: RequestContext,
) -> Outcome:
    """A coordinator of the report's department assigns one of its assessors."""

    def decide(state: domain.ReportAssignment, facts: domain.ReportFacts) -> list[ReportEvent]:
        _require_coordinator(by, facts)
        assessor = identity.accounts.principal(assessor_account_id) if is_uuid(assessor_account_id) else None
        with ctx.reader.connect() as conn:
            conflicted = queries.conflicted_with_student(conn, facts.student_id, assessor_account_id)
        command = domain.AssignAssessor(
            assessor_account_id,
            is_assessor_there=assessor is not None and assessor.has_role(Role.ASSESSOR, facts.department),
            conflicted_with_student=conflicted,
        )
        return domain.decide_assign(state, facts, command)

    return _decide(ctx, report_id, req, ("assign", assessor_account_id), decide)


def unassign_assessor(
    ctx: AssessmentContext, by: Principal, report_id: str, assessor_account_id: str, req: RequestContext
) -> Outcome:
    """A coordinator of the report's department takes an assessor off it."""

    def decide(state: domain.ReportAssignment, facts: domain.ReportFacts) -> list[ReportEvent]:
        _require_coordinator(by, facts)
        return domain.decide_unassign(state, facts, domain.UnassignAssessor(assessor_account_id))

    return _decide(ctx, report_id, req, ("unassign", assessor_account_id), decide)


def declare_conflict(
    ctx: AssessmentContext, by: Principal, report_id: str, reason_code: str, req: RequestContext
) -> Outcome:
    """The assigned assessor declares a conflict of interest; they are unassigned at once."""

    def decide(state: domain.ReportAssignment, facts: domain.ReportFacts) -> list[ReportEvent]:
        if not by.has_role(Role.ASSESSOR, facts.department):
            raise NotFound("No such report.")
        return domain.decide_declare_conflict(state, facts, domain.DeclareConflict(by.account_id, reason_code))

    return _decide(ctx, report_id, req, ("conflict", by.account_id, reason_code), decide)


def record_views(
    ctx: AssessmentContext, student_ids: Iterable[str], viewer_account_id: str, what: str, req: RequestContext
) -> int:
    """Record that `viewer_account_id` is being shown these students' personal data, one
    `PersonalDataViewed` on each `audit-<student_id>` stream, all in one transaction (a review
    queue of fifty students is one commit, not fifty). Called BEFORE the data is sent: if
    recording fails (StorageUnavailable, 503) nothing is shown, and nothing is recorded."""
    batches = [
        (audit_stream(student_id), [
            PersonalDataViewed(student_id=student_id, viewer_account_id=viewer_account_id, what=what)
        ])
        for student_id in dict.fromkeys(student_ids)  # once per student, in order
    ]
    return _application(ctx).record_many(batches, req)
