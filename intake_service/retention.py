"""Disposal under the retention rules ("gallring"): find the candidates, dispose of what is due,
record one `RecordsDisposed` event per kind and run (ids only, with the rule it applied).

Flask-free: the Celery task (workers/tasks/retention.py) and tests call `dispose_due`. What is due
is decided by the pure `shared.retention.due`; this module only gathers and executes.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from intake_service.events import REGISTRY, RecordsDisposed
from intake_service.services import IntakeServices, RequestContext, erase_student_and_account, subject_of
from shared import retention as rules
from shared.events import NewEvent, RecordedEvent
from shared.identity.wiring import Identity
from shared.retention import Candidate, RetentionPolicy
from shared.store import ANY_VERSION

log = logging.getLogger(__name__)

ACTOR = "system:retention"
_MICROSECOND = timedelta(microseconds=1)
_FILE_ID = re.compile(r"^([0-9a-f-]{36})\.pdf$")


@dataclass
class RetentionContext:
    services: IntakeServices
    identity: Identity
    policy: RetentionPolicy
    #: The clock guard's limit (CIM_CLOCK_JUMP_DAYS; shared/clock_guard.py): the worker's task asks it.
    clock_jump_days: int = 3


def _all_events(services: IntakeServices, page: int = 2000) -> Iterator[RecordedEvent]:
    """The whole intake log as stored (personal fields stay sealed: only ids and types are read)."""
    after = 0
    while True:
        batch = services.store.read_all(after=after, limit=page)
        if not batch:
            return
        yield from batch
        after = batch[-1].position


def candidates(ctx: RetentionContext) -> list[Candidate]:
    """Every record that may fall due, with the moment its retention clock started."""
    found: list[Candidate] = []
    withdrawn: dict[str, datetime] = {}
    erased: set[str] = set()
    uploaded: dict[str, tuple[str, datetime]] = {}  # attachment id -> (student, upload time)
    referenced: set[str] = set()
    for event in _all_events(ctx.services):
        student = subject_of(event.stream_id)
        if event.type == "RegistrationWithdrawn" and student:
            withdrawn[student] = event.occurred_at
        elif event.type == "StudentErased" and student:
            erased.add(student)
        elif event.type == "AttachmentUploaded" and student:
            uploaded[str(event.data["attachment_id"])] = (student, event.occurred_at)
        elif event.type in ("ReportSubmitted", "ReportResubmitted") and event.data.get("attachment_id"):
            referenced.add(str(event.data["attachment_id"]))
    found += [
        Candidate(rules.WITHDRAWN_REGISTRATIONS, sid, at) for sid, at in withdrawn.items() if sid not in erased
    ]
    uploads = ctx.services.uploads
    for attachment_id, (_, at) in uploaded.items():
        if attachment_id not in referenced and uploads.path_for(attachment_id).exists():
            found.append(Candidate(rules.UNREFERENCED_ATTACHMENTS, attachment_id, at))
    if uploads.root.is_dir():  # files no event points at (an upload whose event never committed)
        for path in uploads.root.iterdir():
            match = _FILE_ID.match(path.name)
            if match and match.group(1) in uploaded:
                continue
            since = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            found.append(Candidate(rules.UNREFERENCED_ATTACHMENTS, path.name, since))
    for token in ctx.identity.store.api_tokens():
        if token.revoked_at is not None:
            found.append(Candidate(rules.REVOKED_API_TOKENS, token.id, token.revoked_at))
    return found


def dispose_due(ctx: RetentionContext, correlation_id: str | None = None) -> dict[str, int]:
    """Dispose of everything due now; returns counts per kind. Safe to run twice (what was
    disposed of is no longer a candidate) and at any time (nothing is due early)."""
    services = ctx.services
    now = services.clock.now()
    correlation_id = correlation_id or str(uuid.uuid4())
    by_kind: dict[str, list[str]] = {kind: [] for kind in rules.KINDS}
    for candidate in rules.due(candidates(ctx), ctx.policy, now):
        by_kind[candidate.kind].append(candidate.record_id)
    done: dict[str, list[str]] = {}
    request = RequestContext(actor=ACTOR, correlation_id=correlation_id)
    # Withdrawn registrations: erase the student's personal data (intake and account).
    done[rules.WITHDRAWN_REGISTRATIONS] = []
    for student_id in by_kind[rules.WITHDRAWN_REGISTRATIONS]:
        erase_student_and_account(
            services, ctx.identity, student_id, "retention: registration withdrawn", request
        )
        done[rules.WITHDRAWN_REGISTRATIONS].append(student_id)
    done[rules.UNREFERENCED_ATTACHMENTS] = []
    for record_id in by_kind[rules.UNREFERENCED_ATTACHMENTS]:
        target = services.uploads.root / record_id if record_id.endswith(".pdf") else None
        if target is not None and target.parent == services.uploads.root:
            target.unlink(missing_ok=True)  # an orphan file, named by its file name
        else:
            services.uploads.delete(record_id)
        done[rules.UNREFERENCED_ATTACHMENTS].append(record_id)
    done[rules.REVOKED_API_TOKENS] = _delete_api_tokens(ctx.identity, by_kind[rules.REVOKED_API_TOKENS])
    # purge_used removes tokens that expired strictly before its argument; a token is due AT
    # its cutoff, hence the one microsecond (the stores keep microseconds).
    purged = ctx.identity.store.purge_used(ctx.policy.cutoff(rules.USED_SIGN_IN_TOKENS, now) + _MICROSECOND)
    counts = {kind: len(ids) for kind, ids in done.items()}
    counts[rules.USED_SIGN_IN_TOKENS] = purged
    for kind in rules.KINDS:
        if counts[kind]:
            _record(services, kind, counts[kind], sorted(done.get(kind, [])), ctx.policy, correlation_id)
    log.info("retention run disposed of %s", {k: v for k, v in counts.items() if v})
    return counts


def _record(
    services: IntakeServices, kind: str, count: int, ids: list[str], policy: RetentionPolicy, correlation_id: str
) -> None:
    event = RecordsDisposed(kind=kind, count=count, ids=ids, decided_by=policy.decided_by(kind))
    type_name, version, data = REGISTRY.encode(event)
    services.store.append(
        f"retention-{kind}",
        [NewEvent(
            type=type_name,
            schema_version=version,
            data=data,
            metadata={"actor": ACTOR, "correlation_id": correlation_id, "causation_id": None},
            occurred_at=services.clock.now(),
        )],
        expected_version=ANY_VERSION,
    )


def _delete_api_tokens(identity: Identity, token_ids: list[str]) -> list[str]:
    """Delete revoked API tokens, then move the identity database's WAL into the file (SQLite) so
    the deleted rows do not linger there."""
    gone = identity.store.delete_revoked_api_tokens(token_ids)
    if gone:
        identity.store.compact()
    return gone


