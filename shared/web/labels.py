"""Names of the fields of a student's record, for the pages that show records field by field
(both services' "My data"). Each service adds the fields only it holds."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

STUDENT_FIELD_NAMES: dict[str, Any] = {
    "name": _l("Name"),
    "email": _l("E-mail"),
    "department": _l("Department"),
    "programme": _l("Programme"),
    "expected_end_term": _l("Expected end of studies"),
    "rules": _l("Rules version"),
    "activity_id": _l("Activity id"),
    "kind": _l("Kind"),
    "title": _l("Title"),
    "organiser": _l("Organiser"),
    "setting": _l("Where"),
    "country_code": _l("Country"),
    "start_date": _l("Start date"),
    "end_date": _l("End date"),
    "hours": _l("Hours"),
    "description": _l("Description"),
    "attachment_id": _l("Attachment id"),
    "report_id": _l("Report id"),
    "answers": _l("Answers"),
    "activity_ids": _l("Activities"),
}
