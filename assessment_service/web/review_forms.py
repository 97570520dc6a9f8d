"""The review and decision forms of the report's reviews page (one field per criterion; errors
beside their fields; a one-time token so a double click records one review)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import RadioField, SelectChoice, TextAreaField
from wtforms.validators import AnyOf, InputRequired, Length

from assessment_service.events import CRITERION_VERDICTS, RECOMMENDATIONS
from assessment_service.reviews import CRITERIA, MAX_COMMENT, MAX_SUMMARY, OUTCOMES
from assessment_service.web.forms import DecisionForm, labels_for
from shared.catalogue import DEFAULT_CRITERIA, Criterion

#: The wording of the default criteria (a rule set may name its own: shared.catalogue.Criterion).
CRITERION_LABELS = labels_for(CRITERIA, {
    "activities_meet_requirements": _l("The activities meet the requirements"),
    "reflection_compares_contexts": _l("The reflections compare the contexts"),
    "reflection_relates_to_profession": _l("The reflections relate to the future profession"),
    "report_complete": _l("The report is complete"),
})
VERDICT_LABELS = {"met": _l("Met"), "not_met": _l("Not met")}
RECOMMENDATION_LABELS = {"approve": _l("Approve"), "revise": _l("Ask for a revision"), "reject": _l("Reject")}
OUTCOME_LABELS = {
    "approve": _l("Approve the report"), "revise": _l("Request a revision"), "reject": _l("Reject the report"),
}
DECISION_NAMES = {
    "ReportApproved": _l("Approved"),
    "RevisionRequested": _l("Revision requested"),
    "ReportRejected": _l("Rejected"),
}


def _verdict(label: str) -> RadioField:
    return RadioField(
        label,
        [InputRequired(_l("Say whether this criterion is met.")),
         AnyOf(CRITERION_VERDICTS, message=_l("Say whether this criterion is met."))],
        choices=[SelectChoice(v, VERDICT_LABELS[v]) for v in CRITERION_VERDICTS],
        validate_choice=False,
    )


def _comment() -> TextAreaField:
    return TextAreaField(
        _l("Comment (optional)"),
        [Length(max=MAX_COMMENT, message=_l("Write at most %(max)d characters.", max=MAX_COMMENT))],
        description=_l("The comment is kept with the student's personal data and erased with it."),
    )


class ReviewForm(DecisionForm):
    """A verdict and a comment per criterion of the report's rule set, and a recommendation. Build
    it with `for_criteria`: the fields (`verdict_<code>`, `comment_<code>`) follow the criteria."""

    codes: tuple[str, ...] = ()
    recommendation = RadioField(
        _l("Your recommendation"),
        [InputRequired(_l("Choose a recommendation.")),
         AnyOf(RECOMMENDATIONS, message=_l("Choose a recommendation."))],
        choices=[SelectChoice(r, RECOMMENDATION_LABELS[r]) for r in RECOMMENDATIONS],
        validate_choice=False,
    )

    @classmethod
    def for_criteria(cls, criteria: Sequence[Criterion], locale: str, **kwargs: Any) -> ReviewForm:
        """The form for these criteria, labelled in `locale`: the default ones in the page's
        translations, a rule set's own in the wording the rule set gives them."""
        fields: dict[str, Any] = {"codes": tuple(c.code for c in criteria)}
        for criterion in criteria:
            label = CRITERION_LABELS.get(criterion.code) if criterion in DEFAULT_CRITERIA else None
            fields[f"verdict_{criterion.code}"] = _verdict(label or criterion.label.get(locale))
            fields[f"comment_{criterion.code}"] = _comment()
        form_class = type("RuleSetReviewForm", (cls,), fields)
        return form_class(**kwargs)

    def criteria(self) -> list[tuple[RadioField, TextAreaField]]:
        return [(self[f"verdict_{c}"], self[f"comment_{c}"]) for c in self.codes]

    def verdicts(self) -> dict[str, str]:
        return {c: self[f"verdict_{c}"].data or "" for c in self.codes}

    def comments(self) -> dict[str, str]:
        return {c: self[f"comment_{c}"].data or "" for c in self.codes}


class DecideForm(DecisionForm):
    outcome = RadioField(
        _l("Decision"),
        [InputRequired(_l("Choose a decision.")), AnyOf(OUTCOMES, message=_l("Choose a decision."))],
        choices=[SelectChoice(o, OUTCOME_LABELS[o]) for o in OUTCOMES],
        validate_choice=False,
    )
    summary = TextAreaField(
        _l("Summary for the student"),
        [Length(max=MAX_SUMMARY, message=_l("Write at most %(max)d characters.", max=MAX_SUMMARY))],
        description=_l("Needed for a revision or a rejection: what the student should know, in one joint text."),
    )
