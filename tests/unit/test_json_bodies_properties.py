"""Hostile JSON bodies against every JSON endpoint of both services (issues 16.6 and 18.5).

Bodies nested far deeper than any request needs (`[` × 100,000 unclosed, 3,000-level objects,
anything past `MAX_DEPTH`) and valid bodies with a lone surrogate (`"\\ud800x"`) in a text field:
each answers 400 or 422 (a JSON endpoint that takes no JSON body: its usual answer, never a 5xx),
and nothing is stored. The endpoints are found in the apps' URL maps, so a new one is covered
without a change here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from shared.web.json_body import MAX_DEPTH, InvalidJson, decode_json, nesting_depth
from tests.security.world import World, api_client, make_world
from tests.unit.test_intake_api import ACTIVITY, STUDENT

#: A valid body for each intake endpoint that reads JSON (by rule), with its text fields.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/students": STUDENT,
    "/api/v1/students/<student_id>/activities": ACTIVITY,
    "/api/v1/students/<student_id>/activities/<activity_id>/amendments": ACTIVITY,
    "/api/v1/students/<student_id>/activities/<activity_id>/withdrawal": {"reason": "Cancelled"},
    "/api/v1/students/<student_id>/reports": {"answers": {"learning": "a", "profession": "b", "perspective": "c"},
                                              "activity_ids": [], "attachment_id": None},
    "/api/v1/students/<student_id>/reports/<report_id>/resubmission": {
        "answers": {"learning": "a", "profession": "b", "perspective": "c"}, "activity_ids": [], "attachment_id": None},
    "/api/v1/students/<student_id>/studies-completed": {"completed_on": "2027-06-01", "term": "VT2027"},
    "/api/v1/students/<student_id>/withdrawal": {"reason": "Changed my plans"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(Path(tmp_path_factory.mktemp("json-bodies")))


def json_endpoints(world: World) -> list[tuple[str, str, str]]:
    """(app, method, rule) for every API route of both apps."""
    found = []
    for name, app in world.apps.items():
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/api/"):
                continue
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((name, method, rule.rule))
    return sorted(found)


def send(world: World, app: str, method: str, rule: str, raw: bytes) -> tuple[int, dict[str, Any] | None]:
    url = world.url(next(r for r in world.apps[app].url_map.iter_rules() if r.rule == rule))
    response = api_client(world, app).open(url, method=method, data=raw, content_type="application/json")
    return response.status_code, response.get_json(silent=True)


def stored(world: World) -> tuple[int, int]:
    return len(world.intake_events()), len(world.assessment_events())


def deep(depth: int, shape: str) -> bytes:
    if shape == "unclosed lists":
        return b"[" * depth
    if shape == "lists":
        return b"[" * depth + b"]" * depth
    if shape == "objects":
        return b'{"a":' * depth + b"1" + b"}" * depth
    # inside a field of an otherwise valid body
    return b'{"name":' + b"[" * depth + b"]" * depth + b', "email": "x@example.org"}'


def assert_refused(world: World, app: str, method: str, rule: str, raw: bytes) -> None:
    before = stored(world)
    status, body = send(world, app, method, rule, raw)
    assert status < 500, (method, rule, status, body)
    if method != "GET" and rule in VALID_BODIES:
        assert status in (400, 422), (method, rule, status, body)
        assert body is not None
        assert body["detail"]
    assert stored(world) == before, (method, rule)


def test_every_api_route_of_both_apps_is_covered(world: World) -> None:
    endpoints = json_endpoints(world)
    posts = {rule for app, method, rule in endpoints if app == "intake" and method == "POST"}
    # every JSON-reading POST has a valid body here; the only other POST takes a PDF
    assert posts - set(VALID_BODIES) == {"/api/v1/students/<student_id>/attachments"}
    assert {app for app, _m, _r in endpoints} == {"intake", "assessment"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(min_value=MAX_DEPTH + 1, max_value=100_000),
       shape=st.sampled_from(["unclosed lists", "lists", "objects", "in a field"]))
@example(depth=100_000, shape="unclosed lists")
@example(depth=3_000, shape="objects")
@example(depth=MAX_DEPTH + 1, shape="in a field")
def test_deeply_nested_bodies_are_refused_everywhere(world: World, depth: int, shape: str) -> None:
    raw = deep(depth, shape)
    for app, method, rule in json_endpoints(world):
        assert_refused(world, app, method, rule, raw)


surrogates = st.integers(min_value=0xD800, max_value=0xDFFF).map(chr)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), surrogate=surrogates, prefix=st.text(max_size=5), suffix=st.text(max_size=5))
@example(data=None, surrogate="\ud800", prefix="", suffix="x")
def test_a_lone_surrogate_in_any_text_field_is_refused(world: World, data: Any, surrogate: str, prefix: str,
                                                       suffix: str) -> None:
    for rule, body in VALID_BODIES.items():
        texts = [k for k, v in body.items() if isinstance(v, str)] + (["answers"] if "answers" in body else [])
        field = texts[0] if data is None else data.draw(st.sampled_from(texts))
        value = prefix + surrogate + suffix
        hostile = {**body, field: {"learning": value} if field == "answers" else value}
        raw = json.dumps(hostile).encode()  # ensure_ascii: the surrogate travels as a \\udXXX escape
        assert_refused(world, "intake", "POST", rule, raw)
        # the raw UTF-8-style encoding of the surrogate (CESU-8 bytes) is refused the same way
        assert_refused(world, "intake", "POST", rule, json.dumps(hostile, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"))


def test_the_audit_probes_answer_400_with_nothing_stored(world: World) -> None:
    before = stored(world)
    status, body = send(world, "intake", "POST", "/api/v1/students", b"[" * 100_000)
    assert (status, body and body["status"]) == (400, 400)
    status, body = send(world, "intake", "POST", "/api/v1/students",
                        json.dumps({**STUDENT, "name": "\ud800x"}).encode())
    assert status == 400
    assert body is not None
    assert "surrogate" in body["detail"]
    assert stored(world) == before


def test_flask_get_json_uses_the_bounded_decoder_too(world: World) -> None:
    with world.intake.test_request_context("/", method="POST", data=b"[" * 5_000, content_type="application/json"):
        from flask import request

        with pytest.raises(InvalidJson):
            request.get_json()


def test_the_decoder_bounds_depth_without_recursing() -> None:
    assert nesting_depth(decode_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)) == MAX_DEPTH
    with pytest.raises(InvalidJson, match="deeper"):
        decode_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert nesting_depth({"a": [1, {"b": []}], "c": 2}) == 4  # object, list, object, list
    with pytest.raises(InvalidJson, match="surrogate"):
        decode_json(b'"\\udc00"')
    assert decode_json(b'"\\ud83d\\ude00"') == "\U0001f600"  # a pair is fine


def test_form_fields_refuse_lone_surrogates(world: World) -> None:
    from intake_service.web.forms import ActivityForm

    world.intake.config["WTF_CSRF_ENABLED"] = False
    try:
        with world.intake.test_request_context("/", method="POST"):
            dept = world.intake.extensions["cim.intake"].catalogue.departments["SOCSW"]
            form = ActivityForm.build(dept, "en")
            form.process(MultiDict({**ACTIVITY, "title": "Exchange \ud800x"}))
            assert not form.validate()
            assert "title" in form.errors
    finally:
        world.intake.config["WTF_CSRF_ENABLED"] = True
