"""The pure review rules (assessment_service/reviews.py): who reviews which round, once; when the
policy approves on its own; what a coordinator's decision needs; who sees which reviews."""

from __future__ import annotations

import pytest

from assessment_service.events import (
    AssessorAssigned,
    AssessorUnassigned,
    ReportApproved,
    ReportRejected,
    ReviewSubmitted,
    RevisionRequested,
)
from assessment_service.reviews import (
    CRITERIA,
    DecideRound,
    ReviewFacts,
    SubmitReview,
    decide_review,
    decide_round,
    fold_reviews,
    may_decide,
    visible_reviews,
)
from shared.errors import NotFound, RuleViolated, ValidationFailed

REPORT = "3f2e1d0c-9b8a-4766-a554-433221100fed"
STUDENT = "0b7f3c1e-5d2a-4c8e-9f10-2a3b4c5d6e7f"
ALL_MET = dict.fromkeys(CRITERIA, "met")


def facts(round_: int = 1, *, approvals: int = 2, withdrawn: bool = False) -> ReviewFacts:
    return ReviewFacts(REPORT, STUDENT, "SOCSW", round_, "SOCSW@1", approvals_required=approvals, withdrawn=withdrawn)


def assigned(*who: str) -> list[AssessorAssigned]:
    return [AssessorAssigned(REPORT, STUDENT, "SOCSW", w) for w in who]


def review(who: str, recommendation: str = "approve", round_: int = 1) -> ReviewSubmitted:
    return ReviewSubmitted(REPORT, STUDENT, "SOCSW", round_, "SOCSW@1", who, dict(ALL_MET), {}, recommendation)


def submit(who: str, recommendation: str = "approve", **changes: object) -> SubmitReview:
    fields: dict[str, object] = {"verdicts": dict(ALL_MET), "comments": {}, "recommendation": recommendation}
    fields.update(changes)
    return SubmitReview(who, **fields)  # type: ignore[arg-type]


# -- reviewing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("history", "command", "expected"),
    [
        pytest.param(assigned("ann", "bo"), submit("ann"), ["ReviewSubmitted"], id="first-of-two-approvals"),
        pytest.param([*assigned("ann", "bo"), review("bo")], submit("ann"), ["ReviewSubmitted", "ReportApproved"],
                     id="second-approval-approves-by-policy"),
        pytest.param([*assigned("ann", "bo"), review("bo", "revise")], submit("ann"), ["ReviewSubmitted"],
                     id="disagreement-waits-for-the-coordinator"),
        pytest.param([*assigned("ann", "bo"), review("bo", "approve")], submit("ann", "reject"), ["ReviewSubmitted"],
                     id="a-reject-after-an-approval-waits"),
        pytest.param([*assigned("ann", "bo"), review("bo", "revise", round_=1),
                      RevisionRequested(REPORT, STUDENT, "SOCSW", 1, "SOCSW@1", "coord", ["bo"], "Say more.")],
                     submit("ann"), ["ReviewSubmitted"], id="an-earlier-round-does-not-count"),
    ],
)
def test_a_review_and_what_the_policy_decides(
    history: list[object], command: SubmitReview, expected: list[str]
) -> None:
    round_ = 2 if any(isinstance(e, RevisionRequested) for e in history) else 1
    events = decide_review(fold_reviews(history), facts(round_), command)  # type: ignore[arg-type]
    assert [type(e).__name__ for e in events] == expected
    if len(events) == 2:
        decision = events[1]
        assert isinstance(decision, ReportApproved)
        assert decision.decided_by == "policy"
        assert decision.rests_on == ["ann", "bo"]  # the reviews it rests on, by their assessors
        assert decision.rule_set == "SOCSW@1"


def test_one_approval_is_enough_where_the_rule_set_says_so() -> None:
    events = decide_review(fold_reviews(assigned("ann")), facts(approvals=1), submit("ann"))
    assert [type(e).__name__ for e in events] == ["ReviewSubmitted", "ReportApproved"]


@pytest.mark.parametrize(
    ("history", "command", "the_facts", "refusal"),
    [
        pytest.param(assigned("bo"), submit("ann"), facts(), NotFound, id="not-assigned-is-like-unknown"),
        pytest.param([*assigned("ann"), AssessorUnassigned(REPORT, STUDENT, "SOCSW", "ann", "coordinator_decision")],
                     submit("ann"), facts(), NotFound, id="unassigned-since"),
        pytest.param([*assigned("ann"), review("ann")], submit("ann"), facts(), "already_reviewed", id="twice"),
        pytest.param(assigned("ann"), submit("ann"), facts(withdrawn=True), "report_withdrawn", id="withdrawn"),
        pytest.param([*assigned("ann"), ReportRejected(REPORT, STUDENT, "SOCSW", 1, "SOCSW@1", "c", ["x"], "No.")],
                     submit("ann"), facts(), "round_decided", id="decided-round"),
        pytest.param(assigned("ann"), submit("ann", verdicts={"report_complete": "met"}), facts(), ValidationFailed,
                     id="a-criterion-missing"),
        pytest.param(assigned("ann"), submit("ann", verdicts={**ALL_MET, "report_complete": "maybe"}), facts(),
                     ValidationFailed, id="not-met-or-met"),
        pytest.param(assigned("ann"), submit("ann", comments={"charm": "x"}), facts(), ValidationFailed,
                     id="unknown-criterion"),
        pytest.param(assigned("ann"), submit("ann", "approve-ish"), facts(), ValidationFailed, id="recommendation"),
        pytest.param(assigned("ann"), submit("ann", comments={"report_complete": "x" * 5001}), facts(),
                     ValidationFailed, id="comment-too-long"),
    ],
)
def test_reviews_that_are_refused(history: list[object], command: SubmitReview, the_facts: ReviewFacts,
                                  refusal: type[Exception] | str) -> None:
    state = fold_reviews(history)  # type: ignore[arg-type]
    if isinstance(refusal, str):
        with pytest.raises(RuleViolated) as caught:
            decide_review(state, the_facts, command)
        assert caught.value.problem.code == refusal
    else:
        with pytest.raises(refusal):
            decide_review(state, the_facts, command)


def test_comments_keep_only_what_was_written() -> None:
    (event,) = decide_review(fold_reviews(assigned("ann", "bo")), facts(),
                             submit("ann", "revise", comments={"report_complete": "Two answers are missing.",
                                                               "reflection_compares_contexts": "  "}))
    assert isinstance(event, ReviewSubmitted)
    assert event.comments == {"report_complete": "Two answers are missing."}
    assert event.verdicts == ALL_MET


# -- deciding ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("history", "command", "expected"),
    [
        pytest.param([*assigned("ann", "bo"), review("ann", "revise"), review("bo", "approve")],
                     DecideRound("coord", "revise", "Compare the two welfare systems."), RevisionRequested,
                     id="revise-on-disagreement"),
        pytest.param([*assigned("ann", "bo"), review("ann", "reject"), review("bo", "reject")],
                     DecideRound("coord", "reject", "The activities are not international."), ReportRejected,
                     id="reject"),
        pytest.param([*assigned("ann", "bo"), review("ann", "approve"), review("bo", "revise")],
                     DecideRound("coord", "approve"), ReportApproved, id="approve-over-a-revise"),
        pytest.param([*assigned("ann"), review("ann", "revise")], DecideRound("coord", "revise", "More."),
                     RevisionRequested, id="every-assigned-assessor-has-reviewed"),
    ],
)
def test_a_coordinator_decides_a_round(history: list[object], command: DecideRound, expected: type) -> None:
    (event,) = decide_round(fold_reviews(history), facts(), command)  # type: ignore[arg-type]
    assert isinstance(event, expected)
    assert event.decided_by == "coord"
    assert event.rests_on == sorted({e.assessor_account_id for e in history if isinstance(e, ReviewSubmitted)})
    if not isinstance(event, ReportApproved):
        assert event.summary == command.summary


@pytest.mark.parametrize(
    ("history", "command", "refusal"),
    [
        pytest.param([*assigned("ann", "bo"), review("ann", "revise")], DecideRound("coord", "revise", "x"),
                     "reviews_missing", id="one-of-two-reviews"),
        pytest.param(assigned("ann", "bo"), DecideRound("coord", "approve"), "reviews_missing", id="no-reviews"),
        pytest.param([*assigned("ann", "bo"), review("ann", "revise"), review("bo", "revise")],
                     DecideRound("coord", "revise", "   "), ValidationFailed, id="revise-needs-a-summary"),
        pytest.param([*assigned("ann", "bo"), review("ann", "revise"), review("bo", "revise")],
                     DecideRound("coord", "postpone"), ValidationFailed, id="unknown-outcome"),
        pytest.param([*assigned("ann", "bo"), review("ann"), review("bo"),
                      ReportApproved(REPORT, STUDENT, "SOCSW", 1, "SOCSW@1", "policy", ["ann", "bo"])],
                     DecideRound("coord", "reject", "No."), "round_decided", id="already-approved"),
    ],
)
def test_decisions_that_are_refused(history: list[object], command: DecideRound,
                                    refusal: type[Exception] | str) -> None:
    state = fold_reviews(history)  # type: ignore[arg-type]
    if isinstance(refusal, str):
        with pytest.raises(RuleViolated) as caught:
            decide_round(state, facts(), command)
        assert caught.value.problem.code == refusal
    else:
        with pytest.raises(refusal):
            decide_round(state, facts(), command)


def test_a_resubmitted_report_is_reviewed_again_in_its_next_round() -> None:
    history = [*assigned("ann", "bo"), review("ann", "revise"), review("bo", "revise"),
               RevisionRequested(REPORT, STUDENT, "SOCSW", 1, "SOCSW@1", "coord", ["ann", "bo"], "Say more.")]
    state = fold_reviews(history)  # type: ignore[arg-type]
    assert not may_decide(state, facts(2))
    events = decide_review(state, facts(2), submit("ann"))
    assert isinstance(events[0], ReviewSubmitted)
    assert events[0].round == 2


# -- who sees which reviews -----------------------------------------------------------------------------
def test_an_assessor_sees_the_others_reviews_only_after_their_own() -> None:
    state = fold_reviews([*assigned("ann", "bo"), review("bo", "revise")])  # type: ignore[arg-type]
    assert visible_reviews(state, facts(), "ann", coordinator=False) == {1: []}
    assert [r.assessor_account_id for r in visible_reviews(state, facts(), "bo", coordinator=False)[1]] == ["bo"]
    assert [r.assessor_account_id for r in visible_reviews(state, facts(), "coord", coordinator=True)[1]] == ["bo"]
    after = fold_reviews([*assigned("ann", "bo"), review("bo", "revise"), review("ann", "approve")])  # type: ignore[arg-type]
    shown = visible_reviews(after, facts(), "ann", coordinator=False)[1]
    assert [r.assessor_account_id for r in shown] == ["ann", "bo"]


def test_every_refusal_of_the_assessment_service_has_a_text_for_the_pages() -> None:
    from assessment_service import domain, reviews, rulings
    from assessment_service.web.forms import PAGE_TEXTS

    codes = {r.code for r in (*domain.REASONS, *reviews.REASONS, *rulings.REASONS)}
    assert codes - set(PAGE_TEXTS) == set()
