"""The reviews page of a report (/reports/<id>/reviews): the rounds with the reviews the viewer
may read and the decisions, the assessor's review form, the coordinator's decision form, and the
report's history. Joins the pages blueprint."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from assessment_service import reviews, services
from assessment_service.web.access_rules import (
    may_read_report,
    report_coordinator,
    report_facts,
    report_reader,
    report_reviewer,
)
from assessment_service.web.pages import (
    _context,
    _form_decision,
    _locale,
    _record_views,
    _see_reviews,
    _staff,
    _staff_names,
    bp,
)
from assessment_service.web.review_forms import (
    CRITERION_LABELS,
    DECISION_NAMES,
    OUTCOME_LABELS,
    RECOMMENDATION_LABELS,
    VERDICT_LABELS,
    DecideForm,
    ReviewForm,
)
from shared.catalogue import DEFAULT_CRITERIA, Criterion, Text
from shared.errors import NotFound
from shared.identity.models import Principal
from shared.web.access import access
from shared.web.branding import show_department_look

EVENT_NAMES = {
    "AssessorAssigned": _l("Assessor assigned"),
    "AssessorUnassigned": _l("Assessor unassigned"),
    "ConflictOfInterestDeclared": _l("Conflict of interest declared"),
    "ReviewSubmitted": _l("Review submitted"),
    **DECISION_NAMES,
}


def _reviews_page(
    report_id: str, *, review_form: ReviewForm | None = None, decide_form: DecideForm | None = None, status: int = 200
) -> tuple[str, int]:
    _caller, principal = _staff()
    facts = report_facts(report_id)
    if facts is None or not may_read_report(principal, facts):
        raise NotFound("No such report.")
    _record_views(principal, [facts.student_id], "reviews")
    show_department_look(facts.department)  # the report's department's look (config/branding.toml)
    record = services.review_record(_context(), principal, report_id)
    history = services.report_history(_context(), report_id)
    current = next(r for r in record["rounds"] if r["round"] == record["current_round"])
    may_review = (
        principal.account_id in record["assessors"] and not record["reviewed"] and current["decision"] is None
    )
    # A form sent back with its errors is shown again even where it may no longer be used.
    if may_review or review_form is not None:
        criteria = [Criterion(c, Text(**record["criterion_labels"][c])) for c in record["criteria"]]
        review_form = review_form or ReviewForm.for_criteria(criteria, _locale(), formdata=None)
        review_form.ensure_token()
    if record["may_decide"] or decide_form is not None:
        decide_form = decide_form or DecideForm(formdata=None)
        decide_form.ensure_token()
    people = [*record["assessors"], *(r["assessor_account_id"] for rnd in record["rounds"] for r in rnd["reviews"]),
              *(h["actor"].removeprefix("account:") for h in history if (h["actor"] or "").startswith("account:"))]
    names = _staff_names([p for p in people if p and p != "policy"])
    return render_template(
        "reviews.html", record=record, history=history, names=names, review_form=review_form,
        decide_form=decide_form, criterion_labels=_labels(record["criterion_labels"]), verdict_labels=VERDICT_LABELS,
        recommendation_labels=RECOMMENDATION_LABELS, decision_names=DECISION_NAMES, outcome_labels=OUTCOME_LABELS,
        event_names=EVENT_NAMES,
    ), status


def _labels(labels: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The criteria's wording in the page's language: the default criteria's from the translations."""
    locale = _locale()
    return {
        code: CRITERION_LABELS[code] if Criterion(code, Text(**text)) in DEFAULT_CRITERIA else Text(**text).get(locale)
        for code, text in labels.items()
    }


@bp.get("/reports/<report_id>/reviews")
@access(report_reader())
def reviews_page(report_id: str) -> tuple[str, int]:
    return _reviews_page(report_id)


@bp.post("/reports/<report_id>/reviews")
@access(report_reviewer())
def submit_review(report_id: str) -> Any:
    form = ReviewForm.for_criteria(services.review_criteria(_context(), report_id), _locale())
    recommendation = form.recommendation.data or ""

    def decide(principal: Principal, req: services.RequestContext) -> services.Outcome:
        command = reviews.SubmitReview(principal.account_id, form.verdicts(), form.comments(), recommendation)
        return services.submit_review(_context(), principal, report_id, command, req)

    return _form_decision(report_id, "review_form", form, decide, lambda: _("Your review is recorded."),
                          _see_reviews(report_id), _reviews_page)


@bp.post("/reports/<report_id>/decision")
@access(report_coordinator())
def decide(report_id: str) -> Any:
    form = DecideForm()
    outcome, summary = form.outcome.data or "", form.summary.data or ""
    return _form_decision(
        report_id, "decide_form", form,
        lambda principal, req: services.decide_report(_context(), principal, report_id, outcome, summary, req),
        lambda: _("The decision is recorded."), _see_reviews(report_id), _reviews_page,
    )
