"""The review and decision forms of the report's reviews page (one field per criterion; errors
beside their fields; a one-time token so a double click records one review)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import RadioField, SelectChoice, TextAreaField
from wtforms.validators import AnyOf, InputRequired, Length

from assessment_service.events import CRITERION_VERDICTS, RECOMMENDATIONS
from assessment_service.reviews import CRITERIA, MAX_COMMENT, MAX_SUMMARY, OUTCOMES
from assessment_service.web.forms import DecisionForm, labels_for

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


def _verdict(criterion: str) -> RadioField:
    return RadioField(
        CRITERION_LABELS[criterion],
        [InputRequired(_l("Say whether this criterion is met.")),
         AnyOf(CRITERION_VERDICTS, message=_l("Say whether this criterion is met."))],
        choices=[SelectChoice(v, VERDICT_LABELS[v]) for v in CRITERION_VERDICTS],
        validate_choice=False,
    )


def _comment(criterion: str) -> TextAreaField:
    return TextAreaField(
        _l("Comment (optional)"),
        [Length(max=MAX_COMMENT, message=_l("Write at most %(max)d characters.", max=MAX_COMMENT))],
        description=_l("The comment is kept with the student's personal data and erased with it."),
    )


class ReviewForm(DecisionForm):
    verdict_activities_meet_requirements = _verdict("activities_meet_requirements")
    comment_activities_meet_requirements = _comment("activities_meet_requirements")
    verdict_reflection_compares_contexts = _verdict("reflection_compares_contexts")
    comment_reflection_compares_contexts = _comment("reflection_compares_contexts")
    verdict_reflection_relates_to_profession = _verdict("reflection_relates_to_profession")
    comment_reflection_relates_to_profession = _comment("reflection_relates_to_profession")
    verdict_report_complete = _verdict("report_complete")
    comment_report_complete = _comment("report_complete")
    recommendation = RadioField(
        _l("Your recommendation"),
        [InputRequired(_l("Choose a recommendation.")),
         AnyOf(RECOMMENDATIONS, message=_l("Choose a recommendation."))],
        choices=[SelectChoice(r, RECOMMENDATION_LABELS[r]) for r in RECOMMENDATIONS],
        validate_choice=False,
    )

    def criteria(self) -> list[tuple[RadioField, TextAreaField]]:
        return [(self[f"verdict_{c}"], self[f"comment_{c}"]) for c in CRITERIA]

    def verdicts(self) -> dict[str, str]:
        return {c: self[f"verdict_{c}"].data or "" for c in CRITERIA}

    def comments(self) -> dict[str, str]:
        return {c: self[f"comment_{c}"].data or "" for c in CRITERIA}


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
