"""Read models `review_states` and `review_marks`: where each report stands in its review, from
the assessment service's OWN events (like `assignments`), so the queue and the agenda read a row
instead of folding a report's stream per request.

`review_states`: one row per decided report, its latest decision (round and outcome: approved,
revision_requested, rejected). The queue derives a report's state from it together with the
report's current round (`reports.round`, from the intake feed) and its assignments: a round
later than a revision request is "resubmitted".

`review_marks`: one row per review (report, assessor, round) with its recommendation (no
comments: those are sealed in the event and never copied here). The agenda finds disagreements
(an undecided round whose recommendations differ) and overdue reviews (an assessor assigned
with no review of the current round) from it.
"""

from __future__ import annotations

import sqlalchemy as sa

from assessment_service.projections.base import metadata, student_table
from assessment_service.projections.reports import reports
from assessment_service.projections.review_queue import review_queue
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue

#: The outcome each decision event records.
OUTCOMES = {
    "ReportApproved": "approved",
    "RevisionRequested": "revision_requested",
    "ReportRejected": "rejected",
}

review_states = student_table(
    "review_states",
    "report_id",
    columns=(
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("decided_round", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(30), nullable=False),
        sa.Column("decided_at", sa.String(40), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    ),
)

review_marks = sa.Table(
    "review_marks",
    metadata,
    sa.Column("report_id", sa.String(36), primary_key=True),
    sa.Column("assessor_account_id", sa.String(36), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    sa.Column("department", sa.String(64), nullable=False, index=True),
    sa.Column("recommendation", sa.String(20), nullable=False),
    sa.Column("reviewed_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)

# Covering indexes the queue table sorts and filters through (assessment_service/queue_queries.py):
# every row's state and waiting time read the report's round and its submission, and the page's
# first pass reads the queue's keys, without the rows' answers and checklist JSON (at 10,000
# reports the all-reports JSON cases ran 20-40% faster: bench/RESULTS.md). On the tables of the
# `reports` and `review_queue` projections, declared here beside what needs them; created with
# the tables (a database made before them gains them when those tables are made again).
sa.Index("ix_reports_queue_round", reports.c.report_id, reports.c.round, reports.c.round_submitted_at)
sa.Index("ix_review_queue_keys", review_queue.c.report_id, review_queue.c.student_id, review_queue.c.submitted_at,
         review_queue.c.position, review_queue.c.checklist_met)

_FORGET_STATE = review_states.delete().where(review_states.c.report_id == sa.bindparam("b_report"))
_FORGET_MARK = review_marks.delete().where(
    review_marks.c.report_id == sa.bindparam("b_report"),
    review_marks.c.assessor_account_id == sa.bindparam("b_assessor"),
    review_marks.c.round == sa.bindparam("b_round"),
)


def on_review_submitted(conn: sa.Connection, event: RecordedEvent) -> None:
    data = event.data
    key = (data["report_id"], data["assessor_account_id"], int(data["round"]))
    params = {"b_report": data["report_id"], "b_assessor": data["assessor_account_id"], "b_round": key[2]}
    queue(conn, _FORGET_MARK, params, key=key)
    queue(conn, review_marks.insert(), {
        "report_id": data["report_id"],
        "assessor_account_id": data["assessor_account_id"],
        "round": key[2],
        "student_id": data["student_id"],
        "department": data["department"],
        "recommendation": data["recommendation"],
        "reviewed_at": event.occurred_at.isoformat(),
        "position": event.position,
    }, key=key)


def on_report_decided(conn: sa.Connection, event: RecordedEvent) -> None:
    """ReportApproved, RevisionRequested, ReportRejected: the report's latest decision."""
    data = event.data
    queue(conn, _FORGET_STATE, {"b_report": data["report_id"]}, key=data["report_id"])
    queue(conn, review_states.insert(), {
        "report_id": data["report_id"],
        "student_id": data["student_id"],
        "department": data["department"],
        "decided_round": int(data["round"]),
        "outcome": OUTCOMES[event.type],
        "decided_at": event.occurred_at.isoformat(),
        "position": event.position,
    }, key=data["report_id"])


HANDLERS: dict[str, Handler] = {
    "ReviewSubmitted": on_review_submitted,
    "ReportApproved": on_report_decided,
    "RevisionRequested": on_report_decided,
    "ReportRejected": on_report_decided,
}

PROJECTION = Projection("review_states", (review_states, review_marks), HANDLERS)
