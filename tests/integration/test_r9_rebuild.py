"""Rebuilding every read model from 100,000 events, old schema versions among them, gives
exactly the read models that were built incrementally while the events arrived
(bar R9; the key is in tests/README.md)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from assessment_service import projections
from intake_service.bootstrap import build_services
from intake_service.events import REGISTRY
from shared.adapters.feed import StoreEventFeed
from shared.adapters.sql import make_engine
from shared.adapters.stores import open_event_store
from shared.config import Settings
from shared.events import NewEvent
from shared.projection import ProjectionRunner

WHEN = datetime(2025, 3, 1, 12, tzinfo=UTC)
META = {"actor": "import:r9", "correlation_id": "r9", "causation_id": None}


def student_events(n: int) -> list[NewEvent]:
    """One synthetic student's history: 10 events, one ActivityLogged stored as schema v1."""
    sid = str(uuid.UUID(int=n))
    activities = [str(uuid.UUID(int=10**9 + n * 10 + k)) for k in range(5)]
    events = [
        ("StudentRegistered", 1, {
            "student_id": sid, "name": f"Synthetic Student {n}", "email": f"s{n}@example.org",
            "university_id": f"r9-{n}", "department": "SOCSW" if n % 3 else "MED",
            "programme": "SSASK" if n % 3 else "MALAK", "expected_end_term": "VT2028",
            "rules": "SOCSW@1" if n % 3 else "MED@1"}),
        # v1: before digital activities existed (abroad: bool, country).
        ("ActivityLogged", 1, {
            "activity_id": activities[0], "kind": "exchange", "title": f"Exchange {n}", "organiser": "U",
            "abroad": True, "country": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01",
            "description": ""}),
    ]
    for k in range(1, 5):
        events.append(("ActivityLogged", 2, {
            "activity_id": activities[k], "kind": "seminar", "title": f"Seminar {n}.{k}", "organiser": "U",
            "setting": "digital", "country_code": None, "start_date": "2025-02-01", "end_date": "2025-02-01",
            "hours": 2, "description": ""}))
    events.append(("ActivityAmended", 1, {
        "activity_id": activities[1], "kind": "seminar", "title": f"Seminar {n}.1 (amended)", "organiser": "U",
        "setting": "digital", "country_code": None, "start_date": "2025-02-01", "end_date": "2025-02-01",
        "hours": 3, "description": ""}))
    events.append(("ActivityWithdrawn", 1, {"activity_id": activities[4], "reason": ""}))
    events.append(("StudiesCompleted", 1, {"completed_on": "2026-01-15", "term": "HT2025"}))
    events.append(("ReportSubmitted", 1, {
        "report_id": str(uuid.UUID(int=2 * 10**9 + n)), "answers": {"learning": "a", "profession": "b"},
        "activity_ids": activities[:3], "attachment_id": None, "rules": "SOCSW@1"}))
    return [NewEvent(t, v, d, META, WHEN, str(uuid.uuid4())) for t, v, d in events]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rebuild_of_100k_events_with_old_schema_versions_equals_the_incremental_read_models(tmp_path: Path) -> None:
    total = int(os.environ.get("CIM_R9_EVENTS", "100000"))
    settings = Settings(data_dir=tmp_path, wakeup="none")
    store = open_event_store(settings.intake_db_url)
    store.create_schema()
    services = build_services(settings, store=store)
    feed = StoreEventFeed(store, opener=services.open_events)

    live = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / 'live.db'}", immediate=True), feed,
                            projections.ALL, batch_size=500)
    live.create_schema()
    students = total // 10
    for n in range(students):
        store.append(f"student-{uuid.UUID(int=n)}", student_events(n), expected_version=0)
        if n % 997 == 0:  # catch up now and then, as the worker does while events arrive
            live.catch_up()
    live.catch_up()
    assert store.count() == students * 10
    assert set(live.checkpoints().values()) == {store.head()}

    rebuilt = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / 'rebuilt.db'}", immediate=True), feed,
                               projections.ALL, batch_size=2000)
    rebuilt.create_schema()
    rebuilt.rebuild()
    assert live.digest() == rebuilt.digest()
    # And the old events really were upcast: every v1 activity arrived with a setting.
    with rebuilt.reader.connect() as conn:
        settings_seen = {row[0] for row in conn.exec_driver_sql("SELECT DISTINCT setting FROM activities")}
    assert settings_seen == {"abroad", "digital"}
    assert REGISTRY.current_version("ActivityLogged") == 2
