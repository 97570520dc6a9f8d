"""Server-rendered pages: the review queue."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from assessment_service import queries

bp = Blueprint("pages", __name__)


@bp.get("/")
@bp.get("/review-queue")
def review_queue() -> str:
    ctx = current_app.extensions["cim.assessment"]
    with ctx.reader.connect() as conn:
        items = queries.review_queue_items(conn)
    return render_template("review_queue.html", items=items)
