"""Right of access (GDPR art. 15): "My data" as a readable page and as a JSON download, and the
student's attachments as downloads. The student themself and a coordinator of their department
may read them (`student_record(write=False)`); when staff do, a `PersonalDataViewed` event is
recorded in the student's audit stream (ids only).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, render_template
from flask_babel import lazy_gettext as _l

from intake_service.services import IntakeServices, RequestContext, account_data
from shared.errors import NotFound
from shared.validation import is_uuid
from shared.web.access import access, current_caller
from shared.web.auth import identity
from shared.web.errors import correlation_id
from shared.web.labels import STUDENT_FIELD_NAMES
from shared.web.privacy import STUDENT_READ, download, json_download, staff_viewer

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


@bp.get("/students/<student_id>/my-data")
@access(STUDENT_READ)
def my_data(student_id: str) -> str:
    data = everything_held(student_id)
    audit_staff_access(student_id, "export")
    account = data.get("account") or {}
    own_actor = f"account:{account['account_id']}" if account.get("account_id") else None
    return render_template(
        "my_data.html",
        data=data,
        student_id=student_id,
        account=data.get("account"),
        own_actor=own_actor,
        event_name=lambda t: EVENT_NAMES.get(t, t),
        field_name=lambda f: FIELD_NAMES.get(f, f),
        what_name=lambda w: WHAT_NAMES.get(w, w),
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
