"""Revision rounds end to end inside the process: the coordinator asks for a revision, the student
resubmits through the intake API, and round 2 goes back to the same assessors, with the earlier
reviews and a page of what changed between the rounds (answers and activities side by side)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from assessment_service.projections.report_rounds import report_round_activities, report_rounds
from assessment_service.round_changes import ADDED, AMENDED, CHANGED, ERASED, REMOVED, UNCHANGED, compare_rounds
from intake_service.services import RequestContext, erase_student_and_account
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from tests.authkit import make_account
from tests.unit.test_assessment_access import ANSWERS, World, assign, build_world
from tests.unit.test_reviews_api import review, reviewer

REVISED = {**ANSWERS["SOCSW"], "learning": "I compared the child protection systems of France and Sweden."}
SECOND_ACTIVITY = {"kind": "seminar", "title": "Webinar on social resilience", "organiser": "A network",
                   "setting": "digital", "start_date": "2025-03-03", "end_date": "2025-03-03"}


@pytest.fixture
def world(tmp_path: Any, clock: FixedClock) -> World:
    """Report A with two assessors; a revision of its round 1 requested by the coordinator, which
    the intake learns from the assessment service's own events (its real view of them)."""
    from assessment_service import services as assessment_services
    from intake_service.assessment_view import build_view
    from shared.adapters.feed import FunctionFeed

    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    world = build_world(settings, clock)
    world.accounts["second"] = make_account(world.identity, "Staff second", grants=[(Role.ASSESSOR, "SOCSW")])
    assign(world, "A", "assigned")
    assign(world, "A", "second")
    ctx = world.ctx
    intake_app = world.intake.application
    view = build_view(
        settings, feed=FunctionFeed(lambda _a, _l: [], lambda: 0),
        own_events=FunctionFeed(lambda after, limit: assessment_services.own_feed(ctx, after, limit), ctx.store.head),
        vault=intake_app.extensions["cim.intake"].codec.vault,
    )
    intake_app.extensions["cim.intake.assessment_view"] = view
    assert review(world, "assigned", "revise").status_code == 201
    assert review(world, "second", "approve").status_code == 201
    decided = reviewer(world, "coordinator").post(f"/api/v1/reports/{world.reports['A']}/decision",
                                                  json={"outcome": "revise", "summary": "Compare the systems."})
    assert decided.status_code == 201, decided.json
    view.catch_up()
    return world


def activity_ids(world: World, student: str) -> list[str]:
    events = world.intake.get(f"/api/v1/students/{world.students[student]}/events").json["events"]
    return [e["data"]["activity_id"] for e in events if e["type"] == "ActivityLogged"]


def resubmit(world: World) -> tuple[str, str]:
    """The student amends the covered activity, logs a second one and resubmits both with one
    answer changed: (the amended activity's id, the added one's)."""
    sid, rid = world.students["A"], world.reports["A"]
    (first,) = activity_ids(world, "A")
    amended = world.intake.post(f"/api/v1/students/{sid}/activities/{first}/amendments", json={
        "kind": "exchange", "title": "Exchange term in Lyon", "organiser": "Université Lyon 2", "setting": "abroad",
        "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-15"})
    assert amended.status_code == 200, amended.json
    added = world.intake.post(f"/api/v1/students/{sid}/activities", json=SECOND_ACTIVITY).json["activity_id"]
    done = world.intake.post(f"/api/v1/students/{sid}/reports/{rid}/resubmission",
                             json={"answers": REVISED, "activity_ids": [first, added]})
    assert done.status_code == 201, done.json
    assert done.json["round"] == 2
    world.catch_up()
    return first, added


def test_round_two_goes_back_to_the_same_assessors_with_the_earlier_reviews(world: World) -> None:
    rid = world.reports["A"]
    resubmit(world)
    record = reviewer(world, "assigned").get(f"/api/v1/reports/{rid}/reviews").json
    assert record["current_round"] == 2
    rounds = {r["round"]: r for r in record["rounds"]}
    assert len(rounds[1]["reviews"]) == 2  # the earlier round's reviews stay readable
    assert rounds[1]["decision"]["outcome"] == "RevisionRequested"
    assert rounds[2]["reviews"] == []
    assert set(record["assessors"]) == {world.accounts["assigned"].id, world.accounts["second"].id}
    page = world.browser("assigned").get(f"/reports/{rid}/reviews").text
    assert "Your review of round 2" in page  # a new round to review, by the same assessor
    assert f'href="/reports/{rid}/changes"' in page
    again = review(world, "assigned", "approve")
    assert (again.status_code, again.json["round"]) == (201, 2)
    assert review(world, "second", "approve").status_code == 201
    assert world.report_events("A")[-1] == "ReportApproved"
    report_page = world.browser("coordinator").get(f"/reports/{rid}").text
    assert f'href="/reports/{rid}/changes"' in report_page
    assert "What changed since round 1" in report_page


def test_the_changes_page_shows_both_rounds_side_by_side_with_their_marks(world: World) -> None:
    rid = world.reports["A"]
    assert "nothing to compare yet" in world.browser("assigned").get(f"/reports/{rid}/changes").text
    resubmit(world)
    page = world.browser("assigned").get(f"/reports/{rid}/changes")
    assert page.status_code == 200
    html = page.text
    assert "I learnt a lot." in html  # round 1's answer ...
    assert "I compared the child protection systems of France and Sweden." in html  # ... beside round 2's
    assert html.count('class="mark mark-changed"') == 1
    assert html.count('class="mark mark-unchanged"') == 2
    assert html.count('class="mark mark-added"') == 1
    assert html.count('class="mark mark-amended"') == 1
    assert "Changed: Title, End date" in html
    assert "Webinar on social resilience" in html
    assert "1 answer or activity differs." not in html
    assert "3 answers or activities differ." in html
    swedish = world.browser("assigned").get(f"/reports/{rid}/changes?lang=sv").text
    assert "Ändrad" in swedish
    assert "Tillagd" in swedish
    # recorded as a staff view of the report, before it was shown
    assert world.audit("A")[-1] == (world.accounts["assigned"].id, "report")


def test_the_changes_page_answers_404_to_anyone_who_may_not_read_the_report(world: World) -> None:
    rid = world.reports["A"]
    resubmit(world)
    assert world.browser("coordinator").get(f"/reports/{rid}/changes").status_code == 200
    for who in ("unassigned", "med_assessor", "other_coordinator", "administrator", "student_A"):
        assert world.browser(who).get(f"/reports/{rid}/changes").status_code == 404, who
    unknown = world.browser("coordinator").get(f"/reports/{uuid.uuid4()}/changes")
    assert unknown.status_code == 404
    for bad in ("1", "3", "x", "-2"):
        assert world.browser("assigned").get(f"/reports/{rid}/changes?round={bad}").status_code == 404, bad
    assert world.browser("assigned").get(f"/reports/{rid}/changes?round=2").status_code == 200


def test_the_students_erasure_blanks_the_texts_of_every_round(world: World) -> None:
    rid, sid = world.reports["A"], world.students["A"]
    resubmit(world)
    intake_app = world.intake.application
    erase_student_and_account(intake_app.extensions["cim.intake"], world.identity, sid, "student request",
                              RequestContext(actor="operator:test", correlation_id="c-erase"))
    world.catch_up()
    with world.ctx.reader.connect() as conn:
        answers = conn.execute(sa.select(report_rounds.c.answers).where(report_rounds.c.report_id == rid)).all()
        texts = conn.execute(sa.select(report_round_activities.c.title, report_round_activities.c.organiser,
                                       report_round_activities.c.description)
                             .where(report_round_activities.c.student_id == sid)).all()
        kinds = conn.execute(sa.select(report_round_activities.c.kind)
                             .where(report_round_activities.c.student_id == sid)).scalars().all()
    assert [a for (a,) in answers] == [None, None]
    assert len(texts) == 3  # round 1 covered one activity, round 2 two
    assert all(value is None for row in texts for value in row)
    assert sorted(kinds) == ["exchange", "exchange", "seminar"]  # the facts stay, for the statistics
    html = world.browser("coordinator").get(f"/reports/{rid}/changes").text
    assert "I learnt a lot." not in html
    assert "Webinar on social resilience" not in html
    assert "Personal data erased" in html


def test_a_rebuild_of_the_rounds_equals_the_live_read_model(world: World) -> None:
    resubmit(world)

    def rows() -> list[Any]:
        with world.ctx.reader.connect() as conn:
            return [conn.execute(sa.select(t).order_by(*t.primary_key.columns)).all()
                    for t in (report_rounds, report_round_activities)]

    live = rows()
    world.ctx.runner.rebuild(["report_rounds"])
    assert rows() == live


# -- the pure comparison -------------------------------------------------------------------------
BEFORE = {"answers": {"a": "One.", "b": "Two."}, "activity_ids": ["x", "y"],
          "activities": {"x": {"title": "X", "end_date": "2025-01-01"}, "y": {"title": "Y", "end_date": "2025-02-01"}}}


@pytest.mark.parametrize(
    ("after", "answer_marks", "activity_marks"),
    [
        pytest.param(BEFORE, [UNCHANGED, UNCHANGED], {"x": UNCHANGED, "y": UNCHANGED}, id="nothing-changed"),
        pytest.param({**BEFORE, "answers": {"a": "One. ", "b": "Three."}}, [UNCHANGED, CHANGED],
                     {"x": UNCHANGED, "y": UNCHANGED}, id="an-answer-changed"),
        pytest.param({**BEFORE, "activity_ids": ["y", "z"],
                      "activities": {"y": {"title": "Y", "end_date": "2025-03-01"}, "z": {"title": "Z"}}},
                     [UNCHANGED, UNCHANGED], {"x": REMOVED, "y": AMENDED, "z": ADDED}, id="activities"),
        pytest.param({**BEFORE, "answers": None}, [ERASED, ERASED], {"x": UNCHANGED, "y": UNCHANGED}, id="erased"),
    ],
)
def test_compare_rounds_marks_each_answer_and_activity(
    after: dict[str, Any], answer_marks: list[str], activity_marks: dict[str, str]
) -> None:
    changes = compare_rounds(BEFORE, after, ["b", "a"])
    assert [a.code for a in changes.answers] == ["b", "a"]  # in the rule set's question order
    assert [a.mark for a in changes.answers] == answer_marks[::-1]
    assert {a.activity_id: a.mark for a in changes.activities} == activity_marks


def test_the_students_access_export_holds_every_round(world: World) -> None:
    resubmit(world)
    student = world.browser("student_A")
    data = student.get(f"/students/{world.students['A']}/my-data.json").json
    assert [(r["round"], r["answers"]["learning"]) for r in data["report_rounds"]] == [
        (1, ANSWERS["SOCSW"]["learning"]), (2, REVISED["learning"])]
    assert sorted(a["title"] for a in data["report_round_activities"]) == [
        "Exchange in Lyon", "Exchange term in Lyon", "Webinar on social resilience"]
    page = student.get(f"/students/{world.students['A']}/my-data").text
    assert "Round 2, submitted" in page
