"""Right of access on the assessment side: for 50 students, the assessment service's "My data"
(page and JSON download) holds every row its read models hold about that student (compared with a
direct read of the tables), the decisions about their reports and the staff views recorded here,
and no value of anyone else; foreign and unknown ids answer alike (404); a coordinator's look is
recorded, the student's own is not; after erasure the personal fields are gone
(bar G2; the key is in tests/README.md)."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from assessment_service import create_app as create_assessment_app
from assessment_service.bootstrap import AssessmentContext
from intake_service import create_app as create_intake_app
from intake_service.services import RequestContext, erase_student_and_account
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.wakeup import RecordingWakeUp
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Account, Role
from shared.identity.wiring import Identity
from tests.authkit import authed_client, integration_token, make_account, make_identity, sign_in, sign_out
from tests.factories import canary

#: Seeds 50 students and reads every export: the full run's, not the local lane's.
pytestmark = pytest.mark.thorough

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STUDENTS = 50  # the G2 bar: 38 of SOCSW, 12 of MED
PROGRAMME = {"SOCSW": "SSASK", "MED": "MALAK"}
QUESTIONS = {"SOCSW": ("learning", "profession", "perspective"), "MED": ("learning", "profession")}
ACTIVITY: dict[str, dict[str, Any]] = {
    "SOCSW": {"kind": "exchange", "setting": "abroad", "country_code": "FR",
              "start_date": "2026-01-10", "end_date": "2026-06-01", "hours": 400},
    "MED": {"kind": "global-health-course", "setting": "digital", "start_date": "2026-02-10",
            "end_date": "2026-02-10"},
}
#: The canary fields of each student: values found nowhere else.
CANARIES = ("name", "email", "university_id", "title", "organiser", "description", "answer")
#: Of these, the ones the assessment database copies (university_id stays in intake).
COPIED = ("name", "email", "title", "organiser", "description", "answer")
#: Read-model tables and how their stored columns read back (JSON text, SQLite booleans).
TABLES = ("students", "activities", "reports", "review_queue", "review_queue_activities", "assignments",
          "assignment_conflicts", "report_rounds", "report_round_activities", "report_round_activity_sources")
#: The order of each table's rows in the export, where it is not by feed position.
ORDER = {"students": "student_id", "report_round_activities": "report_id, round, activity_id",
         "report_round_activity_sources": "activity_id"}
EXPORT_KEY = {"assignment_conflicts": "conflicts"}


def body(response: Any) -> Any:
    """The JSON body of a test response (typed Any, unlike `response.json`)."""
    return json.loads(response.get_data(as_text=True))


@dataclass
class Person:
    sid: str
    department: str
    account: Account
    values: dict[str, str]
    report_id: str = ""
    activity_id: str = ""
    decisions: list[str] = field(default_factory=list)


@dataclass
class World:
    intake_app: Flask
    app: Flask
    identity: Identity
    store: InMemoryEventStore
    settings: Settings
    api: FlaskClient
    people: list[Person] = field(default_factory=list)
    staff: dict[str, Account] = field(default_factory=dict)

    @property
    def ctx(self) -> AssessmentContext:
        return self.app.extensions["cim.assessment"]

    def browser(self, account: Account | None) -> FlaskClient:
        client = self.app.test_client()
        if account is not None:
            sign_in(client, self.identity, account)
        return client

    def my_data_views(self, sid: str) -> list[tuple[str, str]]:
        return [(e.data["viewer_account_id"], e.metadata["actor"])
                for e in self.ctx.store.read_stream(f"audit-{sid}") if e.data["what"] == "my_data"]

    def direct(self, sid: str) -> dict[str, Any]:
        """The read models' rows for the student, read with plain SQL (not through the app's
        queries), JSON columns decoded and booleans made booleans."""
        out: dict[str, Any] = {}
        with self.ctx.reader.connect() as conn:
            for table in TABLES:
                order = ORDER.get(table, "position")
                rows = conn.execute(sa.text(f"SELECT * FROM {table} WHERE student_id = :s ORDER BY {order}"),
                                    {"s": sid}).mappings().all()
                decoded = []
                for row in rows:
                    item = dict(row)
                    if table in ("reports", "report_rounds"):
                        item["answers"] = None if item["answers"] is None else json.loads(item["answers"])
                        item["activity_ids"] = json.loads(item["activity_ids"])
                    if table in ("activities", "review_queue_activities", "report_round_activities",
                                 "report_round_activity_sources"):
                        item["withdrawn"] = bool(item["withdrawn"])
                    decoded.append(item)
                out[EXPORT_KEY.get(table, table)] = decoded
        out["student"] = out.pop("students")[0] if out["students"] else None
        return out


def add_student(world: World, n: int, department: str) -> Person:
    values = {
        "name": f"Synthetic {canary()}",
        "email": f"{canary()}@example.org",
        "university_id": f"u{n}-{secrets.token_hex(4)}",
        "title": f"Title {canary()}",
        "organiser": f"Organiser {canary()}",
        "description": f"desc {canary()}",
        "answer": f"answer {canary()}",
    }
    api = world.api
    response = api.post("/api/v1/students", json={
        "name": values["name"], "email": values["email"], "university_id": values["university_id"],
        "department": department, "programme": PROGRAMME[department], "expected_end_term": "VT2028",
    })
    assert response.status_code == 201, response.json
    sid = body(response)["student_id"]
    activity = api.post(f"/api/v1/students/{sid}/activities", json={
        **ACTIVITY[department], "title": values["title"], "organiser": values["organiser"],
        "description": values["description"],
    })
    assert activity.status_code == 201, activity.json
    report = api.post(f"/api/v1/students/{sid}/reports", json={
        "answers": {code: values["answer"] for code in QUESTIONS[department]},
        "activity_ids": [body(activity)["activity_id"]],
    })
    assert report.status_code == 201, report.json
    account = make_account(world.identity, values["name"], values["email"], student_id=sid,
                           grants=[(Role.STUDENT, department)])
    person = Person(sid, department, account, values, body(report)["report_id"], body(activity)["activity_id"])
    world.people.append(person)
    return person


def decide(world: World, who: str, path: str, **form: str) -> None:
    response = world.browser(world.staff[who]).post(path, data={**form, "form_token": str(uuid.uuid4())})
    assert response.status_code == 303, response.get_data(as_text=True)


def build_world(tmp_path: Path, students: int) -> World:
    clock = FixedClock(NOW)
    store = InMemoryEventStore(clock)
    identity = make_identity(clock)
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://", ratelimit_post="100000 per minute",
                        ratelimit_signin="100000 per minute", assessment_url="https://assessment.example.org")
    intake_app = create_intake_app(settings, store=store, clock=clock, wakeup=RecordingWakeUp(), identity=identity)
    _, headers = integration_token(identity)
    api = authed_client(intake_app, headers)
    opener = intake_app.extensions["cim.intake"].open_events
    app = create_assessment_app(settings, feed=StoreEventFeed(store, opener=opener), batch_size=7,
                                clock=clock, identity=identity)
    app.config["WTF_CSRF_ENABLED"] = False
    world = World(intake_app, app, identity, store, settings, api)
    for who, grants in {
        "coordinator": [(Role.COORDINATOR, "SOCSW")],
        "med_coordinator": [(Role.COORDINATOR, "MED")],
        "assessor1": [(Role.ASSESSOR, "SOCSW")],
        "assessor2": [(Role.ASSESSOR, "SOCSW")],
        "med_assessor": [(Role.ASSESSOR, "MED")],
    }.items():
        world.staff[who] = make_account(identity, f"Staff {who}", grants=grants)
    for n in range(students):
        add_student(world, n, "MED" if n % 4 == 3 else "SOCSW")
    world.ctx.runner.catch_up()
    # Decisions: some reports get an assessor; some an assessor who then declares a conflict.
    for n, person in enumerate(world.people):
        report = f"/reports/{person.report_id}"
        if person.department == "MED":
            if n % 8 == 3:
                decide(world, "med_coordinator", f"{report}/assign", assessor=world.staff["med_assessor"].id)
                person.decisions = ["AssessorAssigned"]
        elif n % 3 == 0:
            decide(world, "coordinator", f"{report}/assign", assessor=world.staff["assessor1"].id)
            person.decisions = ["AssessorAssigned"]
        elif n % 3 == 1:
            decide(world, "coordinator", f"{report}/assign", assessor=world.staff["assessor1"].id)
            decide(world, "coordinator", f"{report}/assign", assessor=world.staff["assessor2"].id)
            decide(world, "assessor2", f"{report}/conflict", reason="supervised_student")
            person.decisions = ["AssessorAssigned", "AssessorAssigned", "ConflictOfInterestDeclared",
                                "AssessorUnassigned"]
    # A staff view of the queue is recorded for every SOCSW student it shows.
    assert world.browser(world.staff["coordinator"]).get("/review-queue").status_code == 200
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("g2a"), STUDENTS)


def _foreign_values(world: World, person: Person) -> list[str]:
    """Every value that belongs to some other student: canaries and ids."""
    out = []
    for other in world.people:
        if other is not person:
            out += [other.values[k] for k in CANARIES] + [other.sid, other.report_id, other.activity_id]
    return out


def _normalise(body: str, *ids: str) -> str:
    body = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value=""', body)
    for value in ids:
        body = body.replace(value, "<id>")
    return body


# -- the export ----------------------------------------------------------------------------------
def test_every_student_gets_every_row_held_about_them_and_nothing_of_anyone_else(world: World) -> None:
    client = world.app.test_client()
    assert len(world.people) >= 20
    for person in world.people:
        sign_in(client, world.identity, person.account)
        page = client.get(f"/students/{person.sid}/my-data")
        download = client.get(f"/students/{person.sid}/my-data.json")
        assert page.status_code == 200
        assert download.status_code == 200
        assert download.mimetype == "application/json"
        assert download.headers["Content-Disposition"] == (
            f'attachment; filename="cim-assessment-data-{person.sid}.json"')
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        assert "no-store" in download.headers["Cache-Control"]
        html, text = page.get_data(as_text=True), download.get_data(as_text=True)
        data = json.loads(text)

        # Every row of every read model about the student, every column as stored.
        direct = world.direct(person.sid)
        for key in ("student", "activities", "reports", "review_queue", "review_queue_activities", "assignments",
                    "conflicts"):
            assert data[key] == direct[key], key
        assert data["review_queue_activities"], "the review queue's copy of the activities is exported"
        assert direct["student"]["name"] == person.values["name"]
        assert direct["student"]["email"] == person.values["email"]
        assert data["personal_data_erased"] is False
        for name in COPIED:
            assert person.values[name] in text, name
            assert person.values[name] in html, name
        assert person.values["university_id"] not in text  # intake keeps it; not copied here
        for value in (person.report_id, person.activity_id):
            assert value in html
            assert value in text

        # The decisions about their report, staff by account id only (never a name).
        assert [d["type"] for d in data["decisions"]] == person.decisions
        assert all(d["data"]["student_id"] == person.sid for d in data["decisions"])
        for d in data["decisions"]:
            assert d["data"]["assessor_account_id"] in html
            assert d["recorded_by"].startswith("account:")
        for member in world.staff.values():
            assert member.display_name not in text
            assert member.display_name not in html
        if "ConflictOfInterestDeclared" in person.decisions:
            assert data["conflicts"][0]["reason_code"] == "supervised_student"
            assert data["conflicts"][0]["assessor_account_id"] == world.staff["assessor2"].id
            assert "The assessor supervises or has supervised you" in html

        # Who of the staff viewed their data here: the coordinator's look at the queue.
        views = [(v["viewer_account_id"], v["what"]) for v in data["staff_access"]]
        if person.department == "SOCSW":
            assert (world.staff["coordinator"].id, "review_queue") in views
            assert "The review queue" in html
        else:  # the SOCSW coordinator's queue never showed them
            assert (world.staff["coordinator"].id, "review_queue") not in views

        # Nothing of anyone else.
        for value in _foreign_values(world, person):
            assert value not in html
            assert value not in text
        sign_out(client)


def test_the_page_is_in_swedish_too_and_links_back_to_the_intake_export(world: World) -> None:
    person = world.people[0]
    client = world.browser(person.account)
    html = client.get(f"/students/{person.sid}/my-data?lang=sv").get_data(as_text=True)
    assert '<html lang="sv">' in html
    assert "Uppgifter hos bedömningstjänsten" in html
    assert "Din registrering (kopia)" in html
    assert f'href="{world.settings.intake_url}/students/{person.sid}/my-data"' in html
    assert f'href="/students/{person.sid}/my-data.json"' in html


def test_the_intake_my_data_page_links_to_the_assessment_export(world: World) -> None:
    person = world.people[1]
    client = world.intake_app.test_client()
    sign_in(client, world.identity, person.account)
    html = client.get(f"/students/{person.sid}/my-data").get_data(as_text=True)
    assert f'href="https://assessment.example.org/students/{person.sid}/my-data"' in html
    assert "Data held by the assessment service" in html


# -- who may read it -----------------------------------------------------------------------------
def test_others_get_the_unknown_id_answer_and_anonymous_is_sent_to_sign_in(world: World) -> None:
    socsw = next(p for p in world.people if p.department == "SOCSW" and p.decisions)
    other = next(p for p in world.people if p.department == "SOCSW" and p is not socsw)
    unknown = str(uuid.uuid4())
    outsiders = {
        "other department's coordinator": world.staff["med_coordinator"],
        "another student": other.account,
        "an assessor assigned to the report": world.staff["assessor1"],
    }
    for suffix in ("my-data", "my-data.json"):
        for label, account in outsiders.items():
            client = world.browser(account)
            foreign = client.get(f"/students/{socsw.sid}/{suffix}")
            missing = client.get(f"/students/{unknown}/{suffix}")
            malformed = client.get(f"/students/not-a-uuid/{suffix}")
            assert foreign.status_code == missing.status_code == malformed.status_code == 404, label
            assert _normalise(foreign.get_data(as_text=True), socsw.sid) == _normalise(
                missing.get_data(as_text=True), unknown), label
            assert socsw.values["name"] not in foreign.get_data(as_text=True)
        anonymous = world.app.test_client().get(f"/students/{socsw.sid}/{suffix}")
        assert anonymous.status_code == 303
        assert "/auth/sign-in" in anonymous.headers["Location"]
    # None of those refused looks is recorded as a view.
    assert world.my_data_views(socsw.sid) == []


def test_a_coordinators_look_is_recorded_the_students_own_is_not(world: World) -> None:
    person = next(p for p in world.people if p.department == "MED")
    coordinator = world.staff["med_coordinator"]
    before = world.my_data_views(person.sid)
    own = world.browser(person.account)
    assert own.get(f"/students/{person.sid}/my-data").status_code == 200
    assert own.get(f"/students/{person.sid}/my-data.json").status_code == 200
    assert world.my_data_views(person.sid) == before

    staff = world.browser(coordinator)
    page = staff.get(f"/students/{person.sid}/my-data")
    download = staff.get(f"/students/{person.sid}/my-data.json")
    assert page.status_code == download.status_code == 200
    assert person.values["name"] in page.get_data(as_text=True)
    expected = (coordinator.id, f"account:{coordinator.id}")
    assert world.my_data_views(person.sid) == [*before, expected, expected]
    # Recorded before the data was shown: the download already lists the look that made it.
    assert {"viewer_account_id": coordinator.id, "what": "my_data",
            "occurred_at": NOW.isoformat()} in body(download)["staff_access"]
    html = own.get(f"/students/{person.sid}/my-data").get_data(as_text=True)
    assert coordinator.id in html
    assert "This data page" in html
    # No other student's audit stream moved.
    assert all(world.my_data_views(p.sid) == [] for p in world.people if p is not person)


# -- erasure and a student not projected yet ------------------------------------------------------
def test_after_erasure_the_personal_fields_are_null_and_shown_as_erased(tmp_path: Path) -> None:
    world = build_world(tmp_path, 4)
    erased, kept = world.people[0], world.people[1]  # both SOCSW; `erased` has an assessor
    # As the operator's `students erase` does: StudentErased, key destroyed, account erased.
    erase_student_and_account(world.intake_app.extensions["cim.intake"], world.identity, erased.sid,
                              "student request", RequestContext(actor="operator:test", correlation_id="c-1"))
    world.ctx.runner.catch_up()

    for _ in range(2):  # the coordinator's look is recorded, and listed by the next one
        client = world.browser(world.staff["coordinator"])
        data = body(client.get(f"/students/{erased.sid}/my-data.json"))
        html = client.get(f"/students/{erased.sid}/my-data").get_data(as_text=True)
        assert data["personal_data_erased"] is True
        assert data["student"]["name"] is None
        assert data["student"]["email"] is None
        assert [a["description"] for a in data["activities"]] == [None]
        assert [r["answers"] for r in data["reports"]] == [None]
        assert data["student"] == world.direct(erased.sid)["student"]
        for name in ("name", "email", "description", "answer"):
            assert erased.values[name] not in html
            assert erased.values[name] not in json.dumps(data)
        assert "Your personal data has been erased." in html
        assert "Personal data erased" in html
        # What is left are ids, dates and codes: the report and its decisions are still there.
        assert data["reports"][0]["report_id"] == erased.report_id
        assert [d["type"] for d in data["decisions"]] == erased.decisions
    still = body(world.browser(kept.account).get(f"/students/{kept.sid}/my-data.json"))
    assert still["student"]["name"] == kept.values["name"]
    assert still["personal_data_erased"] is False


def test_a_student_not_projected_yet_is_told_nothing_is_held(tmp_path: Path) -> None:
    world = build_world(tmp_path, 1)
    late = add_student(world, 99, "SOCSW")  # registered after the last catch-up
    client = world.browser(late.account)
    data = body(client.get(f"/students/{late.sid}/my-data.json"))
    assert data["student"] is None
    assert data["activities"] == data["reports"] == data["decisions"] == data["staff_access"] == []
    html = client.get(f"/students/{late.sid}/my-data").get_data(as_text=True)
    assert "The assessment service holds no data about you." in html
    # A coordinator of the department cannot tell this id from an unknown one yet.
    assert world.browser(world.staff["coordinator"]).get(f"/students/{late.sid}/my-data").status_code == 404
