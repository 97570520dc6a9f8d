"""The ruling pages: the list of activities awaiting a ruling, the ruling form (labelled fields,
errors beside their field, a re-shown form on bad input storing nothing), the precedents page,
who may see them, and Swedish."""

from __future__ import annotations

import re

from tests.unit.test_assessment_access import World
from tests.unit.test_rulings_api import RULING, world  # noqa: F401  (the fixture)


def _form(w: World, who: str, **values: str) -> tuple[int, str]:
    client = w.browser(who)
    page = client.get(f"/rulings/{w.activity}").get_data(as_text=True)  # type: ignore[attr-defined]
    token = re.search(r'name="form_token" value="([^"]+)"', page)
    assert token is not None
    response = client.post(f"/rulings/{w.activity}", data={"form_token": token.group(1), **values})  # type: ignore[attr-defined]
    return response.status_code, response.get_data(as_text=True)


def test_the_awaiting_list_links_to_the_ruling_form(world: World) -> None:  # noqa: F811
    response = world.browser("unassigned").get("/rulings")
    assert response.status_code == 200
    assert f'href="/rulings/{world.activity}"' in response.get_data(as_text=True)  # type: ignore[attr-defined]
    form = world.browser("unassigned").get(f"/rulings/{world.activity}").get_data(as_text=True)  # type: ignore[attr-defined]
    for name in ("kind_label", "kind", "new_kind", "rationale"):
        assert f'<label for="{name}">' in form
    assert "<legend>" in form
    assert "Model UN in Geneva" not in form  # the activity's title is the student's: not on this page


def test_a_ruling_from_the_form_becomes_a_precedent(world: World) -> None:  # noqa: F811
    status, _page = _form(world, "coordinator", kind_label="Model UN conference", outcome="accepted_as_existing",
                          kind="seminar", rationale="A simulation of international negotiation.")
    assert status == 303
    world.ctx.own_runner.catch_up()
    precedents = world.browser("assigned").get("/precedents").get_data(as_text=True)
    assert "Model UN conference" in precedents
    assert "counted as seminar" in precedents
    assert world.browser("coordinator").get("/rulings").get_data(as_text=True).count("Rule on this activity") == 0


def test_bad_input_reshows_the_form_with_errors_beside_the_fields(world: World) -> None:  # noqa: F811
    status, page = _form(world, "coordinator", kind_label="", outcome="accepted_as_new", new_kind="Bad Code",
                         rationale="")
    assert status == 422
    assert 'id="kind_label-error"' in page
    assert 'id="rationale-error"' in page
    assert 'id="new_kind-error"' in page
    assert world.ctx.store.read_stream(f"activity-ruling-{world.activity}") == []  # type: ignore[attr-defined]


def test_the_pages_in_swedish(world: World) -> None:  # noqa: F811
    client = world.browser("coordinator")
    client.set_cookie("lang", "sv")
    page = client.get(f"/rulings/{world.activity}").get_data(as_text=True)  # type: ignore[attr-defined]
    assert '<html lang="sv">' in page
    assert "Beslut om en typ av aktivitet" in page
    assert "Prejudikat" in client.get("/precedents").get_data(as_text=True)


def test_who_may_not_see_the_ruling_pages(world: World) -> None:  # noqa: F811
    assert world.browser("other_coordinator").get(f"/rulings/{world.activity}").status_code == 404  # type: ignore[attr-defined]
    assert world.browser("student_A").get("/rulings").status_code == 403
    assert world.browser("student_A").get("/precedents").status_code == 403
    assert world.browser(None).get("/precedents").status_code in (302, 303)
    assert RULING  # the API's ruling, for reference
