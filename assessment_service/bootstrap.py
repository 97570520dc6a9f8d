"""Wires the assessment side: its database, the intake feed and the projection runner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from assessment_service import projections
from shared.adapters.feed import HttpEventFeed
from shared.adapters.sql import is_sqlite, make_engine
from shared.catalogue import Catalogue
from shared.config import Settings
from shared.projection import EventFeed, ProjectionRunner


@dataclass
class AssessmentContext:
    """Everything the assessment use cases need; one per process (never shared across fork)."""

    settings: Settings
    engine: sa.Engine
    reader: sa.Engine
    feed: EventFeed
    runner: ProjectionRunner
    catalogue: Catalogue

    def dispose(self) -> None:
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()


def build_context(settings: Settings, **overrides: Any) -> AssessmentContext:
    """Build the context. `overrides`: feed= (e.g. a StoreEventFeed in tests), batch_size=."""
    url = settings.assessment_db_url
    # Writers queue on SQLite's write lock up front (BEGIN IMMEDIATE): that lock is what
    # serialises concurrent projection runners there. Reads use a plain engine.
    engine = make_engine(url, immediate=True, pool_size=5)
    reader = make_engine(url, pool_size=5) if is_sqlite(url) else engine
    feed = overrides.get("feed") or HttpEventFeed(settings.intake_url)
    # Pages of 2,000 (the intake feed serves up to 5,000): fewer round trips and fsync'd commits.
    batch_size = overrides.get("batch_size", 2000)
    runner = ProjectionRunner(engine, feed, projections.ALL, batch_size=batch_size, reader=reader)
    runner.create_schema()
    catalogue = overrides.get("catalogue") or Catalogue.load(settings.departments_file)
    return AssessmentContext(settings, engine, reader, feed, runner, catalogue)
