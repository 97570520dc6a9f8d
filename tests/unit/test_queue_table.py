"""The review queue as a table (filters, sorting, pages, states, the target warning, who sees
what, bad parameters), bulk assignment (preview, confirm, double confirm, forged ids, the
balanced suggestion) and the assessor group's agenda."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest

from assessment_service import queries, services, staff_mail
from assessment_service import queue_queries as qq
from assessment_service.reviews import CRITERIA, SubmitReview
from assessment_service.web.access_rules import queue_scope
from assessment_service.web.queue_pages import suggest_balanced
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from tests.authkit import make_account
from tests.unit.test_assessment_access import (
    ACTIVITY,
    ANSWERS,
    World,
    assign,
    build_world,
    declare,
    register,
    submit,
)
from tests.unit.test_rulings_api import OTHER, RULING


@pytest.fixture
def world(settings: Settings, clock: FixedClock) -> World:
    """SOCSW reports A (assigned to `assigned`) and B (nobody); MED report M."""
    world = build_world(settings, clock)
    assign(world, "A", "assigned")
    return world


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")


def _json(world: World, who: str, query: str = "") -> dict[str, Any]:
    response = world.token(who).get(f"/api/v1/queue{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def _names(body: dict[str, Any]) -> list[str]:
    return [item["name"] for item in body["items"]]


def _review(world: World, who: str, report: str, recommendation: str) -> None:
    principal = world.identity.accounts.principal(world.accounts[who].id)
    assert principal is not None
    command = SubmitReview(world.accounts[who].id, dict.fromkeys(CRITERIA, "met"), {}, recommendation)
    services.submit_review(world.ctx, principal, world.reports[report], command,
                           services.RequestContext(actor="test", correlation_id="c"))


# -- the table -----------------------------------------------------------------------------------
def test_the_coordinator_sees_one_row_per_report_of_the_department_with_state_and_checklist(world: World) -> None:
    body = _json(world, "coordinator")
    assert body["count"] == 2
    rows = {item["name"]: item for item in body["items"]}
    assert set(rows) == {"StudentA Exempel", "StudentB Exempel"}
    assert rows["StudentA Exempel"]["state"] == "in_review"
    assert rows["StudentA Exempel"]["assessors"] == [{"account_id": world.accounts["assigned"].id,
                                                      "name": "Staff assigned"}]
    assert rows["StudentB Exempel"]["state"] == "waiting"
    checklist = rows["StudentA Exempel"]["checklist"]
    assert checklist["total"] >= 1
    assert len(checklist["unmet"]) == checklist["total"] - checklist["met"]
    page = world.browser("coordinator").get("/queue")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<table" in html
    assert "StudentM" not in html
    assert f'href="/reports/{world.reports["A"]}"' in html
    assert f"{checklist['met']} of {checklist['total']} met" in html
    assert "2 reports, showing 1–2" in html
    # The old address still answers with the same table; the service's own address leads to it.
    assert "2 reports, showing 1–2" in world.browser("coordinator").get("/review-queue").get_data(as_text=True)
    assert world.browser("coordinator").get("/").headers["Location"] == "/queue"


def test_an_assessor_sees_only_the_reports_assigned_to_them(world: World) -> None:
    assert _names(_json(world, "assigned")) == ["StudentA Exempel"]
    assert _json(world, "unassigned")["count"] == 0
    assert _json(world, "med_assessor")["count"] == 0  # another department: nothing
    assert _json(world, "other_coordinator")["count"] == 1  # MED's own report only
    html = world.browser("med_assessor").get("/queue").get_data(as_text=True)
    assert "StudentA" not in html
    assert "StudentB" not in html
    assert world.browser("administrator").get("/queue").status_code == 403
    assert world.token("student_A").get("/api/v1/queue").status_code == 403
    assert world.token(None).get("/api/v1/queue").json["count"] == 3  # an integration: every report


def test_a_conflicted_assessor_no_longer_sees_the_report(world: World) -> None:
    assign(world, "A", "conflicted")
    assert _json(world, "conflicted")["count"] == 1
    declare(world, "conflicted", "A")
    assert _json(world, "conflicted")["count"] == 0


def test_filters_by_state_assessor_programme_and_waiting_time(world: World, clock: FixedClock) -> None:
    assert _names(_json(world, "coordinator", "?state=waiting")) == ["StudentB Exempel"]
    assert _names(_json(world, "coordinator", "?state=in_review")) == ["StudentA Exempel"]
    assert _json(world, "coordinator", "?state=approved")["count"] == 0
    assert _names(_json(world, "coordinator", "?assessor=unassigned")) == ["StudentB Exempel"]
    assert _names(_json(world, "assigned", "?assessor=me")) == ["StudentA Exempel"]
    assert _json(world, "coordinator", "?assessor=me")["count"] == 0
    assigned_id = world.accounts["assigned"].id
    assert _names(_json(world, "coordinator", f"?assessor={assigned_id}")) == ["StudentA Exempel"]
    assert _json(world, "coordinator", "?programme=SSASK")["count"] == 2
    assert _json(world, "coordinator", "?programme=MALAK")["count"] == 0
    assert _json(world, "coordinator", "?waiting_over=3")["count"] == 0
    clock.advance(timedelta(days=5))
    assert _json(world, "coordinator", "?waiting_over=3")["count"] == 2
    assert _json(world, "coordinator", "?waiting_over=10")["count"] == 0
    # The page's form keeps what was asked, and an empty field means "any".
    html = world.browser("coordinator").get("/queue?state=waiting&waiting_over=&assessor=").get_data(as_text=True)
    assert '<option value="waiting" selected>' in html
    assert "1 report, showing 1–1" in html


def test_sorting_by_a_column_and_its_header_says_so(world: World) -> None:
    assert _names(_json(world, "coordinator", "?sort=student")) == ["StudentA Exempel", "StudentB Exempel"]
    assert _names(_json(world, "coordinator", "?sort=-student")) == ["StudentB Exempel", "StudentA Exempel"]
    # Longest waiting first by default: A was submitted first.
    assert _names(_json(world, "coordinator")) == ["StudentA Exempel", "StudentB Exempel"]
    assert _names(_json(world, "coordinator", "?sort=waiting")) == ["StudentB Exempel", "StudentA Exempel"]
    # By state in the review's order: waiting (B) before in review (A), though "in_review" < "waiting".
    assert _names(_json(world, "coordinator", "?sort=state")) == ["StudentB Exempel", "StudentA Exempel"]
    assert _names(_json(world, "coordinator", "?sort=-state")) == ["StudentA Exempel", "StudentB Exempel"]
    html = world.browser("coordinator").get("/queue?sort=-student").get_data(as_text=True)
    header = re.search(r'<th scope="col" aria-sort="descending">\s*<a href="([^"]+)">Student', html)
    assert header is not None
    assert "sort=student" in header.group(1).replace("&amp;", "&")  # a click sorts the other way
    assert html.count("aria-sort=") == 1


def test_pages_with_a_count(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    assert qq.PER_PAGE == 50
    for n in range(3):
        submit(world.intake, register(world.intake, f"Extra{n:02d} Exempel"))
    world.catch_up()
    monkeypatch.setattr(qq, "PER_PAGE", 2)
    first = _json(world, "coordinator", "?sort=student")
    assert first["count"] == 5
    assert first["pages"] == 3
    assert len(first["items"]) == 2
    second = _json(world, "coordinator", "?sort=student&page=2")
    assert len(second["items"]) == 2
    assert not {i["report_id"] for i in first["items"]} & {i["report_id"] for i in second["items"]}
    html = world.browser("coordinator").get("/queue?sort=student&page=3").get_data(as_text=True)
    assert "5 reports, showing 5–5" in html
    assert "Previous page" in html
    assert "Next page" not in html
    assert "page=2" in html
    assert "sort=student" in html
    assert _json(world, "coordinator", "?page=9")["items"] == []


@pytest.mark.parametrize(("query", "name"), [
    ("?state=lost", "state"), ("?waiting_over=-1", "waiting_over"), ("?waiting_over=ten", "waiting_over"),
    ("?assessor=someone", "assessor"), ("?programme=<b>", "programme"), ("?sort=email", "sort"),
    ("?page=0", "page"), ("?page=x", "page"), ("?page=99999999999", "page"),
])
def test_bad_parameters_are_named_never_a_server_error(world: World, query: str, name: str) -> None:
    response = world.token("coordinator").get(f"/api/v1/queue{query}")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert name in response.json["errors"]
    page = world.browser("coordinator").get(f"/queue{query}")
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert 'class="error-summary"' in html
    if name not in ("sort", "page"):  # those have no field of their own: the summary says it
        assert f'id="filter-{name}-error"' in html
    assert "StudentA" not in html  # nothing shown for a query that was not understood


def test_a_report_past_the_departments_target_carries_a_written_warning(world: World, clock: FixedClock) -> None:
    clock.advance(timedelta(days=30))
    assert not any(i["overdue"] for i in _json(world, "coordinator")["items"])
    clock.advance(timedelta(days=2))
    body = _json(world, "coordinator")
    assert all(i["overdue"] and i["target_days"] == 30 and i["days_waiting"] == 32 for i in body["items"])
    html = world.browser("coordinator").get("/queue").get_data(as_text=True)
    assert html.count("Overdue: the target is 30 days") == 2
    html_sv = world.browser("coordinator").get("/queue?lang=sv").get_data(as_text=True)
    assert "Försenad" in html_sv


def test_states_follow_reviews_and_decisions(world: World) -> None:
    assign(world, "A", "unassigned")
    _review(world, "assigned", "A", "approve")
    _review(world, "unassigned", "A", "revise")
    assert _names(_json(world, "coordinator", "?state=in_review")) == ["StudentA Exempel"]
    principal = world.identity.accounts.principal(world.accounts["coordinator"].id)
    assert principal is not None
    services.decide_report(world.ctx, principal, world.reports["A"], "revise", "Say more about Lyon.",
                           services.RequestContext(actor="test", correlation_id="c"))
    assert _names(_json(world, "coordinator", "?state=revision_requested")) == ["StudentA Exempel"]
    assign(world, "B", "assigned")
    assign(world, "B", "unassigned")
    _review(world, "assigned", "B", "approve")
    _review(world, "unassigned", "B", "approve")  # two approvals: the policy approves
    assert _names(_json(world, "coordinator", "?state=approved")) == ["StudentB Exempel"]
    html = world.browser("coordinator").get("/queue?lang=sv").get_data(as_text=True)
    assert "Godkänd" in html
    # The read model is the events' projection: rebuilt from zero it equals the live rows.
    live = world.ctx.own_runner.digest(["review_states"])
    world.ctx.own_runner.rebuild(["review_states"])
    assert world.ctx.own_runner.digest(["review_states"]) == live
    # And a student's right of access includes it.
    with world.ctx.reader.connect() as conn:
        held = queries.held_about(conn, world.students["A"])
    assert [r["outcome"] for r in held["review_states"]] == ["revision_requested"]
    assert sorted(r["recommendation"] for r in held["review_marks"]) == ["approve", "revise"]


def test_a_round_after_a_revision_request_is_resubmitted_and_waits_from_its_own_date(
        world: World, clock: FixedClock) -> None:
    from assessment_service.projections.reports import reports

    assign(world, "A", "unassigned")
    _review(world, "assigned", "A", "revise")
    _review(world, "unassigned", "A", "revise")
    principal = world.identity.accounts.principal(world.accounts["coordinator"].id)
    assert principal is not None
    services.decide_report(world.ctx, principal, world.reports["A"], "revise", "Say more about Lyon.",
                           services.RequestContext(actor="test", correlation_id="c"))
    clock.advance(timedelta(days=40))
    # What the reports projection makes of the student's ReportResubmitted (issue 12's other half).
    with world.ctx.engine.begin() as conn:
        conn.execute(reports.update().where(reports.c.report_id == world.reports["A"])
                     .values(round=2, round_submitted_at=clock.now().isoformat()))
    clock.advance(timedelta(days=2))
    [row] = [i for i in _json(world, "coordinator")["items"] if i["report_id"] == world.reports["A"]]
    assert (row["state"], row["round"], row["days_waiting"], row["overdue"]) == ("resubmitted", 2, 2, False)
    assert _names(_json(world, "coordinator", "?state=resubmitted")) == ["StudentA Exempel"]
    agenda = world.browser("coordinator").get("/agenda").get_data(as_text=True)
    assert "Staff assigned: revise" not in agenda  # round 1 is decided; round 2 has no reviews yet


def test_the_checklist_counts_an_activity_a_ruling_accepted(world: World) -> None:
    sid = register(world.intake, "StudentR Exempel")
    ids = []
    online = {k: v for k, v in OTHER.items() if k != "country_code"} | {"setting": "digital"}  # as seminars are
    for body in (ACTIVITY["SOCSW"], {**ACTIVITY["SOCSW"], "title": "Exchange in Lille"}, online):
        response = world.intake.post(f"/api/v1/students/{sid}/activities", json=body)
        assert response.status_code == 201, response.json
        ids.append(response.json["activity_id"])
    report = world.intake.post(f"/api/v1/students/{sid}/reports",
                               json={"answers": ANSWERS["SOCSW"], "activity_ids": ids})
    assert report.status_code == 201, report.json
    world.catch_up()

    def row() -> dict[str, Any]:
        [item] = [i for i in _json(world, "coordinator")["items"] if i["name"] == "StudentR Exempel"]
        return item["checklist"]

    before = row()
    assert {"en": "At least three activities", "sv": "Minst tre aktiviteter"} in before["unmet"]
    agenda = world.browser("coordinator").get("/agenda").get_data(as_text=True)
    assert f"/rulings/{ids[2]}" in agenda  # the "other" kind waits for the group's ruling
    ruled = world.token("coordinator").post(f"/api/v1/activities/{ids[2]}/ruling", json=RULING)
    assert ruled.status_code in (200, 201), ruled.json
    world.ctx.own_runner.catch_up()
    after = row()
    assert after["met"] == before["met"] + 1
    assert {"en": "At least three activities", "sv": "Minst tre aktiviteter"} not in after["unmet"]
    assert f"/rulings/{ids[2]}" not in world.browser("coordinator").get("/agenda").get_data(as_text=True)


# -- bulk assignment -----------------------------------------------------------------------------
def _preview(world: World, reports: list[str], *, mode: str = "chosen", assessors: tuple[str, ...] = ()) -> Any:
    data: dict[str, Any] = {"report": [world.reports[r] for r in reports], "mode": mode,
                            "assessor": [world.accounts[a].id for a in assessors]}
    return world.browser("coordinator").post("/queue/assign", data=data)


def _pairs(html: str) -> list[str]:
    return re.findall(r'name="pair" value="([^"]+)"', html)


def _token(html: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_bulk_assignment_previews_then_records_once_even_when_confirmed_twice(world: World) -> None:
    preview = _preview(world, ["A", "B"], assessors=("assigned", "unassigned"))
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    a, b = world.reports["A"], world.reports["B"]
    ids = {who: world.accounts[who].id for who in ("assigned", "unassigned")}
    # A has `assigned` already: only `unassigned` is added there.
    assert sorted(_pairs(html)) == sorted([f"{a}:{ids['unassigned']}", f"{b}:{ids['assigned']}",
                                           f"{b}:{ids['unassigned']}"])
    assert world.report_events("B") == []  # a preview records nothing
    form = {"form_token": _token(html), "pair": _pairs(html)}
    for _ in range(2):
        done = world.browser("coordinator").post("/queue/assign/confirm", data=form)
        assert done.status_code == 303
    assert world.report_events("A") == ["AssessorAssigned", "AssessorAssigned"]
    assert world.report_events("B") == ["AssessorAssigned", "AssessorAssigned"]
    assert _json(world, "coordinator", "?state=waiting")["count"] == 0


def test_bulk_assignment_gives_a_decided_report_nobody_new(world: World) -> None:
    assign(world, "B", "unassigned")
    _review(world, "assigned", "A", "approve")
    _review(world, "unassigned", "B", "approve")
    assign(world, "A", "unassigned")
    _review(world, "unassigned", "A", "approve")  # A: two approvals, approved by the policy
    html = _preview(world, ["A", "B"], mode="balanced").get_data(as_text=True)
    pairs = _pairs(html)
    assert not [p for p in pairs if p.startswith(world.reports["A"])]
    assert [p for p in pairs if p.startswith(world.reports["B"])]
    assert "Nobody: no assessor of the department is free for this report" in html


def test_bulk_assignment_refuses_forged_and_foreign_ids_and_non_coordinators(world: World) -> None:
    unknown = str(uuid.uuid4())
    forged = world.browser("coordinator").post("/queue/assign", data={
        "report": [world.reports["B"], unknown], "mode": "balanced"})
    assert forged.status_code == 404
    foreign = world.browser("coordinator").post("/queue/assign", data={"report": [world.reports["M"]],
                                                                       "mode": "balanced"})
    assert foreign.status_code == 404
    confirm = world.browser("coordinator").post("/queue/assign/confirm", data={
        "form_token": str(uuid.uuid4()), "pair": [f"{world.reports['M']}:{world.accounts['med_assessor'].id}"]})
    assert confirm.status_code == 404
    bad = world.browser("coordinator").post("/queue/assign/confirm", data={"form_token": "x", "pair": ["y"]})
    assert bad.status_code == 422
    refused = world.browser("assigned").post("/queue/assign", data={"report": [world.reports["A"]]})
    assert refused.status_code == 403
    assert world.report_events("M") == []


def test_bulk_assignment_without_reports_or_assessors_says_what_is_missing(world: World) -> None:
    client = world.browser("coordinator")
    nothing = client.post("/queue/assign", data={"mode": "chosen"})
    assert nothing.status_code == 303
    assert "Tick at least one report to assign." in client.get("/queue").get_data(as_text=True)
    nobody = client.post("/queue/assign", data={"report": [world.reports["B"]], "mode": "chosen"})
    assert nobody.status_code == 303
    assert "Choose at least one assessor" in client.get("/queue").get_data(as_text=True)
    assert client.post("/queue/assign", data={"report": [world.reports["B"]], "mode": "all"}).status_code == 422
    assert world.report_events("B") == []


def test_bulk_assignment_needs_the_csrf_token(world: World) -> None:
    world.app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = _preview(world, ["B"], mode="balanced")
        assert response.status_code == 400
    finally:
        world.app.config["WTF_CSRF_ENABLED"] = False


def test_balanced_suggestion_spreads_by_open_reviews_and_skips_conflicts(world: World) -> None:
    assign(world, "A", "conflicted")
    declare(world, "conflicted", "A")  # conflicted with student A: never suggested for A
    extra = make_account(world.identity, "Staff extra", grants=[(Role.ASSESSOR, "SOCSW")])
    world.accounts["extra"] = extra
    html = _preview(world, ["A", "B"], mode="balanced").get_data(as_text=True)
    pairs = _pairs(html)
    a_pairs = [p.split(":")[1] for p in pairs if p.startswith(world.reports["A"])]
    assert world.accounts["conflicted"].id not in a_pairs
    assert world.accounts["assigned"].id not in a_pairs  # already on A
    assert len(a_pairs) == 1  # A needs two approvals and has one assessor
    b_pairs = [p.split(":")[1] for p in pairs if p.startswith(world.reports["B"])]
    assert len(b_pairs) == 2


def test_balanced_suggestion_is_pure_and_prefers_the_least_loaded() -> None:
    reports = [{"report_id": f"r{i}", "student_id": f"s{i}", "department": "D", "assessor_account_ids": []}
               for i in range(4)]
    plan = suggest_balanced(reports, {"D": ["x", "y", "z"]}, {"x": 5, "y": 0, "z": 0}, {("s1", "y")}, {"D": 1})
    assert plan == {"r0": ["y"], "r1": ["z"], "r2": ["y"], "r3": ["z"]}
    assert suggest_balanced(reports[:1], {"D": ["x"]}, {}, {("s0", "x")}, {"D": 2}) == {"r0": []}


# -- the agenda ------------------------------------------------------------------------------------
def test_the_agenda_lists_disagreements_and_overdue_reviews_without_student_names(
        world: World, clock: FixedClock) -> None:
    assign(world, "A", "unassigned")
    _review(world, "assigned", "A", "approve")
    _review(world, "unassigned", "A", "reject")
    assign(world, "B", "assigned")
    clock.advance(timedelta(days=40))
    html = world.browser("coordinator").get("/agenda").get_data(as_text=True)
    disagreements = html.split("Disagreements")[1].split("Overdue reviews")[0]
    assert "Staff assigned: approve; Staff unassigned: reject" in disagreements
    assert f"/reports/{world.reports['A']}/reviews" in disagreements
    overdue = html.split("Overdue reviews")[1]
    # On B, not reviewed: due 14 days (SOCSW's review_days) after the assignment, 26 days ago.
    assert "Staff assigned: round 1, due " in overdue
    assert ", 26 days overdue" in overdue
    assert f"/reports/{world.reports['B']}" in overdue
    assert f"/reports/{world.reports['A']}\"" not in overdue  # A's reviews are in
    assert "StudentA" not in html
    assert "StudentB" not in html
    assert "Kinds of activity awaiting a ruling" in html
    sv = world.browser("assigned").get("/agenda?lang=sv").get_data(as_text=True)
    assert "Oenigheter" in sv
    assert world.browser("administrator").get("/agenda").status_code == 403
    med = world.browser("med_assessor").get("/agenda").get_data(as_text=True)
    assert world.reports["A"] not in med
    assert world.reports["B"] not in med


def test_open_reviews_count_undecided_assignments(world: World) -> None:
    assign(world, "B", "assigned")
    with world.ctx.reader.connect() as conn:
        assert qq.open_reviews(conn, [world.accounts["assigned"].id, world.accounts["unassigned"].id]) == {
            world.accounts["assigned"].id: 2, world.accounts["unassigned"].id: 0}
        principal = world.identity.accounts.principal(world.accounts["coordinator"].id)
        assert principal is not None
        rows = qq.queue_rows(conn, [world.reports["M"], world.reports["A"]], queue_scope(principal))
    assert [r["report_id"] for r in rows] == [world.reports["A"]]


def test_the_assessor_sees_when_their_own_review_is_due_and_when_it_is_overdue(
    world: World, clock: FixedClock,
) -> None:
    """Due `review_days` (SOCSW: 14) after the day of the assignment (staff_mail.review_due)."""
    due = (clock.now() + timedelta(days=14)).astimezone(staff_mail.LOCAL).date()
    html = world.browser("assigned").get("/queue").get_data(as_text=True)
    assert html.count("Your review is due") == 1  # on A, theirs; not on B
    assert f"{due.day}, {due.year}" in html.split("Your review is due")[1][:40]  # "March 30, 2026"
    assert "Your review" not in world.browser("coordinator").get("/queue").get_data(as_text=True)
    clock.advance(timedelta(days=15))
    html = world.browser("assigned").get("/queue").get_data(as_text=True)
    assert "Your review was due" in html
    assert "Your review is due" not in html
    _review(world, "assigned", "A", "approve")
    assert "Your review" not in world.browser("assigned").get("/queue").get_data(as_text=True)
