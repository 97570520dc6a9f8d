"""The historical import's page (issue 15, docs/statistics.md "Historical import").

- `GET /statistics/import`: the upload form (a CSV, at most IMPORT_MAX_BYTES).
- `POST /statistics/import`: checks the file and shows the dry run: what it would record (rows per
  department, year and event) and every error with its line number. Nothing is recorded. A file
  without errors is kept on the server under its SHA-256 (IMPORT_DIR, deleted when imported or
  after a day) and a confirm form names that hash.
- `POST /statistics/import/confirm`: checks the kept file again, with the confirming person's
  roles, and records it (history_import_services.record). The browser never sends the rows back.

Who: a coordinator (of every department the file names) or an administrator; anyone else 403.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template, request
from flask_babel import lazy_gettext as _l

from assessment_service import history_import_services as importer
from assessment_service.bootstrap import AssessmentContext
from assessment_service.history_import import MESSAGES, Plan, RowError
from shared.web.access import Caller, Rule, access, current_caller

bp = Blueprint("import_pages", __name__)

#: The largest file the page takes (100,000 rows are ~6 MB).
IMPORT_MAX_BYTES = 20 * 1024 * 1024
#: Checked files wait this long for their confirmation.
KEEP_SECONDS = 24 * 3600
#: Up to this many recorded rows the figures are brought up to date in the request; more are left
#: to the projections' regular catch-up (a request is not held for a minute).
PROJECT_AT_ONCE = 5000
_HASH = re.compile(r"^[0-9a-f]{64}$")

#: The errors' words on the page (the same codes and parameters as history_import.MESSAGES).
ERRORS = {
    "empty": _l("The file is empty: it needs a header row and at least one row."),
    "encoding": _l("The file is not UTF-8 text."),
    "too_many_rows": _l("The file has more than %(limit)s rows."),
    "missing_column": _l("The header lacks the column %(column)s."),
    "unknown_column": _l("The header has an unknown column %(column)s."),
    "duplicate_column": _l("The header names the column %(column)s twice."),
    "columns": _l("The row has %(found)s fields where the header has %(expected)s."),
    "person": _l("The person identifier is missing or longer than 200 characters."),
    "department": _l("Unknown department %(value)s."),
    "department_not_yours": _l("You are not a coordinator of the department %(value)s."),
    "programme": _l("The programme code is missing or not a code (letters, digits, - _ .; at most 64)."),
    "event": _l("Unknown event %(value)s: use one of %(choices)s."),
    "date": _l("The date %(value)s is not a date written YYYY-MM-DD."),
    "future": _l("The date %(value)s is in the future."),
    "setting_missing": _l("An activity needs a setting: one of %(choices)s."),
    "setting": _l("Unknown setting %(value)s: use one of %(choices)s."),
    "setting_not_here": _l("Only an activity has a setting or a country."),
    "country": _l("%(value)s is not a country code (ISO 3166-1, two letters, e.g. DE)."),
    "country_missing": _l("An activity abroad needs a country."),
    "reason_missing": _l("A voided registration needs a reason: one of %(choices)s."),
    "reason": _l("Unknown reason %(value)s: use one of %(choices)s."),
    "reason_not_here": _l("Only a voided row has a reason."),
    "duplicate": _l("The same happening as line %(line)s."),
    "no_registration": _l("This person has no registered row in this department in the file."),
    "second_registration": _l("This person is registered already on line %(line)s."),
    "before_registration": _l("Dated before the person's registration on line %(line)s."),
    "approved_before_submitted": _l("Approved before the person's report was submitted (line %(line)s)."),
    "diploma_before_approved": _l("A diploma before the person's approval (line %(line)s)."),
    "after_withdrawal": _l("Dated after the person withdrew on line %(line)s."),
    "second_void": _l("This person's registration is voided already on line %(line)s."),
}
assert set(ERRORS) == set(MESSAGES)  # a new error needs its words

EVENTS = {
    "registered": _l("Registered"), "activity": _l("Activity"), "studies_completed": _l("Studies completed"),
    "report_submitted": _l("Report submitted"), "approved": _l("Report approved"),
    "presentation_held": _l("Presentation held"), "diploma_issued": _l("Diploma issued"),
    "withdrawn": _l("Withdrawn"), "deregistered": _l("Deregistered"), "voided": _l("Voided"),
}


def _importer(caller: Caller, args: Any) -> bool:
    return importer.may_import_any(caller.principal)


IMPORTER = Rule("statistics:importer", _importer)


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def limit_upload(app: Flask) -> None:
    """Take at most IMPORT_MAX_BYTES on the upload (before CSRFProtect reads the form: call this
    before configure_web); a bigger body is answered 413."""

    @app.before_request
    def _import_body_limit() -> None:
        if request.method == "POST" and request.endpoint == "import_pages.upload":
            request.max_content_length = IMPORT_MAX_BYTES


def _kept(digest: str) -> Path:
    return Path(_context().settings.data_dir) / "history-imports" / f"{digest}.csv"


def _keep(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = _kept(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob("*.csv"):  # nothing waits for longer than a day
        if old.stat().st_mtime < time.time() - KEEP_SECONDS:
            old.unlink(missing_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    return digest


def error_text(error: RowError) -> str:
    return str(ERRORS[error.code] % dict(error.params)) if error.params else str(ERRORS[error.code])


def _render(status: int = 200, **values: Any) -> Response:
    values.setdefault("plan", None)
    values.setdefault("problem", None)
    values.setdefault("result", None)
    values.setdefault("digest", None)
    values.setdefault("later", False)
    body = render_template("statistics_import.html", error_text=error_text, events=EVENTS,
                           max_mb=IMPORT_MAX_BYTES // (1024 * 1024), **values)
    return Response(body, status)


def _plan(data: bytes) -> Plan:
    principal = current_caller().principal
    assert principal is not None
    return importer.check(_context(), data, by=principal, actor=principal.account_id)


@bp.get("/statistics/import")
@access(IMPORTER)
def form() -> Response:
    return _render()


@bp.post("/statistics/import")
@access(IMPORTER)
def upload() -> Response:
    """The dry run: what the file would record and every error; nothing recorded."""
    upload = request.files.get("file")
    data = upload.read() if upload is not None else b""
    if upload is None or not upload.filename or not data:
        return _render(400, problem=_l("Choose a CSV file to check."))
    plan = _plan(data)
    if not plan.ok:
        return _render(422, plan=plan)
    return _render(plan=plan, digest=_keep(data))


@bp.post("/statistics/import/confirm")
@access(IMPORTER)
def confirm() -> Response:
    """Record the file checked before, checked again now (not a copy the browser sends)."""
    digest = (request.form.get("digest") or "").strip()
    path = _kept(digest) if _HASH.match(digest) else None
    if path is None or not path.is_file():
        return _render(400, problem=_l("That file is no longer waiting to be imported: choose it again."))
    data = path.read_bytes()
    plan = _plan(data)
    if not plan.ok:
        return _render(422, plan=plan)
    principal = current_caller().principal
    assert principal is not None
    result = importer.record(_context(), plan, actor=principal.account_id)
    path.unlink(missing_ok=True)
    if result.recorded <= PROJECT_AT_ONCE:
        from assessment_service.services import _project

        _project(_context())  # the figures count the rows once the projection has them
    # else the projections' regular catch-up takes them (about 2,000 rows a second)
    return _render(plan=plan, result=result, later=result.recorded > PROJECT_AT_ONCE)
