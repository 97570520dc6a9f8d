"""The review queue as a table: one row per report, filtered, sorted and paged in SQL over the
read models (nothing folded from events per request), and the assessor group's agenda.

A report's state comes from read models: `review_states` (its latest decision, from the
assessment service's own events), `reports.round` (its current round, from the intake feed) and
`assignments`. The rule checklist is the one the `review_queue` projection stored, accepted
rulings on activities of another kind included (docs/rulings.md), so the page computes nothing and
filtering and sorting by the checklist use the same counts the rows show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from assessment_service.projections.assignments import assignment_conflicts, assignments
from assessment_service.projections.reports import reports
from assessment_service.projections.review_queue import review_queue
from assessment_service.projections.review_states import review_marks, review_states
from assessment_service.projections.students import students
from assessment_service.queries import QueueScope, _visible
from shared.catalogue import Department
from shared.errors import ValidationFailed
from shared.validation import is_uuid

#: A report's states in the order of its review.
STATES = ("waiting", "in_review", "revision_requested", "resubmitted", "approved", "rejected")
#: The states in which a report waits for its assessors (the target applies to these).
OPEN_STATES = frozenset({"waiting", "in_review", "resubmitted"})
#: The columns a queue sorts by; "-name" sorts descending.
SORT_KEYS = ("student", "programme", "submitted", "waiting", "round", "checklist", "state")
DEFAULT_SORT = "-waiting"
PER_PAGE = 50
MAX_PAGE = 100_000
MAX_DAYS = 36_500

_PROGRAMME = re.compile(r"^[A-Za-z0-9_.-]{1,20}$")


@dataclass(frozen=True)
class QueueFilter:
    """What one look at the queue asks for (all from GET parameters)."""

    state: str | None = None
    waiting_over: int | None = None
    #: "me", "unassigned" or an assessor's account id.
    assessor: str | None = None
    programme: str | None = None
    sort: str = DEFAULT_SORT
    page: int = 1

    def args(self, **changes: Any) -> dict[str, str]:
        """The GET parameters that ask for this filter (with `changes`), defaults left out."""
        values = {
            "state": self.state, "waiting_over": self.waiting_over, "assessor": self.assessor,
            "programme": self.programme, "sort": self.sort, "page": self.page, **changes,
        }
        defaults = {"sort": DEFAULT_SORT, "page": 1}
        return {k: str(v) for k, v in values.items() if v not in (None, "") and defaults.get(k) != v}


def _whole(raw: str, low: int, high: int) -> int | None:
    return int(raw) if raw.isdigit() and low <= int(raw) <= high else None


def parse_filter(args: Mapping[str, str]) -> QueueFilter:
    """The filter the GET parameters ask for; ValidationFailed naming each bad parameter.
    Empty parameters mean "any" (what a form sends for an unset field)."""
    errors: dict[str, list[str]] = {}
    get = {name: (args.get(name) or "").strip() for name in ("state", "waiting_over", "assessor", "programme",
                                                             "sort", "page")}
    state = get["state"] or None
    if state is not None and state not in STATES:
        errors["state"] = [f"Choose one of: {', '.join(STATES)}."]
    waiting_over = None
    if get["waiting_over"]:
        waiting_over = _whole(get["waiting_over"], 0, MAX_DAYS)
        if waiting_over is None:
            errors["waiting_over"] = [f"Give a whole number of days from 0 to {MAX_DAYS}."]
    assessor = get["assessor"] or None
    if assessor is not None and assessor not in ("me", "unassigned") and not is_uuid(assessor):
        errors["assessor"] = ["Give me, unassigned or an assessor's account id."]
    programme = get["programme"] or None
    if programme is not None and not _PROGRAMME.match(programme):
        errors["programme"] = ["Give a programme code."]
    sort = get["sort"] or DEFAULT_SORT
    if sort.removeprefix("-") not in SORT_KEYS:
        errors["sort"] = [f"Sort by one of: {', '.join(SORT_KEYS)} (a leading - for descending)."]
    page = 1
    if get["page"]:
        page = _whole(get["page"], 1, MAX_PAGE) or 0
        if not page:
            errors["page"] = [f"Give a page number from 1 to {MAX_PAGE}."]
    if errors:
        raise ValidationFailed("Bad query.", errors)
    return QueueFilter(state, waiting_over, assessor, programme, sort, page)


# -- the SQL -----------------------------------------------------------------------------------
_round = sa.func.coalesce(reports.c.round, 1)
_waiting_since = sa.func.coalesce(reports.c.round_submitted_at, review_queue.c.submitted_at)
_anyone = assignments.alias("anyone_assigned")  # its own name: it correlates with review_queue only
_assigned = sa.exists().where(_anyone.c.report_id == review_queue.c.report_id)
_decided_now = review_states.c.decided_round == _round
_RANK = {state: rank for rank, state in enumerate(STATES)}
#: The report's state as its index in STATES: one CASE of integers, so sorting by state follows
#: the review's order (not the codes' alphabet) and costs no string work per row.
_state = sa.case(
    (sa.and_(_decided_now, review_states.c.outcome == "approved"), _RANK["approved"]),
    (sa.and_(_decided_now, review_states.c.outcome == "rejected"), _RANK["rejected"]),
    (sa.and_(_decided_now, review_states.c.outcome == "revision_requested"), _RANK["revision_requested"]),
    (sa.and_(review_states.c.outcome == "revision_requested", _round > review_states.c.decided_round),
     _RANK["resubmitted"]),
    (_assigned, _RANK["in_review"]),
    else_=_RANK["waiting"],
)
_FROM = (
    review_queue.join(students, students.c.student_id == review_queue.c.student_id)
    .join(reports, reports.c.report_id == review_queue.c.report_id, isouter=True)
    .join(review_states, review_states.c.report_id == review_queue.c.report_id, isouter=True)
)
_SORT_COLUMNS: dict[str, Any] = {
    "student": students.c.name,
    "programme": students.c.programme,
    "submitted": review_queue.c.submitted_at,
    "waiting": sa.desc(_waiting_since),  # fewest days first: the latest arrival first
    "round": _round,
    "checklist": review_queue.c.checklist_met,
    "state": _state,
}


def _order(sort: str) -> list[Any]:
    key = sort.removeprefix("-")
    column = _SORT_COLUMNS[key]
    descending = sort.startswith("-")
    if key == "waiting":  # more days waiting = an earlier arrival
        return ([sa.asc(_waiting_since), review_queue.c.position] if descending
                else [column, review_queue.c.position.desc()])
    if descending:
        return [sa.desc(column), review_queue.c.position.desc()]
    return [sa.asc(column), review_queue.c.position]


def _conditions(filt: QueueFilter, scope: QueueScope | None, account_id: str | None, today: date) -> list[Any]:
    where: list[Any] = []
    if scope is not None:
        where.append(_visible(scope))
    if filt.state is not None:
        where.append(_state == _RANK[filt.state])
    if filt.waiting_over is not None:
        where.append(_waiting_since < (today - timedelta(days=filt.waiting_over)).isoformat())
    if filt.programme is not None:
        where.append(students.c.programme == filt.programme)
    if filt.assessor == "unassigned":
        where.append(~_assigned)
    elif filt.assessor is not None:
        who = account_id if filt.assessor == "me" else filt.assessor
        where.append(review_queue.c.report_id.in_(
            sa.select(assignments.c.report_id).where(assignments.c.assessor_account_id == (who or ""))))
    return where


@dataclass(frozen=True)
class QueuePage:
    total: int
    page: int
    per_page: int
    items: list[dict[str, Any]]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first(self) -> int:
        return 0 if not self.items else (self.page - 1) * self.per_page + 1

    @property
    def last(self) -> int:
        return 0 if not self.items else self.first + len(self.items) - 1


def queue_page(
    conn: sa.Connection,
    filt: QueueFilter,
    *,
    scope: QueueScope | None,
    account_id: str | None,
    today: date,
    departments: Callable[[str], Department | None],
    per_page: int = PER_PAGE,
) -> QueuePage:
    """One page of the queue as `scope` may see it (None: every report), filtered and sorted."""
    where = _conditions(filt, scope, account_id, today)
    # First the page's ids and the count, in one pass that sorts only ids and keys (sorting whole
    # rows, checklist JSON and all, cost four times as much at 10,000 reports); then their rows.
    chosen = conn.execute(
        sa.select(review_queue.c.report_id, sa.func.count().over().label("total"))
        .select_from(_FROM)
        .where(*where)
        .order_by(*_order(filt.sort))
        .limit(per_page)
        .offset((filt.page - 1) * per_page)
    ).all()
    if chosen:
        total = int(chosen[0].total)
    else:  # past the last page (or nothing matches): count on its own
        total = int(conn.execute(sa.select(sa.func.count()).select_from(_FROM).where(*where)).scalar_one())
    order = {row.report_id: i for i, row in enumerate(chosen)}
    rows = sorted(conn.execute(
        sa.select(
            review_queue.c.report_id, review_queue.c.student_id, review_queue.c.submitted_at,
            review_queue.c.rules, review_queue.c.activity_ids, review_queue.c.checklist,
            review_queue.c.checklist_met, review_queue.c.checklist_total,
            students.c.name, students.c.department, students.c.programme,
            _round.label("round"), _waiting_since.label("waiting_since"), _state.label("state"),
        )
        .select_from(_FROM)
        .where(review_queue.c.report_id.in_(list(order)))
    ).all(), key=lambda row: order[row.report_id]) if order else []
    assessors = _assessors(conn, [row.report_id for row in rows])
    items = []
    for row in rows:
        dept = departments(row.department)
        target = dept.review_target_days if dept is not None else None
        waited = (today - datetime.fromisoformat(row.waiting_since).date()).days
        state = STATES[int(row.state)]
        checklist = json.loads(row.checklist) if row.checklist else None
        items.append({
            "report_id": row.report_id,
            "student_id": row.student_id,
            "name": row.name,
            "department": row.department,
            "programme": row.programme,
            "submitted_at": row.submitted_at,
            "waiting_since": row.waiting_since,
            "days_waiting": waited,
            "round": int(row.round),
            "state": state,
            "target_days": target,
            "overdue": target is not None and state in OPEN_STATES and waited > target,
            "assessor_account_ids": assessors.get(row.report_id, []),
            "checklist": _summary(checklist),
        })
    return QueuePage(total, filt.page, per_page, items)


def report_state(conn: sa.Connection, report_id: str) -> str | None:
    """One report's state in the queue (one of STATES), as its row in the table says; None when
    it waits in no queue (replaced by a newer report, or withdrawn)."""
    found = conn.execute(sa.select(_state).select_from(_FROM).where(review_queue.c.report_id == report_id)).first()
    return None if found is None else STATES[int(found[0])]


def _assessors(conn: sa.Connection, report_ids: list[str]) -> dict[str, list[str]]:
    if not report_ids:
        return {}
    out: dict[str, list[str]] = {}
    query = (sa.select(assignments.c.report_id, assignments.c.assessor_account_id)
             .where(assignments.c.report_id.in_(report_ids)).order_by(assignments.c.position))
    for row in conn.execute(query):
        out.setdefault(row.report_id, []).append(row.assessor_account_id)
    return out


def _summary(checklist: dict[str, Any] | None) -> dict[str, Any] | None:
    """How many requirements are met, and the labels (en, sv) of those that are not."""
    if checklist is None:
        return None
    items = checklist["items"]
    return {
        "met": sum(1 for item in items if item["met"]),
        "total": len(items),
        "unmet": [item["label"] for item in items if not item["met"]],
    }


# -- bulk assignment -----------------------------------------------------------------------------
def open_reviews(conn: sa.Connection, account_ids: list[str]) -> dict[str, int]:
    """How many reports each assessor is assigned to whose current round is not decided."""
    if not account_ids:
        return {}
    decided = sa.exists().where(
        review_states.c.report_id == assignments.c.report_id,
        review_states.c.decided_round == sa.select(sa.func.coalesce(reports.c.round, 1))
        .where(reports.c.report_id == assignments.c.report_id).scalar_subquery(),
    )
    rows = conn.execute(
        sa.select(assignments.c.assessor_account_id, sa.func.count())
        .where(assignments.c.assessor_account_id.in_(account_ids), ~decided)
        .group_by(assignments.c.assessor_account_id)
    ).all()
    found = {row[0]: int(row[1]) for row in rows}
    return {a: found.get(a, 0) for a in account_ids}


def conflicts_of(conn: sa.Connection, student_ids: list[str]) -> set[tuple[str, str]]:
    """(student id, assessor) for each declared conflict of interest with these students."""
    if not student_ids:
        return set()
    rows = conn.execute(
        sa.select(assignment_conflicts.c.student_id, assignment_conflicts.c.assessor_account_id)
        .where(assignment_conflicts.c.student_id.in_(student_ids))
    ).all()
    return {(row[0], row[1]) for row in rows}


def queue_rows(conn: sa.Connection, report_ids: list[str], scope: QueueScope) -> list[dict[str, Any]]:
    """The chosen reports as `scope` may see them, in the order asked (unknown and foreign ids
    left out: the caller compares)."""
    if not report_ids:
        return []
    rows = conn.execute(
        sa.select(review_queue.c.report_id, review_queue.c.student_id, students.c.name, students.c.department,
                  _state.label("state"))
        .select_from(_FROM)
        .where(review_queue.c.report_id.in_(report_ids), _visible(scope))
    ).all()
    found = {row.report_id: {**row._mapping, "state": STATES[int(row.state)]} for row in rows}
    assessors = _assessors(conn, list(found))
    return [{**found[r], "assessor_account_ids": assessors.get(r, [])} for r in dict.fromkeys(report_ids) if r in found]


# -- the agenda ----------------------------------------------------------------------------------
def disagreements(conn: sa.Connection, department: str) -> list[dict[str, Any]]:
    """The department's reports whose current round has reviews that recommend different things
    and no decision yet, oldest review first."""
    decided = sa.exists().where(
        review_states.c.report_id == review_marks.c.report_id, review_states.c.decided_round == review_marks.c.round)
    current = review_marks.c.round == sa.func.coalesce(reports.c.round, 1)
    rows = conn.execute(
        sa.select(review_marks.c.report_id, review_marks.c.round,
                  sa.func.min(review_marks.c.reviewed_at).label("since"))
        .select_from(review_marks.join(reports, reports.c.report_id == review_marks.c.report_id, isouter=True))
        .where(review_marks.c.department == department, current, ~decided)
        .group_by(review_marks.c.report_id, review_marks.c.round)
        .having(sa.func.count(sa.distinct(review_marks.c.recommendation)) > 1)
        .order_by("since")
    ).all()
    marks = _marks(conn, [(row.report_id, row.round) for row in rows])
    return [{"report_id": row.report_id, "round": row.round, "since": row.since,
             "recommendations": marks.get((row.report_id, row.round), [])} for row in rows]


def _marks(conn: sa.Connection, rounds: list[tuple[str, int]]) -> dict[tuple[str, int], list[tuple[str, str]]]:
    if not rounds:
        return {}
    out: dict[tuple[str, int], list[tuple[str, str]]] = {}
    query = (sa.select(review_marks.c.report_id, review_marks.c.round, review_marks.c.assessor_account_id,
                       review_marks.c.recommendation)
             .where(review_marks.c.report_id.in_(sorted({r for r, _ in rounds})))
             .order_by(review_marks.c.position))
    wanted = set(rounds)
    for row in conn.execute(query):
        if (row.report_id, row.round) in wanted:
            out.setdefault((row.report_id, row.round), []).append((row.assessor_account_id, row.recommendation))
    return out


# -- the staff mails (assessment_service/staff_mail.py) -------------------------------------------
def reviews_not_given(
    conn: sa.Connection, department: str, *, started_before: str | None = None, assessor: str | None = None,
) -> list[dict[str, Any]]:
    """The department's assigned reviews not yet given for the current, undecided round of a report
    in an open state (waiting, in review, resubmitted): report, assessor, round, `assigned_at` and
    `round_since` (when the current round was submitted). `started_before` (an ISO instant): only
    those assigned AND whose round was submitted before it (an index range on the assignments by
    department and time); `assessor`: only theirs."""
    reviewed = sa.exists().where(
        review_marks.c.report_id == assignments.c.report_id,
        review_marks.c.assessor_account_id == assignments.c.assessor_account_id,
        review_marks.c.round == _round,
    )
    where = [assignments.c.department == department, ~reviewed,
             _state.in_(sorted(_RANK[s] for s in OPEN_STATES))]
    if started_before is not None:
        where += [assignments.c.assigned_at < started_before, _waiting_since < started_before]
    if assessor is not None:
        where.append(assignments.c.assessor_account_id == assessor)
    rows = conn.execute(
        sa.select(assignments.c.report_id, assignments.c.assessor_account_id, assignments.c.assigned_at,
                  _round.label("round"), _waiting_since.label("round_since"))
        .select_from(
            assignments.join(review_queue, review_queue.c.report_id == assignments.c.report_id)
            .join(reports, reports.c.report_id == review_queue.c.report_id, isouter=True)
            .join(review_states, review_states.c.report_id == review_queue.c.report_id, isouter=True)
        )
        .where(*where)
        .order_by(assignments.c.assigned_at, assignments.c.position)
    ).all()
    return [{"report_id": r.report_id, "assessor_account_id": r.assessor_account_id, "department": department,
             "assigned_at": r.assigned_at, "round": int(r.round), "round_since": r.round_since} for r in rows]


def waiting_for_assignment(conn: sa.Connection, department: str) -> int:
    """How many of the department's reports wait for an assessor (state `waiting`)."""
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(_FROM)
        .where(students.c.department == department, _state == _RANK["waiting"])
    ).scalar_one())
