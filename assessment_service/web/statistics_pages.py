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
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from babel import Locale
from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SelectChoice, SelectField
from wtforms.validators import AnyOf, InputRequired

from assessment_service import statistics as stats
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import VOID_REASONS
from assessment_service.projections.statistics import facts_as_of, figures_and_counts, figures_as_of
from assessment_service.web.access_rules import with_token_scope
from assessment_service.web.api import _no_store
from assessment_service.web.api import bp as api_bp
from assessment_service.web.diploma_pages import _cell
from assessment_service.web.forms import DecisionForm, labels_for
from shared.application import RequestContext
from shared.catalogue import Text
from shared.errors import RuleViolated, ValidationFailed
from shared.identity.models import Principal, Role
from shared.web.access import Caller, Forbidden, Rule, access, current_caller
from shared.web.errors import correlation_id

bp = Blueprint("statistics_pages", __name__)

SCOPE_STATISTICS = "assessment:statistics"

TABLES = ("per_year", "per_department", "per_faculty", "funnel", "settings", "countries")

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


def load_facts(as_of: date, departments: list[str] | None) -> list[stats.Fact]:
    """The facts dated up to `as_of` of `departments` (all when None), from the read model."""
    with _context().reader.connect() as conn:
        return list(facts_as_of(conn, as_of, departments))


def compute(as_of: date, departments: list[str] | None) -> stats.Figures:
    """The figures as of `as_of` for `departments` (all when None), from the read model, with
    what was known on that date beside them (`figures.known`)."""
    ctx = _context()
    return figures_as_of(ctx.engine, ctx.reader, as_of, departments)


@dataclass(frozen=True)
class Faculty:
    """A faculty's figures: those of its departments counted, computed over their facts together
    (its active students and median days are the faculty's own, not sums or medians of medians)."""

    name: Text
    departments: tuple[str, ...]
    figures: stats.Figures


def partition(facts: list[stats.Fact]) -> dict[str, list[stats.Fact]]:
    """The facts of each department's students (a student's department: their first registration's),
    so figures per department or faculty each read only their own facts."""
    first: dict[str, tuple[date, int, str]] = {}
    for f in facts:
        if f.kind == stats.REGISTERED and f.department:
            key = (f.on, f.position, f.department)
            if f.student_id not in first or key < first[f.student_id]:
                first[f.student_id] = key
    out: dict[str, list[stats.Fact]] = {}
    for f in facts:
        found = first.get(f.student_id)
        department = found[2] if found else f.department
        if department is not None:
            out.setdefault(department, []).append(f)
    return out


def _faculty_groups(departments: list[str] | None) -> tuple[dict[str, list[str]], dict[str, Text]]:
    """The departments counted, grouped by faculty (keyed by its English name), and each faculty's name."""
    catalogue = _context().catalogue.departments
    groups: dict[str, list[str]] = {}
    names: dict[str, Text] = {}
    for code in sorted(departments if departments is not None else catalogue):
        department = catalogue.get(code)
        if department is None:
            continue
        groups.setdefault(department.faculty.en, []).append(code)
        names[department.faculty.en] = department.faculty
    return groups, names


def counted(as_of: date, departments: list[str] | None) -> tuple[stats.Figures, list[Faculty]]:
    """The figures (with what was known on the date) and the figures per faculty, from the summed
    counts (docs/statistics.md, "Summed counts"): what the page, the CSV and the JSON show."""
    ctx = _context()
    groups, names = _faculty_groups(departments)
    figures, by_department = figures_and_counts(ctx.engine, ctx.reader, as_of, departments,
                                                gaps_by_department=bool(groups))
    return figures, [Faculty(names[key], tuple(codes), stats.from_counts(by_department, as_of, codes))
                     for key, codes in sorted(groups.items())]


def faculties(facts: list[stats.Fact], as_of: date, departments: list[str] | None,
              parts: dict[str, list[stats.Fact]] | None = None) -> list[Faculty]:
    """The figures per faculty (config/departments.toml) over the departments counted."""
    groups, names = _faculty_groups(departments)
    parts = partition(facts) if parts is None else parts
    return [Faculty(names[key], tuple(codes), stats.figures([f for c in codes for f in parts.get(c, [])], as_of, codes))
            for key, codes in sorted(groups.items())]


FACULTY_COLUMNS = (*stats.YEARLY, "active", "median_days_to_diploma")


def faculty_json(faculty: Faculty, suppress: bool) -> dict[str, Any]:
    f = faculty.figures
    return {"faculty": {"en": faculty.name.en, "sv": faculty.name.sv}, "departments": list(faculty.departments),
            **{c: stats.shown(f.totals.get(c, 0), suppress) for c in stats.YEARLY},
            "active": stats.shown(f.active, suppress), "median_days_to_diploma": f.median_days_to_diploma}


def _locale() -> str:
    from flask_babel import get_locale

    return str(get_locale() or "en")


def rows(figures: stats.Figures, table: str, by_faculty: list[Faculty] | None = None
         ) -> tuple[list[str], list[list[Any]]]:
    """A table of the figures: its column keys and rows (first cell the row's label). The faculty
    table needs `by_faculty`; its median cell is a number of days or "" (not a count)."""
    if table == "per_faculty":
        locale = _locale()
        return ["faculty", *FACULTY_COLUMNS], [
            [fac.name.get(locale), *(fac.figures.totals.get(c, 0) for c in stats.YEARLY), fac.figures.active,
             "" if fac.figures.median_days_to_diploma is None else round(fac.figures.median_days_to_diploma)]
            for fac in by_faculty or []]
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
    return _page()


def _page(appendix_errors: dict[str, str] | None = None) -> Response:
    """The statistics page; `appendix_errors` (field -> problem) re-show the appendix form (400)."""
    try:
        as_of, departments, chosen, _suppress = _query()
    except ValidationFailed:
        as_of, error = stats.business_date(_context().clock.now()), True
        principal = current_caller().principal
        assert principal is not None
        departments, chosen = _allowed(principal), None
    else:
        error = False
    figures, by_faculty = counted(as_of, departments)
    principal = current_caller().principal
    assert principal is not None
    allowed = _allowed(principal)
    choices = allowed if allowed is not None else sorted(_context().catalogue.departments)
    tables = {t: rows(figures, t, by_faculty) for t in TABLES}
    charts = {
        "registrations": bars([(str(y), r["registrations"]) for y, r in figures.per_year.items()]),
        "diplomas": bars([(str(y), r["diplomas"]) for y, r in figures.per_year.items()]),
        "funnel": bars([(_label(s), figures.funnel.get(s, 0)) for s in stats.FUNNEL]),
        "settings": bars([(_label(k), v) for k, v in sorted(figures.activities_by_setting.items())]),
    }
    last_year = stats.business_date(_context().clock.now()).year - 1
    appendix = {"from": request.args.get("from", str(last_year)), "to": request.args.get("to", str(last_year)),
                "scope": request.args.get("scope", ""), "lang": request.args.get("lang", _locale()[:2]),
                "suppress": request.args.get("suppress") == "1" if appendix_errors is not None else True}
    body = render_template("statistics.html", figures=figures, as_of=as_of, chosen=chosen, choices=choices,
                           tables=tables, charts=charts, label=_label, error=error,
                           raw_as_of=request.args.get("as_of", ""), appendix=appendix,
                           appendix_errors=appendix_errors or {}, scopes=_scopes(allowed))
    return Response(body, 400 if error or appendix_errors else 200)


# -- the appendix "CIM in numbers" as a PDF ---------------------------------------------------------

#: The appendix's per-year columns, in the order the report shows them.
APPENDIX_COLUMNS = ("registrations", "voided", "diplomas", "withdrawals", "deregistrations", "active")
#: The longest period an appendix covers, in years.
MAX_YEARS = 30


def _scopes(allowed: list[str] | None) -> list[tuple[str, str]]:
    """The appendix's choices of what to count: every department and faculty the caller may count."""
    catalogue = _context().catalogue.departments
    codes = allowed if allowed is not None else sorted(catalogue)
    locale = _locale()
    out = [(f"department:{c}", catalogue[c].name.get(locale) if c in catalogue else c) for c in codes]
    seen: dict[str, str] = {}
    for c in codes:
        if c in catalogue:
            seen.setdefault(catalogue[c].faculty.en, catalogue[c].faculty.get(locale))
    return out + [(f"faculty:{en}", name) for en, name in sorted(seen.items())]


def _appendix_query() -> tuple[int, int, list[str] | None, str, bool, dict[str, str]]:
    """from year, to year, the departments counted, the language, suppression, and the problems."""
    problems: dict[str, str] = {}
    years: list[int] = []
    for name in ("from", "to"):
        raw = (request.args.get(name) or "").strip()
        if not (raw.isdigit() and 1990 <= int(raw) <= 2100):
            problems[name] = str(_l("Give a year, for example 2025."))
            years.append(0)
        else:
            years.append(int(raw))
    start, end = years
    this_year = stats.business_date(_context().clock.now()).year
    if not problems:
        if start > end:
            problems["to"] = str(_l("The last year cannot come before the first."))
        elif end - start + 1 > MAX_YEARS:
            problems["to"] = str(_l("An appendix covers at most %(n)s years.", n=MAX_YEARS))
        elif start > this_year:
            problems["from"] = str(_l("The period cannot start after this year."))
    lang = request.args.get("lang") or "en"
    if lang not in ("en", "sv"):
        problems["lang"] = str(_l("Choose English or Swedish."))
    principal = current_caller().principal
    assert principal is not None
    allowed = _allowed(principal)
    scope = (request.args.get("scope") or "").strip()
    departments: list[str] | None = allowed
    if scope:
        known = dict(_scopes(allowed))
        if scope not in known:
            problems["scope"] = str(_l("Choose one of your departments or faculties."))
        elif scope.startswith("department:"):
            departments = [scope.split(":", 1)[1]]
        else:
            catalogue = _context().catalogue.departments
            departments = [c for c in (allowed if allowed is not None else sorted(catalogue))
                           if c in catalogue and catalogue[c].faculty.en == scope.split(":", 1)[1]]
    return start, end, departments, lang, request.args.get("suppress") == "1", problems


def _period_row(f: stats.Figures, years: range, active: int) -> dict[str, int]:
    row = {c: sum(f.per_year.get(y, {}).get(c, 0) for y in years) for c in stats.YEARLY}
    row["active"] = active
    return row


def appendix_data(facts: list[stats.Fact], start: int, end: int, as_of: date,
                  departments: list[str] | None) -> dict[str, Any]:
    """Everything the appendix shows, as of `as_of` (the period's end, or today if earlier): the
    per-year rows of the period (active: at each year's end), their totals, the same per department
    and per faculty, and the funnel, median, settings and countries of everyone registered by then."""
    years = range(start, end + 1)
    whole = stats.figures(facts, as_of, departments)
    per_year = []
    for y in years:
        year_end = min(date(y, 12, 31), as_of)
        active = stats.figures(facts, year_end, departments).active if year_end < as_of else whole.active
        per_year.append((y, _period_row(whole, range(y, y + 1), active)))
    catalogue = _context().catalogue.departments
    locale = _locale()
    codes = sorted(set(whole.per_department) | set(departments or []))
    parts = partition(facts)
    per_department = []
    for code in codes:
        f = stats.figures(parts.get(code, []), as_of, [code])
        name = catalogue[code].name.get(locale) if code in catalogue else code
        per_department.append((name, _period_row(f, years, f.active)))
    per_faculty = [(fac.name.get(locale), _period_row(fac.figures, years, fac.figures.active), fac.figures)
                   for fac in faculties(facts, as_of, codes, parts)]
    territories = Locale.parse("sv_SE" if locale.startswith("sv") else "en_GB").territories
    return {
        "figures": whole, "years": years, "per_year": per_year,
        "total": _period_row(whole, years, whole.active),
        "per_department": per_department, "per_faculty": per_faculty,
        "funnel": [(_label(s), whole.funnel.get(s, 0)) for s in stats.FUNNEL],
        "settings": [(_label(k), v) for k, v in sorted(whole.activities_by_setting.items())],
        "countries": sorted(((territories.get(k.upper(), k), v) for k, v in whole.activities_by_country.items()),
                            key=lambda item: (-item[1], item[0])),
    }


def _suppressed_bars(items: list[tuple[str, int]], suppress: bool) -> list[dict[str, Any]]:
    """Bars whose small counts are hidden when suppressing: no bar, the value "<5"."""
    out = bars(items)
    if suppress:
        for bar in out:
            if 0 < bar["value"] < stats.SUPPRESS_BELOW:
                bar["value"], bar["length"] = stats.shown(bar["value"], True), 0
    return out


@bp.get("/statistics/appendix.pdf")
@access(READER)
def statistics_appendix() -> Any:
    """The appendix "CIM in numbers" for a period as a PDF (rendered on request: ~0.3 s warm)."""
    from flask_babel import force_locale

    from assessment_service.statistics_pdf import render_appendix

    start, end, departments, lang, suppress, problems = _appendix_query()
    if problems:
        return _page(problems)
    today = stats.business_date(_context().clock.now())
    as_of = min(date(end, 12, 31), today)
    scope = (request.args.get("scope") or "").strip()
    facts = load_facts(as_of, departments)
    with force_locale(lang):
        data = appendix_data(facts, start, end, as_of, departments)
        scope_name = dict(_scopes(_allowed(current_caller().principal))).get(scope)  # type: ignore[arg-type]
        charts = {
            "registrations": _suppressed_bars([(str(y), r["registrations"]) for y, r in data["per_year"]], suppress),
            "diplomas": _suppressed_bars([(str(y), r["diplomas"]) for y, r in data["per_year"]], suppress),
            "funnel": _suppressed_bars(data["funnel"], suppress),
        }
        html = render_template("statistics_appendix.html", lang=lang, start=start, end=end, as_of=as_of,
                               scope_name=scope_name, suppress=suppress, columns=APPENDIX_COLUMNS,
                               label=_label, n=lambda v: stats.shown(v, suppress), charts=charts, **data)
    period = f"{start}" if start == end else f"{start}-{end}"
    name = f"cim-in-numbers-{period}-{(scope.split(':', 1)[1] if scope else 'all').replace(' ', '-')}-{lang}.pdf"
    pdf = render_appendix(html, identifier=f"cim-appendix:{name}:{as_of.isoformat()}:{int(suppress)}")
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{_ascii(name)}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in name)


@bp.get("/statistics/<table>.csv")
@access(READER)
def statistics_csv(table: str) -> Response:
    if table not in TABLES:
        return Response("No such table.\n", 404, mimetype="text/plain")
    as_of, departments, chosen, suppress = _query()
    figures, by_faculty = counted(as_of, departments)
    columns, table_rows = rows(figures, table, by_faculty)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in table_rows:
        writer.writerow([_cell(str(row[0])), *(stats.shown(v, suppress) if isinstance(v, int) else v
                                               for v in row[1:])])
    response = Response(out.getvalue(), mimetype="text/csv")
    name = f"cim-statistics-{table}-{chosen or 'all'}-{as_of.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@api_bp.get("/statistics")
@access(READER)
def statistics_api() -> Any:
    as_of, departments, _chosen, suppress = _query()
    figures, by_faculty = counted(as_of, departments)
    body = figures.as_json(suppress=suppress)
    body["per_faculty"] = [faculty_json(f, suppress) for f in by_faculty]
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


@api_bp.post("/students/<student_id>/registration-void/undo")
@access(READER)
def undo_void_registration_api(student_id: str) -> Any:
    """A coordinator undoes a void: the registration is counted again from today (409 if not voided)."""
    from assessment_service import statistics_services
    from assessment_service.web.reviews_api import _created, _request

    principal = current_caller().principal
    assert principal is not None
    return _created(statistics_services.undo_void(_context(), principal, student_id, _request()))


# -- voiding a mis-registration, and undoing a void, on a page ---------------------------------------

VOID_REASON_LABELS = labels_for(VOID_REASONS, {
    "other_faculty": _l("A student of another faculty"),
    "duplicate": _l("Registered twice"),
    "in_error": _l("Registered in error"),
    "other": _l("Another reason"),
})
VOID_TEXTS = {
    "registration_voided": _l("This registration is already voided."),
    "registration_not_voided": _l("This registration is not voided: there is nothing to undo."),
    "Choose a reason.": _l("Choose a reason."),
}


class _VoidTexts(DecisionForm):
    def translate(self, problem: Any) -> str:
        text = VOID_TEXTS.get(problem.code) or VOID_TEXTS.get(problem.message)
        return str(text) if text is not None else super().translate(problem)


class VoidForm(_VoidTexts):
    reason_code = SelectField(
        _l("Reason"), [InputRequired(_l("Choose a reason.")), AnyOf(VOID_REASONS, message=_l("Choose a reason."))],
        validate_choice=False,
        choices=[SelectChoice("", _l("Choose…"))] + [SelectChoice(k, v) for k, v in VOID_REASON_LABELS.items()],
        description=_l("Only the reason code is recorded, never free text about the student."),
    )
    confirm = BooleanField(
        _l("I have checked: this registration was a mistake and must not be counted"),
        [InputRequired(_l("Confirm that the registration is to be voided."))],
    )


class UndoVoidForm(_VoidTexts):
    confirm = BooleanField(
        _l("I have checked: this registration is to be counted again"),
        [InputRequired(_l("Confirm that the void is to be undone."))],
    )


def _void_page(student_id: str, void_form: VoidForm | None = None, undo_form: UndoVoidForm | None = None,
               status: int = 200) -> tuple[str, int]:
    from assessment_service import statistics_services

    principal = current_caller().principal
    assert principal is not None
    department = statistics_services.department_of(_context(), principal, student_id)
    voided, reason = statistics_services.void_status(_context(), student_id)
    void_form = void_form or VoidForm(formdata=None)
    undo_form = undo_form or UndoVoidForm(formdata=None)
    for form in (void_form, undo_form):
        form.ensure_token()
    return render_template("registration_void.html", student_id=student_id, department=department,
                           voided=voided, reason=VOID_REASON_LABELS.get(reason or "", reason),
                           void_form=void_form, undo_form=undo_form), status


@bp.get("/students/<student_id>/registration-void")
@access(READER)
def registration_void_page(student_id: str) -> tuple[str, int]:
    return _void_page(student_id)


def _void_decision(student_id: str, form: _VoidTexts, action: Any, done: str) -> Any:
    from assessment_service import statistics_services

    principal = current_caller().principal
    assert principal is not None
    statistics_services.department_of(_context(), principal, student_id)  # 404 before anything else
    conflict = False

    def run() -> Any:
        nonlocal conflict
        try:
            return action(principal)
        except RuleViolated:
            conflict = True
            raise

    if form.validate() and form.attempt(run) is not None:
        flash(done, "info")
        return redirect(url_for("statistics_pages.registration_void_page", student_id=student_id), 303)
    if isinstance(form, VoidForm):
        return _void_page(student_id, void_form=form, status=409 if conflict else 422)
    return _void_page(student_id, undo_form=form, status=409 if conflict else 422)


def _form_request(form: DecisionForm) -> RequestContext:
    return RequestContext(actor=current_caller().actor, correlation_id=correlation_id(), idempotency_key=form.token)


@bp.post("/students/<student_id>/registration-void")
@access(READER)
def registration_void(student_id: str) -> Any:
    from assessment_service import statistics_services

    form = VoidForm()
    return _void_decision(student_id, form, lambda by: statistics_services.void_registration(
        _context(), by, student_id, form.reason_code.data, _form_request(form)),
        _("The registration is voided: it is no longer counted from today."))


@bp.post("/students/<student_id>/registration-void/undo")
@access(READER)
def registration_void_undo(student_id: str) -> Any:
    from assessment_service import statistics_services

    form = UndoVoidForm()
    return _void_decision(student_id, form, lambda by: statistics_services.undo_void(
        _context(), by, student_id, _form_request(form)),
        _("The void is undone: the registration is counted again from today."))
