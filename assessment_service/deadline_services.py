"""Deadline use cases: set deadlines from new completions, the daily sweep (reminders due and
deregistrations), the "what if" preview, and a coordinator's extension and reinstatement.

Every fact is decided on the student's stream `deadline-<student_id>` (assessment_service/
deadlines.py) and appended with the version it was decided on: two sweeps at once (two beat
processes, a retried task) conflict on the second append, decide again on the moved stream and
record nothing more. The sweep reads only the students due (the indexed `next_due_on`), never
every student. "Today" is the Stockholm date of the injected clock.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from assessment_service import deadline_queries, deadlines
from assessment_service.bootstrap import AssessmentContext
from assessment_service.deadline_queries import DeadlineRow
from assessment_service.deadlines import Basis, DeadlineState, Due
from assessment_service.events import REGISTRY, SYSTEM_ACTOR, DeadlineEvent, deadline_stream
from assessment_service.presentation_services import may_manage
from assessment_service.services import _application
from assessment_service.terms import TermCalendar, TermCalendarError
from shared.application import Application, Outcome, RequestContext
from shared.errors import NotFound
from shared.identity.models import Principal
from shared.validation import is_uuid

log = logging.getLogger(__name__)

LOCAL = ZoneInfo("Europe/Stockholm")
NO_SUCH_STUDENT = "No such student."
#: Completions handled per read (the sweep reads again until none are left).
COMPLETIONS_PER_READ = 1000


@lru_cache(maxsize=4)
def load_calendar(path: Path) -> TermCalendar:
    """The term calendar of `path`, validated (TermCalendarError names the term and field)."""
    return TermCalendar.load(path)


def calendar(ctx: AssessmentContext) -> TermCalendar:
    return load_calendar(ctx.settings.terms_file)


def today(ctx: AssessmentContext) -> date:
    """The date in Lund by the injected clock: deadlines are days there."""
    return ctx.clock.now().astimezone(LOCAL).date()


def _load(ctx: AssessmentContext, student_id: str) -> tuple[DeadlineState, int]:
    recorded = ctx.store.read_stream(deadline_stream(student_id))
    state = deadlines.fold_deadline(REGISTRY.decode_recorded(e) for e in recorded)
    return state, recorded[-1].version if recorded else 0


def _system(correlation_id: str | None) -> RequestContext:
    return RequestContext(actor=SYSTEM_ACTOR, correlation_id=correlation_id or str(uuid.uuid4()))


def _sweeper(ctx: AssessmentContext) -> Application:
    """Appends without projecting after each one: the sweep catches up once at the end."""
    return Application(ctx.store, REGISTRY, ctx.clock)


def _catch_up(ctx: AssessmentContext) -> None:
    try:
        ctx.own_runner.catch_up()
    except Exception:  # the events are stored; the beat's catch-up projects them
        log.exception("deadlines could not catch up after the sweep; the next catch-up will")


def set_deadlines(ctx: AssessmentContext, correlation_id: str | None = None) -> int:
    """Record `DeadlineSet` for every completion newer than the newest deadline set (a corrected
    completion date resets the deadline). Stops at a deadline past the term calendar's last term
    (logged as an error: add the terms), so none is skipped; a completion before its first term
    gets no deadline (logged: nothing to count from). How many were set."""
    app, req, recorded = _sweeper(ctx), _system(correlation_id), 0
    terms = calendar(ctx)
    last_seen = -1
    while True:
        with ctx.reader.connect() as conn:
            todo = deadline_queries.new_completions(conn, COMPLETIONS_PER_READ)
        if not todo or todo[-1].position <= last_seen:
            return recorded  # nothing new, or the read model did not move on: the next run goes on
        last_seen = todo[-1].position
        for completion in todo:
            rules = ctx.catalogue.rule_set(completion.rules) or ctx.catalogue.departments.get(completion.department)
            if rules is None:
                log.error("no rule set %s for a deadline; skipped", completion.rules)
                continue
            basis = Basis(completion.student_id, completion.department, rules.rules_ref, completion.completed_on,
                          completion.position)
            stream = deadline_stream(completion.student_id)
            try:
                outcome = app.execute(
                    stream, req, scope=stream, request=("set", completion.student_id, completion.position),
                    load=lambda sid=completion.student_id: _load(ctx, sid),  # type: ignore[misc]
                    decide=lambda state, b=basis, r=rules: deadlines.decide_set(state, b, r, terms),  # type: ignore[misc]
                    result={},
                )
            except TermCalendarError as err:
                if completion.completed_on < terms.terms[0].starts:  # adding later terms cannot help
                    log.error("a completion before the term calendar's first term (%s): no deadline set", err)
                    continue
                log.error("the term calendar does not reach a deadline (%s): add its terms; deadlines wait", err)
                _catch_up(ctx)
                return recorded
            recorded += int(outcome.version > 0)
        _catch_up(ctx)
        if len(todo) < COMPLETIONS_PER_READ:
            return recorded


@dataclass(frozen=True)
class Planned:
    """What is due for one student on a day (the sweep records it; "what if" only shows it)."""

    row: DeadlineRow
    due: Due


def plan(ctx: AssessmentContext, day: date, departments: list[str] | None = None) -> list[Planned]:
    """Who would be reminded or deregistered on `day`: the students due by the indexed date, each
    judged by `deadlines.due_action` — the rule the sweep decides by. Writes nothing."""
    with ctx.reader.connect() as conn:
        rows = deadline_queries.due_on(conn, day, departments)
        facts = deadline_queries.sweep_facts(conn, [r.student_id for r in rows])
    planned = []
    for row in rows:
        fact = facts[row.student_id]
        due = deadlines.due_action(
            row.deadline, row.reminder_days, row.reminded, day, clock_stopped=row.approved or fact.clock_stopped,
            deregistered=row.deregistered, withdrawn=fact.withdrawn,
        )
        if due is not None:
            planned.append(Planned(row, due))
    return planned


def sweep(ctx: AssessmentContext, day: date | None = None, correlation_id: str | None = None) -> dict[str, int]:
    """The daily sweep: set new deadlines, then record each reminder due and each deregistration
    on the student's stream with its version. Idempotent: run twice, or twice at once, it records
    each fact once. Counts of what it recorded."""
    day = day or today(ctx)
    counts = {"deadlines_set": set_deadlines(ctx, correlation_id), "reminders": 0, "deregistered": 0}
    app, req = _sweeper(ctx), _system(correlation_id)
    planned = plan(ctx, day)
    with ctx.reader.connect() as conn:
        facts = deadline_queries.sweep_facts(conn, [p.row.student_id for p in planned])
    for item in planned:
        sid = item.row.student_id
        stream = deadline_stream(sid)
        made: list[DeadlineEvent] = []

        def decide(state: DeadlineState, sid: str = sid, made: list[DeadlineEvent] = made) -> list[DeadlineEvent]:
            made[:] = deadlines.decide_sweep(state, sid, day, facts[sid])
            return made

        before = ctx.store.stream_version(stream)
        outcome = app.execute(stream, req, scope=stream, request=("sweep", sid, day.isoformat()),
                              load=lambda sid=sid: _load(ctx, sid), decide=decide, result={})  # type: ignore[misc]
        if outcome.version > before and made:
            key = "deregistered" if made[0].__class__.__name__ == "StudentDeregistered" else "reminders"
            counts[key] += 1
    _catch_up(ctx)
    if counts["reminders"] or counts["deregistered"] or counts["deadlines_set"]:
        log.info("deadline sweep", extra=counts)
    return counts


# -- a coordinator's decisions ---------------------------------------------------------------------


def row_for(ctx: AssessmentContext, by: Principal | None, student_id: str) -> DeadlineRow:
    """The student's deadline row, for a coordinator of their department; NotFound otherwise (an
    unknown id, another department's student and a malformed id alike)."""
    row = None
    if is_uuid(student_id):
        with ctx.reader.connect() as conn:
            row = deadline_queries.deadline_of(conn, student_id)
    if row is None or row.deadline is None or not may_manage(by, row.department):
        raise NotFound(NO_SUCH_STUDENT)
    return row


def _decide(ctx: AssessmentContext, by: Principal, student_id: str, req: RequestContext, name: str,
            fields: dict[str, Any]) -> Outcome:
    row_for(ctx, by, student_id)
    new = fields.get("deadline")
    reason = str(fields.get("reason_code") or "")
    day, terms = today(ctx), calendar(ctx)
    decide = deadlines.decide_extend if name == "extend" else deadlines.decide_reinstate
    stream = deadline_stream(student_id)
    return _application(ctx).execute(
        stream, req, scope=stream, request=(name, student_id, str(new), reason),
        load=lambda: _load(ctx, student_id),
        decide=lambda state: decide(state, student_id, new, reason, by.account_id, day, terms),
        result={"student_id": student_id},
    )


def extend(ctx: AssessmentContext, by: Principal, student_id: str, fields: dict[str, Any],
           req: RequestContext) -> Outcome:
    """A coordinator of the student's department extends the deadline (`deadline`, `reason_code`)."""
    return _decide(ctx, by, student_id, req, "extend", fields)


def reinstate(ctx: AssessmentContext, by: Principal, student_id: str, fields: dict[str, Any],
              req: RequestContext) -> Outcome:
    """A coordinator reinstates a deregistered student with a new deadline."""
    return _decide(ctx, by, student_id, req, "reinstate", fields)


def history(ctx: AssessmentContext, student_id: str) -> list[tuple[Any, Any]]:
    """The student's deadline stream as (recorded event, decoded event), oldest first."""
    return [(e, REGISTRY.decode_recorded(e)) for e in ctx.store.read_stream(deadline_stream(student_id))]
