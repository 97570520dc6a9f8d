"""The one seam that says who is acting. Accounts and roles (issue 4) replace its body."""

from __future__ import annotations

from flask import request, session


def current_actor() -> str:
    """The actor recorded on every event this request causes."""
    student_id = session.get("student_id") if request.blueprint == "forms" else None
    if student_id:
        return f"student:{student_id}"
    if request.blueprint == "api":
        return "api:anonymous"
    return "web:anonymous"
