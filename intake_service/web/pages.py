"""Server-rendered pages (placeholder until the forms land)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("forms", __name__)


@bp.get("/")
def home() -> str:
    return "CIM intake"
