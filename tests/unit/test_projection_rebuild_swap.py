"""A rebuild readers never see (issue 16, item 4): the read model is rebuilt in a shadow and swapped
in with one transaction, so a reader polling from another connection meanwhile never sees fewer
rows or an older checkpoint, while live runners keep applying new events; and every event reaches
the rows exactly once, whether the live runners were ahead of the shadow or behind it."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assessment_service import projections
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.adapters.sql_vault import subject_keys
from shared.events import NewEvent
from shared.projection import ProjectionRunner
from tests.unit.test_projection_runner import T0, registered, report, runner_for, seed

STUDENTS = projections.students.students

_COUNTS = sa.text(
    "SELECT (SELECT count(*) FROM students), (SELECT coalesce(sum(reports_submitted), 0) FROM students), "
    "(SELECT position FROM projection_checkpoints WHERE name = 'students')"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'assessment.db'}"


def _add_students(store: Any, count: int, first: int) -> None:
    for i in range(count):
        sid = str(uuid.uuid4())
        store.append(f"student-{sid}", [registered(sid, first + i), report(first + i)], expected_version=None)


def _counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        students, reports, position = conn.execute(_COUNTS).one()
    return int(students), int(reports), int(position)


def _shadows_left(runner: ProjectionRunner, tmp_path: Path) -> list[str]:
    if runner.engine.dialect.name == "sqlite":
        return sorted(p.name for p in tmp_path.iterdir() if ".rebuild-" in p.name)
    with runner.engine.connect() as conn:
        return list(conn.exec_driver_sql(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, 'cim_rebuild_')").scalars())


def test_a_reader_polling_during_a_rebuild_never_sees_fewer_rows(db_url: str, tmp_path: Path) -> None:
    store = InMemoryEventStore()
    seed(store, 1500)  # 3,000 events
    runner = runner_for(db_url, store, batch_size=250)
    runner.catch_up()
    before = _counts(runner.engine)
    assert before == (1500, 1500, 3000)

    reader = make_engine(db_url, pool_size=1)
    seen: list[tuple[int, int, int]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            while not stop.is_set():
                seen.append(_counts(reader))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    live = runner_for(db_url, store, batch_size=7)

    def arrive() -> None:  # new students keep arriving, and a live runner keeps projecting them
        try:
            for n in range(20):
                _add_students(store, 5, 10_000 + n * 5)
                live.catch_up()
                time.sleep(0.01)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=poll), threading.Thread(target=arrive)]
    for thread in threads:
        thread.start()
    try:
        runner.rebuild()
    finally:
        threads[1].join()
        stop.set()
        threads[0].join()
    assert not errors
    runner.catch_up()

    assert len(seen) > 10  # the reader really did poll while the rebuild ran
    assert min(students for students, _r, _p in seen) >= before[0]
    # Never backwards: no snapshot shows fewer students, fewer reports or an older checkpoint
    # than one seen before it (the swap is one transaction; the checkpoint never moves back).
    # Atomic: every snapshot's rows are exactly the read model at its checkpoint (each student's
    # registration and report take consecutive positions: 2k-1 and 2k).
    for students, reports, position in seen:
        assert (students, reports) == ((position + 1) // 2, position // 2), (students, reports, position)
    for earlier, later in itertools.pairwise(seen):
        assert all(after >= before for before, after in zip(earlier, later, strict=True)), (earlier, later)
    assert _counts(runner.engine) == (1600, 1600, store.head())  # every event applied exactly once
    assert _shadows_left(runner, tmp_path) == []


def _clean_digest(runner: ProjectionRunner, store: Any, url: str) -> str:
    clean = runner_for(url, store, batch_size=500)
    clean.catch_up()
    return clean.digest()


def _another_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'clean.db'}"
    return request.getfixturevalue("pg_database")()


def test_events_the_live_runners_applied_past_the_shadow_are_kept_and_applied_once(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryEventStore()
    seed(store, 40)
    runner = runner_for(db_url, store, batch_size=25)
    runner.catch_up()
    live = runner_for(db_url, store)
    swap = runner._swap

    def live_moves_on_first(*args: Any) -> Any:  # between the shadow's last page and the swap
        _add_students(store, 10, 500)
        live.catch_up()
        assert _counts(runner.engine)[0] == 50
        return swap(*args)

    monkeypatch.setattr(runner, "_swap", live_moves_on_first)
    runner.rebuild()
    assert _counts(runner.engine) == (50, 50, store.head())
    assert runner.checkpoints() == dict.fromkeys(runner.projections, store.head())
    assert runner.digest() == _clean_digest(runner, store, _another_url(db_url, tmp_path, request))


def test_an_erasure_only_the_shadow_applied_still_destroys_the_key_in_the_live_store(db_url: str) -> None:
    """The live runners had not applied the erasure yet when the shadow did: the swap applies it
    to the live store as well, so the student's key is destroyed there (an effect beyond the
    projection's tables), and the copied row is the blanked one."""
    store = InMemoryEventStore()
    sid = seed(store, 3)[0]
    runner = runner_for(db_url, store, projs=(projections.students.PROJECTION,))
    runner.catch_up()
    with runner.engine.begin() as conn:
        subject_keys.create(conn, checkfirst=True)
    store.append(f"student-{sid}", [NewEvent("StudentErased", 1, {"reason": ""}, {"actor": "test"},
                                             T0)], expected_version=None)
    runner.rebuild()
    with runner.engine.connect() as conn:
        key = conn.execute(sa.select(subject_keys.c.wrapped_key, subject_keys.c.erased_at)
                           .where(subject_keys.c.subject_id == sid)).one()
        name, email = conn.execute(sa.select(STUDENTS.c.name, STUDENTS.c.email)
                                   .where(STUDENTS.c.student_id == sid)).one()
    assert key.wrapped_key is None
    assert key.erased_at is not None
    assert (name, email) == (None, None)
    assert runner.checkpoints() == {"students": store.head()}


def test_a_failed_rebuild_leaves_the_live_model_and_no_shadow(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryEventStore()
    seed(store, 20)
    runner = runner_for(db_url, store)
    runner.catch_up()
    before = (runner.digest(), runner.checkpoints())

    def broken(*_args: Any) -> Any:
        raise RuntimeError("swap failed")

    monkeypatch.setattr(runner, "_swap", broken)
    with pytest.raises(RuntimeError):
        runner.rebuild()
    assert (runner.digest(), runner.checkpoints()) == before
    assert _shadows_left(runner, tmp_path) == []
