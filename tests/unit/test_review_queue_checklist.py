"""The review queue stores each waiting report's rule checklist when it projects the intake's events:
computed from the report's rule set and the activities it covers, recomputed when a covered
activity changes, read back by requests without computing anything, equal after a rebuild."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from assessment_service import projections, queries
from assessment_service.projections import review_queue
from intake_service.events import REGISTRY
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.catalogue import Catalogue, Department
from shared.events import NewEvent
from shared.projection import ProjectionRunner, table_digest

CATALOGUE = Catalogue.load(Path(__file__).resolve().parents[2] / "config" / "departments.toml")
T0 = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


class CountingRuleSets:
    """The catalogue's rule sets, counting how often the projection asks for one."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.asked: list[str] = []

    def __call__(self, ref: str) -> Department | None:
        self.asked.append(ref)
        return self.catalogue.rule_set(ref)


class Student:
    """Appends one synthetic student's intake events to the store."""

    def __init__(self, store: InMemoryEventStore, department: str = "SOCSW") -> None:
        self.store, self.sid, self.department, self.n = store, str(uuid.uuid4()), department, 0
        self.append("StudentRegistered", {
            "student_id": self.sid, "name": "Ebba Exempelsson", "email": "ebba@example.org",
            "university_id": "ee-1", "department": department, "programme": "SSASK",
            "expected_end_term": "VT2028", "rules": f"{department}@1",
        })

    def append(self, type_: str, data: dict) -> None:
        self.n += 1
        event = NewEvent(type_, 1 if type_ != "ActivityLogged" else 2, data, {"actor": "test", "correlation_id": "c"},
                         T0 + timedelta(minutes=self.n))
        self.store.append(f"student-{self.sid}", [event], expected_version=self.n - 1)

    def activity(self, title: str, kind: str, setting: str, start: str = "2026-07-06",
                 activity_id: str | None = None, event: str = "ActivityLogged") -> str:
        aid = activity_id or str(uuid.uuid4())
        self.append(event, {
            "activity_id": aid, "kind": kind, "title": title, "organiser": "A university", "setting": setting,
            "country_code": "DE" if setting == "abroad" else None, "start_date": start, "end_date": start,
            "hours": 10, "description": "",
        })
        return aid

    def withdraw(self, aid: str) -> None:
        self.append("ActivityWithdrawn", {"activity_id": aid, "reason": "logged twice"})

    def submit(self, activity_ids: list[str], rules: str | None = None) -> str:
        rid = str(uuid.uuid4())
        self.append("ReportSubmitted", {"report_id": rid, "answers": {"learning": "a"}, "activity_ids": activity_ids,
                                        "attachment_id": None, "rules": rules or f"{self.department}@1"})
        return rid


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def rule_sets() -> CountingRuleSets:
    return CountingRuleSets(CATALOGUE)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'a.db'}"


@pytest.fixture
def runner(db_url: str, store: InMemoryEventStore, rule_sets: CountingRuleSets) -> ProjectionRunner:
    projs = (*projections.ALL[:3], review_queue.build(rule_sets))
    built = ProjectionRunner(make_engine(db_url, immediate=True),
                             StoreEventFeed(store, REGISTRY), projs, batch_size=3)
    built.create_schema()
    projections.metadata.create_all(built.engine)  # the staff side's tables the queries join
    return built


def queue_items(runner: ProjectionRunner) -> list[dict]:
    runner.catch_up()
    with runner.engine.connect() as conn:
        return queries.review_queue_items(conn)


def lines(item: dict) -> list[tuple[bool, list[str]]]:
    return [(line["met"], [a["title"] for a in line["activities"]]) for line in item["checklist"]["items"]]


def test_waiting_report_carries_the_checklist_of_its_rule_set_and_covered_activities(store, runner):
    ebba = Student(store)
    berlin = ebba.activity("Summer school in Berlin", "summer-school", "abroad", "2026-07-06")
    cafe = ebba.activity("International café", "international-cafe", "at_home", "2026-02-01")
    webinar = ebba.activity("Webinar on social resilience", "seminar", "digital", "2026-03-01")
    ebba.activity("Not in the report", "exchange", "abroad", "2025-09-01")
    ebba.submit([berlin, cafe, webinar])
    [item] = queue_items(runner)
    assert item["rules"] == "SOCSW@1"
    assert item["checklist_summary"] == {"met": 2, "total": 2}
    assert lines(item) == [
        (True, ["International café", "Webinar on social resilience", "Summer school in Berlin"]),
        (True, ["Summer school in Berlin"]),
    ]
    abroad = item["checklist"]["items"][1]
    assert abroad["label"] == {"en": "At least one activity abroad", "sv": "Minst en aktivitet utomlands"}
    assert abroad["activities"][0]["start_date"] == "2026-07-06"


def test_withdrawing_a_covered_activity_after_submission_recomputes_the_checklist(store, runner):
    ebba = Student(store)
    ids = [ebba.activity("Exchange in Lyon", "exchange", "abroad", "2025-09-01"),
           ebba.activity("Café", "international-cafe", "at_home", "2026-02-01"),
           ebba.activity("Seminar", "seminar", "digital", "2026-03-01")]
    ebba.submit(ids)
    assert queue_items(runner)[0]["checklist_summary"] == {"met": 2, "total": 2}
    ebba.withdraw(ids[0])
    [item] = queue_items(runner)
    assert item["checklist_summary"] == {"met": 0, "total": 2}
    assert lines(item) == [(False, ["Café", "Seminar"]), (False, [])]
    assert [u["reason"] for u in item["checklist"]["uncounted"]] == ["withdrawn"]


def test_amending_a_covered_activity_recomputes_the_checklist(store, runner):
    ebba = Student(store)
    ids = [ebba.activity("Summer school", "summer-school", "at_home"),
           ebba.activity("Café", "international-cafe", "at_home"),
           ebba.activity("Seminar", "seminar", "digital")]
    ebba.submit(ids)
    assert queue_items(runner)[0]["checklist_summary"] == {"met": 1, "total": 2}
    ebba.activity("Summer school in Oslo", "summer-school", "abroad", activity_id=ids[0], event="ActivityAmended")
    [item] = queue_items(runner)
    assert item["checklist_summary"] == {"met": 2, "total": 2}
    assert lines(item)[1] == (True, ["Summer school in Oslo"])


def test_a_resubmitted_round_is_checked_against_the_activities_it_now_covers(store, runner):
    ebba = Student(store)
    ids = [ebba.activity("Café", "international-cafe", "at_home"),
           ebba.activity("Seminar", "seminar", "digital"),
           ebba.activity("Summer school", "summer-school", "at_home")]
    rid = ebba.submit(ids)
    assert queue_items(runner)[0]["checklist_summary"] == {"met": 1, "total": 2}
    berlin = ebba.activity("Summer school in Berlin", "summer-school", "abroad")
    ebba.append("ReportResubmitted", {"report_id": rid, "round": 2, "answers": {"learning": "b"},
                                      "activity_ids": [*ids[:2], berlin], "attachment_id": None, "rules": "SOCSW@1"})
    [item] = queue_items(runner)
    assert item["report_id"] == rid
    assert item["checklist_summary"] == {"met": 2, "total": 2}
    assert lines(item)[1] == (True, ["Summer school in Berlin"])
    ebba.withdraw(berlin)  # the round's activities are the ones rechecked from now on
    assert queue_items(runner)[0]["checklist_summary"] == {"met": 0, "total": 2}


def test_each_department_is_checked_against_its_own_rule_set(store, runner):
    med = Student(store, "MED")
    med.submit([med.activity("Buddy", "buddy-programme", "at_home"), med.activity("Webinar", "seminar", "digital")])
    [item] = queue_items(runner)
    assert (item["rules"], item["checklist_summary"]) == ("MED@1", {"met": 1, "total": 1})


def test_a_report_under_an_unknown_rule_set_waits_without_a_checklist(store, runner):
    ebba = Student(store)
    ebba.submit([ebba.activity("Exchange", "exchange", "abroad")], rules="SOCSW@99")
    [item] = queue_items(runner)
    assert (item["rules"], item["checklist"], item["checklist_summary"]) == ("SOCSW@99", None, None)


def test_reading_the_queue_computes_no_checklist(store, runner, rule_sets):
    ebba = Student(store)
    ebba.submit([ebba.activity("Exchange", "exchange", "abroad")])
    runner.catch_up()
    asked = len(rule_sets.asked)
    assert asked == 1  # once, when the report was projected
    with runner.engine.connect() as conn:
        for _ in range(3):
            assert queries.review_queue_items(conn)[0]["checklist_summary"] == {"met": 1, "total": 2}
            assert queries.report_detail(conn, queries.review_queue_items(conn)[0]["report_id"])["checklist"]
    assert len(rule_sets.asked) == asked


def test_rebuilding_the_review_queue_alone_gives_the_live_rows(store, runner):
    students = [Student(store) for _ in range(3)]
    for n, student in enumerate(students):
        ids = [student.activity(f"Activity {n}-{i}", kind, setting)
               for i, (kind, setting) in enumerate([("exchange", "abroad"), ("seminar", "digital"),
                                                    ("international-cafe", "at_home")])]
        student.submit(ids)
        if n == 1:
            student.withdraw(ids[0])
        if n == 2:
            student.activity("Seminar, now abroad", "summer-school", "abroad", activity_id=ids[1],
                             event="ActivityAmended")
    runner.catch_up()
    tables = review_queue.PROJECTION.tables
    with runner.engine.connect() as conn:
        live = table_digest(conn, tables)
        summaries = [r.checklist_met for r in conn.execute(sa.select(review_queue.review_queue.c.checklist_met))]
    assert sorted(summaries) == [0, 2, 2]  # withdrawn: two activities left, none abroad
    runner.rebuild(["review_queue"])
    with runner.engine.connect() as conn:
        assert table_digest(conn, tables) == live


@pytest.mark.parametrize("batch_size", [1, 2, 5, 1000])
def test_the_checklist_does_not_depend_on_where_batches_end(tmp_path, store, batch_size):
    # The handlers remember facts within a transaction: a history whose changes after submission
    # fall in the same batch or in later ones must give the same rows as one read at a time.
    ebba = Student(store)
    ids = [ebba.activity("Exchange", "exchange", "abroad", "2025-09-01"),
           ebba.activity("Café", "international-cafe", "at_home", "2026-02-01"),
           ebba.activity("Seminar", "seminar", "digital", "2026-03-01")]
    ebba.submit(ids)
    ebba.withdraw(ids[0])
    ebba.append("StudentRegistered", {  # a second registration event (not the stream's first)
        "student_id": ebba.sid, "name": "Ebba Exempelsson", "email": "ebba@example.org", "university_id": "ee-1",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028", "rules": "SOCSW@1"})
    ebba.activity("Seminar in Vienna", "summer-school", "abroad", "2026-03-01", activity_id=ids[2],
                  event="ActivityAmended")

    def digest(size: int, name: str) -> str:
        built = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / name}", immediate=True),
                                 StoreEventFeed(store, REGISTRY), (review_queue.PROJECTION,), batch_size=size)
        built.create_schema()
        built.catch_up()
        with built.engine.connect() as conn:
            met = conn.execute(sa.select(review_queue.review_queue.c.checklist_met)).scalar_one()
            return f"{met}:{table_digest(conn, review_queue.PROJECTION.tables)}"

    one_by_one = digest(1, "one.db")
    assert one_by_one.startswith("1:")  # after the amendment: one abroad (Vienna), two activities left
    assert digest(batch_size, "batched.db") == one_by_one
