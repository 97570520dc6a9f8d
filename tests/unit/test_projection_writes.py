"""Queued projection writes: inside a runner batch they run as one executemany per statement on the
driver's own cursor (with the statement's constants and the types' bind processors applied as
SQLAlchemy would); the rows must come out exactly as if every write had run on its own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from shared.adapters.sql import make_engine
from shared.events import RecordedEvent
from shared.projection import PIPELINED, Projection, ProjectionRunner, queue, table_digest
from tests.unit.test_my_cim_status import ListFeed

metadata = sa.MetaData()
tally = sa.Table(
    "tally",
    metadata,
    sa.Column("key", sa.String(20), primary_key=True),
    sa.Column("label", sa.String(50), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("last", sa.BigInteger, nullable=False),
)
# A constant inside the statement (`count + 1`: a bound 1) and a Boolean (a bind processor).
BUMP = (tally.update().where(tally.c.key == sa.bindparam("b_key"))
        .values(count=tally.c.count + 1, flagged=sa.bindparam("b_flag"), last=sa.bindparam("b_last")))
RENAME = tally.update().where(tally.c.key == sa.bindparam("b_key")).values(label=sa.bindparam("b_label"))


def _upsert(dialect: str) -> sa.Insert:
    insert = postgresql.insert(tally) if dialect == "postgresql" else sqlite.insert(tally)
    return insert.on_conflict_do_update(index_elements=[tally.c.key],
                                        set_={"label": insert.excluded.label, "last": insert.excluded.last})


def on_event(conn: sa.Connection, event: RecordedEvent) -> None:
    key, what = event.data["key"], event.data["what"]
    if what == "upsert":
        queue(conn, UPSERTS[conn.dialect.name],
              {"key": key, "label": f"v{event.position}", "count": 0, "flagged": False, "last": event.position},
              key=key)
    elif what == "bump":
        queue(conn, BUMP, {"b_key": key, "b_flag": event.position % 2 == 0, "b_last": event.position}, key=key)
    else:
        queue(conn, RENAME, {"b_key": key, "b_label": f"r{event.position}"}, key=key)


UPSERTS = {"postgresql": _upsert("postgresql"), "sqlite": _upsert("sqlite")}
PROJECTION = Projection("tally", (tally,), {"Tallied": on_event})


def history() -> list[RecordedEvent]:
    """Upserts, bumps and renames of six keys, interleaved: some keys upserted twice, bumps of one
    key far apart and close together, so groups form, merge past other keys and split."""
    steps = [(k, "upsert") for k in "abcdef"] + [
        ("a", "bump"), ("b", "bump"), ("a", "bump"), ("c", "rename"), ("a", "upsert"), ("a", "bump"),
        ("d", "bump"), ("e", "rename"), ("d", "bump"), ("f", "upsert"), ("b", "rename"), ("b", "bump"),
    ] * 3
    return _tallied(steps)


def bulk_history() -> list[RecordedEvent]:
    """Groups long enough for COPY on PostgreSQL (shared.adapters.bulk_writes.COPY_MIN_ROWS):
    150 new keys (copied straight in), the same keys again (they exist: the staged upsert), then
    each of 80 keys upserted twice in a row (a repeated key: one by one), bumps between."""
    keys = [f"k{n:03d}" for n in range(150)]
    steps = [(k, "upsert") for k in keys] + [(k, "bump") for k in keys[:100]] + [(k, "upsert") for k in keys]
    steps += [(k, "upsert") for k in keys[:80] for _ in range(2)] + [(k, "bump") for k in keys[50:]]
    return _tallied(steps)


def _tallied(steps: list[tuple[str, str]]) -> list[RecordedEvent]:
    at = datetime(2026, 11, 28, tzinfo=UTC)
    return [RecordedEvent(position=n, event_id=f"e{n}", stream_id=f"s-{key}", version=n, type="Tallied",
                          schema_version=1, data={"key": key, "what": what}, metadata={}, occurred_at=at,
                          recorded_at=at)
            for n, (key, what) in enumerate(steps, start=1)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'writes.db'}"


@pytest.mark.parametrize(("make_history", "batch_size"), [
    (history, 1), (history, 5), (history, 1000), (bulk_history, 150), (bulk_history, 5000),
])
def test_batched_writes_equal_one_by_one_writes(db_url: str, make_history, batch_size: int) -> None:
    events = make_history()
    engine = make_engine(db_url, immediate=True)
    runner = ProjectionRunner(engine, ListFeed(events), [PROJECTION], batch_size=batch_size)
    runner.create_schema()
    assert runner.catch_up() == len(events)
    with engine.connect() as conn:
        batched = conn.execute(sa.select(tally).order_by(tally.c.key)).all()
        batched_digest = table_digest(conn, [tally])

    # The same writes, each executed at once (outside a runner, `queue` executes immediately).
    with engine.begin() as conn:
        conn.execute(tally.delete())
        for event in events:
            on_event(conn, event)
    with engine.connect() as conn:
        one_by_one = conn.execute(sa.select(tally).order_by(tally.c.key)).all()
        assert table_digest(conn, [tally]) == batched_digest
    engine.dispose()
    assert batched == one_by_one
    if make_history is bulk_history:
        rows = {row.key: row for row in one_by_one}
        assert len(rows) == 150
        last_upsert = max(e.position for e in events if e.data == {"key": "k000", "what": "upsert"})
        assert rows["k000"].label == f"v{last_upsert}"  # the second upsert of its pair
        assert rows["k060"].count == 2
        return
    a = {row.key: row for row in one_by_one}["a"]
    assert a.count == 9
    assert a.flagged is (a.last % 2 == 0)
    assert a.label == f"v{a.last - 1}"


broken_log = sa.Table(
    "broken_log",
    metadata,
    sa.Column("key", sa.String(20), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)
BROKEN_INSERT = broken_log.insert()


def on_event_broken(conn: sa.Connection, event: RecordedEvent) -> None:
    """Queues a row the database refuses (NULL into NOT NULL) for the last key only."""
    key = event.data["key"]
    if event.data["what"] == "upsert":
        queue(conn, BROKEN_INSERT, {"key": f"{key}-{event.position}",
                                    "n": None if key == "k149" else event.position}, key=key)


def test_a_write_refused_behind_the_handlers_rolls_back_every_projection(db_url: str) -> None:
    """Pages of 200+ events write one projection's rows on a writer thread while the next one's
    handlers run: a write refused there fails the whole batch, rows and checkpoints alike."""
    events = bulk_history()
    engine = make_engine(db_url, immediate=True)
    broken = Projection("a_broken", (broken_log,), {"Tallied": on_event_broken})
    runner = ProjectionRunner(engine, ListFeed(events), [broken, PROJECTION], batch_size=5000, options=PIPELINED)
    runner.create_schema()
    with pytest.raises(sa.exc.IntegrityError):
        runner.catch_up()
    assert runner.checkpoints() == {"a_broken": 0, "tally": 0}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tally)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(broken_log)).scalar() == 0
    engine.dispose()
