"""Right of access (GDPR art. 15): what both services' "My data" views share. Who may read (the
student themself or a coordinator of their department), whose look is staff access that must be
recorded, and the downloads (the JSON export, a stored file) with headers that keep them downloads:
never rendered inline, never sniffed, never cached."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response

from shared.web.access import current_caller, student_record

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
