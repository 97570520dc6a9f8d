"""What changed between two rounds of a report (/reports/<id>/changes): each answer and each
covered activity of round N-1 and round N side by side, marked changed or not. For the report's
readers (its coordinator, its assigned assessors); joins the pages blueprint."""

from __future__ import annotations

from flask import render_template, request
from flask_babel import lazy_gettext as _l

from assessment_service import queries
from assessment_service.round_changes import (
    ADDED,
    AMENDED,
    CHANGED,
    ERASED,
    REMOVED,
    UNCHANGED,
    compare_rounds,
)
from assessment_service.round_queries import report_round, round_numbers
from assessment_service.web.access_rules import may_read_report, report_facts, report_reader
from assessment_service.web.pages import _catalogue, _context, _record_views, _staff, bp
from shared.errors import NotFound
from shared.web.access import access
from shared.web.branding import show_department_look

MARKS = {
    CHANGED: _l("Changed"),
    UNCHANGED: _l("Unchanged"),
    ERASED: _l("Personal data erased"),
    ADDED: _l("Added"),
    REMOVED: _l("Removed"),
    AMENDED: _l("Amended"),
}
DETAIL_NAMES = {
    "title": _l("Title"),
    "kind": _l("Kind"),
    "setting": _l("Where"),
    "country_code": _l("Country"),
    "start_date": _l("Start date"),
    "end_date": _l("End date"),
    "hours": _l("Hours"),
    "organiser": _l("Organiser"),
    "description": _l("Description"),
}


def _chosen_round(rounds: list[int]) -> int | None:
    """The later round of the comparison: `?round=N` (N ≥ 2, a round of the report), else the
    latest; None when the report has only one round. A round that is not one answers 404."""
    asked = request.args.get("round")
    if asked is None:
        return rounds[-1] if len(rounds) > 1 else None
    if not asked.isdigit() or int(asked) not in rounds or int(asked) < 2:
        raise NotFound("No such round.")
    return int(asked)


@bp.get("/reports/<report_id>/changes")
@access(report_reader())
def report_changes(report_id: str) -> str:
    _caller, principal = _staff()
    facts = report_facts(report_id)
    if facts is None or not may_read_report(principal, facts):
        raise NotFound("No such report.")
    with _context().reader.connect() as conn:
        detail = queries.report_detail(conn, report_id)
        rounds = round_numbers(conn, report_id)
        later = _chosen_round(rounds)
        before = report_round(conn, report_id, later - 1) if later else None
        after = report_round(conn, report_id, later) if later else None
    if detail is None:
        raise NotFound("No such report.")
    _record_views(principal, [facts.student_id], "report")  # the report's own texts, side by side
    show_department_look(facts.department)  # the report's department's look (config/branding.toml)
    changes = None
    if before is not None and after is not None:
        dept = _catalogue().department(detail["department"] or "")
        codes = [q.code for q in dept.reflection_questions] if dept else []
        changes = compare_rounds(before, after, codes)
    return render_template(
        "changes.html", report=detail, rounds=rounds, later=later, before=before, after=after, changes=changes,
        marks={k: str(v) for k, v in MARKS.items()},
        detail_list=lambda fields: ", ".join(str(DETAIL_NAMES.get(f, f)) for f in fields),
    )
