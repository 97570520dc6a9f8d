"""The staff pages of the outbox (docs/mail.md): `/outbox` shows what was sent, what waits and
what failed (with the error and the next attempt), with "retry now" for a failed mail;
`/mail-templates` previews every mail template with its sample data in English and Swedish
(subject, plain text and the HTML as the reader sees it).

Who: administrators see every mail; a coordinator sees the mails of their departments (a mail
without a department, such as a sign-in link, only administrators). Addresses are shown masked
(`a…@example.org`): enough to tell mails apart, not a list of students' addresses. The template
previews hold sample data only: any member of staff may read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.mail_templates import LOCALES, TEMPLATES, render
from shared.outbox import FAILED, STATUSES, Outbox, Row
from shared.web import outbox_glue
from shared.web.access import Caller, Rule, access, current_caller

bp = Blueprint("mail", __name__)

NO_SUCH_MAIL = "No such mail."

STATUS_LABELS = {
    "pending": _l("waiting"),
    "sending": _l("being sent"),
    "sent": _l("sent"),
    "failed": _l("failed"),
    "cancelled": _l("cancelled"),
}
LOCALE_NAMES = {"en": _l("English"), "sv": _l("Swedish")}
RECIPIENTS = {"student": _l("to the student"), "assessor": _l("to the assessor"),
              "staff": _l("to the member of staff")}
PURPOSES = {
    "sign_in_link": _l("A one-time sign-in link"),
    "sign_in_locked": _l("Sign-ins to a staff account are paused (both languages in one mail)"),
    "staff_setup_link": _l("A one-time link to choose a password and enrol an authenticator"),
    "registration_confirmed": _l("The student registered for CIM"),
    "activity_ruled": _l("The assessor group ruled on an activity kind the catalogue lacked"),
    "report_received": _l("The student's report (or a resubmission) arrived"),
    "report_assigned": _l("A new report to review"),
    "revision_requested": _l("The report needs a revision (with the joint summary)"),
    "report_approved": _l("The report is approved: how to book a presentation"),
    "report_rejected": _l("The report is rejected"),
    "presentation_booked": _l("A presentation is booked (with an .ics invitation)"),
    "diploma_issued": _l("The diploma is issued"),
    "deadline_reminder": _l("The deadline is near and no report is under review"),
    "deregistered": _l("The student passed the deadline and is deregistered"),
    "deadline_extended": _l("The coordinator extended the deadline"),
    "reinstated": _l("The coordinator reinstated a deregistered student"),
    "booking_cancelled": _l("A coordinator cancelled the booking, or the occasion was cancelled"),
    "reviews_overdue": _l("Reviews past their due date (first day overdue, then weekly)"),
    "coordinator_digest": _l("The coordinator's Monday digest (counts and links, no names)"),
}


def _staff_reader(caller: Caller, args: Mapping[str, Any]) -> bool:
    principal = caller.principal
    return principal is not None and (principal.is_administrator or principal.has_role(Role.COORDINATOR))


def _template_reader(caller: Caller, args: Mapping[str, Any]) -> bool:
    principal = caller.principal
    return principal is not None and any(g.role is not Role.STUDENT for g in principal.grants)


#: Administrators, and coordinators (scoped to their departments by the view).
OUTBOX_READER = Rule("outbox:read", _staff_reader)
#: Any member of staff (sample data only).
TEMPLATE_READER = Rule("mail-templates:read", _template_reader)


def _departments(principal: Principal) -> list[str] | None:
    """None: every mail (an administrator); else the departments whose mails they see."""
    return None if principal.is_administrator else sorted(principal.departments(Role.COORDINATOR))


def masked(address: str | None) -> str:
    if not address:
        return "—"
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}"


@bp.app_template_global("clock_holds")
def clock_holds() -> list[Any]:
    """The jobs the clock guard holds: the notice on /outbox and /admin/accounts
    (_clock_guard_notice.html)."""
    return outbox_glue.clock_holds()


def _box() -> Outbox:
    return outbox_glue.outbox()


@bp.get("/outbox")
@access(OUTBOX_READER)
def outbox_page() -> str:
    principal = current_caller().principal
    assert principal is not None
    status = request.args.get("status", "")
    statuses = [status] if status in STATUSES else None
    rows = _box().rows(statuses=statuses, departments=_departments(principal))
    return render_template("outbox.html", rows=rows, status=status if statuses else "", statuses=STATUSES,
                           masked=masked, failed=FAILED, status_labels=STATUS_LABELS)


@bp.post("/outbox/<int:row_id>/retry")
@access(OUTBOX_READER)
def retry(row_id: int) -> Response:
    principal = current_caller().principal
    assert principal is not None
    row: Row | None = _box().get(row_id)
    departments = _departments(principal)
    if row is None or (departments is not None and row.department not in departments):
        raise NotFound(NO_SUCH_MAIL)
    if _box().retry_now(row_id):
        outbox_glue.kick()
        flash(_("The mail will be sent again in a moment."), "success")
    else:
        flash(_("Only a failed mail can be retried."), "error")
    return redirect(url_for("mail.outbox_page"), code=303)


@bp.get("/mail-templates")
@access(TEMPLATE_READER)
def templates_page() -> str:
    previews = []
    for name, template in TEMPLATES.items():
        previews.append((template, {locale: render(name, locale, template.sample) for locale in LOCALES}))
    return render_template("mail_templates.html", previews=previews, purposes=PURPOSES, recipients=RECIPIENTS,
                           locale_names=LOCALE_NAMES)


@bp.get("/mail-templates/<name>/<locale>.html")
@access(TEMPLATE_READER)
def template_html(name: str, locale: str) -> Response:
    """The HTML part alone (the preview page shows it in a sandboxed frame)."""
    if name not in TEMPLATES or locale not in LOCALES:
        raise NotFound("No such mail template.")
    rendered = render(name, locale, TEMPLATES[name].sample)
    response = Response(rendered.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response
