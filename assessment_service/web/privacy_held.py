"""The words "My data" uses for the reviews, decisions, presentation and rulings it shows
(`assessment_service/assessment_held.py`; template `_my_data_held.html`): staff by role, codes by
their names, in English and Swedish."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from assessment_service.web.presentation_pages import KIND_LABELS, STATUS_LABELS
from assessment_service.web.review_forms import CRITERION_LABELS, RECOMMENDATION_LABELS, VERDICT_LABELS
from assessment_service.web.ruling_pages import OUTCOME_LABELS as RULING_LABELS

ROLE_NAMES: dict[str, Any] = {
    "assessor": _l("An assessor"),
    "coordinator": _l("The coordinator"),
    "policy": _l("The rule set's policy (the reviews agreed)"),
    "assessor_group": _l("The assessor group"),
}
DECISION_OUTCOME_NAMES: dict[str, Any] = {
    "approved": _l("Approved"),
    "revision_requested": _l("Revision requested"),
    "rejected": _l("Rejected"),
}


def _named(labels: dict[str, Any]) -> Any:
    return lambda code: labels.get(code, code)


def held_labels() -> dict[str, Any]:
    """The template's naming functions for the held sections."""
    return {
        "role_name": _named(ROLE_NAMES),
        "criterion_name": _named(CRITERION_LABELS),
        "verdict_name": _named(VERDICT_LABELS),
        "recommendation_name": _named(RECOMMENDATION_LABELS),
        "decision_outcome_name": _named(DECISION_OUTCOME_NAMES),
        "ruling_outcome_name": _named(RULING_LABELS),
        "occasion_kind_name": _named(KIND_LABELS),
        "booking_status_name": _named(STATUS_LABELS),
    }
