"""Right of access (GDPR art. 15): "My data" as a readable page and as a JSON download, and the
student's attachments as downloads. The student themself and a coordinator of their department
may read them (`student_record(write=False)`); when staff do, a `PersonalDataViewed` event is
recorded in the student's audit stream (ids only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app, render_template
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from intake_service.services import IntakeServices, RequestContext, account_data
from intake_service.web.forms import SETTING_LABELS, country_name
from shared.catalogue import Catalogue
from shared.errors import NotFound
from shared.validation import is_uuid
from shared.web.access import access, current_caller
from shared.web.auth import identity
from shared.web.auth_pages import ROLE_NAMES
from shared.web.errors import correlation_id
from shared.web.labels import STUDENT_FIELD_NAMES
from shared.web.privacy import STUDENT_READ, actor_name, download, json_download, staff_viewer
from shared.web.times import DAY, local_time

bp = Blueprint("privacy", __name__)

EVENT_NAMES: dict[str, Any] = {
    "StudentRegistered": _l("Registered for CIM"),
    "ActivityLogged": _l("Activity logged"),
    "ActivityAmended": _l("Activity amended"),
    "ActivityWithdrawn": _l("Activity withdrawn"),
    "AttachmentUploaded": _l("PDF uploaded"),
    "ReportSubmitted": _l("Report submitted"),
    "ReportResubmitted": _l("Report resubmitted (a new round)"),
    "StudiesCompleted": _l("Studies completed"),
    "RegistrationWithdrawn": _l("Registration withdrawn"),
    "StudentErased": _l("Personal data erased"),
}

FIELD_NAMES: dict[str, Any] = {
    **STUDENT_FIELD_NAMES,
    "student_id": _l("Student id"),
    "university_id": _l("University id"),
    "reason": _l("Reason"),
    "filename": _l("File name"),
    "size": _l("Size (bytes)"),
    "sha256": _l("SHA-256 checksum"),
    "pages": _l("Pages"),
    "completed_on": _l("Completed on"),
    "term": _l("Term"),
    "round": _l("Round"),
}

WHAT_NAMES: dict[str, Any] = {
    "my_cim": _l("My CIM page"),
    "export": _l("This data export"),
    "attachment": _l("An attachment"),
    "events": _l("Your event history (API)"),
}


def services() -> IntakeServices:
    return current_app.extensions["cim.intake"]


def audit_staff_access(student_id: str, what: str) -> None:
    """Record `PersonalDataViewed` when someone other than the student (a coordinator) opens the
    student's personal data. Called after the access rule let the caller through."""
    viewer = staff_viewer(student_id)
    if viewer is None:
        return
    ctx = RequestContext(actor=current_caller().actor, correlation_id=correlation_id())
    services().record_staff_access(student_id, viewer, what, ctx)


def everything_held(student_id: str) -> dict[str, Any]:
    """The intake export plus the identity store's account data, and what is deliberately left out."""
    if not is_uuid(student_id):
        raise NotFound("No such student.")
    export = services().export(student_id)
    export["account"] = account_data(identity(), student_id)
    export["not_included"] = {
        "secrets": "Password hashes, two-factor (TOTP) secrets, API token hashes and session ids are "
        "stored only as hashes or sealed and are never exported; the account section says whether they exist.",
        "copies": "The assessment service keeps copies of your name, e-mail, activities and report answers "
        "taken from the events above; they are erased with them.",
        "other_people": "Other people appear only as opaque actor ids (account:<id>, token:<id>).",
    }
    return export


_TERM = re.compile(r"^(HT|VT)(\d{4})$")


def term_name(code: str) -> str:
    """'HT2026' -> 'Autumn term 2026' / 'Höstterminen 2026'; anything else as it is."""
    match = _TERM.match(code or "")
    if match is None:
        return code
    year = match.group(2)
    return _("Autumn term %(year)s", year=year) if match.group(1) == "HT" else _("Spring term %(year)s", year=year)


class Readable:
    """The values of a student's events as a person reads them, in the page's language: names
    for codes (kind, setting, country, department, programme, term), dates in Lund's calendar,
    activities by their titles, answers under their questions. The JSON export keeps the codes."""

    def __init__(self, catalogue: Catalogue, events: list[dict[str, Any]]) -> None:
        self.lang = str(get_locale() or "en")
        registered: dict[str, Any] = next((e["data"] for e in events if e["type"] == "StudentRegistered"), {})
        self.department = catalogue.department(registered.get("department") or "")
        self.titles: dict[str, str] = {}
        for e in events:
            if e["type"] in ("ActivityLogged", "ActivityAmended") and e["data"].get("title"):
                self.titles[e["data"]["activity_id"]] = e["data"]["title"]

    def _text(self, text: Any, fallback: str) -> str:
        return text.get(self.lang) if text is not None else fallback

    def _day(self, value: Any) -> str:
        try:
            return str(format_date(date.fromisoformat(str(value)), DAY))
        except ValueError:
            return str(value)

    def value(self, key: str, value: Any) -> Any:
        """A display string for one field (answers stay a mapping: question -> answer)."""
        dept = self.department
        if value is None or isinstance(value, bool):
            return value
        match key:
            case "kind":
                if value == "other":
                    return _("Another kind")
                kind = dept.kind(value) if dept else None
                return self._text(kind.name if kind else None, value)
            case "setting":
                return str(SETTING_LABELS.get(value, value))
            case "country_code":
                return country_name(value, self.lang)
            case "department":
                return self._text(dept.name if dept and dept.code == value else None, value)
            case "programme":
                programme = dept.programme(value) if dept else None
                return self._text(programme.name if programme else None, value)
            case "expected_end_term" | "term":
                return term_name(str(value))
            case "start_date" | "end_date" | "completed_on":
                return self._day(value)
            case "activity_id":
                return self.titles.get(value, value)
            case "activity_ids":
                return ", ".join(self.titles.get(a, a) for a in value)
            case "answers" if isinstance(value, dict):
                return {self.question(code): answer for code, answer in self.ordered(value)}
        return value

    def question(self, code: str) -> str:
        questions = self.department.reflection_questions if self.department else ()
        found = next((q for q in questions if q.code == code), None)
        return self._text(found.text if found else None, code)

    def ordered(self, answers: dict[str, str]) -> list[tuple[str, str]]:
        order = {q.code: i for i, q in enumerate(self.department.reflection_questions)} if self.department else {}
        return sorted(answers.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


def role_names(roles: list[dict[str, Any]], catalogue: Catalogue) -> list[str]:
    """'Student (School of Social Work)' for each of the account's roles."""
    lang = str(get_locale() or "en")
    out = []
    for grant in roles:
        role = str(ROLE_NAMES.get(grant["role"], grant["role"]))
        dept = catalogue.department(grant.get("department") or "")
        out.append(f"{role} ({dept.name.get(lang)})" if dept else role)
    return out


@bp.get("/students/<student_id>/my-data")
@access(STUDENT_READ)
def my_data(student_id: str) -> str:
    data = everything_held(student_id)
    audit_staff_access(student_id, "export")
    account = data.get("account") or {}
    catalogue = services().catalogue
    readable = Readable(catalogue, data["events"])
    who: Callable[[str | None], str] = lambda actor: actor_name(actor, student_id)  # noqa: E731
    return render_template(
        "my_data.html",
        data=data,
        student_id=student_id,
        account=data.get("account"),
        roles=role_names(account.get("roles") or [], catalogue),
        event_name=lambda t: EVENT_NAMES.get(t, t),
        field_name=lambda f: FIELD_NAMES.get(f, f),
        what_name=lambda w: WHAT_NAMES.get(w, w),
        shown=readable.value,
        who=who,
        when=local_time,
        assessment_url=current_app.config["CIM_SETTINGS"].assessment_url.rstrip("/"),
    )


@bp.get("/students/<student_id>/my-data.json")
@access(STUDENT_READ)
def my_data_json(student_id: str) -> Response:
    data = everything_held(student_id)
    audit_staff_access(student_id, "export")
    return json_download(data, f"cim-my-data-{student_id}.json")


@bp.get("/students/<student_id>/attachments/<attachment_id>")
@access(STUDENT_READ)
def attachment(student_id: str, attachment_id: str) -> Response:
    if not is_uuid(student_id):
        raise NotFound("No such student.")
    _filename, content = services().attachment(student_id, attachment_id)
    audit_staff_access(student_id, "attachment")
    # The stored display name is the student's; the download is named by id only, so no
    # header ever carries user-controlled text.
    return download(content, "application/pdf", f"{attachment_id}.pdf")
