"""Erasure leaves nothing on disk once it is projected (issue 18.8).

A canary student goes through the real apps on SQLite files (intake events and key vault,
assessment read models); `students erase` runs, the assessment catch-up projects StudentErased,
and *right then* — no daily task, no manual checkpoint — the bytes of every database file,
-wal and -shm included, are searched for the canary's name, e-mail, university id, activity
description, title, organiser and report answers. The audit found them in the assessment database's WAL for up
to a day."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from assessment_service import create_app as create_assessment_app
from intake_service import create_app as create_intake_app
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.clock import FixedClock
from shared.config import Settings
from shared.events import NewEvent
from shared.projection import Projection, ProjectionRunner, compact_after_scrub
from tests.authkit import authed_client, bearer, make_identity, student_account
from tests.conftest import CLOCK_START

CANARY = {
    "name": "Qanary Zylphwright",
    "email": "qanary.zylphwright@example.org",
    "university_id": "qz9876zy",
    "description": "qanary-description-wobbleplank",
    "answer": "qanary-answer-frobnicated",
    "title": "qanary-title-zwiebelturm",
    "organiser": "qanary-organiser-glimmerstack",
}
OTHER = {"name": "Kept Vonstayington", "email": "kept.vonstayington@example.org"}


def database_bytes(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data_dir.glob("*.db*")) if p.is_file()}


def hits(files: dict[str, bytes], needle: str) -> list[str]:
    return [name for name, content in files.items() if needle.encode() in content]


def register(api, person: dict[str, str], n: int) -> str:  # type: ignore[no-untyped-def]
    response = api.post("/api/v1/students", json={
        "name": person["name"], "email": person["email"], "university_id": person.get("university_id", f"kv{n}11ab"),
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"})
    assert response.status_code == 201, response.json
    sid = response.json["student_id"]
    activity = api.post(f"/api/v1/students/{sid}/activities", json={
        "kind": "exchange", "title": person.get("title", "Exchange term"),
        "organiser": person.get("organiser", "A university"),
        "setting": "abroad", "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01",
        "description": person.get("description", "A term abroad.")})
    assert activity.status_code == 201, activity.json
    report = api.post(f"/api/v1/students/{sid}/reports", json={
        "answers": {"learning": person.get("answer", "Much."), "profession": "b", "perspective": "c"},
        "activity_ids": [activity.json["activity_id"]], "attachment_id": None})
    assert report.status_code == 201, report.json
    return sid


def test_an_erased_students_data_is_gone_from_every_database_file_once_projected(tmp_path: Path) -> None:
    clock = FixedClock(CLOCK_START)
    identity = make_identity(clock)
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, wakeup="none", ratelimit_storage="memory://",
                        ratelimit_post="100000 per minute")
    intake = create_intake_app(settings, clock=clock, identity=identity)  # SQLite store and vault
    services = intake.extensions["cim.intake"]
    assessment = create_assessment_app(
        settings, feed=StoreEventFeed(services.store, opener=services.open_events), clock=clock, identity=identity)
    runner = assessment.extensions["cim.assessment"].runner
    api = authed_client(intake, bearer(identity))
    canary_id = register(api, CANARY, 0)
    register(api, OTHER, 1)
    student_account(identity, canary_id, email=CANARY["email"])
    runner.catch_up()
    # The canary's personal calendar link (a revoked one and the live one): erasure deletes both.
    from assessment_service import calendar_feeds

    context = assessment.extensions["cim.assessment"]
    calendar_feeds.new_link(context.engine, canary_id, CLOCK_START)
    calendar_token = calendar_feeds.new_link(context.engine, canary_id, CLOCK_START)
    calendar_hash = calendar_feeds._hash(calendar_token)
    assert calendar_feeds.student_of(context.engine, calendar_token) == canary_id

    before = database_bytes(data_dir)
    assert "assessment.db-wal" in before  # the read model runs in WAL mode
    assert hits(before, CANARY["name"])  # the search sees the projected copies before erasure

    result = intake.test_cli_runner().invoke(args=["students", "erase", canary_id, "--operator", "residue-test"])
    assert result.exit_code == 0, result.output
    runner.catch_up()  # projects StudentErased: nothing else runs before the search

    after = database_bytes(data_dir)
    assert {"intake.db", "assessment.db"} <= set(after)
    assert calendar_feeds.student_of(context.engine, calendar_token) is None  # the link is dead
    with context.engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(calendar_feeds.calendar_feeds)
                            .where(calendar_feeds.calendar_feeds.c.student_id == canary_id)).scalar()
    assert left == 0
    assert hits(after, calendar_hash) == []  # not even in a WAL page
    found = {field: hits(after, value) for field, value in CANARY.items()}
    assert found == {field: [] for field in CANARY}
    # the other student's copies are still there (the search is not vacuous)
    assert "assessment.db" in hits(after, OTHER["name"])
    assert len(after.get("assessment.db-wal", b"")) == 0  # checkpointed and truncated

    # A rebuild reads the erased student's sealed fields as null and gives the live rows again.
    live = runner.digest()
    runner.rebuild()
    assert runner.digest() == live


def _people_runner(table: str, url: str) -> tuple[InMemoryEventStore, sa.Engine, ProjectionRunner]:
    """A read model `table` of names ("Added") that an "Erased" event scrubs, projected into `url`."""
    people = sa.Table(table, sa.MetaData(), sa.Column("id", sa.String(36), primary_key=True),
                      sa.Column("name", sa.String(200), nullable=True))

    def on_added(conn: sa.Connection, event) -> None:  # type: ignore[no-untyped-def]
        conn.execute(people.insert().values(id=event.stream_id, name=event.data["name"]))

    def on_erased(conn: sa.Connection, event) -> None:  # type: ignore[no-untyped-def]
        conn.execute(people.update().where(people.c.id == event.stream_id).values(name=None))

    projection = Projection("people", (people,), {"Added": on_added, "Erased": on_erased},
                            scrubs=frozenset({"Erased"}))
    store = InMemoryEventStore(FixedClock(CLOCK_START))
    engine = make_engine(url, immediate=True, durable=False)
    runner = ProjectionRunner(engine, StoreEventFeed(store), [projection])
    runner.create_schema()
    return store, engine, runner


def test_the_runner_compacts_only_after_a_batch_that_scrubbed(tmp_path: Path) -> None:
    """A batch without a scrubbing event leaves the WAL alone; one with it truncates the WAL."""
    store, engine, runner = _people_runner("people", f"sqlite:///{tmp_path / 'rm.db'}")
    wal = tmp_path / "rm.db-wal"

    def append(stream: str, type_: str, data: dict) -> None:
        store.append(stream, [NewEvent(type=type_, schema_version=1, data=data, metadata={},
                                       occurred_at=CLOCK_START)], expected_version=None)

    append("p1", "Added", {"name": "Wobbly Canaryface"})
    runner.catch_up()
    assert wal.stat().st_size > 0
    assert b"Wobbly Canaryface" in wal.read_bytes() + (tmp_path / "rm.db").read_bytes()
    append("p1", "Erased", {})
    runner.catch_up()
    assert wal.stat().st_size == 0
    assert b"Wobbly Canaryface" not in (tmp_path / "rm.db").read_bytes()
    engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_the_scrubbed_tables_are_vacuumed(pg_url: str) -> None:
    store, engine, runner = _people_runner("people_pg", pg_url)

    def vacuums() -> int:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            return int(conn.exec_driver_sql(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'people_pg'").scalar_one())

    for type_, data in (("Added", {"name": "Wobbly Canaryface"}), ("Erased", {})):
        before = vacuums()
        store.append("p1", [NewEvent(type=type_, schema_version=1, data=data, metadata={},
                                     occurred_at=CLOCK_START)], expected_version=None)
        runner.catch_up()
        # statistics reach pg_stat_user_tables with a short delay
        deadline = time.monotonic() + 5
        while vacuums() == before and type_ == "Erased" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (vacuums() > before) is (type_ == "Erased")
    engine.dispose()


def test_a_failed_compaction_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    engine = sa.create_engine("sqlite:////nonexistent-dir/cannot.db")
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    compact_after_scrub(engine, [table])
    assert "compaction after an erasure failed" in caplog.text
