"""Server-rendered pages: the review queue, in English and Swedish."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_interval
from flask import Blueprint, Response, current_app, render_template, request
from flask_babel import format_date, format_datetime, get_locale
from flask_babel import lazy_gettext as _l

from assessment_service import queries
from shared.catalogue import Catalogue
from shared.identity.models import Role
from shared.web.access import access, staff_of_department
from shared.web.setup import LOCALES

bp = Blueprint("pages", __name__)

REVIEWERS = staff_of_department(Role.ASSESSOR, Role.COORDINATOR)

SETTINGS = {"abroad": _l("abroad"), "at_home": _l("at home"), "digital": _l("online")}


def _locale() -> str:
    return str(get_locale() or "en")


def _catalogue() -> Catalogue:
    return current_app.extensions["cim.assessment"].catalogue


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    lang = _locale()
    catalogue = _catalogue()

    def department_name(code: str | None) -> str:
        dept = catalogue.department(code or "")
        return dept.name.get(lang) if dept else (code or "")

    def programme_name(dept_code: str | None, code: str | None) -> str:
        dept = catalogue.department(dept_code or "")
        programme = dept.programme(code or "") if dept else None
        return programme.name.get(lang) if programme else (code or "")

    def kind_name(dept_code: str | None, code: str) -> str:
        dept = catalogue.department(dept_code or "")
        kind = dept.kind(code) if dept else None
        return kind.name.get(lang) if kind else code

    def question_text(dept_code: str | None, code: str) -> str:
        dept = catalogue.department(dept_code or "")
        question = next((q for q in dept.reflection_questions if q.code == code), None) if dept else None
        return question.text.get(lang) if question else code

    def ordered_answers(dept_code: str | None, answers: dict[str, str]) -> list[tuple[str, str]]:
        """Answers in the department's question order; any unknown codes after, by code."""
        dept = catalogue.department(dept_code or "")
        order = {q.code: i for i, q in enumerate(dept.reflection_questions)} if dept else {}
        return sorted(answers.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))

    def period(start: str | None, end: str | None) -> str:
        first, last = _day(start), _day(end)
        if first is None or last is None:
            return f"{start or ''}–{end or ''}"
        if first == last:
            return str(format_date(first, "medium"))
        return format_interval(first, last, "yMMMd", locale=lang)

    def when(value: str | None) -> str:
        try:
            return str(format_datetime(datetime.fromisoformat(value or ""), "medium"))
        except ValueError:
            return value or ""

    def language_url(code: str) -> str:
        args = request.args.to_dict()
        args["lang"] = code
        return f"{request.path}?{urlencode(args)}"

    return {
        "current_locale": lang,
        "department_name": department_name,
        "programme_name": programme_name,
        "kind_name": kind_name,
        "question_text": question_text,
        "ordered_answers": ordered_answers,
        "setting_name": lambda code: str(SETTINGS.get(code, code)),
        "period": period,
        "when": when,
        "language_url": language_url,
    }


@bp.after_app_request
def _remember_language(response: Response) -> Response:
    chosen = request.args.get("lang")
    if chosen in LOCALES:
        response.set_cookie("lang", chosen, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


@bp.get("/")
@bp.get("/review-queue")
@access(REVIEWERS)
def review_queue() -> str:
    ctx = current_app.extensions["cim.assessment"]
    with ctx.reader.connect() as conn:
        items = queries.review_queue_items(conn)
    return render_template("review_queue.html", items=items)
