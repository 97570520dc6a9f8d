"""The review queue as a table (filters, sorting, pages; the same as JSON at /api/v1/queue), the
coordinators' bulk assignment (choose, preview, confirm) and the assessor group's agenda.

Who sees what is the queue's rule (`access_rules.queue_scope`): coordinators every report of
their departments, assessors the reports assigned to them. Each row shown is a staff view of
the student's personal data and is recorded before the page is rendered.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as Redirect

from assessment_service import queries, services, staff_mail
from assessment_service import queue_queries as qq
from assessment_service.bootstrap import AssessmentContext
from assessment_service.web.access_rules import queue_reader, queue_scope
from assessment_service.web.pages import _staff_names
from shared.catalogue import DEFAULT_REVIEW_DAYS
from shared.errors import CimError, NotFound, ValidationFailed
from shared.identity.models import Principal, Role
from shared.validation import is_uuid
from shared.web.access import Rule, access, current_caller
from shared.web.auth import identity
from shared.web.errors import correlation_id

bp = Blueprint("queue_pages", __name__)
api_bp = Blueprint("queue_api", __name__, url_prefix="/api/v1")

SCOPE_READ = "assessment:read"

STATE_LABELS = {
    "waiting": _l("Waiting"),
    "in_review": _l("In review"),
    "revision_requested": _l("Revision requested"),
    "resubmitted": _l("Resubmitted"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
}
SORT_LABELS = {
    "student": _l("Student"),
    "programme": _l("Programme"),
    "submitted": _l("Submitted"),
    "waiting": _l("Days waiting"),
    "round": _l("Round"),
    "checklist": _l("Checklist"),
    "state": _l("State"),
}
#: What each bad GET parameter of the page is told, in the page's language.
FILTER_ERRORS = {
    "state": _l("Choose one of the listed states."),
    "waiting_over": _l("Give a whole number of days (0 or more)."),
    "assessor": _l("Choose one of the listed assessors."),
    "programme": _l("Choose one of the listed programmes."),
    "sort": _l("Sort by one of the table's columns."),
    "page": _l("Give a page number (1 or more)."),
}
#: How many assessors a balanced suggestion gives each report when the rule set says nothing.
DEFAULT_PER_REPORT = 2


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _today() -> date:
    return _context().clock.now().date()


def _principal() -> Principal:
    principal = current_caller().principal
    if principal is None:  # the rules let only people through
        raise NotFound("No such page.")
    return principal


def _record_views(principal: Principal | None, student_ids: list[str]) -> None:
    """Before answering: a failure to record (503) shows nothing."""
    if principal is not None and student_ids:
        req = services.RequestContext(actor=current_caller().actor, correlation_id=correlation_id())
        services.record_views(_context(), student_ids, principal.account_id, "review_queue", req)


def _read(filt: qq.QueueFilter, principal: Principal | None) -> qq.QueuePage:
    ctx = _context()
    with ctx.reader.connect() as conn:
        return qq.queue_page(
            conn, filt, scope=queue_scope(principal) if principal is not None else None,
            account_id=principal.account_id if principal is not None else None, today=_today(),
            departments=ctx.catalogue.department, per_page=qq.PER_PAGE,
        )


# -- the page ------------------------------------------------------------------------------------
def _assessor_options(principal: Principal) -> list[tuple[str, str]]:
    """The assessors of the departments the caller coordinates (the filter's and the bulk form's
    choices), by name."""
    seen: dict[str, str] = {}
    for department in sorted(principal.departments(Role.COORDINATOR)):
        for account_id, name in services.assessors_of_department(identity(), department):
            seen.setdefault(account_id, name)
    return sorted(seen.items(), key=lambda pair: (pair[1].casefold(), pair[0]))


def _programme_options(principal: Principal) -> list[tuple[str, str]]:
    lang = _lang()
    options = []
    catalogue = _context().catalogue
    for code in sorted(principal.departments(Role.COORDINATOR) | principal.departments(Role.ASSESSOR)):
        dept = catalogue.department(code)
        if dept is not None:
            options += [(p.code, p.name.get(lang)) for p in dept.programmes]
    return options


def local_date(value: str | None) -> str:
    """An ISO timestamp as a date in the reader's time zone and language."""
    try:
        return str(format_date(datetime.fromisoformat(value or ""), "medium"))
    except ValueError:
        return value or ""


def _lang() -> str:
    from flask_babel import get_locale

    return "sv" if str(get_locale() or "en").startswith("sv") else "en"


def queue_view() -> tuple[str, int]:
    """GET /queue (also / and /review-queue): the table, as the caller may see it."""
    principal = _principal()
    status = 200
    errors: dict[str, str] = {}
    try:
        filt = qq.parse_filter(request.args)
    except ValidationFailed as exc:
        errors = {name: str(FILTER_ERRORS[name]) for name in exc.problems if name in FILTER_ERRORS}
        filt = qq.QueueFilter()
        status = 400
    page = qq.QueuePage(0, 1, qq.PER_PAGE, []) if errors else _read(filt, principal)
    _record_views(principal, [item["student_id"] for item in page.items])
    coordinator = bool(principal.departments(Role.COORDINATOR))
    names = _staff_names([a for item in page.items for a in item["assessor_account_ids"]])
    mine = [item for item in page.items if principal.account_id in item["assessor_account_ids"]]
    due: dict[str, Any] = {}
    if mine:  # when the caller's own reviews are due (the rule set's review_days; docs/mail.md)
        with _context().reader.connect() as conn:
            due = staff_mail.my_reviews_due(conn, _context().catalogue, principal.account_id,
                                            {item["department"] for item in mine})
    return render_template(
        "queue.html", page=page, filt=filt, errors=errors, args=request.args, staff_names=names,
        review_due=due, today=staff_mail.local_date(_context().clock.now()),
        format_day=lambda d: format_date(d, "long"),
        coordinator=coordinator, assessor_options=_assessor_options(principal),
        programme_options=_programme_options(principal), states=qq.STATES, state_labels=STATE_LABELS,
        sort_labels=SORT_LABELS, lang=_lang(), new_token=lambda: str(uuid.uuid4()),
        coordinated=principal.departments(Role.COORDINATOR), local_date=local_date,
    ), status


# -- the JSON --------------------------------------------------------------------------------------
@api_bp.get("/queue")
@access(queue_reader(scope=SCOPE_READ))
def queue_json() -> Response:
    """GET /api/v1/queue: one page of the table as JSON (bad parameters: 422 naming them)."""
    principal = current_caller().principal
    filt = qq.parse_filter(request.args)
    page = _read(filt, principal)
    _record_views(principal, [item["student_id"] for item in page.items])
    names = _staff_names([a for item in page.items for a in item["assessor_account_ids"]])
    items = [
        {**item, "assessors": [{"account_id": a, "name": names[a]} for a in item["assessor_account_ids"]],
         "url": url_for("pages.report", report_id=item["report_id"])}
        for item in page.items
    ]
    response = jsonify({
        "count": page.total, "page": page.page, "per_page": page.per_page, "pages": page.pages,
        "filter": filt.args(), "items": items,
    })
    response.headers["Cache-Control"] = "no-store"
    return response


# -- bulk assignment -------------------------------------------------------------------------------
def _coordinator_rule() -> Rule:
    def check(caller: Any, _args: Mapping[str, Any]) -> bool:
        if caller.principal is None or not caller.principal.departments(Role.COORDINATOR):
            from shared.web.access import Forbidden

            raise Forbidden("Only a coordinator assigns assessors.")
        return True

    return Rule("queue:assign", check)


COORDINATORS = _coordinator_rule()


def _chosen_reports(principal: Principal, report_ids: list[str]) -> list[dict[str, Any]]:
    """The reports ticked, each one the caller coordinates and waiting for assessors; any other
    id (unknown, foreign, malformed) is refused as unknown (404), so ids cannot be probed."""
    if not report_ids or any(not is_uuid(r) for r in report_ids):
        raise NotFound("No such report.")
    coordinated = principal.departments(Role.COORDINATOR)
    scope = qq.QueueScope(principal.account_id, frozenset(coordinated), frozenset())
    with _context().reader.connect() as conn:
        rows = qq.queue_rows(conn, report_ids, scope)
    if len(rows) != len(set(report_ids)):
        raise NotFound("No such report.")
    return rows


def suggest_balanced(
    reports: list[dict[str, Any]], assessors: Mapping[str, list[str]], load: Mapping[str, int],
    conflicts: set[tuple[str, str]], per_report: Mapping[str, int],
) -> dict[str, list[str]]:
    """PURE: spread the reports over their departments' assessors, each time the ones with the
    fewest open reviews (counting this suggestion's own), skipping an assessor already on the
    report or with a declared conflict of interest with its student. `assessors`: department ->
    account ids; `per_report`: department -> how many assessors a report needs."""
    counts = dict(load)
    out: dict[str, list[str]] = {}
    for report in reports:
        taken = set(report["assessor_account_ids"])
        wanted = max(per_report.get(report["department"], DEFAULT_PER_REPORT) - len(taken), 0)
        candidates = [
            a for a in assessors.get(report["department"], [])
            if a not in taken and (report["student_id"], a) not in conflicts
        ]
        chosen = sorted(candidates, key=lambda a: (counts.get(a, 0), a))[:wanted]
        for a in chosen:
            counts[a] = counts.get(a, 0) + 1
        out[report["report_id"]] = chosen
    return out


def _plan(principal: Principal, rows: list[dict[str, Any]], mode: str, chosen: list[str]) -> dict[str, list[str]]:
    departments = sorted({row["department"] for row in rows})
    ctx = _context()
    by_department = {d: [a for a, _name in services.assessors_of_department(identity(), d)] for d in departments}
    with ctx.reader.connect() as conn:
        conflicts = qq.conflicts_of(conn, sorted({row["student_id"] for row in rows}))
        load = qq.open_reviews(conn, sorted({a for ids in by_department.values() for a in ids}))
    # A decided report (or one waiting for the student's revision) gets nobody new.
    open_rows = [row for row in rows if row["state"] in qq.OPEN_STATES]
    plan: dict[str, list[str]] = {row["report_id"]: [] for row in rows}
    if mode == "balanced":
        per_report = {}
        for d in departments:
            dept = ctx.catalogue.department(d)
            per_report[d] = dept.approvals_required if dept is not None else DEFAULT_PER_REPORT
        return plan | suggest_balanced(open_rows, by_department, load, conflicts, per_report)
    return plan | {
        row["report_id"]: [
            a for a in chosen
            if a in by_department[row["department"]] and a not in row["assessor_account_ids"]
            and (row["student_id"], a) not in conflicts
        ]
        for row in open_rows
    }


@bp.post("/queue/assign")
@access(COORDINATORS)
def assign_preview() -> tuple[str, int] | Redirect:
    """The preview: which assessors each ticked report would get. Nothing is recorded yet."""
    principal = _principal()
    report_ids = request.form.getlist("report")
    mode = request.form.get("mode", "chosen")
    chosen = request.form.getlist("assessor")
    if not report_ids:
        flash(_("Tick at least one report to assign."), "error")
        return redirect(url_for("pages.review_queue"), code=303)
    if mode not in ("chosen", "balanced") or any(not is_uuid(a) for a in chosen):
        raise ValidationFailed("Bad form.", {"assessor": ["Choose assessors from the list."]})
    rows = _chosen_reports(principal, report_ids)
    if mode == "chosen" and not chosen:
        flash(_("Choose at least one assessor, or let the system suggest a balanced load."), "error")
        return redirect(url_for("pages.review_queue"), code=303)
    plan = _plan(principal, rows, mode, chosen)
    names = _staff_names([a for ids in plan.values() for a in ids]
                         + [a for r in rows for a in r["assessor_account_ids"]])
    return render_template("queue_assign.html", rows=rows, plan=plan, staff_names=names,
                           form_token=str(uuid.uuid4())), 200


@bp.post("/queue/assign/confirm")
@access(COORDINATORS)
def assign_confirm() -> Redirect:
    """Record the previewed assignments: one AssessorAssigned per pair, each keyed by the
    preview's token with its pair (a double confirm stores each once)."""
    principal = _principal()
    token = request.form.get("form_token", "")
    pairs = [p.split(":", 1) for p in request.form.getlist("pair")]
    if not is_uuid(token) or not pairs or any(len(p) != 2 or not is_uuid(p[1]) for p in pairs):
        raise ValidationFailed("Bad form.", {"pair": ["Confirm the assignments of a preview."]})
    _chosen_reports(principal, sorted({p[0] for p in pairs}))
    ctx = _context()
    done, refused = 0, []
    for report_id, assessor in pairs:
        req = services.RequestContext(actor=current_caller().actor, correlation_id=correlation_id(),
                                      idempotency_key=str(uuid.uuid5(uuid.UUID(token), f"{report_id}:{assessor}")))
        try:
            services.assign_assessor(ctx, identity(), principal, report_id, assessor, req)
            done += 1
        except CimError:
            refused.append((report_id, assessor))
    flash(_("%(num)d assignments recorded.", num=done), "info")
    if refused:
        flash(_("%(num)d assignments could not be recorded (the report or the assessor changed meanwhile).",
                num=len(refused)), "error")
    return redirect(url_for("pages.review_queue"), code=303)


# -- the agenda ------------------------------------------------------------------------------------
def _group_member(caller: Any, _args: Mapping[str, Any]) -> bool:
    return bool(caller.has_role(Role.ASSESSOR) or caller.has_role(Role.COORDINATOR))


@bp.get("/agenda")
@access(Rule("agenda:read", _group_member))
def agenda() -> str:
    """The assessor group's agenda, per department of the caller: kinds awaiting a ruling,
    disagreements, overdue reviews. Printable."""
    principal = _principal()
    ctx = _context()
    today = _today()
    lund_today = staff_mail.local_date(ctx.clock.now())
    groups: list[dict[str, Any]] = []
    with ctx.reader.connect() as conn:
        for code in sorted(principal.departments(Role.COORDINATOR) | principal.departments(Role.ASSESSOR)):
            rule_set = ctx.catalogue.department(code)
            listed = [k.code for k in rule_set.activity_kinds] if rule_set else []
            groups.append({
                "code": code,
                "review_days": rule_set.review_days if rule_set else DEFAULT_REVIEW_DAYS,
                "rulings": queries.kinds_awaiting_ruling(conn, code, listed),
                "disagreements": qq.disagreements(conn, code),
                # Past their due date, as the assessor's reminder and the coordinator's digest count them.
                "overdue": staff_mail.overdue_reviews(conn, rule_set, lund_today) if rule_set else [],
            })
    # No student's name: the agenda goes to the whole group, and an assessor sees only the
    # reports assigned to them (the links answer as the report page does).
    names = _staff_names([row["assessor_account_id"] for g in groups for row in g["overdue"]]
                         + [a for g in groups for row in g["disagreements"] for a, _r in row["recommendations"]])
    return render_template("agenda.html", groups=groups, staff_names=names, local_date=local_date,
                           today=str(format_date(today, "long")), format_day=lambda d: format_date(d, "long"),
                           recommendation_labels=RECOMMENDATION_LABELS)


RECOMMENDATION_LABELS = {"approve": _l("approve"), "revise": _l("revise"), "reject": _l("reject")}
