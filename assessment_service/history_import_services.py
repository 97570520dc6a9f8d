"""Recording a historical import (issue 15, docs/statistics.md "Historical import"): check the
file (history_import.plan), and only if it has no error at all append its rows as
`HistoryImported` events to the assessment service's own store, skipping rows already recorded.

Idempotent: each row is the one event of its stream `history-<row_id>` (a hash of its content),
so a row whose stream exists is not recorded again: each batch starts only new streams, and the
store refuses the whole batch if another import started one of them meanwhile (then the batch is
looked at again). The statistics also count only the first event of such a stream. Rows are appended in batches of
BATCH rows, one transaction each; an import interrupted half way is finished by importing the same
file again.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from assessment_service import history_import, statistics
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import REGISTRY, HistoryImported
from assessment_service.history_import import Plan, PlannedRow
from shared.errors import ConcurrencyConflict
from shared.events import Metadata, NewEvent
from shared.identity.models import Principal, Role

#: Rows appended per transaction.
BATCH = 2000


@dataclass(frozen=True)
class ImportResult:
    """What an import did: rows recorded now, rows found recorded already."""

    recorded: int
    already: int


def may_import(by: Principal | None, department: str) -> bool:
    """A coordinator of the department, or an administrator."""
    return by is not None and (by.is_administrator or by.has_role(Role.COORDINATOR, department))


def may_import_any(by: Principal | None) -> bool:
    return by is not None and (by.is_administrator or bool(by.departments(Role.COORDINATOR)))


def check(ctx: AssessmentContext, data: bytes, *, by: Principal | None, actor: str,
          progress: Callable[[int], None] | None = None) -> Plan:
    """The file's plan: the rows it would record or every error (`by` None: an operator at the
    command line, who may import into any department)."""
    return history_import.plan(
        data,
        secret_key=history_import.pseudonym_key(ctx.settings.vault_secret),
        departments=ctx.catalogue.departments,
        allowed=(lambda _d: True) if by is None else (lambda d: may_import(by, d)),
        today=statistics.business_date(ctx.clock.now()),
        by=actor,
        progress=progress,
    )


_TYPE = "HistoryImported"
_FIELDS = tuple(f.name for f in dataclasses.fields(HistoryImported))


def encode(event: HistoryImported) -> dict[str, Any]:
    """The event's data as REGISTRY.encode gives it (tested equal), without validating it again:
    history_import.plan has checked every field, and the schema's dump and validation were half
    of an import's time (bench/RESULTS.md)."""
    data: dict[str, Any] = {name: getattr(event, name) for name in _FIELDS}
    data["on"] = event.on.isoformat()
    return data


def _new_event(row: PlannedRow, meta: dict[str, object]) -> NewEvent:
    type_name, version, data = _TYPE, REGISTRY.current_version(_TYPE), encode(row.event)
    noon = datetime.combine(row.event.on, time(12), tzinfo=statistics.LOCAL).astimezone(UTC)
    return NewEvent(type_name, version, data, meta, noon, event_id=row.event_id)


def record(ctx: AssessmentContext, plan: Plan, *, actor: str,
           progress: Callable[[int], None] | None = None) -> ImportResult:
    """Append the plan's rows not recorded yet (nothing if the plan has any error: ValueError).
    `progress(n)` is called after each batch with the rows handled so far."""
    if not plan.ok:
        raise ValueError("a file with errors records nothing")
    meta = Metadata(actor=actor, correlation_id=str(uuid.uuid4())).as_dict()
    recorded = already = done = 0
    for start in range(0, len(plan.rows), BATCH):
        batch = plan.rows[start:start + BATCH]
        for _attempt in range(3):
            fresh = [r for r in batch if ctx.store.stream_version(r.stream_id) == 0]
            try:
                if fresh:  # new streams only: a row another import recorded meanwhile refuses the batch
                    ctx.store.append_new_streams([(r.stream_id, [_new_event(r, meta)]) for r in fresh])
                break
            except ConcurrencyConflict:
                continue  # look again which rows are new
        else:
            raise ConcurrencyConflict(batch[0].stream_id, 0, ctx.store.stream_version(batch[0].stream_id))
        already += len(batch) - len(fresh)
        recorded += len(fresh)
        done += len(batch)
        if progress is not None:
            progress(done)
    return ImportResult(recorded, already)
