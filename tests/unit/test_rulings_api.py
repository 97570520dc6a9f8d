"""Rulings on activities of a kind the catalogue lacks, over the JSON API: who may rule (404 for
another department, 403 for a student), bad input 422 storing nothing, a double submit storing
once, the precedents and the awaiting list, and the read model rebuilding equal to the live one."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.clock import FixedClock
from shared.config import Settings
from tests.unit.test_assessment_access import World, build_world

OTHER = {"kind": "other", "title": "Model UN in Geneva", "organiser": "A student society", "setting": "abroad",
         "country_code": "CH", "start_date": "2025-03-01", "end_date": "2025-03-05"}
RULING = {"kind_label": "Model UN conference", "outcome": "accepted_as_existing", "kind": "seminar",
          "rationale": "A simulation of international negotiation with delegates from many countries."}


def world_with_other(tmp_path: Path, clock: FixedClock) -> World:
    """The access world, student A having logged an activity of kind "other" (`world.activity`)."""
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    world = build_world(settings, clock)
    response = world.intake.post(f"/api/v1/students/{world.students['A']}/activities", json=OTHER)
    assert response.status_code == 201, response.json
    world.activity = response.json["activity_id"]  # type: ignore[attr-defined]
    world.catch_up()
    return world


@pytest.fixture
def world(tmp_path: Path, clock: FixedClock) -> World:
    return world_with_other(tmp_path, clock)


def _rule(world: World, who: str, body: object, key: str | None = None) -> tuple[int, dict]:
    headers = {"Idempotency-Key": key} if key else {}
    client = world.token(who, "assessment:read")
    response = client.post(f"/api/v1/activities/{world.activity}/ruling", json=body, headers=headers)  # type: ignore[attr-defined]
    return response.status_code, response.json


def _rulings(world: World) -> list[str]:
    return [e.type for e in world.ctx.store.read_stream(f"activity-ruling-{world.activity}")]  # type: ignore[attr-defined]


def test_an_activity_of_another_kind_awaits_a_ruling_until_ruled(world: World) -> None:
    awaited = world.token("coordinator").get("/api/v1/departments/SOCSW/rulings-awaited").json
    assert [i["activity_id"] for i in awaited["items"]] == [world.activity]  # type: ignore[attr-defined]
    assert "title" not in awaited["items"][0]

    status, body = _rule(world, "unassigned", RULING)
    assert status == 201, body
    world.ctx.own_runner.catch_up()

    assert world.token("coordinator").get("/api/v1/departments/SOCSW/rulings-awaited").json["items"] == []
    [precedent] = world.token("assigned").get("/api/v1/departments/SOCSW/precedents").json["items"]
    assert (precedent["kind_label"], precedent["outcome"], precedent["kind"]) == (
        "Model UN conference", "accepted_as_existing", "seminar")
    assert "student_id" not in precedent


def test_the_same_ruling_twice_stores_once_and_a_different_one_is_refused(world: World) -> None:
    assert _rule(world, "coordinator", RULING)[0] == 201
    assert _rule(world, "coordinator", RULING)[0] == 200
    status, body = _rule(world, "coordinator", {**RULING, "outcome": "not_accepted"})
    assert status == 409
    assert body["type"] == "rule_violated"
    assert "already ruled" in body["detail"]
    assert _rulings(world) == ["ActivityKindRuled"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**RULING, "rationale": ""}, "rationale"),
        ({**RULING, "kind": "no-such-kind"}, "kind"),
        ({**RULING, "outcome": "perhaps"}, "outcome"),
        ({**RULING, "outcome": "accepted_as_new", "kind": "model-un", "activity_class": "B"}, "activity_class"),
        ({**RULING, "kind_label": 7}, "kind_label"),
        (["not", "an", "object"], "body"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_stores_nothing(world: World, body: object, field: str) -> None:
    status, answer = _rule(world, "coordinator", body)
    assert status == 422
    assert field in answer["errors"]
    assert _rulings(world) == []


@pytest.mark.parametrize(("who", "status"), [("other_coordinator", 404), ("med_assessor", 404), ("student_A", 403)])
def test_who_may_not_rule(world: World, who: str, status: int) -> None:
    assert _rule(world, who, RULING)[0] == status
    assert _rulings(world) == []


def test_an_unknown_activity_is_404(world: World) -> None:
    client = world.token("coordinator")
    assert client.post("/api/v1/activities/not-a-uuid/ruling", json=RULING).status_code == 404
    assert client.post("/api/v1/activities/00000000-0000-4000-8000-000000000000/ruling",
                       json=RULING).status_code == 404


def test_another_departments_precedents_are_404(world: World) -> None:
    assert world.token("other_coordinator").get("/api/v1/departments/SOCSW/precedents").status_code == 404
    assert world.token("student_A").get("/api/v1/departments/SOCSW/precedents").status_code == 403


def test_the_rulings_read_model_rebuilds_equal_to_the_live_one(world: World) -> None:
    assert _rule(world, "coordinator", RULING)[0] == 201
    runner = world.ctx.own_runner
    runner.catch_up()
    live = runner.digest()
    assert runner.checkpoints()["activity_rulings"] == world.ctx.store.head()
    runner.rebuild()
    assert runner.digest() == live
