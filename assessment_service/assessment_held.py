"""Right of access, the assessment part: what the assessment service holds about a student's
reports beyond the read-model rows — the reviews (each criterion's verdict and comment, the
recommendation), the decisions (with the summary written for the student), the presentation
bookings and eligibility, and the rulings on their activities of a kind the catalogue lacks.

Read for `web/privacy.py` ("My data" page and JSON). Comments and summaries are opened with the
student's key of this service: None once the student's erasure destroyed it. Staff appear by ROLE
("assessor", "coordinator", the rule set's "policy", the "assessor group"), never by account id
or name: the reviews are personal data about the student, the reviewer's identity is not theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from assessment_service import presentation_queries
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import report_stream
from assessment_service.projections.rulings import activity_rulings

#: The decision event types and the outcome each records.
DECISION_OUTCOMES = {
    "ReportApproved": "approved", "RevisionRequested": "revision_requested", "ReportRejected": "rejected",
}
POLICY = "policy"  # reviews.POLICY: the rule set's policy decided on agreeing reviews


def reviews_and_decisions(
    ctx: AssessmentContext, student_id: str, report_ids: Iterable[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The reviews and the decisions of the student's reports, oldest first. Only events that name
    this student are read; personal fields are opened with the student's key (None once erased)."""
    key = ctx.sealing.vault.keys_for([student_id]).get(student_id)
    held_reviews: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    for report_id in report_ids:
        for e in ctx.store.read_stream(report_stream(report_id)):
            if e.data.get("student_id") != student_id:
                continue
            if e.type == "ReviewSubmitted":
                data = ctx.sealing.open(e.data, key)
                comments = data.get("comments")
                verdicts = data.get("verdicts") or {}
                held_reviews.append({
                    "report_id": report_id, "round": data.get("round"), "rule_set": data.get("rule_set"),
                    "submitted_at": e.occurred_at.isoformat(), "by": "assessor",
                    "recommendation": data.get("recommendation"),
                    # None once erased: the comments read as erased, the verdicts (codes) remain.
                    "comments_erased": comments is None,
                    "criteria": [
                        {"criterion": code, "verdict": verdict,
                         "comment": (comments or {}).get(code) if comments is not None else None}
                        for code, verdict in verdicts.items()
                    ],
                })
            elif e.type in DECISION_OUTCOMES:
                data = ctx.sealing.open(e.data, key)
                decisions.append({
                    "report_id": report_id, "round": data.get("round"), "rule_set": data.get("rule_set"),
                    "decided_at": e.occurred_at.isoformat(), "outcome": DECISION_OUTCOMES[e.type],
                    "decided_by": POLICY if data.get("decided_by") == POLICY else "coordinator",
                    "rests_on_reviews": len(data.get("rests_on") or []),
                    # Approval carries no summary; a revision or a rejection does (None once erased).
                    "summary": data.get("summary"),
                    "summary_erased": e.type != "ReportApproved" and data.get("summary") is None,
                })
    held_reviews.sort(key=lambda r: r["submitted_at"])
    decisions.sort(key=lambda d: d["decided_at"])
    return held_reviews, decisions


def rulings_on_activities(conn: sa.Connection, student_id: str) -> list[dict[str, Any]]:
    """The assessor group's rulings on the student's activities, oldest first (the group rules as
    one: who recorded it is not shown)."""
    r = activity_rulings.c
    rows = conn.execute(
        sa.select(r.activity_id, r.kind_label, r.outcome, r.kind, r.activity_class, r.rationale, r.ruled_at)
        .where(r.student_id == student_id).order_by(r.ruled_at, r.activity_id)
    ).all()
    return [{**row._mapping, "ruled_by": "assessor_group"} for row in rows]


def assessment_held(ctx: AssessmentContext, student_id: str, report_ids: Iterable[str]) -> dict[str, Any]:
    """The sections "My data" adds: reviews, review decisions, presentation, activity rulings."""
    held_reviews, decisions = reviews_and_decisions(ctx, student_id, report_ids)
    with ctx.reader.connect() as conn:
        presentation = presentation_queries.student_presentation(conn, student_id)
        rulings = rulings_on_activities(conn, student_id)
    return {
        "reviews": held_reviews,
        "review_decisions": decisions,
        "presentation": presentation,
        "activity_rulings": rulings,
    }
