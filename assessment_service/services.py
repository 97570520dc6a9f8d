"""Assessment use cases: keep the read models caught up with the intake feed and the own store;
record staff decisions (load the report's stream -> decide -> append with the expected version
and an idempotency key -> project) and the audit of staff views of personal data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

from assessment_service import domain, queries, reviews
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import REGISTRY, PersonalDataViewed, ReportEvent, audit_stream, report_stream
from assessment_service.reviews import ReviewFacts
from shared.application import Application, Outcome, RequestContext
from shared.catalogue import DEFAULT_CRITERIA, Criterion
from shared.errors import NotFound, RuleViolated
from shared.events import RecordedEvent
from shared.identity.models import Principal, Role
from shared.identity.wiring import Identity
from shared.logs import correlation_id_var
from shared.personal import CipherCache, KeyErased
from shared.validation import is_uuid

log = logging.getLogger(__name__)
T = TypeVar("T")

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


def _read_report(ctx: AssessmentContext, read: Callable[[Any, str], T | None], report_id: str) -> T:
    """What `read` finds about the report in the read models, or NotFound (a malformed id alike)."""
    found = None
    if is_uuid(report_id):
        with ctx.reader.connect() as conn:
            found = read(conn, report_id)
    if found is None:
        raise NotFound("No such report.")
    return found


def _facts(ctx: AssessmentContext, report_id: str) -> domain.ReportFacts:
    return _read_report(ctx, queries.report_facts, report_id)


def _without_personal(ctx: AssessmentContext, recorded: list[RecordedEvent]) -> list[Any]:
    """The report stream as domain events with their sealed fields None: deciding never reads a
    comment, so no key is fetched."""
    opened = ctx.codec.open if ctx.codec else (lambda data, _key: data)
    return [REGISTRY.decode(e.type, e.schema_version, opened(e.data, None)) for e in recorded]


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
        return domain.fold(_without_personal(ctx, recorded)), version

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


# -- reviews and decisions (assessment_service/reviews.py) ----------------------------------------


def _review_facts(ctx: AssessmentContext, report_id: str) -> ReviewFacts:
    row = _read_report(ctx, queries.review_facts, report_id)
    rule_set = ctx.catalogue.rule_set(row["rules"])
    return ReviewFacts(
        report_id, row["student_id"], row["department"], row["round"], row["rules"],
        approvals_required=rule_set.approvals_required if rule_set else 2,
        withdrawn=row["withdrawn"],
        criteria=rule_set.criterion_codes if rule_set else reviews.CRITERIA,
    )


def review_criteria(ctx: AssessmentContext, report_id: str) -> tuple[Criterion, ...]:
    """The review criteria of the rule set the report was submitted under (NotFound if unknown)."""
    rule_set = ctx.catalogue.rule_set(_review_facts(ctx, report_id).rule_set)
    return rule_set.criteria if rule_set else DEFAULT_CRITERIA


def _opened(ctx: AssessmentContext, events: list[RecordedEvent], student_id: str) -> list[Any]:
    """The report stream's events as domain events, personal fields opened with the student's
    key (None once it is destroyed)."""
    key = ctx.sealing.vault.keys_for([student_id]).get(student_id)
    return [
        REGISTRY.decode(e.type, e.schema_version, ctx.sealing.open(e.data, key)) for e in events
    ]


def _decide_review_round(
    ctx: AssessmentContext, report_id: str, req: RequestContext, request: tuple[Any, ...],
    decide: Callable[[reviews.ReviewState, ReviewFacts], list[ReportEvent]],
) -> Outcome:
    stream = report_stream(report_id)
    facts = [_review_facts(ctx, report_id)]

    def load() -> tuple[reviews.ReviewState, int]:
        facts[:] = [_review_facts(ctx, report_id)]
        recorded = ctx.store.read_stream(stream)
        version = recorded[-1].version if recorded else 0
        return reviews.fold_reviews(_without_personal(ctx, recorded)), version

    def seal(type_name: str, data: dict[str, Any], subject: str | None) -> dict[str, Any]:
        return ctx.sealing.seal(type_name, data, subject or facts[0].student_id)

    app = Application(ctx.store, REGISTRY, ctx.clock, after_commit=lambda _correlation_id: _project(ctx), seal=seal)
    try:
        return app.execute(
            stream, req, scope=stream, request=(report_id, *request), load=load,
            decide=lambda state: decide(state, facts[0]),
            result={"report_id": report_id, "round": facts[0].round}, subject=facts[0].student_id,
        )
    except KeyErased:  # the student was erased: nothing more is written about them
        raise RuleViolated(reviews.WITHDRAWN()) from None


def submit_review(
    ctx: AssessmentContext, by: Principal, report_id: str, review: reviews.SubmitReview, req: RequestContext
) -> Outcome:
    """An assessor assigned to the report reviews its current round."""

    def decide(state: reviews.ReviewState, facts: ReviewFacts) -> list[ReportEvent]:
        if not by.has_role(Role.ASSESSOR, facts.department) or review.assessor_account_id != by.account_id:
            raise NotFound("No such report.")
        return reviews.decide_review(state, facts, review)

    fingerprint = ("review", by.account_id, sorted(review.verdicts.items()), sorted(review.comments.items()),
                   review.recommendation)
    return _decide_review_round(ctx, report_id, req, fingerprint, decide)


def decide_report(
    ctx: AssessmentContext, by: Principal, report_id: str, outcome: str, summary: str, req: RequestContext
) -> Outcome:
    """A coordinator of the report's department decides its current round."""

    def decide(state: reviews.ReviewState, facts: ReviewFacts) -> list[ReportEvent]:
        if not by.has_role(Role.COORDINATOR, facts.department):
            raise NotFound("No such report.")
        return reviews.decide_round(state, facts, reviews.DecideRound(by.account_id, outcome, summary))

    return _decide_review_round(ctx, report_id, req, ("decide", outcome, summary), decide)


def review_record(ctx: AssessmentContext, by: Principal, report_id: str) -> dict[str, Any]:
    """The reviews and decisions of a report that `by` may read (see reviews.visible_reviews),
    with the round under review and whether a coordinator may decide it now."""
    facts = _review_facts(ctx, report_id)
    recorded = ctx.store.read_stream(report_stream(report_id))
    events = _opened(ctx, recorded, facts.student_id)
    state = reviews.fold_reviews(events)
    coordinator = by.has_role(Role.COORDINATOR, facts.department)
    shown = reviews.visible_reviews(state, facts, by.account_id, coordinator=coordinator)
    at = {(e.type, getattr(d, "round", None), getattr(d, "assessor_account_id", None)): e.occurred_at.isoformat()
          for e, d in zip(recorded, events, strict=True)}
    rounds = []
    for number in sorted(set(shown) | {facts.round}):
        rnd = state.round(number)
        decision = rnd.decision
        rounds.append({
            "round": number,
            "reviews": [
                {
                    "assessor_account_id": r.assessor_account_id, "verdicts": r.verdicts, "comments": r.comments,
                    "recommendation": r.recommendation, "rule_set": r.rule_set,
                    "submitted_at": at.get(("ReviewSubmitted", number, r.assessor_account_id)),
                }
                for r in shown.get(number, [])
            ],
            "reviewed_by": sorted(rnd.reviews),
            "decision": None if decision is None else {
                "outcome": type(decision).__name__, "decided_by": decision.decided_by,
                "rests_on": decision.rests_on, "summary": getattr(decision, "summary", None),
                "rule_set": decision.rule_set, "decided_at": at.get((type(decision).__name__, number, None)),
            },
        })
    return {
        "report_id": report_id, "student_id": facts.student_id, "department": facts.department,
        "current_round": facts.round, "criteria": list(facts.criteria),
        "criterion_labels": _criterion_labels(
            ctx, [facts.rule_set, *(r.rule_set for shown_round in shown.values() for r in shown_round)],
            [code for shown_round in shown.values() for r in shown_round for code in r.verdicts],
        ),
        "assessors": sorted(state.assessors), "may_decide": coordinator and reviews.may_decide(state, facts)
        and state.round(facts.round).decision is None,
        "reviewed": by.account_id in state.round(facts.round).reviews, "rounds": rounds,
    }


def _criterion_labels(
    ctx: AssessmentContext, rule_sets: Iterable[str], judged: Iterable[str] = ()
) -> dict[str, dict[str, str]]:
    """The wording of the criteria of these rule sets (the current round's first), by code, in
    English and Swedish: what the review form asks and what earlier reviews were judged on. A
    code `judged` in a review whose rule set version the file no longer keeps reads as itself."""
    labels: dict[str, dict[str, str]] = {}
    for ref in dict.fromkeys(rule_sets):
        rule_set = ctx.catalogue.rule_set(ref)
        for criterion in rule_set.criteria if rule_set else DEFAULT_CRITERIA:
            labels.setdefault(criterion.code, {"en": criterion.label.en, "sv": criterion.label.sv})
    for code in judged:
        labels.setdefault(code, {"en": code, "sv": code})
    return labels


def report_history(ctx: AssessmentContext, report_id: str) -> list[dict[str, Any]]:
    """Who was assigned, reviewed and decided on the report, when, under which rule set version:
    ids and codes only (no comment or summary)."""
    _review_facts(ctx, report_id)
    out = []
    for event in ctx.store.read_stream(report_stream(report_id)):
        data = event.data
        out.append({
            "type": event.type, "at": event.occurred_at.isoformat(), "actor": event.metadata.get("actor"),
            "assessor_account_id": data.get("assessor_account_id"), "round": data.get("round"),
            "rule_set": data.get("rule_set"), "decided_by": data.get("decided_by"),
            "recommendation": data.get("recommendation"), "reason_code": data.get("reason_code"),
        })
    return out


# -- the own event feed ---------------------------------------------------------------------------


def own_feed(ctx: AssessmentContext, after: int, limit: int) -> list[RecordedEvent]:
    """The assessment service's own events past `after`, personal fields opened with each
    student's key (None once erased): what the intake side projects for the student's page."""
    events = ctx.store.read_all(after=after, limit=limit)
    subjects = {e.data.get("student_id") for e in events if isinstance(e.data.get("student_id"), str)}
    ciphers = CipherCache(ctx.sealing.vault.keys_for(s for s in subjects if s))
    out = []
    for event in events:
        data = ctx.sealing.open_with(event.data, partial(ciphers.get, event.data.get("student_id")))
        out.append(event if data is event.data else event._replace(data=data))
    return out
