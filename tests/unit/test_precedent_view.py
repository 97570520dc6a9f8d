"""Rulings reach the student: the assessor group's ruling travels over the assessment service's own
feed into the intake database, the department's precedents show on the student's activity form
(never another department's), the ruled activity shows its own ruling on "my CIM", and the
student's erasure leaves the precedent but not their activity's ruling."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from intake_service import precedent_view
from intake_service.assessment_view import AssessmentView, build_view
from intake_service.services import RequestContext
from shared.adapters.feed import FunctionFeed
from shared.clock import FixedClock
from shared.config import Settings
from shared.events import RecordedEvent
from shared.identity.models import Role
from shared.personal import InMemoryKeyVault
from tests.authkit import make_account, sign_in
from tests.unit.test_assessment_access import World
from tests.unit.test_rulings_api import RULING, world_with_other

SECTION = "Earlier rulings on kinds not in the list"


@pytest.fixture
def world(tmp_path: Path, clock: FixedClock) -> World:
    """Student A (SOCSW) logged an activity of kind "other"; student M is of MED."""
    world = world_with_other(tmp_path, clock)
    world.accounts["student_M"] = make_account(world.identity, "Student M", student_id=world.students["M"],
                                               grants=[(Role.STUDENT, "MED")])
    return world


@pytest.fixture
def view(world: World) -> AssessmentView:
    from assessment_service import services as assessment_services

    intake_app = world.intake.application
    ctx = world.ctx
    view = build_view(
        ctx.settings, feed=FunctionFeed(lambda _a, _l: [], lambda: 0),
        own_events=FunctionFeed(lambda after, limit: assessment_services.own_feed(ctx, after, limit), ctx.store.head),
        vault=intake_app.extensions["cim.intake"].codec.vault,
    )
    intake_app.extensions["cim.intake.assessment_view"] = view
    return view


def page(world: World, who: str, path: str, lang: str = "en") -> str:
    student = world.intake.application.test_client()
    sign_in(student, world.identity, world.accounts[f"student_{who}"])
    response = student.get(f"/students/{world.students[who]}{path}?lang={lang}")
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def rule(world: World, body: dict[str, Any] = RULING) -> None:
    response = world.token("coordinator", "assessment:read").post(
        f"/api/v1/activities/{world.activity}/ruling", json=body)  # type: ignore[attr-defined]
    assert response.status_code == 201, response.json


def test_the_form_shows_the_departments_precedents_once_ruled(world: World, view: AssessmentView) -> None:
    view.catch_up()
    assert SECTION not in page(world, "A", "/activities/new")
    rule(world)
    view.catch_up()
    form = page(world, "A", "/activities/new")
    assert SECTION in form
    assert "<details" in form
    assert "<summary>" in form
    assert "Model UN conference" in form
    assert "Accepted, counted as International seminar or webinar" in form
    assert RULING["rationale"] in form
    activity_id = world.activity  # type: ignore[attr-defined]
    amend = page(world, "A", f"/activities/{activity_id}/edit")
    assert "Model UN conference" in amend
    swedish = page(world, "A", "/activities/new", "sv")
    assert "Tidigare beslut om typer som inte finns i listan" in swedish
    assert "Godkänd, räknas som Internationellt seminarium eller webbinarium" in swedish
    assert view.catch_up() == 0


def test_another_departments_student_sees_no_precedent(world: World, view: AssessmentView) -> None:
    rule(world)
    view.catch_up()
    form = page(world, "M", "/activities/new")
    assert SECTION not in form
    assert "Model UN conference" not in form
    assert precedent_view.precedents_of(view.reader, "MED") == []


def test_my_cim_shows_the_activitys_own_ruling(world: World, view: AssessmentView) -> None:
    view.catch_up()
    waiting = page(world, "A", "")
    assert "Waiting for the assessor group's ruling" in waiting
    assert "<dt>Kind</dt><dd>Another kind</dd>" in waiting
    rule(world, {**RULING, "outcome": "not_accepted", "kind": None, "rationale": "Not international enough."})
    view.catch_up()
    mine = page(world, "A", "")
    assert "The assessor group's ruling:" in mine
    assert "Not accepted (Model UN conference). Not international enough." in mine
    assert "Inte godkänd" in page(world, "A", "", "sv")
    assert "Not international enough." not in page(world, "B", "")  # not another student's


def test_the_precedent_names_no_student_or_activity(world: World, view: AssessmentView) -> None:
    rule(world)
    view.catch_up()
    activity_id, sid = world.activity, world.students["A"]  # type: ignore[attr-defined]
    with view.reader.connect() as conn:
        held = [str(v) for row in conn.execute(sa.select(precedent_view.precedents)) for v in row]
        sealed = conn.execute(sa.select(precedent_view.activity_rulings.c.ruling)).scalar_one()
    assert held
    assert not any(sid in v or activity_id in v for v in held)
    assert "Model UN" not in sealed
    assert "negotiation" not in sealed


def test_erasure_leaves_the_precedent_but_not_the_activitys_ruling(world: World, view: AssessmentView) -> None:
    rule(world)
    view.catch_up()
    sid, activity_id = world.students["A"], world.activity  # type: ignore[attr-defined]
    vault = world.intake.application.extensions["cim.intake"].codec.vault
    assert precedent_view.rulings_of(view.reader, vault, sid, [activity_id])[activity_id]["kind"] == "seminar"
    world.intake.application.extensions["cim.intake"].erase_student(sid, "asked", RequestContext("staff:test", "c-1"))
    assert precedent_view.rulings_of(view.reader, vault, sid, [activity_id]) == {}
    assert [p["kind_label"] for p in precedent_view.precedents_of(view.reader, "SOCSW")] == ["Model UN conference"]


def _ruled(position: int, student_id: str, activity_id: str, outcome: str = "accepted_as_new") -> RecordedEvent:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    data = {"activity_id": activity_id, "student_id": student_id, "department": "SOCSW",
            "kind_label": "Model UN conference", "outcome": outcome, "kind": "model-un", "activity_class": None,
            "rationale": "Negotiation across countries.", "ruled_by": "x"}
    return RecordedEvent(position, f"e{position}", f"activity-ruling-{activity_id}", 1, "ActivityKindRuled", 1, data,
                         {}, at, at)


def test_a_ruling_arriving_after_the_erasure_is_not_kept_and_a_later_one_replaces(tmp_path: Path) -> None:
    alice, bob = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
    act_a, act_b = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    vault = InMemoryKeyVault()
    vault.key_for(bob)
    vault.destroy(alice)
    events = [_ruled(1, alice, act_a), _ruled(2, bob, act_b), _ruled(3, bob, act_b, "not_accepted")]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    view = build_view(Settings(data_dir=tmp_path), feed=FunctionFeed(lambda _a, _l: [], lambda: 0), engine=engine,
                      own_events=FunctionFeed(lambda after, limit: events[after:after + limit], lambda: len(events)),
                      vault=vault)
    view.catch_up()
    assert view.catch_up() == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(precedent_view.activity_rulings.c.activity_id)).scalars().all() == [act_b]
    outcomes = sorted(p["outcome"] for p in precedent_view.precedents_of(view.reader, "SOCSW"))
    assert outcomes == ["accepted_as_new", "not_accepted"]  # one per activity, the later replacing the earlier
    assert precedent_view.rulings_of(view.reader, vault, bob, [act_a, act_b])[act_b]["outcome"] == "not_accepted"
    assert precedent_view.rulings_of(view.reader, vault, bob, [act_a]) == {}
