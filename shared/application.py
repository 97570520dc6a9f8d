"""The application layer both services run their commands through, written once:

command -> load the stream -> decide -> append with its idempotency key and expected version ->
wake-up. A service supplies what differs (how a stream folds into state, the pure decider, how
personal fields are sealed, what "wake-up" means); the retry, replay and append rules live here.

Policies are the same machinery turned around: an event leads to commands (or to side effects
recorded through the runner's connection), run by the projection runner, so the policy's
checkpoint moves in the same transaction as whatever it records there, and every command it
issues carries an idempotency key derived from the causing event's id: a replayed or doubled
batch issues nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from shared.clock import Clock
from shared.errors import ConcurrencyConflict
from shared.events import JSON, EventRegistry, NewEvent, RecordedEvent
from shared.projection import Projection
from shared.store import ANY_VERSION, NO_STREAM, EventStore, request_fingerprint

S = TypeVar("S")

#: Without an expected version (no If-Match) a command is decided again this often against a
#: stream that moved in between; with one, a moved stream is the caller's conflict at once.
ATTEMPTS = 5


@dataclass(frozen=True)
class RequestContext:
    """Who asks (the event's actor), under which correlation id, with which idempotency key and
    expected stream version, and which event caused the command (None for a person's request)."""

    actor: str
    correlation_id: str
    idempotency_key: str | None = None
    expected_version: int | None = None
    causation_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a command answers: the ids it made, the stream version after it, and whether the
    answer is a replay of the first request with the same idempotency key."""

    result: dict[str, Any]
    version: int
    replayed: bool = False


#: (event type, encoded data, subject whose key seals it) -> data with personal fields sealed
Seal = Callable[[str, JSON, str | None], JSON]


def _no_seal(type_name: str, data: JSON, subject: str | None) -> JSON:
    return data


def _no_wakeup(correlation_id: str | None) -> None:
    return None


@dataclass
class Application:
    """Runs commands against one event store: the one copy of the plumbing. `after_commit(
    correlation_id)` runs after every append that stored something (the wake-up of the workers,
    or an in-process catch-up) and must not raise; `seal` seals personal fields for a subject."""

    store: EventStore
    registry: EventRegistry
    clock: Clock
    after_commit: Callable[[str | None], None] = _no_wakeup
    seal: Seal = _no_seal
    attempts: int = ATTEMPTS

    # -- writing -------------------------------------------------------------------------------
    def new_events(self, events: Iterable[object], ctx: RequestContext, subject: str | None = None) -> list[NewEvent]:
        """Encode (validating with the current schema), seal and stamp domain events."""
        now = self.clock.now()
        metadata = {"actor": ctx.actor, "correlation_id": ctx.correlation_id, "causation_id": ctx.causation_id}
        out = []
        for event in events:
            type_name, version, data = self.registry.encode(event)
            out.append(NewEvent(
                type=type_name, schema_version=version, data=self.seal(type_name, data, subject),
                metadata=dict(metadata), occurred_at=now,
            ))
        return out

    @staticmethod
    def scoped_key(ctx: RequestContext, scope: str) -> str | None:
        """Keys are per actor and target, so two clients' keys never collide."""
        if not ctx.idempotency_key:
            return None
        return request_fingerprint(ctx.actor, scope, ctx.idempotency_key)

    def replay(self, key: str | None, fingerprint: str) -> Outcome | None:
        """The first answer given under this key (IdempotencyKeyReused if the request differs)."""
        if not key:
            return None
        found = self.store.find_idempotent(key, fingerprint)
        return None if found is None else Outcome(dict(found.result), found.last_version, replayed=True)

    def execute(
        self,
        stream: str,
        ctx: RequestContext,
        *,
        scope: str,
        request: Sequence[Any],
        load: Callable[[], tuple[S, int]],
        decide: Callable[[S], list[Any]],
        result: Mapping[str, Any],
        subject: str | None = None,
    ) -> Outcome:
        """Run one command on an existing stream: replay a repeated request (same key and
        `request`), load the state and its version, decide, append with that version. A stream
        that moved in between is decided again unless the caller named the version it expects.
        A decision of no events stores nothing and answers the current version."""
        key = self.scoped_key(ctx, scope)
        fingerprint = request_fingerprint(*request)
        replayed = self.replay(key, fingerprint)
        if replayed is not None:
            return replayed
        attempts = 1 if ctx.expected_version is not None else self.attempts
        for attempt in range(attempts):
            state, version = load()
            if ctx.expected_version is not None and ctx.expected_version != version:
                raise ConcurrencyConflict(stream, ctx.expected_version, version)
            events = decide(state)
            if not events:
                return Outcome(dict(result), version)
            try:
                appended = self.store.append(
                    stream, self.new_events(events, ctx, subject), expected_version=version,
                    idempotency_key=key, request_hash=fingerprint, result=result,
                )
            except ConcurrencyConflict:
                if attempt == attempts - 1:
                    raise
                continue
            self.after_commit(ctx.correlation_id)
            return Outcome(dict(appended.result), appended.last_version, appended.replayed)
        raise AssertionError("unreachable")  # pragma: no cover

    def start(
        self,
        stream: str,
        ctx: RequestContext,
        *,
        scope: str,
        request: Sequence[Any],
        decide: Callable[[], list[Any]],
        result: Mapping[str, Any],
        subject: str | None = None,
    ) -> Outcome:
        """Run a command that opens a new stream (expected version: no stream yet)."""
        key = self.scoped_key(ctx, scope)
        fingerprint = request_fingerprint(*request)
        replayed = self.replay(key, fingerprint)
        if replayed is not None:
            return replayed
        appended = self.store.append(
            stream, self.new_events(decide(), ctx, subject), expected_version=NO_STREAM,
            idempotency_key=key, request_hash=fingerprint, result=result,
        )
        self.after_commit(ctx.correlation_id)
        return Outcome(dict(appended.result), appended.last_version, appended.replayed)

    def record(self, stream: str, events: Iterable[object], ctx: RequestContext) -> None:
        """Append facts that need no decision (an audit record) at whatever version the stream has."""
        self.store.append(stream, self.new_events(events, ctx), expected_version=ANY_VERSION)

    def record_many(self, batches: Iterable[tuple[str, Iterable[object]]], ctx: RequestContext) -> int:
        """Append to several streams in one transaction (each at any version); how many."""
        return len(self.store.append_many([(stream, self.new_events(events, ctx)) for stream, events in batches]))


# -- policies ----------------------------------------------------------------------------------
#: What a policy does about one event: the commands it leads to (none for most). It may also
#: record side effects through `conn`, which commits together with the policy's checkpoint.
Reaction = Callable[[sa.Connection, RecordedEvent], Iterable[Any]]
#: Runs one command a policy issued (the service's own dispatch, e.g. `services.handle`).
Dispatch = Callable[[Any, RequestContext], object]


def policy_context(policy: str, event: RecordedEvent, index: int = 0) -> RequestContext:
    """The context of the `index`th command `policy` issues for `event`: caused by it, in its
    correlation, and keyed by its id, so issuing the command again stores nothing again."""
    return RequestContext(
        actor=f"policy:{policy}",
        correlation_id=str(event.metadata.get("correlation_id") or event.event_id),
        idempotency_key=f"{policy}:{event.event_id}:{index}",
        causation_id=event.event_id,
    )


def policy(
    name: str,
    reactions: Mapping[str, Reaction],
    dispatch: Dispatch,
    tables: tuple[sa.Table, ...] = (),
) -> Projection:
    """A policy as a projection for the runner: its checkpoint is named `name`, its reactions
    are its handlers (by event type), and each command a reaction returns is dispatched with
    `policy_context`. A crash after a command but before the checkpoint commits runs the
    reaction again; the command's idempotency key makes that second run store nothing.
    `tables` are created with the runner's schema and, like a read model's, emptied by a rebuild:
    a ledger of effects outside the database (mail sent) belongs in a table the runner does not
    own, or a rebuild repeats the effects."""

    def handler_for(reaction: Reaction) -> Callable[[sa.Connection, RecordedEvent], None]:
        def handle(conn: sa.Connection, event: RecordedEvent) -> None:
            for index, command in enumerate(reaction(conn, event)):
                dispatch(command, policy_context(name, event, index))

        return handle

    return Projection(name, tables, {type_name: handler_for(r) for type_name, r in reactions.items()})
