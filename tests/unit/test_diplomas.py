"""Diplomas: the pure deciders (table-driven), then the workflow with the real apps — an eligible
student is issued a diploma once by the sweep, rendered once through a fake renderer, mailed once,
verified publicly, revoked and re-issued by a coordinator, and erased."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from assessment_service import diploma_queries, diploma_services, diplomas
from assessment_service.diploma_document import DiplomaDocument
from assessment_service.diplomas import IssueDiploma
from assessment_service.events import (
    DIPLOMA_SYSTEM_ACTOR,
    REGISTRY,
    DiplomaIssued,
    DiplomaRendered,
    DiplomaRevoked,
)
from assessment_service.projections.diplomas import PROJECTION as DIPLOMAS
from assessment_service.reviews import CRITERIA
from shared.catalogue import Catalogue, CatalogueError, Signatory, Text
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import NotFound, RuleViolated, ValidationFailed
from shared.identity.models import Role
from tests.authkit import make_account
from tests.unit.test_assessment_access import World, assign, build_world

ALICE, BOB = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
DAY = date(2027, 6, 14)
SIGNERS = (Signatory("Karin Provnamn", Text("Head of Department", "Prefekt"), date(2024, 1, 1)),)


def command(student: str = ALICE, *, by: str = DIPLOMA_SYSTEM_ACTOR, reason: str | None = None, day: date = DAY,
            code: str | None = None, signatories: tuple[Signatory, ...] = SIGNERS) -> IssueDiploma:
    return IssueDiploma(str(uuid.uuid4()), student, "SOCSW", day, "SOCSW@1", code or diplomas.new_verification_code(),
                        (), signatories, by, reason)


def issued(state: diplomas.DepartmentDiplomas, cmd: IssueDiploma) -> DiplomaIssued:
    (event,) = diplomas.decide_issue(state, cmd, eligible=True)
    diplomas.evolve(state, event)
    assert isinstance(event, DiplomaIssued)
    return event


# -- the deciders --------------------------------------------------------------------------------


def test_numbers_count_per_year_and_the_status_index_across_years() -> None:
    state = diplomas.DepartmentDiplomas()
    first = issued(state, command(ALICE))
    second = issued(state, command(BOB))
    next_year = issued(state, command(str(uuid.uuid4()), day=date(2028, 1, 3)))
    assert (first.number, second.number, next_year.number) == (
        "CIM-SOCSW-2027-0001", "CIM-SOCSW-2027-0002", "CIM-SOCSW-2028-0001")
    assert [first.status_index, second.status_index, next_year.status_index] == [0, 1, 2]
    assert first.signatory_names == ["Karin Provnamn"]
    assert first.signatory_titles_sv == ["Prefekt"]


def test_the_sweep_never_issues_twice_to_a_student_even_after_a_revocation() -> None:
    state = diplomas.DepartmentDiplomas()
    first = issued(state, command())
    assert diplomas.decide_issue(state, command(), eligible=True) == []
    diplomas.evolve(state, DiplomaRevoked(first.diploma_id, ALICE, "SOCSW", "wrong merits", "c"))
    assert diplomas.decide_issue(state, command(), eligible=True) == []  # only a coordinator issues again


def test_a_batch_numbers_each_student_once_in_order() -> None:
    state = diplomas.DepartmentDiplomas()
    events = diplomas.decide_issue_many(state, [command(ALICE), command(BOB), command(ALICE)])
    assert [e.student_id for e in events] == [ALICE, BOB]
    assert [e.sequence for e in events if isinstance(e, DiplomaIssued)] == [1, 2]


@pytest.mark.parametrize(
    ("history", "cmd", "eligible", "refusal"),
    [
        ("none", command(by="coord", reason="by agreement"), False, "not_eligible"),
        ("live", command(by="coord", reason="by agreement"), True, "diploma_live"),
        ("none", command(by="coord", reason="x", signatories=()), True, "no_signatories"),
        ("none", command(signatories=()), True, "no_signatories"),
        ("live", command(BOB, code="CODE"), True, "code_taken"),
    ],
)
def test_an_issue_is_refused_with_its_reason(history: str, cmd: IssueDiploma, eligible: bool, refusal: str) -> None:
    state = diplomas.DepartmentDiplomas()
    if history == "live":
        issued(state, command(code="CODE"))
    with pytest.raises(RuleViolated) as refused:
        diplomas.decide_issue(state, cmd, eligible=eligible)
    assert refused.value.problem.code == refusal


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 2001])
def test_a_hand_issue_or_revocation_needs_a_reason(reason: str | None) -> None:
    state = diplomas.DepartmentDiplomas()
    with pytest.raises(ValidationFailed) as refused:
        diplomas.decide_issue(state, command(by="coord", reason=reason), eligible=True)
    assert "reason" in refused.value.problems
    first = issued(state, command())
    with pytest.raises(ValidationFailed):
        diplomas.decide_revoke(state, first.diploma_id, "SOCSW", reason, "coord")


def test_revoke_once_then_reissue_replaces_it() -> None:
    state = diplomas.DepartmentDiplomas()
    first = issued(state, command())
    with pytest.raises(NotFound):
        diplomas.decide_revoke(state, str(uuid.uuid4()), "SOCSW", "why", "coord")
    (revoked,) = diplomas.decide_revoke(state, first.diploma_id, "SOCSW", " wrong merits ", "coord")
    assert revoked == DiplomaRevoked(first.diploma_id, ALICE, "SOCSW", "wrong merits", "coord")
    diplomas.evolve(state, revoked)
    with pytest.raises(RuleViolated):
        diplomas.decide_revoke(state, first.diploma_id, "SOCSW", "again", "coord")
    # a coordinator's issue by hand now replaces the revoked one
    (again,) = diplomas.decide_issue(state, command(by="coord", reason="corrected"), eligible=True)
    assert isinstance(again, DiplomaIssued)
    assert again.replaces == first.diploma_id
    assert again.sequence == 2


def test_reissue_revokes_and_issues_in_one_decision() -> None:
    state = diplomas.DepartmentDiplomas()
    first = issued(state, command())
    events = diplomas.decide_reissue(state, first.diploma_id, command(by="coord", reason="typo"), eligible=True)
    assert [type(e).__name__ for e in events] == ["DiplomaRevoked", "DiplomaIssued"]
    assert events[1].replaces == first.diploma_id  # type: ignore[union-attr]
    for event in events:
        diplomas.evolve(state, event)
    with pytest.raises(RuleViolated):  # the replaced one is not re-issued twice
        diplomas.decide_reissue(state, first.diploma_id, command(by="coord", reason="typo"), eligible=True)


def test_rendered_is_recorded_once() -> None:
    state = diplomas.DepartmentDiplomas()
    first = issued(state, command())
    (rendered,) = diplomas.decide_rendered(state, first.diploma_id, "SOCSW", "a" * 64, 10)
    assert rendered == DiplomaRendered(first.diploma_id, ALICE, "SOCSW", "a" * 64, 10)
    diplomas.evolve(state, rendered)
    assert diplomas.decide_rendered(state, first.diploma_id, "SOCSW", "b" * 64, 10) == []


def test_verification_codes_are_16_unambiguous_characters_in_groups() -> None:
    codes = {diplomas.new_verification_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert set("".join(groups)) <= set(diplomas.CODE_ALPHABET)
        assert not set("01IO") & set(code)


def test_the_events_round_trip_through_their_schemas() -> None:
    state = diplomas.DepartmentDiplomas()
    event = issued(state, command(by="coord", reason="by agreement"))
    name, version, data = REGISTRY.encode(event)
    assert REGISTRY.decode(name, version, data) == event
    assert REGISTRY.schema(name).fields["reason"].metadata.get("personal") is True
    assert REGISTRY.schema("DiplomaRevoked").fields["reason"].metadata.get("personal") is True


# -- signatories in the departments file -------------------------------------------------------------

BASE = {"name": "X", "programmes": [{"code": "P", "name": "P"}],
        "activity_kinds": [{"code": "k", "name": "K", "settings": ["abroad"]}],
        "reflection_questions": [{"code": "q", "text": "Q?"}]}


def test_signatories_are_chosen_by_period() -> None:
    catalogue = Catalogue.parse({"departments": {"X": {**BASE, "signatories": [
        {"name": "Old Head", "title": {"en": "Head", "sv": "Prefekt"}, "from": date(2024, 1, 1),
         "until": date(2026, 12, 31)},
        {"name": "New Head", "title": {"en": "Head", "sv": "Prefekt"}, "from": date(2027, 1, 1)},
    ]}}})
    dept = catalogue.departments["X"]
    assert [s.name for s in dept.signatories_on(date(2026, 12, 31))] == ["Old Head"]
    assert [s.name for s in dept.signatories_on(date(2027, 1, 1))] == ["New Head"]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"title": {"en": "Head", "sv": "Prefekt"}, "from": date(2024, 1, 1)}, "name"),
        ({"name": "N", "title": {"en": "Head"}, "from": date(2024, 1, 1)}, "title"),
        ({"name": "N", "title": {"en": "Head", "sv": "P"}, "from": "2024-01-01"}, "from"),
        ({"name": "N", "title": {"en": "Head", "sv": "P"}, "from": date(2024, 1, 1), "until": date(2023, 1, 1)},
         "until"),
        ({"name": "N", "title": {"en": "Head", "sv": "P"}, "from": date(2024, 1, 1), "email": "x"}, "unknown"),
    ],
)
def test_a_bad_signatory_stops_the_start_naming_the_field(item: dict[str, Any], field: str) -> None:
    with pytest.raises(CatalogueError) as err:
        Catalogue.parse({"departments": {"X": {**BASE, "signatories": [item]}}})
    assert "signatories[0]" in str(err.value)
    assert field in str(err.value)


def test_every_shipped_department_has_a_signatory_today() -> None:
    from pathlib import Path

    catalogue = Catalogue.load(Path(__file__).resolve().parents[2] / "config" / "departments.toml")
    for dept in catalogue.departments.values():
        assert dept.signatories_on(date(2027, 6, 14)), dept.code


# -- through the apps --------------------------------------------------------------------------


class FakeRenderer:
    def __init__(self) -> None:
        self.documents: list[DiplomaDocument] = []

    def __call__(self, document: DiplomaDocument) -> bytes:
        self.documents.append(document)
        return b"%PDF-1.7 fake " + document.number.encode()


@pytest.fixture
def world(tmp_path: Any, clock: FixedClock) -> World:
    """Student A: report approved and presented (eligible); B: submitted only."""
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    world = build_world(settings, clock)
    world.accounts["second"] = make_account(world.identity, "Staff second", grants=[(Role.ASSESSOR, "SOCSW")])
    assign(world, "A", "assigned")
    assign(world, "A", "second")
    for who in ("assigned", "second"):
        response = world.token(who, "assessment:review").post(
            f"/api/v1/reports/{world.reports['A']}/reviews",
            json={"verdicts": dict.fromkeys(CRITERIA, "met"), "recommendation": "approve"})
        assert response.status_code == 201, response.json
    coordinator = world.token("coordinator", "assessment:presentations")
    starts = clock.now() + timedelta(days=2)
    occasion = coordinator.post("/api/v1/occasions", json={
        "department": "SOCSW", "kind": "international_cafe", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(), "place": "Room 128", "capacity": 5}).json["occasion_id"]
    sid = world.students["A"]
    assert coordinator.post(f"/api/v1/occasions/{occasion}/bookings", json={"student_id": sid}).status_code == 201
    clock.advance(timedelta(days=2, minutes=5))
    held = coordinator.post(f"/api/v1/occasions/{occasion}/attendance", json={"student_id": sid, "presented": True})
    assert held.status_code == 201, held.json
    world.ctx.own_runner.catch_up()
    return world


def api(world: World, who: str | None) -> Any:
    return world.token(who, "assessment:diplomas")


def stream(world: World) -> list[str]:
    return [e.type for e in world.ctx.store.read_stream("diplomas-SOCSW")]


def the_diploma(world: World) -> dict[str, Any]:
    with world.ctx.reader.connect() as conn:
        (found,) = diploma_queries.of_student(conn, world.students["A"])
    return found


def test_the_sweep_issues_once_renders_once_and_the_pdf_is_stored(world: World, tmp_path: Any) -> None:
    ctx = world.ctx
    assert diploma_services.issue_due(ctx) == 1
    assert diploma_services.issue_due(ctx) == 0  # a retried or doubled task issues no second number
    assert stream(world) == ["DiplomaIssued"]
    found = the_diploma(world)
    assert found["number"].startswith("CIM-SOCSW-")
    assert found["number"].endswith("-0001")
    assert found["status"] == "valid"
    assert found["holder_name"] == "StudentA Exempel"
    assert [s["name"] for s in found["signatories"]] == ["Karin Provnamn", "Erik Testberg"]
    renderer = FakeRenderer()
    assert diploma_services.render(ctx, found["diploma_id"], renderer) == "rendered"
    assert diploma_services.render(ctx, found["diploma_id"], renderer) == "already"
    assert len(renderer.documents) == 1  # never rendered twice
    document = renderer.documents[0]
    assert document.holder_name == "StudentA Exempel"
    assert document.presentation is not None
    assert document.verify_url.endswith(f"/verify/{found['verification_code']}")
    assert document.department.sv == "Socialhögskolan"
    body = (tmp_path / "diplomas" / f"{found['number']}.pdf").read_bytes()
    assert body == b"%PDF-1.7 fake " + found["number"].encode()
    rendered = the_diploma(world)
    assert rendered["pdf_sha256"] == hashlib.sha256(body).hexdigest()
    assert stream(world) == ["DiplomaIssued", "DiplomaRendered"]
    assert not list((tmp_path / "diplomas").glob(".render-*"))  # no temporary file left


def test_the_rebuilt_read_model_equals_the_live_one(world: World) -> None:
    ctx = world.ctx
    diploma_services.issue_due(ctx)
    diploma_services.render(ctx, the_diploma(world)["diploma_id"], FakeRenderer())
    found = the_diploma(world)
    diploma_services.reissue(ctx, _principal(world, "coordinator"), found["diploma_id"], "corrected", _req())
    ctx.own_runner.catch_up()
    import sqlalchemy as sa

    from assessment_service.projections.diplomas import diplomas as table

    def rows() -> list[Any]:
        with ctx.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.number))]

    live = rows()
    assert len(live) == 2
    ctx.own_runner.rebuild([DIPLOMAS.name])
    assert rows() == live


def _principal(world: World, who: str) -> Any:
    return world.identity.accounts.principal(world.accounts[who].id)


def _req() -> Any:
    from shared.application import RequestContext

    return RequestContext(actor="test", correlation_id="test", idempotency_key=str(uuid.uuid4()))


def test_public_verification_in_both_languages_and_as_json(world: World) -> None:
    diploma_services.issue_due(world.ctx)
    found = the_diploma(world)
    code = found["verification_code"]
    anonymous = world.app.test_client()
    page = anonymous.get(f"/verify/{code}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "This diploma is valid." in text
    assert "StudentA Exempel" in text
    assert found["number"] in text
    assert "Karin Provnamn" in text
    swedish = anonymous.get(f"/verify/{code}", headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert "Detta diplom är giltigt." in swedish
    assert "Socialhögskolan" in swedish
    assert "Prefekt" in swedish
    as_json = anonymous.get(f"/verify/{code}.json")
    assert as_json.status_code == 200
    assert as_json.json["status"] == "valid"
    assert as_json.json["holder_name"] == "StudentA Exempel"
    assert as_json.json["merits_count"] == len(found["merits"])
    by_accept = anonymous.get(f"/verify/{code}", headers={"Accept": "application/json"})
    assert by_accept.json["number"] == found["number"]
    assert "student_id" not in as_json.json
    assert "reason" not in as_json.json
    for unknown in ("AAAA-BBBB-CCCC-DDDD", "nonsense", "<script>"):
        assert anonymous.get(f"/verify/{unknown}").status_code == 404
    unknown_json = anonymous.get("/verify/AAAA-BBBB-CCCC-DDDD.json")
    assert unknown_json.status_code == 404
    assert unknown_json.json["status"] == 404
    assert "No diploma has the verification code" in anonymous.get("/verify/AAAA-BBBB-CCCC-DDDD").get_data(
        as_text=True)


def test_revoking_flips_the_verification_and_reissue_replaces(world: World) -> None:
    diploma_services.issue_due(world.ctx)
    found = the_diploma(world)
    coordinator = api(world, "coordinator")
    no_reason = coordinator.post(f"/api/v1/diplomas/{found['diploma_id']}/revocation", json={"reason": ""})
    assert no_reason.status_code == 422
    assert stream(world) == ["DiplomaIssued"]
    for who in ("assigned", "other_coordinator", "student_A"):
        refused = api(world, who).post(f"/api/v1/diplomas/{found['diploma_id']}/revocation", json={"reason": "x"})
        assert refused.status_code == 404, who
    revoked = coordinator.post(f"/api/v1/diplomas/{found['diploma_id']}/revocation", json={"reason": "wrong merits"})
    assert revoked.status_code == 201, revoked.json
    world.ctx.own_runner.catch_up()
    assert world.app.test_client().get(f"/verify/{found['verification_code']}.json").json["status"] == "revoked"
    assert "wrong merits" not in str(world.ctx.store.read_stream("diplomas-SOCSW")[-1].data)  # sealed
    reissued = coordinator.post(f"/api/v1/diplomas/{found['diploma_id']}/reissue", json={"reason": "corrected"})
    assert reissued.status_code == 201, reissued.json
    world.ctx.own_runner.catch_up()
    listed = coordinator.get(f"/api/v1/students/{world.students['A']}/diplomas").json["items"]
    assert [i["status"] for i in listed] == ["valid", "revoked"]
    assert listed[0]["replaces"] == found["diploma_id"]
    assert listed[1]["replaced_by"] == listed[0]["diploma_id"]
    assert listed[0]["number"].endswith("-0002")
    reasons = diploma_services.reasons(world.ctx, the_diplomas(world)[1])
    assert reasons["revoke_reason"] == "wrong merits"


def the_diplomas(world: World) -> list[dict[str, Any]]:
    with world.ctx.reader.connect() as conn:
        return diploma_queries.of_student(conn, world.students["A"])


def test_issue_by_hand_needs_eligibility_a_reason_and_no_live_diploma(world: World) -> None:
    coordinator = api(world, "coordinator")
    b = world.students["B"]
    not_eligible = coordinator.post(f"/api/v1/students/{b}/diplomas", json={"reason": "by agreement"})
    assert not_eligible.status_code == 409
    a = world.students["A"]
    assert coordinator.post(f"/api/v1/students/{a}/diplomas", json={}).status_code == 422
    assert coordinator.post(f"/api/v1/students/{a}/diplomas", json={"reason": 5}).status_code == 422
    key = {"Idempotency-Key": "issue-once"}
    first = coordinator.post(f"/api/v1/students/{a}/diplomas", json={"reason": "by agreement"}, headers=key)
    again = coordinator.post(f"/api/v1/students/{a}/diplomas", json={"reason": "by agreement"}, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert stream(world) == ["DiplomaIssued"]
    live = coordinator.post(f"/api/v1/students/{a}/diplomas", json={"reason": "another"})
    assert live.status_code == 409
    assert diploma_services.issue_due(world.ctx) == 0  # the sweep sees the student has one
    assert api(world, "other_coordinator").post(f"/api/v1/students/{a}/diplomas",
                                                json={"reason": "x"}).status_code == 404
    assert world.token(None, "assessment:diplomas").get(f"/api/v1/students/{a}/diplomas").status_code == 403
    assert world.token("coordinator", "assessment:read").get(f"/api/v1/students/{a}/diplomas").status_code == 403


def test_who_reads_what(world: World) -> None:
    diploma_services.issue_due(world.ctx)
    diploma_services.render(world.ctx, the_diploma(world)["diploma_id"], FakeRenderer())
    found = the_diploma(world)
    a = world.students["A"]
    for who, status in (("coordinator", 200), ("assigned", 200), ("student_A", 200), ("student_B", 404),
                        ("other_coordinator", 404), ("med_assessor", 404)):
        assert api(world, who).get(f"/api/v1/students/{a}/diplomas").status_code == status, who
        assert api(world, who).get(f"/api/v1/diplomas/{found['diploma_id']}").status_code == status, who
        assert world.browser(who).get(f"/diplomas/{found['diploma_id']}.pdf").status_code == status, who
        assert world.browser(who).get(f"/students/{a}/diploma").status_code == status, who
    home = world.browser("coordinator").get("/diplomas")
    assert home.status_code == 303
    assert home.headers["Location"].endswith("/departments/SOCSW/diplomas")
    assert world.browser("student_A").get("/diplomas").status_code == 404
    for who, status in (("coordinator", 200), ("assigned", 200), ("student_A", 404), ("other_coordinator", 404)):
        assert world.browser(who).get("/departments/SOCSW/diplomas").status_code == status, who
        assert world.browser(who).get("/departments/SOCSW/diplomas.csv").status_code == status, who
        assert api(world, who).get("/api/v1/departments/SOCSW/diplomas").status_code == status, who
    assert world.app.test_client().get(f"/diplomas/{found['diploma_id']}.pdf").status_code in (302, 303, 401)
    pdf = world.browser("student_A").get(f"/diplomas/{found['diploma_id']}.pdf")
    assert pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")


def test_the_staff_pages_show_the_supplement_and_the_csv_for_the_registry(world: World) -> None:
    diploma_services.issue_due(world.ctx)
    found = the_diploma(world)
    page = world.browser("coordinator").get(f"/students/{world.students['A']}/diploma").get_data(as_text=True)
    assert found["number"] in page
    assert "Diploma Supplement" in page
    assert "Lunds universitet" in page
    assert "Revoke" in page
    assert "Re-issue" in page
    own = world.browser("student_A").get(f"/students/{world.students['A']}/diploma").get_data(as_text=True)
    assert found["number"] in own
    assert "Revoke" not in own
    assert "Diploma Supplement" not in own
    body = world.browser("coordinator").get("/departments/SOCSW/diplomas.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["number", "status", "issued_on"]
    assert rows[1][0] == found["number"]
    assert rows[1][5] == "StudentA Exempel"


def test_the_page_forms_revoke_with_a_reason_and_refuse_without(world: World) -> None:
    diploma_services.issue_due(world.ctx)
    found = the_diploma(world)
    browser = world.browser("coordinator")
    empty = browser.post(f"/diplomas/{found['diploma_id']}/revoke",
                         data={"revoke-reason": "", "revoke-form_token": str(uuid.uuid4())})
    assert empty.status_code == 422
    assert "Write the reason." in empty.get_data(as_text=True)
    assert stream(world) == ["DiplomaIssued"]
    done = browser.post(f"/diplomas/{found['diploma_id']}/revoke",
                        data={"revoke-reason": "issued in error", "revoke-form_token": str(uuid.uuid4())})
    assert done.status_code == 303, done.get_data(as_text=True)
    assert stream(world) == ["DiplomaIssued", "DiplomaRevoked"]
    assert world.browser("assigned").post(f"/diplomas/{found['diploma_id']}/reissue", data={
        "reissue-reason": "x", "reissue-form_token": str(uuid.uuid4())}).status_code == 404


def test_after_erasure_only_the_number_and_date_remain_and_the_pdf_is_deleted(world: World, tmp_path: Any) -> None:
    diploma_services.issue_due(world.ctx)
    found = the_diploma(world)
    diploma_services.render(world.ctx, found["diploma_id"], FakeRenderer())
    path = tmp_path / "diplomas" / f"{found['number']}.pdf"
    assert path.exists()
    from shared.application import RequestContext

    intake = world.intake.application.extensions["cim.intake"]
    intake.erase_student(world.students["A"], "erasure request", RequestContext("operator:test", "erase"))
    world.catch_up()
    assert diploma_services.purge_erased_files(world.ctx) == 1
    assert not path.exists()
    shown = world.app.test_client().get(f"/verify/{found['verification_code']}.json").json
    assert shown == {"number": found["number"], "issued_on": found["issued_on"], "status": "valid", "erased": True,
                     "verification_code": found["verification_code"]}
    page = world.app.test_client().get(f"/verify/{found['verification_code']}").get_data(as_text=True)
    assert "StudentA" not in page
    assert found["number"] in page
    assert world.browser("coordinator").get(f"/diplomas/{found['diploma_id']}.pdf").status_code == 404


def test_the_diploma_mail_is_enqueued_once_per_issue() -> None:
    from assessment_service import notifications
    from shared.events import RecordedEvent

    sent: list[Any] = []

    class Recipients:
        def student(self, conn: Any, student_id: str) -> tuple[str | None, str] | None:
            return ("Alex Exempel", "alex@example.org")

        def locale(self, subject_id: str | None) -> str | None:
            return None  # no language chosen: English

        def account(self, account_id: str) -> None:
            return None

    keys: set[str] = set()

    def enqueue(notice: Any) -> bool:
        if notice.key in keys:
            return False
        keys.add(notice.key)
        sent.append(notice)
        return True

    notes = notifications.build(Recipients(), enqueue, notifications.Links("http://i", "http://a", "c@example.org"))
    event = issued(diplomas.DepartmentDiplomas(), command())
    _name, _version, data = REGISTRY.encode(event)
    from datetime import UTC, datetime

    recorded = RecordedEvent(event_id="e-1", stream_id="diplomas-SOCSW", version=1, position=1,
                             type="DiplomaIssued", schema_version=1, data=data, metadata={},
                             occurred_at=datetime(2027, 6, 14, tzinfo=UTC),
                             recorded_at=datetime(2027, 6, 14, tzinfo=UTC))
    notes.own.apply(None, recorded)  # type: ignore[arg-type]
    notes.own.apply(None, recorded)  # type: ignore[arg-type]
    assert [(n.key, n.template) for n in sent] == [("event:e-1", "diploma_issued")]
    assert sent[0].context["diploma_url"] == f"http://a/students/{ALICE}/diploma"


def test_the_beat_queues_one_render_per_unrendered_diploma_until_it_is_done(world: World) -> None:
    from shared import task_names
    from workers import schedule
    from workers.tasks.diplomas import queue_renders

    entry = schedule.BEAT_SCHEDULE["issue-diplomas"]
    assert entry["task"] == task_names.ISSUE_DIPLOMAS
    assert entry["options"]["expires"] > 0
    diploma_services.issue_due(world.ctx)
    claimed: set[str] = set()
    sent: list[str] = []

    def claim(diploma_id: str) -> bool:
        if diploma_id in claimed:
            return False
        claimed.add(diploma_id)
        return True

    assert queue_renders(world.ctx, sent.append, claim) == 1
    assert queue_renders(world.ctx, sent.append, claim) == 0  # one already waits
    assert sent == [the_diploma(world)["diploma_id"]]
    diploma_services.render(world.ctx, sent[0], FakeRenderer())
    claimed.clear()
    assert queue_renders(world.ctx, sent.append, claim) == 0  # rendered: nothing more to queue


def test_a_revoked_or_unknown_diploma_is_not_rendered(world: World) -> None:
    diploma_services.issue_due(world.ctx)
    found = the_diploma(world)
    api(world, "coordinator").post(f"/api/v1/diplomas/{found['diploma_id']}/revocation", json={"reason": "error"})
    renderer = FakeRenderer()
    assert diploma_services.render(world.ctx, found["diploma_id"], renderer) == "revoked"
    assert diploma_services.render(world.ctx, str(uuid.uuid4()), renderer) == "unknown"
    assert diploma_services.render(world.ctx, "not-an-id", renderer) == "unknown"
    assert renderer.documents == []


def test_a_lost_file_is_restored_byte_identical_and_a_differing_render_never_replaces_it(
        world: World, tmp_path: Any) -> None:
    diploma_services.issue_due(world.ctx)
    found = the_diploma(world)
    renderer = FakeRenderer()
    assert diploma_services.render(world.ctx, found["diploma_id"], renderer) == "rendered"
    path = tmp_path / "diplomas" / f"{found['number']}.pdf"
    kept = path.read_bytes()
    path.unlink()  # as if the worker died between the record and the rename
    assert diploma_services.render(world.ctx, found["diploma_id"], renderer) == "restored"
    assert path.read_bytes() == kept
    assert stream(world).count("DiplomaRendered") == 1
    path.write_bytes(b"tampered")
    assert diploma_services.render(world.ctx, found["diploma_id"], lambda _doc: b"%PDF other") == "mismatch"
    assert path.read_bytes() == b"tampered"
    assert world.browser("student_A").get(f"/diplomas/{found['diploma_id']}.pdf").status_code == 404  # not served


@pytest.mark.parametrize(("name", "cell"), [
    ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("+46 70", "'+46 70"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("Ingrid Exempelsson", "Ingrid Exempelsson"),
])
def test_a_name_in_the_registry_csv_is_never_a_formula(name: str, cell: str) -> None:
    from assessment_service.web.diploma_pages import _cell

    assert _cell(name) == cell


def test_the_supplement_line_counts_merits_in_both_languages(world: World) -> None:
    diploma_services.issue_due(world.ctx)
    found = the_diploma(world)
    line = diploma_services.supplement_line({**found, "merits": ["m1"]}, world.ctx)
    assert "1 international merit and" in line["en"]
    assert "1 internationell merit och" in line["sv"]
    assert found["number"] in line["en"]
    assert f"/verify/{found['verification_code']}" in line["sv"]
    two = diploma_services.supplement_line({**found, "merits": ["m1", "m2"]}, world.ctx)
    assert "2 international merits" in two["en"]
    assert "2 internationella meriter" in two["sv"]


def test_my_cim_links_to_the_diploma_once_the_student_presented(world: World) -> None:
    from assessment_service import services as assessment_services
    from intake_service.assessment_view import build_view
    from shared.adapters.feed import FunctionFeed
    from tests.authkit import sign_in

    intake_app = world.intake.application
    ctx = world.ctx
    view = build_view(
        ctx.settings, feed=FunctionFeed(lambda _a, _l: [], lambda: 0),
        own_events=FunctionFeed(lambda after, limit: assessment_services.own_feed(ctx, after, limit), ctx.store.head),
        vault=intake_app.extensions["cim.intake"].codec.vault,
    )
    intake_app.extensions["cim.intake.assessment_view"] = view

    def my_cim(student: str) -> str:
        client = intake_app.test_client()
        sign_in(client, world.identity, world.accounts[f"student_{student}"])
        return client.get(f"/students/{world.students[student]}").text

    view.catch_up()
    link = f"/students/{world.students['A']}/diploma\">Your diploma"
    assert link in my_cim("A")
    assert "/diploma\"" not in my_cim("B")  # not eligible: no link


def test_my_cims_status_line_says_the_diploma_is_issued_then_revoked(world: World) -> None:
    from assessment_service import services as assessment_services
    from intake_service.assessment_view import build_view
    from shared.adapters.feed import FunctionFeed
    from tests.authkit import sign_in

    intake_app = world.intake.application
    ctx = world.ctx
    view = build_view(
        ctx.settings, feed=FunctionFeed(lambda _a, _l: [], lambda: 0),
        own_events=FunctionFeed(lambda after, limit: assessment_services.own_feed(ctx, after, limit), ctx.store.head),
        vault=intake_app.extensions["cim.intake"].codec.vault,
    )
    intake_app.extensions["cim.intake.assessment_view"] = view
    sid = world.students["A"]

    def status(lang: str = "en") -> str:
        client = intake_app.test_client()
        sign_in(client, world.identity, world.accounts["student_A"])
        page = client.get(f"/students/{sid}?lang={lang}").text
        return page.split('id="status-heading"')[1].split("</section>")[0]

    view.catch_up()
    assert "Eligible for the diploma" in status()
    diploma_services.issue_due(ctx)
    view.catch_up()
    found = the_diploma(world)
    issued = status()
    assert "Eligible for the diploma" not in issued
    assert "Your diploma is issued." in issued
    assert f"Diploma {found['number']}, issued on " in issued
    assert f"/students/{sid}/diploma\">Download your diploma" in issued
    assert "Ditt diplom är utfärdat." in status("sv")
    revoked = api(world, "coordinator").post(f"/api/v1/diplomas/{found['diploma_id']}/revocation",
                                              json={"reason": "wrong merits"})
    assert revoked.status_code == 201, revoked.json
    view.catch_up()
    line = status()
    assert "Your diploma was revoked." in line
    assert f"Diploma {found['number']}, issued on " in line
    assert "was revoked on " in line
    assert "Download your diploma" not in line
    assert "wrong merits" not in line  # the reason is the coordinator's to give
    assert "Ditt diplom har återkallats." in status("sv")
    reissued = api(world, "coordinator").post(f"/api/v1/diplomas/{found['diploma_id']}/reissue",
                                               json={"reason": "corrected"})
    assert reissued.status_code == 201, reissued.json
    view.catch_up()
    again = status()
    assert "Your diploma is issued." in again
    assert the_diplomas(world)[0]["number"] in again
    assert view.catch_up() == 0
