"""Wires the assessment side: its database, the intake feed and the projection runner, and its own
event store (staff decisions and the audit of staff views) with the runner of its own read model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from assessment_service import projections
from assessment_service.events import REGISTRY
from shared.adapters.feed import HttpEventFeed, StoreEventFeed
from shared.adapters.sql import autocommit, is_sqlite, make_engine
from shared.adapters.sql_store import SqlEventStore
from shared.adapters.sql_vault import SqlKeyVault
from shared.adapters.stores import open_event_store
from shared.catalogue import Catalogue
from shared.clock import Clock, configured_clock
from shared.config import Settings
from shared.personal import PersonalDataCodec
from shared.projection import PIPELINED, EventFeed, ProjectionRunner

#: Events per feed page and per projection transaction: fewer round trips and commits.
BATCH_SIZE = 2000


@dataclass
class AssessmentContext:
    """Everything the assessment use cases need; one per process (never shared across fork)."""

    settings: Settings
    engine: sa.Engine
    reader: sa.Engine
    feed: EventFeed
    runner: ProjectionRunner
    catalogue: Catalogue
    #: The assessment service's own events (tables `events`, `idempotency_keys` in its database).
    store: SqlEventStore
    #: Projects `store` into the `assignments` read model (checkpoint "assignments").
    own_runner: ProjectionRunner
    clock: Clock
    #: Seals the personal fields of the own events (review comments, summaries) with the
    #: student's key, kept in this database (`subject_keys`); the student's erasure destroys it.
    codec: PersonalDataCodec | None = None

    @property
    def sealing(self) -> PersonalDataCodec:
        if self.codec is None:
            raise RuntimeError("this assessment context has no key vault")
        return self.codec

    def dispose(self) -> None:
        self.store.dispose()
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()


def build_context(settings: Settings, **overrides: Any) -> AssessmentContext:
    """Build the context. `overrides`: feed= (e.g. a StoreEventFeed in tests), batch_size=, clock=."""
    url = settings.assessment_db_url
    if url == settings.intake_db_url:
        # Both stores name their tables `events`: one database would mix the two logs.
        raise RuntimeError("CIM_ASSESSMENT_DB_URL must name another database than CIM_INTAKE_DB_URL")
    # Writers queue on SQLite's write lock up front (BEGIN IMMEDIATE): that lock is what
    # serialises concurrent projection runners there. Reads use a plain engine (on PostgreSQL the
    # same pool in autocommit: a read needs no BEGIN/ROLLBACK round trips). The read models
    # are rebuildable, so their commits skip the per-commit fsync (durable=False); the staff
    # decisions' own event store below has its own, fully durable engine.
    engine = make_engine(url, immediate=True, pool_size=5, durable=False)
    reader = make_engine(url, pool_size=5) if is_sqlite(url) else autocommit(engine)
    feed = overrides.get("feed") or HttpEventFeed(
        settings.intake_feed_url or settings.intake_url, token=settings.feed_token
    )
    batch_size = overrides.get("batch_size", BATCH_SIZE)  # the intake feed serves up to 5,000
    catalogue = overrides.get("catalogue") or Catalogue.load(settings.departments_file)
    runner = ProjectionRunner(
        engine, feed, projections.build(catalogue), batch_size=batch_size, reader=reader, options=PIPELINED
    )
    runner.create_schema()
    clock = overrides.get("clock") or configured_clock(settings.clock_file)
    store = open_event_store(url, clock, pool_size=5)
    store.create_schema()
    vault = overrides.get("vault") or SqlKeyVault(url, settings.vault_secret)
    if isinstance(vault, SqlKeyVault):
        vault.create_schema()
    own_runner = ProjectionRunner(
        engine, StoreEventFeed(store, REGISTRY), projections.own(catalogue), batch_size=batch_size, reader=reader,
        options=PIPELINED,
    )
    own_runner.create_schema()
    return AssessmentContext(
        settings, engine, reader, feed, runner, catalogue, store, own_runner, clock, PersonalDataCodec(REGISTRY, vault)
    )
