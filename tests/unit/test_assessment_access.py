"""Object-level access on the assessment side: assignment, conflicts of interest, who sees which
report (pages and API), foreign ids answered exactly as unknown ones, and the audit of staff views."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from assessment_service import create_app as create_assessment_app
from assessment_service.bootstrap import AssessmentContext
from intake_service import create_app as create_intake_app
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.wakeup import RecordingWakeUp
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Account, Role
from shared.identity.wiring import Identity
from tests.authkit import authed_client, bearer, make_account, make_identity, sign_in

ANSWERS = {
    "SOCSW": {"learning": "I learnt a lot.", "profession": "It matters.", "perspective": "Wider."},
    "MED": {"learning": "Global health matters.", "profession": "Better care."},
}
PROGRAMME = {"SOCSW": "SSASK", "MED": "MALAK"}
ACTIVITY = {
    "SOCSW": {"kind": "exchange", "title": "Exchange in Lyon", "organiser": "Université Lyon 2", "setting": "abroad",
              "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01"},
    "MED": {"kind": "global-health-course", "title": "Global health webinar", "organiser": "A network",
            "setting": "digital", "start_date": "2025-02-10", "end_date": "2025-02-10"},
}


# -- the world: three students, their reports, and one account per role --------------------------
@dataclass
class World:
    app: Flask
    intake: FlaskClient
    identity: Identity
    students: dict[str, str] = field(default_factory=dict)  # name -> student id
    reports: dict[str, str] = field(default_factory=dict)  # name -> report id
    accounts: dict[str, Account] = field(default_factory=dict)

    @property
    def ctx(self) -> AssessmentContext:
        return self.app.extensions["cim.assessment"]

    def browser(self, who: str | None) -> FlaskClient:
        client = self.app.test_client()
        if who is not None:
            sign_in(client, self.identity, self.accounts[who])
        return client

    def token(self, who: str | None, *scopes: str) -> FlaskClient:
        account_id = self.accounts[who].id if who else None
        return authed_client(self.app, bearer(self.identity, *(scopes or ("assessment:read",)), account_id=account_id))

    def audit(self, student: str) -> list[tuple[str, str]]:
        events = self.ctx.store.read_stream(f"audit-{self.students[student]}")
        return [(e.data["viewer_account_id"], e.data["what"]) for e in events]

    def report_events(self, report: str) -> list[str]:
        return [e.type for e in self.ctx.store.read_stream(f"assessment-report-{self.reports[report]}")]

    def catch_up(self) -> None:
        self.ctx.runner.catch_up()


def register(intake: FlaskClient, name: str, department: str = "SOCSW") -> str:
    response = intake.post("/api/v1/students", json={
        "name": name, "email": f"{name.split()[0].lower()}@example.org", "university_id": "ab-123",
        "department": department, "programme": PROGRAMME[department], "expected_end_term": "VT2028",
    })
    assert response.status_code == 201, response.json
    return response.json["student_id"]


def submit(intake: FlaskClient, sid: str, department: str = "SOCSW") -> str:
    activity = intake.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY[department])
    assert activity.status_code == 201, activity.json
    response = intake.post(f"/api/v1/students/{sid}/reports",
                           json={"answers": ANSWERS[department], "activity_ids": [activity.json["activity_id"]]})
    assert response.status_code == 201, response.json
    return response.json["report_id"]


def build_world(settings: Settings, clock: FixedClock) -> World:
    identity = make_identity(clock)
    store = InMemoryEventStore(clock)
    intake_app = create_intake_app(settings, store=store, clock=clock, wakeup=RecordingWakeUp(), identity=identity)
    intake = authed_client(intake_app, bearer(identity))
    opener = intake_app.extensions["cim.intake"].open_events
    app = create_assessment_app(settings, feed=StoreEventFeed(store, opener=opener), batch_size=3,
                                clock=clock, identity=identity)
    app.config["WTF_CSRF_ENABLED"] = False  # one test below runs with CSRF on
    world = World(app, intake, identity)
    for name, dept in (("A", "SOCSW"), ("B", "SOCSW"), ("M", "MED")):
        sid = register(intake, f"Student{name} Exempel", dept)
        world.students[name] = sid
        world.reports[name] = submit(intake, sid, dept)
    world.catch_up()
    people: dict[str, list[tuple[Role, str | None]]] = {
        "assigned": [(Role.ASSESSOR, "SOCSW")],
        "unassigned": [(Role.ASSESSOR, "SOCSW")],
        "conflicted": [(Role.ASSESSOR, "SOCSW")],
        "coordinator": [(Role.COORDINATOR, "SOCSW")],
        "other_coordinator": [(Role.COORDINATOR, "MED")],
        "med_assessor": [(Role.ASSESSOR, "MED")],
        "administrator": [(Role.ADMINISTRATOR, None)],
    }
    for who, grants in people.items():
        world.accounts[who] = make_account(identity, f"Staff {who}", grants=grants)
    for name in ("A", "B"):
        world.accounts[f"student_{name}"] = make_account(
            identity, f"Student {name}", student_id=world.students[name], grants=[(Role.STUDENT, "SOCSW")])
    return world


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")


@pytest.fixture
def world(settings: Settings, clock: FixedClock) -> World:
    """Report A: `assigned` assigned, `conflicted` assigned and then declared a conflict.
    Report B: nobody assigned. Report M: another department (MED)."""
    world = build_world(settings, clock)
    assign(world, "A", "assigned")
    assign(world, "A", "conflicted")
    declare(world, "conflicted", "A")
    return world


def assign(world: World, report: str, assessor: str, by: str = "coordinator", token: str | None = None):  # type: ignore[no-untyped-def]
    response = world.browser(by).post(
        f"/reports/{world.reports[report]}/assign",
        data={"assessor": world.accounts[assessor].id, "form_token": token or str(uuid.uuid4())},
    )
    if by == "coordinator" and response.status_code != 303:
        raise AssertionError(response.get_data(as_text=True))
    return response


def declare(world: World, who: str, report: str, reason: str = "personal_relationship"):  # type: ignore[no-untyped-def]
    return world.browser(who).post(f"/reports/{world.reports[report]}/conflict",
                                   data={"reason": reason, "form_token": str(uuid.uuid4())})


def _normalise(body: str, *ids: str) -> str:
    """The page without the requested id (in its language links) and the CSRF token of the
    sign-out form (signed with the second it was made in)."""
    body = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value=""', body)
    for value in ids:
        body = body.replace(value, "<id>")
    return body


# -- assignment and conflicts ----------------------------------------------------------------------
def test_coordinator_assigns_an_assessor_who_then_sees_the_report_and_the_decision_is_an_event(world: World) -> None:
    assert world.report_events("A") == [
        "AssessorAssigned", "AssessorAssigned", "ConflictOfInterestDeclared", "AssessorUnassigned"]
    first = world.ctx.store.read_stream(f"assessment-report-{world.reports['A']}")[0]
    assert first.data == {"report_id": world.reports["A"], "student_id": world.students["A"], "department": "SOCSW",
                          "assessor_account_id": world.accounts["assigned"].id}
    assert first.metadata["actor"] == f"account:{world.accounts['coordinator'].id}"
    assert first.metadata["correlation_id"]
    page = world.browser("assigned").get(f"/reports/{world.reports['A']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "StudentA Exempel" in html
    assert "Exchange in Lyon" in html
    assert "I learnt a lot." in html
    assert "Declare a conflict of interest" in html  # the assigned assessor's form
    assert 'action="/reports/' + world.reports["A"] + '/assign"' not in html  # not a coordinator


def test_assignment_refuses_someone_who_is_not_an_assessor_of_the_department_beside_the_field(world: World) -> None:
    response = assign(world, "B", "assigned")  # a valid one, for contrast
    for outsider in ("med_assessor", "coordinator", "student_A"):
        refused = world.browser("coordinator").post(
            f"/reports/{world.reports['B']}/assign",
            data={"assessor": world.accounts[outsider].id, "form_token": str(uuid.uuid4())})
        assert refused.status_code == 422
        html = refused.get_data(as_text=True)
        assert 'aria-invalid="true"' in html
        assert 'id="assessor-error"' in html
        assert "Choose an assessor of this report&#39;s department." in html
    assert response.status_code == 303
    assert world.report_events("B") == ["AssessorAssigned"]  # the valid one only
    empty = world.browser("coordinator").post(f"/reports/{world.reports['B']}/assign",
                                              data={"assessor": "", "form_token": str(uuid.uuid4())})
    assert empty.status_code == 422
    assert "Choose an assessor." in empty.get_data(as_text=True)


def test_double_clicked_assign_form_stores_one_event(world: World) -> None:
    token = str(uuid.uuid4())
    assign(world, "B", "unassigned", token=token)
    assign(world, "B", "unassigned", token=token)
    assert world.report_events("B") == ["AssessorAssigned"]


def test_conflicted_assessor_is_unassigned_at_once_and_cannot_be_assigned_again(world: World) -> None:
    detail = world.token(None).get(f"/api/v1/reports/{world.reports['A']}").json
    assert detail["assessor_account_ids"] == [world.accounts["assigned"].id]
    assert detail["conflicts"] == [{"assessor_account_id": world.accounts["conflicted"].id,
                                    "reason_code": "personal_relationship"}]
    again = world.browser("coordinator").post(
        f"/reports/{world.reports['A']}/assign",
        data={"assessor": world.accounts["conflicted"].id, "form_token": str(uuid.uuid4())})
    assert again.status_code == 422  # not even offered: the choice is refused beside the field
    assert world.report_events("A")[-1] == "AssessorUnassigned"
    # The conflict is with the student: their next report cannot get this assessor either. (A new
    # report follows a rejected one: what the assessment side's events would tell the intake.)
    rejected = {world.reports["A"]: {"round": 1, "state": "rejected"}}
    world.intake.application.extensions["cim.intake"].report_steps = lambda _sid: rejected
    newer = submit(world.intake, world.students["A"])
    world.catch_up()
    world.reports["A2"] = newer
    page = world.browser("coordinator").get(f"/reports/{newer}").get_data(as_text=True)
    assert world.accounts["unassigned"].id in page
    assert world.accounts["conflicted"].id not in page
    from assessment_service import services
    from shared.errors import RuleViolated

    principal = world.identity.accounts.principal(world.accounts["coordinator"].id)
    assert principal is not None
    with pytest.raises(RuleViolated, match="conflict of interest"):
        services.assign_assessor(world.ctx, world.identity, principal, newer, world.accounts["conflicted"].id,
                                 services.RequestContext("account:x", "corr"))


def test_conflict_needs_a_listed_reason_and_an_assignment(world: World) -> None:
    bad = declare(world, "assigned", "A", reason="my own words about the student")
    assert bad.status_code == 422
    assert "Choose one of the listed reasons." in bad.get_data(as_text=True)
    assert world.report_events("A")[-1] == "AssessorUnassigned"  # nothing new
    assert declare(world, "unassigned", "A").status_code == 404  # not assigned: no such report for them
    assert declare(world, "coordinator", "A").status_code == 403  # may read it, may not declare on it
    assert declare(world, "other_coordinator", "A").status_code == 404
    # The conflicted assessor's repeated click is answered, and records nothing more.
    assert declare(world, "conflicted", "A").status_code == 303
    assert world.report_events("A").count("ConflictOfInterestDeclared") == 1


def test_coordinator_unassigns_and_the_assessor_loses_the_report(world: World) -> None:
    report = world.reports["A"]
    assert world.browser("assigned").get(f"/reports/{report}").status_code == 200
    response = world.browser("coordinator").post(
        f"/reports/{report}/unassign",
        data={"assessor": world.accounts["assigned"].id, "form_token": str(uuid.uuid4())})
    assert response.status_code == 303
    assert world.browser("assigned").get(f"/reports/{report}").status_code == 404
    assert world.report_events("A")[-1] == "AssessorUnassigned"
    garbage = world.browser("coordinator").post(f"/reports/{report}/unassign",
                                                data={"assessor": "x", "form_token": str(uuid.uuid4())})
    assert garbage.status_code == 422


@pytest.mark.parametrize(("who", "status"), [
    ("assigned", 403), ("unassigned", 404), ("conflicted", 404), ("other_coordinator", 404),
    ("med_assessor", 404), ("administrator", 404), ("student_A", 404), ("student_B", 404),
])
def test_only_a_coordinator_of_the_department_assigns(world: World, who: str, status: int) -> None:
    response = assign(world, "A", "unassigned", by=who)
    assert response.status_code == status
    assert world.report_events("A").count("AssessorAssigned") == 2


def test_anonymous_decisions_go_to_sign_in(world: World) -> None:
    response = world.browser(None).post(f"/reports/{world.reports['A']}/assign",
                                        data={"assessor": world.accounts["unassigned"].id})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/auth/sign-in")


def test_decision_forms_need_the_csrf_token(world: World) -> None:
    world.app.config["WTF_CSRF_ENABLED"] = True
    client = world.browser("coordinator")
    page = client.get(f"/reports/{world.reports['B']}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    forged = client.post(f"/reports/{world.reports['B']}/assign",
                         data={"assessor": world.accounts["unassigned"].id, "csrf_token": "forged"})
    assert forged.status_code == 400
    assert world.report_events("B") == []
    ok = client.post(f"/reports/{world.reports['B']}/assign", data={
        "assessor": world.accounts["unassigned"].id, "csrf_token": csrf.group(1), "form_token": str(uuid.uuid4())})
    assert ok.status_code == 303
    assert world.report_events("B") == ["AssessorAssigned"]


# -- who sees what ---------------------------------------------------------------------------------
QUEUE_SEES = {
    "coordinator": {"A", "B"},
    "assigned": {"A"},
    "unassigned": set(),
    "conflicted": set(),
    "other_coordinator": {"M"},
    "med_assessor": set(),
}


@pytest.mark.parametrize("who", sorted(QUEUE_SEES))
def test_review_queue_shows_each_member_of_staff_only_their_reports(world: World, who: str) -> None:
    names = {n for n in ("A", "B", "M") if f"Student{n} Exempel" in world.browser(who).get("/review-queue").get_data(
        as_text=True)}
    assert names == QUEUE_SEES[who]
    items = world.token(who).get("/api/v1/review-queue").json["items"]
    assert {n for n, rid in world.reports.items() if rid in {i["report_id"] for i in items}} == QUEUE_SEES[who]
    home = world.browser(who).get("/")
    assert (home.status_code, home.headers["Location"]) == (303, "/queue")  # the service leads staff to it


@pytest.mark.parametrize(("who", "home"), [("administrator", "/admin/accounts"),
                                           ("student_A", "http://127.0.0.1:8000/my-cim")])
def test_the_service_s_address_leads_everyone_else_to_their_own_work(world: World, who: str, home: str) -> None:
    answer = world.browser(who).get("/")
    assert (answer.status_code, answer.headers["Location"]) == (303, home)


@pytest.mark.parametrize("who", ["administrator", "student_A", "student_B"])
def test_review_queue_refuses_everyone_else(world: World, who: str) -> None:
    page = world.browser(who).get("/review-queue")
    assert page.status_code == 403
    assert "StudentA" not in page.get_data(as_text=True)
    assert world.token(who).get("/api/v1/review-queue").status_code == 403


def test_integration_token_sees_every_waiting_report_and_is_not_recorded_as_staff(world: World) -> None:
    items = world.token(None).get("/api/v1/review-queue").json["items"]
    assert {i["report_id"] for i in items} == set(world.reports.values())
    assert world.token(None, "feed:read").get("/api/v1/review-queue").status_code == 403
    assert world.app.test_client().get("/api/v1/review-queue").status_code == 401
    assert world.audit("B") == []


REPORT_READERS = {"coordinator", "assigned"}
DENIED = ["unassigned", "conflicted", "other_coordinator", "med_assessor", "administrator", "student_A", "student_B"]


@pytest.mark.parametrize("who", sorted(REPORT_READERS))
def test_report_page_and_api_for_the_coordinator_and_the_assigned_assessor(world: World, who: str) -> None:
    report = world.reports["A"]
    assert world.browser(who).get(f"/reports/{report}").status_code == 200
    body = world.token(who).get(f"/api/v1/reports/{report}").json
    assert body["answers"] == ANSWERS["SOCSW"]
    assert [a["title"] for a in body["activities"]] == ["Exchange in Lyon"]


@pytest.mark.parametrize("who", DENIED)
def test_a_foreign_report_answers_exactly_as_an_unknown_one(world: World, who: str) -> None:
    foreign, unknown, malformed = world.reports["A"], str(uuid.uuid4()), "not-a-report"
    browser = world.browser(who)  # one browser: the page carries its session's CSRF token
    pages = [browser.get(f"/reports/{rid}") for rid in (foreign, unknown, malformed)]
    assert {p.status_code for p in pages} == {404}
    assert len({_normalise(p.get_data(as_text=True), foreign, unknown, malformed) for p in pages}) == 1
    assert "StudentA" not in pages[0].get_data(as_text=True)
    client = world.token(who)
    apis = [client.get(f"/api/v1/reports/{rid}") for rid in (foreign, unknown, malformed)]
    assert {a.status_code for a in apis} == {404}
    assert len({a.get_data() for a in apis}) == 1  # byte for byte
    assert apis[0].json["detail"] == "No such report."


def test_another_departments_coordinator_sees_their_own_report_but_not_ours(world: World) -> None:
    assert world.browser("other_coordinator").get(f"/reports/{world.reports['M']}").status_code == 200
    assert world.browser("coordinator").get(f"/reports/{world.reports['M']}").status_code == 404


def test_report_api_anonymous_and_scopes(world: World) -> None:
    path = f"/api/v1/reports/{world.reports['A']}"
    assert world.app.test_client().get(path).status_code == 401
    assert world.token(None, "feed:read").get(path).status_code == 403
    assert world.token("coordinator", "feed:read").get(path).status_code == 403
    assert world.token(None).get(path).status_code == 200
    assert world.token(None).get(f"/api/v1/reports/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize(("who", "student", "status"), [
    ("coordinator", "A", 200), ("assigned", "A", 200), ("assigned", "B", 404), ("unassigned", "A", 404),
    ("conflicted", "A", 404), ("other_coordinator", "A", 404), ("administrator", "A", 404),
    ("student_A", "A", 200), ("student_B", "A", 404), (None, "A", 200),
])
def test_student_overview_api_follows_the_same_rules(world: World, who: str | None, student: str, status: int) -> None:
    response = world.token(who).get(f"/api/v1/students/{world.students[student]}")
    assert response.status_code == status
    if status == 404:
        unknown = world.token(who).get(f"/api/v1/students/{uuid.uuid4()}")
        assert (unknown.status_code, unknown.get_data()) == (404, response.get_data())


# -- the audit of staff views ----------------------------------------------------------------------
def test_staff_views_of_personal_data_are_recorded_and_denied_ones_are_not(world: World) -> None:
    acc = world.accounts
    assert world.audit("A") == []  # assigning and declaring showed nothing
    world.browser("assigned").get(f"/reports/{world.reports['A']}")
    world.token("coordinator").get(f"/api/v1/reports/{world.reports['A']}")
    world.token("coordinator").get(f"/api/v1/students/{world.students['A']}")
    world.browser("coordinator").get("/review-queue")
    assert world.audit("A") == [
        (acc["assigned"].id, "report"),
        (acc["coordinator"].id, "report"),
        (acc["coordinator"].id, "student_overview"),
        (acc["coordinator"].id, "review_queue"),
    ]
    assert world.audit("B") == [(acc["coordinator"].id, "review_queue")]
    event = world.ctx.store.read_stream(f"audit-{world.students['A']}")[0]
    assert set(event.data) == {"student_id", "viewer_account_id", "what"}  # ids and a code: no personal data
    assert event.metadata["actor"] == f"account:{acc['assigned'].id}"
    for who in DENIED:
        world.browser(who).get(f"/reports/{world.reports['A']}")
        world.token(who).get(f"/api/v1/reports/{world.reports['A']}")
        world.token(who).get(f"/api/v1/students/{world.students['A']}")
    # Only the student's own overview went through, and that is not a staff view.
    assert len(world.audit("A")) == 4
    world.token(None).get(f"/api/v1/reports/{world.reports['A']}")
    assert len(world.audit("A")) == 4


def test_a_page_of_many_students_records_their_views_in_one_write(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    append_many = world.ctx.store.append_many

    def counted(batches):  # type: ignore[no-untyped-def]
        writes.append(len(batches))
        return append_many(batches)

    monkeypatch.setattr(world.ctx.store, "append_many", counted)
    head = world.ctx.store.head()
    assert world.browser("coordinator").get("/review-queue").status_code == 200
    assert writes == [2]  # students A and B, one transaction
    recorded = world.ctx.store.read_all(after=head, limit=10)
    assert {(e.stream_id, e.data["what"]) for e in recorded} == {
        (f"audit-{world.students['A']}", "review_queue"), (f"audit-{world.students['B']}", "review_queue"),
    }


def test_a_view_that_cannot_be_recorded_shows_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.errors import StorageUnavailable

    def broken(*_args: object, **_kwargs: object) -> None:
        raise StorageUnavailable("the event store could not record the write")

    monkeypatch.setattr(world.ctx.store, "append", broken)
    monkeypatch.setattr(world.ctx.store, "append_many", broken)
    page = world.browser("coordinator").get(f"/reports/{world.reports['A']}")
    assert page.status_code == 503
    assert "I learnt a lot." not in page.get_data(as_text=True)


# -- pages: language and accessibility --------------------------------------------------------------
def test_report_page_in_swedish_with_labelled_forms(world: World) -> None:
    html = world.browser("coordinator").get(f"/reports/{world.reports['B']}?lang=sv").get_data(as_text=True)
    assert '<html lang="sv">' in html
    assert "Tilldela en bedömare" in html
    assert '<label for="assessor">' in html
    assessor = world.browser("assigned").get(f"/reports/{world.reports['A']}?lang=sv").get_data(as_text=True)
    assert "Anmäl jäv" in assessor
    assert "<legend>" in assessor
    assert "style=" not in html
    assert "<script" not in html


# -- the own store on SQLite and PostgreSQL ----------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_assignment_flow_on_each_backend_and_the_read_model_rebuilds_equal(
    backend: str, tmp_path: Path, clock: FixedClock, request: pytest.FixtureRequest
) -> None:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    if backend == "postgres":
        make_db: Callable[[], str] = request.getfixturevalue("pg_database")
        settings = settings.with_overrides(assessment_db_url=make_db())
    world = build_world(settings, clock)
    try:
        assert world.ctx.store.url == settings.assessment_db_url
        assign(world, "A", "assigned")
        assign(world, "A", "conflicted")
        assert declare(world, "conflicted", "A").status_code == 303
        assert world.report_events("A") == [
            "AssessorAssigned", "AssessorAssigned", "ConflictOfInterestDeclared", "AssessorUnassigned"]
        assert world.browser("conflicted").get(f"/reports/{world.reports['A']}").status_code == 404
        assert world.browser("assigned").get(f"/reports/{world.reports['A']}").status_code == 200
        for who, expected in QUEUE_SEES.items():
            items = world.token(who).get("/api/v1/review-queue").json["items"]
            assert {n for n, rid in world.reports.items() if rid in {i["report_id"] for i in items}} == expected
        runner = world.ctx.own_runner
        runner.catch_up()  # past the audit event of the page view above, which it does not project
        live = runner.digest()
        assert runner.checkpoints()["assignments"] == world.ctx.store.head()
        runner.rebuild()
        assert runner.digest() == live
        # The intake projections kept their own checkpoints in the same table.
        assert set(world.ctx.runner.checkpoints()) == {
            "students", "activities", "reports", "review_queue", "report_rounds", "deadline_basis",
            "statistics_facts"}
    finally:
        world.ctx.dispose()


def test_the_assessment_database_must_not_be_the_intake_database(tmp_path: Path, clock: FixedClock) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with pytest.raises(RuntimeError, match="another database"):
        create_assessment_app(Settings(data_dir=tmp_path, intake_db_url=url, assessment_db_url=url),
                              identity=make_identity(clock), feed=StoreEventFeed(InMemoryEventStore()))


def test_who_declared_a_conflict_is_shown_to_the_coordinator_only(world: World) -> None:
    path = f"/api/v1/reports/{world.reports['A']}"
    assert world.token("coordinator").get(path).json["conflicts"][0]["reason_code"] == "personal_relationship"
    assert "conflicts" not in world.token("assigned").get(path).json
    page = world.browser("assigned").get(f"/reports/{world.reports['A']}").get_data(as_text=True)
    assert "Declared conflicts of interest" not in page
    assert "Staff conflicted" not in page


def test_cli_rebuilds_and_shows_the_assignments_read_model(world: World) -> None:
    runner = world.ctx.own_runner
    live = runner.digest()
    cli = world.app.test_cli_runner()
    result = cli.invoke(args=["projections", "rebuild", "assignments"])
    assert result.exit_code == 0, result.output
    assert "Rebuilding assignments" in result.output
    assert runner.digest() == live
    status = cli.invoke(args=["projections", "status"]).output
    assert "assignments" in status
    assert "review_queue" in status
    assert cli.invoke(args=["projections", "rebuild", "nope"]).exit_code != 0


# -- the matrix of /work/notes/h3-matrix.md, checked row by row ------------------------------------
ACTORS = ["anon", "student_A", "student_B", "assigned", "unassigned", "conflicted", "coordinator",
          "other_coordinator", "administrator"]
PAGE_MATRIX = {
    ("GET", "/review-queue"): [303, 403, 403, 200, 200, 200, 200, 200, 403],
    ("GET", "/reports/{A}"): [303, 404, 404, 200, 404, 404, 200, 404, 404],
    ("POST", "/reports/{A}/assign"): [303, 404, 404, 403, 404, 404, 303, 404, 404],
    ("POST", "/reports/{A}/unassign"): [303, 404, 404, 403, 404, 404, 303, 404, 404],
    ("POST", "/reports/{A}/conflict"): [303, 404, 404, 303, 404, 303, 403, 404, 404],
}
API_MATRIX = {
    "/api/v1/review-queue": [401, 403, 403, 200, 200, 200, 200, 200, 403],
    "/api/v1/reports/{A}": [401, 404, 404, 200, 404, 404, 200, 404, 404],
    "/api/v1/students/{sA}": [401, 200, 404, 200, 404, 404, 200, 404, 404],
    "/api/v1/students/{sB}": [401, 404, 200, 404, 404, 404, 200, 404, 404],
    "/api/v1/projections": [401, 403, 403, 403, 403, 403, 403, 403, 403],
    "/api/v1/status-feed": [401, 403, 403, 403, 403, 403, 403, 403, 403],
}
INTEGRATION = {  # (with the endpoint's scope, without it)
    "/api/v1/review-queue": ("assessment:read", 200, 403),
    "/api/v1/reports/{A}": ("assessment:read", 200, 403),
    "/api/v1/students/{sA}": ("assessment:read", 200, 403),
    "/api/v1/students/{sB}": ("assessment:read", 200, 403),
    "/api/v1/projections": ("ops:read", 200, 403),
    "/api/v1/status-feed": ("feed:read", 200, 403),
}


def _path(world: World, template: str) -> str:
    return template.format(A=world.reports["A"], sA=world.students["A"], sB=world.students["B"])


@pytest.mark.parametrize(("method", "template"), list(PAGE_MATRIX))
def test_page_matrix(world: World, method: str, template: str) -> None:
    data = {"assessor": world.accounts["assigned"].id, "reason": "other"}
    if template.endswith("/assign"):
        data["assessor"] = world.accounts["unassigned"].id
    got = []
    for who in ACTORS:
        client = world.browser(None if who == "anon" else who)
        response = client.open(_path(world, template), method=method,
                               data={**data, "form_token": str(uuid.uuid4())} if method == "POST" else None)
        got.append(response.status_code)
    assert got == PAGE_MATRIX[(method, template)]


@pytest.mark.parametrize("template", list(API_MATRIX))
def test_api_matrix(world: World, template: str) -> None:
    got = []
    for who in ACTORS:
        client = world.app.test_client() if who == "anon" else world.token(who)
        got.append(client.get(_path(world, template)).status_code)
    assert got == API_MATRIX[template]
    scope, allowed, refused = INTEGRATION[template]
    others = sorted({"assessment:read", "ops:read", "feed:read"} - {scope})
    assert world.token(None, scope).get(_path(world, template)).status_code == allowed
    assert world.token(None, *others).get(_path(world, template)).status_code == refused
    if scope == "assessment:read":  # an account token without the scope, for each role
        assert {world.token(who, *others).get(_path(world, template)).status_code for who in ACTORS[1:]} == {403}


@pytest.mark.parametrize("kind", ["memory", "sql"])
def test_identity_store_lists_the_accounts_holding_a_role_in_a_department(
    kind: str, tmp_path: Path, clock: FixedClock
) -> None:
    from shared.identity.models import RoleGrant
    from shared.identity.sql_store import SqlIdentityStore
    from shared.identity.store import InMemoryIdentityStore

    store = InMemoryIdentityStore() if kind == "memory" else SqlIdentityStore(f"sqlite:///{tmp_path / 'id.db'}")
    store.create_schema()
    accounts = [Account(str(uuid.uuid4()), f"Person {i}", None, clock.now()) for i in range(4)]
    for account in accounts:
        store.add_account(account)
    store.grant_role(accounts[0].id, RoleGrant(Role.ASSESSOR, "SOCSW"), clock.now())
    store.grant_role(accounts[1].id, RoleGrant(Role.ASSESSOR, "MED"), clock.now())
    store.grant_role(accounts[2].id, RoleGrant(Role.COORDINATOR, "SOCSW"), clock.now())
    store.grant_role(accounts[3].id, RoleGrant(Role.ASSESSOR, "SOCSW"), clock.now())
    found = store.accounts_with_role(Role.ASSESSOR, "SOCSW")
    assert sorted(a.id for a in found) == sorted([accounts[0].id, accounts[3].id])
    assert [a.id for a in store.accounts_with_role(Role.COORDINATOR, "MED")] == []
