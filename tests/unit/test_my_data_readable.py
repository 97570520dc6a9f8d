"""The intake's "My data" reads like a page for a person: names for codes, dates and times in Lund
(24-hour, in the page's language), who did what by "you" or a role, "1 page" — while the JSON
export one click away keeps the codes as stored."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from shared.identity.wiring import Identity
from shared.web.privacy import actor_name
from tests.authkit import authed_client, integration_token, make_account, make_identity, sign_in
from tests.factories import blank_pdf

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # 13:00 in Lund


@pytest.fixture
def world(tmp_path: Path) -> tuple[Flask, Identity, str, dict[str, Any]]:
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://")
    app = create_app(settings, store=InMemoryEventStore(clock), clock=clock, identity=identity)
    _, headers = integration_token(identity)
    api = authed_client(app, headers)
    sid = api.post("/api/v1/students", json={
        "name": "Vera Exempel", "email": "vera.exempel@example.org", "university_id": "ve1234ex",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"}).json["student_id"]
    activity = api.post(f"/api/v1/students/{sid}/activities", json={
        "kind": "exchange", "title": "Exchange term", "organiser": "A university", "setting": "abroad",
        "country_code": "DE", "start_date": "2026-01-10", "end_date": "2026-06-01", "hours": 400})
    assert activity.status_code == 201, activity.json
    upload = api.post(f"/api/v1/students/{sid}/attachments", data={"file": (io.BytesIO(blank_pdf()), "mine.pdf")},
                      content_type="multipart/form-data")
    assert upload.status_code == 201, upload.json
    accounts = {
        "student": make_account(identity, "Vera Exempel", "vera.exempel@example.org", student_id=sid,
                                grants=[(Role.STUDENT, "SOCSW")]),
        "coordinator": make_account(identity, "Staff Coordinator", grants=[(Role.COORDINATOR, "SOCSW")]),
    }
    return app, identity, sid, accounts


def page(world: tuple[Flask, Identity, str, dict[str, Any]], who: str, lang: str) -> str:
    app, identity, sid, accounts = world
    client = app.test_client()
    sign_in(client, identity, accounts[who])
    answer = client.get(f"/students/{sid}/my-data?lang={lang}")
    assert answer.status_code == 200
    return answer.text


def test_my_data_names_codes_and_shows_lund_time_in_both_languages(world: Any) -> None:
    page(world, "coordinator", "en")  # a coordinator's look, listed for the student
    english = page(world, "student", "en")
    for words in ("Saturday 28 November 2026, 13:00", "Exchange studies", "Abroad", "Germany",
                  "School of Social Work", "Spring term 2028", "10 January 2026", "1 June 2026",
                  "Exchange term", "1 page, ", "a connected system (API token)", "a coordinator",
                  "Student (School of Social Work)"):
        assert words in english, words
    for code in (">exchange<", ">abroad<", ">DE<", ">SOCSW<", ">VT2028<", ">2026-01-10<", "2026-11-28T12:00",
                 ">anonymous<", ">student (SOCSW)"):
        assert code not in re.sub(r'datetime="[^"]*"', "", english), code
    swedish = page(world, "student", "sv")
    for words in ("lördag 28 november 2026, 13:00", "Utomlands", "Tyskland", "Socialhögskolan",
                  "Vårterminen 2028", "10 januari 2026", "1 sida, ", "ett anslutet system (API-token)",
                  "en samordnare"):
        assert words in swedish, words


def test_the_json_export_keeps_the_codes_as_stored(world: Any) -> None:
    app, identity, sid, accounts = world
    client = app.test_client()
    sign_in(client, identity, accounts["student"])
    assert f'href="/students/{sid}/my-data.json"' in client.get(f"/students/{sid}/my-data").text
    data = client.get(f"/students/{sid}/my-data.json").json
    logged = next(e for e in data["events"] if e["type"] == "ActivityLogged")["data"]
    assert (logged["kind"], logged["setting"], logged["country_code"]) == ("exchange", "abroad", "DE")
    assert logged["start_date"] == "2026-01-10"
    assert data["exported_at"] == NOW.isoformat()


def test_who_did_what_is_you_a_role_or_cim_never_a_name(world: Any) -> None:
    app, _identity, sid, accounts = world
    with app.test_request_context("/?lang=en"):
        assert actor_name(f"account:{accounts['student'].id}", sid) == "you"
        assert actor_name("anonymous", sid) == "you, before signing in"
        assert actor_name(f"account:{accounts['coordinator'].id}", sid) == "a coordinator"
        assert actor_name("system:retention", sid) == "CIM, automatically"
        assert actor_name("token:abc", sid) == "a connected system (API token)"
        assert actor_name(f"account:{accounts['student'].id}", "another-student") == "a student"
