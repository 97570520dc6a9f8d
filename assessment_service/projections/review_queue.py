"""Read model `review_queue`: reports waiting for review, in submission order, each with its rule
checklist computed here (so a request computes nothing).

A newer report from the same student replaces the waiting one; a withdrawn registration leaves
the queue. (Assignment and decisions will remove entries once the assessment events exist.)

The checklist is the completion rule of the rule set the report was submitted under (`rules`,
e.g. 'SOCSW@1') applied to the activities the report covers (`shared.completion`). This
projection keeps its own copy of the facts the rules look at (`review_queue_activities`), so it
reads no other projection's tables but one: the assessor group's accepted rulings
(`activity_rulings`, fed by the assessment service's own runner), which count an activity of a kind
the rule set does not list as the kind it was ruled to be (`rulings.checklist_with_rulings`). An
amended or withdrawn covered activity recomputes the waiting report's checklist; so does a ruling
on a covered activity (`build_rulings`, the own runner's `review_queue_rulings`). Either runner
may come first, and a rebuild of either equals the live rows: each computes from the other's
committed rows, and on PostgreSQL both take one transaction-scoped advisory lock before reading
the other's rows where a ruling can matter (SQLite's BEGIN IMMEDIATE already serialises them).

Reading its own rows inside a batch makes the runner run the batch's queued writes first (one
small write per read), so the handlers remember, for the current transaction only, the facts
and waiting reports they wrote or read (`_Memo`) and read the database only for the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from assessment_service.projections.base import dumps, student_id_of, student_table, upsert
from assessment_service.ruling_queries import rulings_for
from assessment_service.rulings import checklist_with_rulings
from shared.catalogue import Catalogue, Department
from shared.completion import ActivityFact, evaluate
from shared.config import Settings
from shared.events import RecordedEvent
from shared.projection import Handler, Projection, queue

#: Finds the rule set a recorded reference names ('SOCSW@1'), or None: `Catalogue.rule_set`.
RuleSets = Callable[[str], Department | None]

review_queue = student_table(
    "review_queue",
    "report_id",
    columns=(
        sa.Column("submitted_at", sa.String(40), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False, index=True),
        sa.Column("rules", sa.String(100), nullable=True),
        sa.Column("activity_ids", sa.Text, nullable=True),  # JSON list: the activities the report covers
        sa.Column("checklist", sa.Text, nullable=True),  # JSON (rules.Checklist.to_dict); None: rule set unknown
        sa.Column("checklist_met", sa.Integer, nullable=True),
        sa.Column("checklist_total", sa.Integer, nullable=True),
    ),
)

#: The activity facts the completion rules look at, as last amended (this projection's own copy).
review_queue_activities = student_table(
    "review_queue_activities",
    "activity_id",
    columns=(
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("setting", sa.String(20), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),  # personal: None once erased
        sa.Column("start_date", sa.String(10), nullable=False),
        sa.Column("withdrawn", sa.Boolean, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    ),
)

_LEAVE = review_queue.delete().where(review_queue.c.student_id == sa.bindparam("b_sid"))
_ENTER = review_queue.insert()


def _bound_update(table: sa.Table, key: str, key_param: str, **params: str) -> sa.Update:
    """UPDATE `table` SET column = :param ... WHERE key = :key_param: one statement, many rows."""
    return (
        table.update()
        .where(table.c[key] == sa.bindparam(key_param))
        .values(**{column: sa.bindparam(param) for column, param in params.items()})
    )


_RECHECK = _bound_update(
    review_queue, "report_id", "b_report_id", checklist="b_checklist", checklist_met="b_met", checklist_total="b_total"
)
_RESUBMIT = _bound_update(
    review_queue, "report_id", "b_report_id", rules="b_rules", activity_ids="b_ids", checklist="b_checklist",
    checklist_met="b_met", checklist_total="b_total",
)
_AMEND = _bound_update(
    review_queue_activities, "activity_id", "b_id",
    kind="b_kind", setting="b_setting", title="b_title", start_date="b_start_date", position="b_position",
)
_WITHDRAW = (
    review_queue_activities.update()
    .where(review_queue_activities.c.activity_id == sa.bindparam("b_id"))
    .values(withdrawn=True, position=sa.bindparam("b_position"))
)
_FACTS = sa.select(review_queue_activities).where(
    review_queue_activities.c.activity_id.in_(sa.bindparam("b_ids", expanding=True))
)
_WAITING = sa.select(review_queue.c.report_id, review_queue.c.rules, review_queue.c.activity_ids).where(
    review_queue.c.student_id == sa.bindparam("b_sid")
)


@lru_cache(maxsize=1)
def _shipped_catalogue() -> Catalogue:
    return Catalogue.load(Settings.departments_file)


def shipped_rule_sets(ref: str) -> Department | None:
    """The rule sets of the shipped departments file, read on first use (not at import)."""
    return _shipped_catalogue().rule_set(ref)


class _Memo:
    """What this projection wrote or read in the current transaction: activity facts by id and
    each student's waiting report (None: none waits). Only what the database would answer now
    (the writes queued in this transaction included), so it can stand in for a read."""

    __slots__ = ("facts", "transaction", "waiting")

    def __init__(self, transaction: sa.RootTransaction | None) -> None:
        self.transaction = transaction
        self.facts: dict[str, ActivityFact | None] = {}
        self.waiting: dict[str, tuple[str, str | None, list[str]] | None] = {}

    @classmethod
    def of(cls, conn: sa.Connection) -> _Memo:
        """The memo of `conn`'s current transaction (a fresh one per transaction; none kept
        outside a transaction, where every lookup reads)."""
        transaction = conn.get_transaction()
        memo = conn.info.get(_MEMO)
        if memo is None or transaction is None or memo.transaction is not transaction:
            memo = cls(transaction)
            if transaction is not None:
                conn.info[_MEMO] = memo
        return memo

    def waiting_of(self, conn: sa.Connection, sid: str) -> tuple[str, str | None, list[str]] | None:
        if sid not in self.waiting:
            row = conn.execute(_WAITING, {"b_sid": sid}).first()
            self.waiting[sid] = None if row is None else (
                row.report_id, row.rules, json.loads(row.activity_ids or "[]"))
        return self.waiting[sid]

    def facts_of(self, conn: sa.Connection, activity_ids: list[str]) -> list[ActivityFact]:
        unknown = [a for a in activity_ids if a not in self.facts]
        if unknown:
            found = {row.activity_id: _fact(row) for row in conn.execute(_FACTS, {"b_ids": unknown})}
            for activity_id in unknown:
                self.facts[activity_id] = found.get(activity_id)
        return [fact for a in dict.fromkeys(activity_ids) if (fact := self.facts[a]) is not None]


_MEMO = "cim.review_queue.memo"


def _fact(row: Any) -> ActivityFact:
    return ActivityFact(row.activity_id, row.kind, row.setting, row.title, date.fromisoformat(row.start_date),
                        bool(row.withdrawn))


#: The transaction-scoped advisory lock both runners take before reading the other's rows where a
#: ruling can matter (PostgreSQL; READ COMMITTED then shows the other's committed rows).
_RULINGS_LOCK = 0x43494D52  # "CIMR"


def _serialise_with_rulings(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_RULINGS_LOCK})")


def _checklist_values(conn: sa.Connection, memo: _Memo, rule_sets: RuleSets, rules: str | None,
                      activity_ids: list[str]) -> dict[str, Any]:
    """The checklist columns for a report under `rules` covering `activity_ids`, an activity of a
    kind the rule set does not list counted as the kind an accepted ruling made it (read only
    when the report covers such an activity: most reports cost no read here)."""
    rule_set = rule_sets(rules) if rules else None
    if rule_set is None:
        return {"checklist": None, "checklist_met": None, "checklist_total": None}
    facts = memo.facts_of(conn, activity_ids)
    unlisted = [fact.activity_id for fact in facts if rule_set.kind(fact.kind) is None]
    if unlisted:
        _serialise_with_rulings(conn)
        checklist = checklist_with_rulings(rule_set, facts, rulings_for(conn, unlisted))
    else:
        checklist = evaluate(rule_set, facts)
    return {
        "checklist": dumps(checklist.to_dict()),
        "checklist_met": checklist.met_count,
        "checklist_total": len(checklist.items),
    }


def _recheck_waiting(conn: sa.Connection, memo: _Memo, rule_sets: RuleSets, sid: str, activity_id: str) -> None:
    """Recompute the checklist of the student's waiting report if it covers `activity_id`."""
    waiting = memo.waiting_of(conn, sid)
    if waiting is None or activity_id not in waiting[2]:
        return
    report_id, rules, covered = waiting
    values = _checklist_values(conn, memo, rule_sets, rules, covered)
    queue(conn, _RECHECK, {
        "b_report_id": report_id, "b_checklist": values["checklist"],
        "b_met": values["checklist_met"], "b_total": values["checklist_total"],
    }, key=sid)


def build(rule_sets: RuleSets) -> Projection:
    """The projection, checking reports against the rule sets `rule_sets` finds."""

    def on_activity_logged(conn: sa.Connection, event: RecordedEvent) -> None:
        data = event.data
        row = {
            "activity_id": data["activity_id"],
            "student_id": student_id_of(event),
            "kind": data["kind"],
            "setting": data["setting"],
            "title": data["title"],
            "start_date": str(data["start_date"]),
            "withdrawn": False,
            "position": event.position,
        }
        upsert(conn, review_queue_activities, "activity_id", row)
        _Memo.of(conn).facts[row["activity_id"]] = ActivityFact(
            row["activity_id"], row["kind"], row["setting"], row["title"], date.fromisoformat(row["start_date"]))

    def recheck(conn: sa.Connection, memo: _Memo, event: RecordedEvent) -> None:
        _recheck_waiting(conn, memo, rule_sets, student_id_of(event), event.data["activity_id"])

    def on_activity_amended(conn: sa.Connection, event: RecordedEvent) -> None:
        data = event.data
        activity_id = data["activity_id"]
        queue(conn, _AMEND, {
            "b_id": activity_id, "b_kind": data["kind"], "b_setting": data["setting"], "b_title": data["title"],
            "b_start_date": str(data["start_date"]), "b_position": event.position,
        }, key=activity_id)
        memo = _Memo.of(conn)
        known = memo.facts.get(activity_id)
        if known is not None:
            memo.facts[activity_id] = replace(
                known, kind=data["kind"], setting=data["setting"], title=data["title"],
                start_date=date.fromisoformat(str(data["start_date"])))
        recheck(conn, memo, event)

    def on_activity_withdrawn(conn: sa.Connection, event: RecordedEvent) -> None:
        activity_id = event.data["activity_id"]
        queue(conn, _WITHDRAW, {"b_id": activity_id, "b_position": event.position}, key=activity_id)
        memo = _Memo.of(conn)
        known = memo.facts.get(activity_id)
        if known is not None:
            memo.facts[activity_id] = replace(known, withdrawn=True)
        recheck(conn, memo, event)

    def on_report_submitted(conn: sa.Connection, event: RecordedEvent) -> None:
        sid = student_id_of(event)
        covered = list(event.data.get("activity_ids") or [])
        rules = event.data.get("rules")
        memo = _Memo.of(conn)
        values = _checklist_values(conn, memo, rule_sets, rules, covered)
        queue(conn, _LEAVE, {"b_sid": sid}, key=sid)
        queue(
            conn,
            _ENTER,
            {
                "report_id": event.data["report_id"],
                "student_id": sid,
                "submitted_at": event.occurred_at.isoformat(),
                "position": event.position,
                "rules": rules,
                "activity_ids": dumps(covered),
                **values,
            },
            key=sid,
        )
        memo.waiting[sid] = (event.data["report_id"], rules, covered)

    def on_report_resubmitted(conn: sa.Connection, event: RecordedEvent) -> None:
        # A new round of the waiting report: the checklist follows the activities it now covers.
        sid = student_id_of(event)
        memo = _Memo.of(conn)
        waiting = memo.waiting_of(conn, sid)
        if waiting is None or waiting[0] != event.data["report_id"]:
            return
        covered = list(event.data.get("activity_ids") or [])
        rules = event.data.get("rules")
        values = _checklist_values(conn, memo, rule_sets, rules, covered)
        queue(conn, _RESUBMIT, {
            "b_report_id": waiting[0], "b_rules": rules, "b_ids": dumps(covered), "b_checklist": values["checklist"],
            "b_met": values["checklist_met"], "b_total": values["checklist_total"],
        }, key=sid)
        memo.waiting[sid] = (waiting[0], rules, covered)

    def on_student_registered(conn: sa.Connection, event: RecordedEvent) -> None:
        # Only events of the student's own stream put a report of theirs in the queue: before
        # its first event none waits, and the memo may say so without asking the database.
        if event.version == 1:
            _Memo.of(conn).waiting[student_id_of(event)] = None

    def on_registration_withdrawn(conn: sa.Connection, event: RecordedEvent) -> None:
        sid = student_id_of(event)
        queue(conn, _LEAVE, {"b_sid": sid}, key=sid)
        _Memo.of(conn).waiting[sid] = None

    def on_student_erased(conn: sa.Connection, event: RecordedEvent) -> None:
        # An erased student's report waits for no one, and the titles they typed go.
        sid = student_id_of(event)
        queue(conn, _LEAVE, {"b_sid": sid}, key=sid)
        queue(conn, review_queue_activities.update().where(review_queue_activities.c.student_id == sid)
              .values(title=None), key=sid)
        memo = _Memo.of(conn)
        memo.waiting[sid] = None
        memo.facts.clear()  # facts carry titles: read again (after the queued writes) when needed

    handlers: dict[str, Handler] = {
        "StudentRegistered": on_student_registered,
        "ActivityLogged": on_activity_logged,
        "ActivityAmended": on_activity_amended,
        "ActivityWithdrawn": on_activity_withdrawn,
        "ReportSubmitted": on_report_submitted,
        "ReportResubmitted": on_report_resubmitted,
        "RegistrationWithdrawn": on_registration_withdrawn,
        "StudentErased": on_student_erased,
    }
    return Projection("review_queue", (review_queue, review_queue_activities), handlers)


def build_rulings(rule_sets: RuleSets) -> Projection:
    """`review_queue_rulings`, on the assessment service's OWN store: a ruling on an activity a
    waiting report covers recomputes that report's checklist. It owns no table (it writes the
    checklist columns of `review_queue`); it sorts after `activity_rulings`, so the ruling's row
    is there when it reads. Rebuilding it recomputes the checklists of ruled reports again."""

    def on_activity_kind_ruled(conn: sa.Connection, event: RecordedEvent) -> None:
        sid = event.data["student_id"]
        _serialise_with_rulings(conn)
        memo = _Memo(None)  # the intake runner commits meanwhile: read, remember nothing
        _recheck_waiting(conn, memo, rule_sets, sid, event.data["activity_id"])

    return Projection("review_queue_rulings", (), {"ActivityKindRuled": on_activity_kind_ruled})


PROJECTION = build(shipped_rule_sets)
