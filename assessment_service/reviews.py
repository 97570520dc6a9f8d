"""PURE review decisions about one round of a report: an assessor's review, the decision on it.

`fold_reviews(events)` builds a report's review state from its own stream (the same stream as its
assignments); `decide_review` and `decide_round` return the events to record or raise. No I/O:
the service reads the facts (the report's current round, its department's policy, whether the
student withdrew) and passes them in.

The policy (the rule set's `approvals_required`, `on_disagreement`): when as many reviews of a
round as the rule set requires all recommend approval, the round is approved at once
(`decided_by` "policy"). Any other round is decided by a coordinator of the department, once
the required number of reviews is in or every assigned assessor has reviewed — "revise" and
"reject" with a summary written for the student. A decision names the reviews it rests on by
their assessors (one review per assessor and round).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from assessment_service.domain import fold
from assessment_service.events import (
    CRITERION_VERDICTS,
    RECOMMENDATIONS,
    Decision,
    ReportApproved,
    ReportEvent,
    ReportRejected,
    ReviewSubmitted,
    RevisionRequested,
)
from shared.catalogue import DEFAULT_CRITERIA
from shared.errors import NotFound, Reason, RuleViolated, ValidationFailed

#: What a reviewer judges in a report (met / not met, each with an optional comment) when its rule
#: set names no criteria of its own (`criteria` in config/departments.toml; ReviewFacts.criteria).
CRITERIA = tuple(c.code for c in DEFAULT_CRITERIA)
#: The decisions a coordinator takes on a round.
OUTCOMES = ("approve", "revise", "reject")
POLICY = "policy"
MAX_COMMENT = 5000
MAX_SUMMARY = 10000

#: Every reason a review or decision gives (the pages have a text for each).
REASONS = WITHDRAWN, ROUND_DECIDED, ALREADY_REVIEWED, NO_REVIEWS_YET, NOT_IN_REVIEW = (
    Reason("report_withdrawn", "The student has withdrawn from CIM: this report is no longer reviewed."),
    Reason("round_decided", "This round of the report has already been decided."),
    Reason("already_reviewed", "You have already reviewed this round of the report."),
    Reason("reviews_missing", "The reviews this decision rests on are not all in yet."),
    Reason("report_not_in_review", "This report is not waiting for review."),
)


@dataclass(frozen=True)
class ReviewFacts:
    """What the read side knows about a report when it is reviewed or decided."""

    report_id: str
    student_id: str
    department: str
    #: The report's current round (1, then +1 per resubmission).
    round: int
    rule_set: str
    approvals_required: int
    #: The student withdrew from CIM (nothing more is decided about them).
    withdrawn: bool
    #: The review criteria of the rule set the report was submitted under (`rule_set`).
    criteria: tuple[str, ...] = CRITERIA


@dataclass
class RoundState:
    reviews: dict[str, ReviewSubmitted] = field(default_factory=dict)  # assessor -> review
    decision: Decision | None = None


@dataclass
class ReviewState:
    assessors: set[str] = field(default_factory=set)
    rounds: dict[int, RoundState] = field(default_factory=dict)

    def round(self, number: int) -> RoundState:
        return self.rounds.get(number) or RoundState()


def fold_reviews(events: Iterable[ReportEvent]) -> ReviewState:
    history = list(events)
    state = ReviewState(assessors=fold(history).assessors)
    for event in history:
        match event:
            case ReviewSubmitted():
                state.rounds.setdefault(event.round, RoundState()).reviews[event.assessor_account_id] = event
            case ReportApproved() | RevisionRequested() | ReportRejected():
                state.rounds.setdefault(event.round, RoundState()).decision = event
    return state


@dataclass(frozen=True)
class SubmitReview:
    assessor_account_id: str
    verdicts: Mapping[str, str]
    comments: Mapping[str, str]
    recommendation: str


@dataclass(frozen=True)
class DecideRound:
    decided_by: str
    outcome: str
    summary: str = ""


def _open_round(state: ReviewState, facts: ReviewFacts) -> RoundState:
    if facts.withdrawn:
        raise RuleViolated(WITHDRAWN())
    current = state.round(facts.round)
    if current.decision is not None:
        raise RuleViolated(ROUND_DECIDED())
    return current


def _check_review(command: SubmitReview, criteria: tuple[str, ...]) -> None:
    errors: dict[str, list[str]] = {}
    for criterion in criteria:
        if command.verdicts.get(criterion) not in CRITERION_VERDICTS:
            errors[f"verdicts.{criterion}"] = ["Say whether this criterion is met."]
    unknown = sorted(set(command.verdicts) - set(criteria)) + sorted(set(command.comments) - set(criteria))
    for name in unknown:
        errors[f"verdicts.{name}"] = ["Not a criterion of this review."]
    for criterion, comment in command.comments.items():
        if len(comment) > MAX_COMMENT:
            errors[f"comments.{criterion}"] = [f"Write at most {MAX_COMMENT} characters."]
    if command.recommendation not in RECOMMENDATIONS:
        errors["recommendation"] = ["Choose approve, revise or reject."]
    if errors:
        raise ValidationFailed("The review is not complete.", errors)


def decide_review(state: ReviewState, facts: ReviewFacts, command: SubmitReview) -> list[ReportEvent]:
    """An assigned assessor reviews the current round, once. If that completes the approvals the
    rule set requires and every review of the round recommends approval, the round is approved."""
    who = command.assessor_account_id
    if who not in state.assessors:
        raise NotFound("No such report.")  # like an unknown report: no hint it exists
    current = _open_round(state, facts)
    if who in current.reviews:
        raise RuleViolated(ALREADY_REVIEWED())
    _check_review(command, facts.criteria)
    review = ReviewSubmitted(
        facts.report_id, facts.student_id, facts.department, facts.round, facts.rule_set, who,
        verdicts={c: command.verdicts[c] for c in facts.criteria},
        comments={c: text for c, text in command.comments.items() if text.strip()},
        recommendation=command.recommendation,
    )
    reviews = {**current.reviews, who: review}
    recommendations = {r.recommendation for r in reviews.values()}
    if recommendations == {"approve"} and len(reviews) >= facts.approvals_required:
        approved = ReportApproved(
            facts.report_id, facts.student_id, facts.department, facts.round, facts.rule_set,
            decided_by=POLICY, rests_on=sorted(reviews),
        )
        return [review, approved]
    return [review]


def may_decide(state: ReviewState, facts: ReviewFacts) -> bool:
    """The round's reviews are in: as many as the rule set requires, or every assigned assessor's."""
    reviews = state.round(facts.round).reviews
    if not reviews:
        return False
    return len(reviews) >= facts.approvals_required or state.assessors <= set(reviews)


def decide_round(state: ReviewState, facts: ReviewFacts, command: DecideRound) -> list[ReportEvent]:
    """A coordinator decides the current round on its reviews (the access rule checked the role)."""
    current = _open_round(state, facts)
    if not may_decide(state, facts):
        raise RuleViolated(NO_REVIEWS_YET())
    if command.outcome not in OUTCOMES:
        raise ValidationFailed("Choose a decision.", {"outcome": ["Choose approve, revise or reject."]})
    summary = command.summary.strip()
    if command.outcome != "approve" and not summary:
        raise ValidationFailed("Write a summary for the student.", {"summary": ["Write a summary for the student."]})
    if len(summary) > MAX_SUMMARY:
        raise ValidationFailed("The summary is too long.", {"summary": [f"Write at most {MAX_SUMMARY} characters."]})
    base = (facts.report_id, facts.student_id, facts.department, facts.round, facts.rule_set)
    rests_on = sorted(current.reviews)
    if command.outcome == "approve":
        return [ReportApproved(*base, decided_by=command.decided_by, rests_on=rests_on)]
    if command.outcome == "revise":
        return [RevisionRequested(*base, decided_by=command.decided_by, rests_on=rests_on, summary=summary)]
    return [ReportRejected(*base, decided_by=command.decided_by, rests_on=rests_on, summary=summary)]


def visible_reviews(
    state: ReviewState, facts: ReviewFacts, viewer: str, *, coordinator: bool
) -> dict[int, list[ReviewSubmitted]]:
    """The reviews `viewer` may read, per round: a coordinator all; an assessor the earlier rounds'
    and, of the current round, the others' only once their own is in."""
    out: dict[int, list[ReviewSubmitted]] = {}
    for number, rnd in sorted(state.rounds.items()):
        reviews = list(rnd.reviews.values())
        if not coordinator and number == facts.round and rnd.decision is None and viewer not in rnd.reviews:
            reviews = []
        out[number] = sorted(reviews, key=lambda r: r.assessor_account_id)
    return out
