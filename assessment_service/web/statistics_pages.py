"""CIM in numbers (docs/statistics.md).

- `/statistics`: the figures as of a date (default today in Lund) for the caller's departments,
  filtered to one with `department`: tables per year and per department, the funnel, activities
  by setting and by country, each as an accessible server-rendered SVG bar chart beside its table.
- `/statistics/<table>.csv`: one table as CSV (`suppress=1` shows counts under 5 as "<5").
- `/api/v1/statistics`: the same figures as JSON (token scope `assessment:statistics`).

Coordinators see their departments, administrators every department; anyone else gets 403, and
asking for a department one does not coordinate is 403 too.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_babel import lazy_gettext as _l

from assessment_service import statistics as stats
from assessment_service.bootstrap import AssessmentContext
from assessment_service.projections.statistics import figures_as_of
from assessment_service.web.access_rules import with_token_scope
from assessment_service.web.api import _no_store
from assessment_service.web.api import bp as api_bp
from assessment_service.web.diploma_pages import _cell
from shared.errors import ValidationFailed
from shared.identity.models import Principal, Role
from shared.web.access import Caller, Forbidden, Rule, access, current_caller

bp = Blueprint("statistics_pages", __name__)

SCOPE_STATISTICS = "assessment:statistics"

TABLES = ("per_year", "per_department", "funnel", "settings", "countries")

LABELS = {
    "registrations": _l("Registrations"), "diplomas": _l("Diplomas"), "withdrawals": _l("Withdrawals"),
    "deregistrations": _l("Deregistrations"), "active": _l("Active"),
    "voided": _l("Voided (not counted)"),
    "registered": _l("Registered"), "activity": _l("Logged an activity"), "submitted": _l("Submitted a report"),
    "approved": _l("Report approved"), "presented": _l("Presented"), "diploma": _l("Diploma issued"),
    "abroad": _l("Abroad"), "at_home": _l("At home"), "digital": _l("Digital"), "unknown": _l("Not stated"),
}


def _reader(caller: Caller, args: Any) -> bool:
    principal = caller.principal
    return principal is not None and (principal.is_administrator or bool(principal.departments(Role.COORDINATOR)))


READER = with_token_scope(Rule("statistics:reader", _reader), SCOPE_STATISTICS)


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _allowed(principal: Principal) -> list[str] | None:
    """The departments the caller may count (None: every department)."""
    return None if principal.is_administrator else sorted(principal.departments(Role.COORDINATOR))


def _query() -> tuple[date, list[str] | None, str | None, bool]:
    """as_of, the departments counted, the chosen department, suppression: from the query string.
    Raises ValidationFailed for a bad date."""
    ctx = _context()
    raw = (request.args.get("as_of") or "").strip()
    if raw:
        try:
            as_of = date.fromisoformat(raw)
        except ValueError:
            problem = "Give the date as YYYY-MM-DD."
            raise ValidationFailed(problem, {"as_of": [problem]}) from None
    else:
        as_of = stats.business_date(ctx.clock.now())
    principal = current_caller().principal
    assert principal is not None  # the rule lets only people through
    allowed = _allowed(principal)
    chosen = (request.args.get("department") or "").strip() or None
    if chosen is not None and allowed is not None and chosen not in allowed:
        raise Forbidden("You do not coordinate this department.")
    departments = [chosen] if chosen else allowed
    return as_of, departments, chosen, request.args.get("suppress") == "1"


def compute(as_of: date, departments: list[str] | None) -> stats.Figures:
    """The figures as of `as_of` for `departments` (all when None), from the read model, with
    what was known on that date beside them (`figures.known`)."""
    ctx = _context()
    return figures_as_of(ctx.engine, ctx.reader, as_of, departments)


def rows(figures: stats.Figures, table: str) -> tuple[list[str], list[list[Any]]]:
    """A table of the figures: its column keys and rows (first cell the row's label)."""
    if table == "per_year":
        return ["year", *stats.YEARLY], [[y, *(r[c] for c in stats.YEARLY)] for y, r in figures.per_year.items()] \
            + [["total", *(figures.totals.get(c, 0) for c in stats.YEARLY)]]
    if table == "per_department":
        cols = [*stats.YEARLY, "active"]
        return ["department", *cols], [[d, *(r[c] for c in cols)] for d, r in figures.per_department.items()]
    if table == "funnel":
        return ["step", "students"], [[s, figures.funnel.get(s, 0)] for s in stats.FUNNEL]
    if table == "settings":
        return ["setting", "activities"], sorted([k, v] for k, v in figures.activities_by_setting.items())
    return ["country", "activities"], sorted([k, v] for k, v in figures.activities_by_country.items())


def bars(items: list[tuple[str, int]], width: int = 320) -> list[dict[str, Any]]:
    """Bars of a horizontal chart: label, value, y and length in SVG units (longest = width)."""
    top = max((v for _, v in items), default=0) or 1
    return [{"label": label, "value": v, "y": 24 * n, "length": round(width * v / top)}
            for n, (label, v) in enumerate(items)]


def _label(key: Any) -> str:
    text = LABELS.get(str(key))
    return str(text) if text is not None else str(key)


@bp.get("/statistics")
@access(READER)
def statistics_page() -> Any:
    try:
        as_of, departments, chosen, _suppress = _query()
    except ValidationFailed:
        as_of, error = stats.business_date(_context().clock.now()), True
        principal = current_caller().principal
        assert principal is not None
        departments, chosen = _allowed(principal), None
    else:
        error = False
    figures = compute(as_of, departments)
    principal = current_caller().principal
    assert principal is not None
    allowed = _allowed(principal)
    choices = allowed if allowed is not None else sorted(_context().catalogue.departments)
    tables = {t: rows(figures, t) for t in TABLES}
    charts = {
        "registrations": bars([(str(y), r["registrations"]) for y, r in figures.per_year.items()]),
        "diplomas": bars([(str(y), r["diplomas"]) for y, r in figures.per_year.items()]),
        "funnel": bars([(_label(s), figures.funnel.get(s, 0)) for s in stats.FUNNEL]),
        "settings": bars([(_label(k), v) for k, v in sorted(figures.activities_by_setting.items())]),
    }
    body = render_template("statistics.html", figures=figures, as_of=as_of, chosen=chosen, choices=choices,
                           tables=tables, charts=charts, label=_label, error=error,
                           raw_as_of=request.args.get("as_of", ""))
    return Response(body, 400 if error else 200)


@bp.get("/statistics/<table>.csv")
@access(READER)
def statistics_csv(table: str) -> Response:
    if table not in TABLES:
        return Response("No such table.\n", 404, mimetype="text/plain")
    as_of, departments, chosen, suppress = _query()
    columns, table_rows = rows(compute(as_of, departments), table)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in table_rows:
        writer.writerow([_cell(str(row[0])), *(stats.shown(v, suppress) for v in row[1:])])
    response = Response(out.getvalue(), mimetype="text/csv")
    name = f"cim-statistics-{table}-{chosen or 'all'}-{as_of.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@api_bp.get("/statistics")
@access(READER)
def statistics_api() -> Any:
    as_of, departments, _chosen, suppress = _query()
    body = compute(as_of, departments).as_json(suppress=suppress)
    body["computed_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    return _no_store(jsonify(body))


@api_bp.post("/students/<student_id>/registration-void")
@access(READER)
def void_registration_api(student_id: str) -> Any:
    """A coordinator voids a mis-registration: `{"reason_code": ...}` (docs/statistics.md)."""
    from marshmallow import Schema, fields

    from assessment_service import statistics_services
    from assessment_service.web.reviews_api import _created, _request
    from shared.web.json_body import load_json

    class VoidRequest(Schema):
        reason_code = fields.String(required=True)

    data = load_json(VoidRequest())
    principal = current_caller().principal
    assert principal is not None
    outcome = statistics_services.void_registration(_context(), principal, student_id, data["reason_code"],
                                                    _request())
    return _created(outcome)
