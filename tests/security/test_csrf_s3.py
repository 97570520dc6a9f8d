"""Every state-changing HTML route of both apps, found by walking `app.url_map` (POST rules
outside /api/), refuses a request without a CSRF token, with a wrong or forged one, and with
another session's token (in the form or in the X-CSRFToken header): 400, refused by the CSRF check
itself (its log line), and nothing stored. Then a crawl of every GET route of both apps as every
kind of actor stores 0 events (bar S3; the key is in tests/README.md).

The JSON APIs are exempt from CSRF by design: they authenticate by bearer token only, never by
cookie (shared/web/auth.py), which a cross-site form cannot send.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from werkzeug.routing import Rule

from tests.security.world import World, api_client, csrf_token_of, form_fields, make_world

#: What a browser might post on any of the forms (the page's own fields win when they have values).
PLAUSIBLE = {
    "name": "Alva Provsson", "email": "alva@example.org", "university_id": "al1234pr", "department": "SOCSW",
    "programme": "SSASK", "expected_end_term": "VT2028", "kind": "exchange", "title": "Exchange in Oslo",
    "organiser": "A university in Oslo", "setting": "abroad", "country_code": "NO", "start_date": "2026-01-10",
    "end_date": "2026-06-01", "hours": "40", "description": "Courses.", "reason": "Changed my mind.",
    "completed_on": "2026-11-01", "term": "HT2026", "learning": "Much.", "profession": "A lot.",
    "perspective": "Wider.", "link-email": "student0@example.org", "staff-email": "assessor@example.org",
    "staff-password": "wrong", "staff-code": "000000", "confirm": "y",
}

CASES = ["missing", "garbage", "forged", "other session (form)", "other session (header)"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("s3"))


def state_changing_html_rules(app: Flask) -> list[Rule]:
    return [r for r in app.url_map.iter_rules()
            if not r.rule.startswith("/api/") and r.methods and r.methods & {"POST", "PUT", "PATCH", "DELETE"}]


def all_rules() -> list[tuple[str, str]]:
    """(app name, rule) of every state-changing HTML route: built once to name the test cases."""
    with tempfile.TemporaryDirectory(prefix="cim-s3-") as tmp:
        world = make_world(Path(tmp))
        found = [(name, r.rule) for name, app in world.apps.items() for r in state_changing_html_rules(app)]
        world.assessment.extensions["cim.assessment"].dispose()
    return found


RULES = all_rules()


def actor_for(world: World, app_name: str, path: str = "") -> tuple[str, object]:
    """Who posts: a student on the intake, a coordinator on the assessment service, an
    administrator on the administrators' pages (so the control below reaches their views)."""
    if path.startswith("/admin/"):
        return ("administrator", world.staff["administrator"])
    return ("coordinator", world.staff["coordinator"]) if app_name == "assessment" else (
        "student", world.students[0].account)


def prepared(world: World, app: Flask, rule: Rule, client: FlaskClient) -> tuple[str, dict[str, str], str]:
    """The URL, the form a browser would send there, and this session's own CSRF token."""
    url = world.url(rule)
    page = client.get(url) if "GET" in (rule.methods or ()) else None
    html = page.get_data(as_text=True) if page is not None and page.status_code == 200 else ""
    if not csrf_token_of(html):
        html = client.get("/auth/account").get_data(as_text=True)
    token = csrf_token_of(html)
    assert token, f"no page gave a CSRF token for {rule.rule}"
    fields = {k: v for k, v in form_fields(html).items() if not k.endswith("csrf_token")}
    data = {**PLAUSIBLE, **{k: v for k, v in fields.items() if v}}
    return url, data, token


def forged_token() -> str:
    return URLSafeTimedSerializer("another-app-secret-key-0123456789", salt="wtf-csrf-token").dumps(
        hashlib.sha1(os.urandom(64)).hexdigest())  # the shape of a Flask-WTF token


def csrf_refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flask_wtf.csrf"]


@pytest.mark.parametrize(("app_name", "path"), RULES, ids=[f"{a}:{p}" for a, p in RULES])
@pytest.mark.parametrize("case", CASES)
def test_state_changing_route_refuses_bad_csrf_and_stores_nothing(world: World, app_name: str, path: str,
                                                                  case: str, caplog: pytest.LogCaptureFixture) -> None:
    app = world.apps[app_name]
    rule = next(r for r in state_changing_html_rules(app) if r.rule == path)
    _, account = actor_for(world, app_name, path)
    client = world.browser(app, account)  # type: ignore[arg-type]
    session_id = client.get_cookie("__Host-cim_session").value  # type: ignore[union-attr]
    url, data, own_token = prepared(world, app, rule, client)
    other = world.browser(app, world.students[1].account)
    _, _, other_token = prepared(world, app, rule, other)
    assert other_token != own_token
    headers: dict[str, str] = {}
    if case == "garbage":
        data["csrf_token"] = "garbage"
    elif case == "forged":
        data["csrf_token"] = forged_token()
    elif case == "other session (form)":
        data["csrf_token"] = other_token
    elif case == "other session (header)":
        headers["X-CSRFToken"] = other_token
    before = world.state_events()
    files = sorted((world.tmp_path / "uploads").rglob("*"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flask_wtf.csrf"):
        response = client.post(url, data=data, headers=headers)
    assert response.status_code == 400, (case, path, response.status_code)
    assert csrf_refusals(caplog), f"{path} ({case}) was not refused by the CSRF check"
    assert world.state_events() == before
    assert sorted((world.tmp_path / "uploads").rglob("*")) == files
    assert world.identity.sessions.get(session_id) is not None  # e.g. sign-out did not happen


@pytest.mark.parametrize(("app_name", "path"), RULES, ids=[f"{a}:{p}" for a, p in RULES])
def test_with_its_own_token_the_same_request_passes_the_csrf_check(world: World, app_name: str, path: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The control: the refusals above come from the token, not from something else."""
    app = world.apps[app_name]
    rule = next(r for r in state_changing_html_rules(app) if r.rule == path)
    _, account = actor_for(world, app_name, path)
    client = world.browser(app, account)  # type: ignore[arg-type]
    url, data, token = prepared(world, app, rule, client)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flask_wtf.csrf"):
        response = client.post(url, data={**data, "csrf_token": token})
    assert not csrf_refusals(caplog), (path, csrf_refusals(caplog))
    assert response.status_code < 500


def test_a_valid_form_with_its_token_stores_and_without_it_stores_nothing(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    client = world.browser(world.intake, None)
    page = client.get("/register").get_data(as_text=True)
    data = {**form_fields(page), **{k: PLAUSIBLE[k] for k in (
        "name", "email", "university_id", "department", "programme", "expected_end_term")}}
    without = {k: v for k, v in data.items() if not k.endswith("csrf_token")}
    before = world.store.count()
    assert client.post("/register", data=without).status_code == 400
    assert world.store.count() == before
    assert client.post("/register", data=data).status_code == 303
    assert world.store.count() == before + 1


def test_every_html_post_rule_is_covered() -> None:
    """The walk found the forms (a url_map refactor that hid them would make S3 vacuous)."""
    paths = {p for _, p in RULES}
    assert {"/register", "/students/<student_id>/report", "/auth/staff", "/auth/sign-out"} <= paths
    assert {"/admin/accounts", "/admin/accounts/<account_id>/grant", "/admin/tokens"} <= paths
    assert any(a == "assessment" for a, _ in RULES)


def test_crawling_every_get_route_as_every_actor_stores_nothing(world: World) -> None:
    """0 state-changing events. Staff reads of personal data do append the audit record
    `PersonalDataViewed` (by design: access to personal data is logged); that record is allowed,
    and only for staff."""
    before = world.state_events()
    assessment_store = world.assessment.extensions["cim.assessment"].store
    staff = set(world.staff)
    seen: list[tuple[str, str, str, int]] = []
    for app_name, app in world.apps.items():
        get_rules = [r for r in app.url_map.iter_rules() if r.methods and "GET" in r.methods]
        clients: dict[str, FlaskClient] = {
            actor: world.browser(app, account) for actor, account in world.actors().items()}  # type: ignore[arg-type]
        clients["api token"] = api_client(world, app_name)
        for rule in get_rules:
            for student in world.students:
                url = world.url(rule, student)
                for actor, client in clients.items():
                    for suffix in ("", "?lang=sv"):
                        heads = (world.store.head(), assessment_store.head())
                        response = client.get(url + suffix)
                        seen.append((app_name, url + suffix, actor, response.status_code))
                        added = [e.type for e in world.store.read_all(heads[0], 1000)]
                        added += [e.type for e in assessment_store.read_all(heads[1], 1000)]
                        assert set(added) <= {"PersonalDataViewed"}, (url, actor, added)
                        assert not added or actor in staff, (url, actor, added)
    assert len(seen) > 1000
    assert sum(1 for x in seen if x[3] == 200) > 300  # the actors really reached the pages
    # /ready answers 503 by design where its Redis is unreachable (this world has none).
    server_errors = [s for s in seen if s[3] >= 500 and not s[1].startswith("/ready")]
    assert not server_errors, server_errors
    assert world.state_events() == before
