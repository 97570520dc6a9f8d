"""The review queue's stored checklist counts the assessor group's accepted rulings: an activity of
a kind the rule set does not list counts as the kind it was ruled to be, whichever of the two
runners (the intake feed's `review_queue`, the own store's `activity_rulings` and
`review_queue_rulings`) applies its event first, and a rebuild of either equals the live rows."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from assessment_service import projections
from assessment_service.events import REGISTRY as ASSESSMENT_REGISTRY
from assessment_service.projections import review_queue, rulings
from intake_service.events import REGISTRY
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.catalogue import Catalogue
from shared.events import NewEvent
from shared.projection import ProjectionRunner, table_digest
from tests.unit.test_review_queue_checklist import Student

CATALOGUE = Catalogue.load(Path(__file__).resolve().parents[2] / "config" / "departments.toml")
T1 = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


class World:
    """The intake feed's queue and the own store's rulings, two runners on one database."""

    def __init__(self, db_url: str) -> None:
        self.intake_store, self.own_store = InMemoryEventStore(), InMemoryEventStore()
        engine = make_engine(db_url, immediate=True)
        self.intake = ProjectionRunner(engine, StoreEventFeed(self.intake_store, REGISTRY),
                                       (*projections.ALL[:3], review_queue.build(CATALOGUE.rule_set)), batch_size=3)
        self.own = ProjectionRunner(engine, StoreEventFeed(self.own_store, ASSESSMENT_REGISTRY),
                                    (rulings.PROJECTION, review_queue.build_rulings(CATALOGUE.rule_set)),
                                    batch_size=3)
        self.intake.create_schema()
        self.own.create_schema()
        projections.metadata.create_all(engine)

    def rule(self, student: Student, activity_id: str, outcome: str = "accepted_as_existing",
             kind: str | None = "seminar") -> None:
        data = {"activity_id": activity_id, "student_id": student.sid, "department": "SOCSW",
                "kind_label": "Model UN conference", "outcome": outcome, "kind": kind, "activity_class": None,
                "rationale": "An international conference format.", "ruled_by": str(uuid.uuid4())}
        self.own_store.append(f"activity-ruling-{activity_id}",
                              [NewEvent("ActivityKindRuled", 1, data, {"actor": "test", "correlation_id": "c"}, T1)],
                              expected_version=0)

    def checklists(self) -> dict[str, tuple[int, int, list[bool]]]:
        with self.intake.engine.connect() as conn:
            rows = conn.execute(sa.select(review_queue.review_queue)).all()
        return {row.student_id: (row.checklist_met, row.checklist_total,
                                 [item["met"] for item in json.loads(row.checklist)["items"]]) for row in rows}

    def digest(self) -> str:
        with self.intake.engine.connect() as conn:
            return table_digest(conn, review_queue.PROJECTION.tables)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'a.db'}"
    return World(url)


def _report_with_other(world: World) -> tuple[Student, str]:
    """SOCSW: at least three activities, one abroad. Two listed ones and a Model UN conference."""
    student = Student(world.intake_store)
    ids = [student.activity("Exchange", "exchange", "abroad"), student.activity("Webinar", "seminar", "digital")]
    other = student.activity("Model UN", "other", "at_home")
    student.submit([*ids, other])
    return student, other


def test_without_a_ruling_another_kind_does_not_count(world: World) -> None:
    student, _ = _report_with_other(world)
    world.intake.catch_up()
    world.own.catch_up()
    assert world.checklists()[student.sid] == (1, 2, [False, True])


def test_a_ruling_recorded_before_the_report_is_projected_counts(world: World) -> None:
    student, other = _report_with_other(world)
    world.rule(student, other)
    world.own.catch_up()  # the ruling first: no report waits yet
    assert world.checklists() == {}
    world.intake.catch_up()
    assert world.checklists()[student.sid] == (2, 2, [True, True])


def test_a_ruling_after_the_report_recomputes_its_checklist(world: World) -> None:
    student, other = _report_with_other(world)
    bystander, _ = _report_with_other(world)
    world.intake.catch_up()
    assert world.checklists()[student.sid] == (1, 2, [False, True])
    world.rule(student, other)
    world.own.catch_up()
    assert world.checklists()[student.sid] == (2, 2, [True, True])
    assert world.checklists()[bystander.sid] == (1, 2, [False, True])  # their own "other" is not ruled


def test_a_ruling_not_accepted_counts_nothing(world: World) -> None:
    student, other = _report_with_other(world)
    world.intake.catch_up()
    world.rule(student, other, outcome="not_accepted", kind=None)
    world.own.catch_up()
    assert world.checklists()[student.sid] == (1, 2, [False, True])


def test_a_new_kind_accepted_by_a_ruling_counts(world: World) -> None:
    student, other = _report_with_other(world)
    world.rule(student, other, outcome="accepted_as_new", kind="model-un")
    world.intake.catch_up()
    world.own.catch_up()
    assert world.checklists()[student.sid] == (2, 2, [True, True])


def test_a_resubmission_keeps_the_ruling(world: World) -> None:
    student, other = _report_with_other(world)
    world.intake.catch_up()
    world.rule(student, other)
    world.own.catch_up()
    with world.intake.engine.connect() as conn:
        rid = conn.execute(sa.select(review_queue.review_queue.c.report_id)).scalar_one()
    student.append("ReportResubmitted", {"report_id": rid, "round": 2, "answers": {"learning": "b"},
                                         "activity_ids": [other], "attachment_id": None, "rules": "SOCSW@1"})
    world.intake.catch_up()
    assert world.checklists()[student.sid] == (0, 2, [False, False])  # one seminar, none abroad


@pytest.mark.parametrize("first", ["intake", "own"])
def test_a_rebuild_in_either_order_equals_the_live_rows(world: World, first: str) -> None:
    ruled, other = _report_with_other(world)
    world.rule(ruled, other)
    world.intake.catch_up()
    world.own.catch_up()
    late, late_other = _report_with_other(world)  # reported before its ruling
    world.intake.catch_up()
    world.rule(late, late_other)
    world.own.catch_up()
    live = world.digest()
    assert world.checklists()[ruled.sid][0] == world.checklists()[late.sid][0] == 2
    # Rebuild each runner's projections in a shadow, one order then the other.
    runners = [world.intake, world.own] if first == "intake" else [world.own, world.intake]
    for runner in runners:
        runner.rebuild()
        assert world.digest() == live
    # And from nothing: both emptied, then caught up in this order.
    world.intake.reset(["review_queue"])
    world.own.reset(["activity_rulings", "review_queue_rulings"])
    for runner in runners:
        runner.catch_up()
    assert world.digest() == live
