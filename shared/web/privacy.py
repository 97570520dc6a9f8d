"""Right of access (GDPR art. 15): what both services' "My data" views share. Who may read (the
student themself or a coordinator of their department), whose look is staff access that must be
recorded, and the downloads (the JSON export, a stored file) with headers that keep them downloads:
never rendered inline, never sniffed, never cached."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from shared.identity.models import Role
from shared.web.access import current_caller, student_record
from shared.web.auth import identity

#: The access rule of every "My data" view and download: the student, or a coordinator of their
#: department; anyone else gets the same 404 as for an unknown id.
STUDENT_READ = student_record(write=False)


def staff_viewer(student_id: str) -> str | None:
    """The account id of the member of staff looking at this student's data, to be recorded as
    `PersonalDataViewed`; None when the student looks at their own (that is not staff access)."""
    caller = current_caller()
    if caller.account_id is None or caller.student_id == student_id:
        return None
    return caller.account_id


def download(content: bytes | str, mimetype: str, filename: str) -> Response:
    """A download named `filename`, which must not carry user-controlled text (use ids)."""
    response = Response(content, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


def json_download(data: Mapping[str, Any], filename: str) -> Response:
    """Everything held, as the JSON file a student keeps (readable: indented, not ASCII-escaped)."""
    return download(json.dumps(data, ensure_ascii=False, indent=2, default=str), "application/json", filename)


#: Who did something, as the student reads it: a member of staff by their role, never by name.
ACTOR_ROLE_NAMES: dict[Role, Any] = {
    Role.ADMINISTRATOR: _l("an administrator"),
    Role.COORDINATOR: _l("a coordinator"),
    Role.ASSESSOR: _l("an assessor"),
    Role.STUDENT: _l("a student"),
}
_ROLE_ORDER = (Role.ADMINISTRATOR, Role.COORDINATOR, Role.ASSESSOR, Role.STUDENT)


def actor_name(actor: str | None, student_id: str) -> str:
    """Who recorded an event in the student's data, in the page's language: "you" for the
    student's own account (and for what they did before signing in: registering), "CIM,
    automatically" for a scheduled job, else the role of the member of staff (their highest),
    or "a connected system" for an API token. Names of other people are never shown."""
    if not actor:
        return _("(none)")
    if actor == "anonymous":
        return _("you, before signing in")
    kind, _sep, ident = actor.partition(":")
    if kind == "system":
        return _("CIM, automatically")
    if kind == "token":
        return _("a connected system (API token)")
    if kind != "account" or not ident:
        return actor
    store = identity().store
    account = store.get_account(ident)
    if account is not None and account.student_id == student_id:
        return _("you")
    roles = {grant.role for grant in store.grants_of(ident)}
    role = next((r for r in _ROLE_ORDER if r in roles), None)
    return str(ACTOR_ROLE_NAMES[role]) if role is not None else _("a member of staff")
