"""The assessor group's rulings on the student's pages: the department's precedents as help on the
activity form ("Earlier rulings on kinds not in the list") and each ruled activity's own ruling on
"my CIM". Both are delivered by the assessment service's events (intake_service/precedent_view.py);
the pages work, showing none, when that view cannot be read."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_babel import gettext as _

from shared.catalogue import Department


def kind_text(department: Department | None, code: str, lang: str) -> str:
    kind = department.kind(code) if department is not None else None
    return kind.name.get(lang) if kind is not None else code


def outcome_text(department: Department | None, ruling: dict[str, Any], lang: str) -> str:
    """'Accepted, counted as Seminar (class B)', 'Accepted as a new kind of activity', 'Not accepted'."""
    outcome, kind, activity_class = ruling.get("outcome"), ruling.get("kind"), ruling.get("activity_class")
    if outcome == "accepted_as_existing" and kind:
        name = kind_text(department, kind, lang)
        if activity_class:
            return _("Accepted, counted as %(kind)s (class %(class)s)", kind=name, **{"class": activity_class})
        return _("Accepted, counted as %(kind)s", kind=name)
    if outcome == "accepted_as_new":
        if activity_class:
            return _("Accepted as a new kind of activity (class %(class)s)", **{"class": activity_class})
        return _("Accepted as a new kind of activity")
    return _("Not accepted")


def _shown(department: Department | None, ruling: dict[str, Any], lang: str) -> dict[str, Any]:
    return {**ruling, "outcome_text": outcome_text(department, ruling, lang),
            "accepted": ruling.get("outcome") != "not_accepted"}


def department_precedents(department: Department | None, lang: str) -> list[dict[str, Any]]:
    """The department's precedents, newest first, each with its outcome worded ([] when none)."""
    from intake_service.assessment_view import precedents_for

    if department is None:
        return []
    try:
        found = precedents_for(current_app._get_current_object(), department.code)  # type: ignore[attr-defined]
    except Exception:  # help text: the form works without it
        current_app.logger.warning("precedents view unavailable", exc_info=True)
        return []
    return [_shown(department, p, lang) for p in found]


def activity_rulings(
    student_id: str, department: Department | None, activity_ids: list[str], lang: str
) -> dict[str, dict[str, Any]]:
    """activity_id -> its ruling, worded, for the student's own activities ({} when none)."""
    from intake_service.assessment_view import rulings_for

    try:
        found = rulings_for(current_app._get_current_object(), student_id, activity_ids)  # type: ignore[attr-defined]
    except Exception:
        current_app.logger.warning("activity rulings view unavailable", exc_info=True)
        return {}
    return {aid: _shown(department, r, lang) for aid, r in found.items()}
