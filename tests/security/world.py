"""A small populated world for the security tests: both apps on one identity and one intake store,
two students with an activity, a report and an attachment each, staff of every kind, and a way to
fill any URL rule of either app with real ids."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from assessment_service import create_app as create_assessment_app
from intake_service import create_app as create_intake_app
from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import NotFound
from shared.identity.models import Account, Role
from shared.identity.wiring import Identity
from tests.authkit import authed_client, bearer, make_account, make_identity, sign_in, student_account
from tests.conftest import CLOCK_START
from tests.security.pdfkit import simple_pdf

ANSWERS = {"learning": "I learnt a lot.", "profession": "It matters.", "perspective": "Wider."}
ASSESSMENT_SCOPES = ("assessment:read", "feed:read", "ops:read")


@dataclass
class Student:
    student_id: str
    account: Account
    activity_id: str
    report_id: str
    attachment_id: str


@dataclass
class World:
    intake: Flask
    assessment: Flask
    identity: Identity
    store: InMemoryEventStore
    clock: FixedClock
    tmp_path: Path
    students: list[Student] = field(default_factory=list)
    staff: dict[str, Account] = field(default_factory=dict)

    @property
    def apps(self) -> dict[str, Flask]:
        return {"intake": self.intake, "assessment": self.assessment}

    def browser(self, app: Flask, account: Account | None) -> FlaskClient:
        client = app.test_client()
        if account is not None:
            sign_in(client, self.identity, account)
        return client

    def actors(self) -> dict[str, Account | None]:
        return {"anonymous": None, "student": self.students[0].account, "other student": self.students[1].account,
                **self.staff}

    def assessment_events(self) -> list[str]:
        store = self.assessment.extensions["cim.assessment"].store
        return [e.type for e in store.read_all(0, 100_000)]

    def intake_events(self) -> list[str]:
        return [e.type for e in self.store.read_all(0, 100_000)]

    def state_events(self) -> tuple[int, int]:
        """(intake, assessment) events that change state: all but the audit trail of staff views
        of personal data (`PersonalDataViewed`, recorded by design on a GET, before the data is
        sent; it changes nothing a student or staff member did)."""
        audit = "PersonalDataViewed"
        return (len([t for t in self.intake_events() if t != audit]),
                len([t for t in self.assessment_events() if t != audit]))

    def catch_up(self) -> None:
        ctx = self.assessment.extensions["cim.assessment"]
        ctx.runner.catch_up()
        ctx.own_runner.catch_up()

    def url(self, rule: Rule, student: Student | None = None) -> str:
        """`rule` with real ids of `student` (default: the first) for its arguments."""
        student = student or self.students[0]
        values = {
            "student_id": student.student_id,
            "activity_id": student.activity_id,
            "report_id": student.report_id,
            "attachment_id": student.attachment_id,
            "token": "not-a-real-link-token-" + "x" * 20,
            "filename": "cim.css",
            "row_id": 1,  # an outbox row (int converter)
            "table": "funnel",  # a table of CIM in numbers
        }
        args = {name: values.get(name, "x") for name in rule.arguments}
        return rule.build(args, append_unknown=False)[1]  # type: ignore[index]


def intake_files(intake: Flask) -> Callable[[str, str], bytes | None]:
    """The report PDFs straight from the intake app in this process (production fetches them
    over HTTP: assessment_service/intake_files.py)."""

    def fetch(student_id: str, attachment_id: str) -> bytes | None:
        try:
            return intake.extensions["cim.intake"].attachment(student_id, attachment_id)[1]
        except NotFound:
            return None

    return fetch


def make_world(tmp_path: Path, **setting_changes: Any) -> World:
    clock = FixedClock(CLOCK_START)
    identity = make_identity(clock)
    store = InMemoryEventStore(clock)
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://", ratelimit_post="100000 per minute",
                        ratelimit_signin="100000 per minute", **setting_changes)
    intake = create_intake_app(settings, store=store, clock=clock, identity=identity)
    opener = intake.extensions["cim.intake"].open_events
    assessment = create_assessment_app(settings, feed=StoreEventFeed(store, opener=opener), clock=clock,
                                       identity=identity)
    assessment.extensions["cim.intake_files"] = intake_files(intake)
    world = World(intake, assessment, identity, store, clock, tmp_path)
    api = authed_client(intake, bearer(identity))
    for n, name in enumerate(("Alva Provsson", "Bertil Exempelsson")):
        response = api.post("/api/v1/students", json={
            "name": name, "email": f"student{n}@example.org", "university_id": f"st{n}234ex",
            "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"})
        assert response.status_code == 201, response.json
        sid = response.json["student_id"]
        activity = api.post(f"/api/v1/students/{sid}/activities", json={
            "kind": "exchange", "title": "Exchange in Lyon", "organiser": "A university in Lyon",
            "setting": "abroad", "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01"})
        assert activity.status_code == 201, activity.json
        aid = activity.json["activity_id"]
        upload = api.post(f"/api/v1/students/{sid}/attachments", data=simple_pdf(), content_type="application/pdf")
        assert upload.status_code == 201, upload.json
        report = api.post(f"/api/v1/students/{sid}/reports", json={
            "answers": ANSWERS, "activity_ids": [aid], "attachment_id": upload.json["attachment_id"]})
        assert report.status_code == 201, report.json
        account = student_account(identity, sid, email=f"student{n}@example.org")
        world.students.append(Student(sid, account, aid, report.json["report_id"], upload.json["attachment_id"]))
    world.staff = {
        "coordinator": make_account(identity, "Coordinator", "coordinator@example.org",
                                    grants=[(Role.COORDINATOR, "SOCSW")]),
        "assessor": make_account(identity, "Assessor", "assessor@example.org", grants=[(Role.ASSESSOR, "SOCSW")]),
        "administrator": make_account(identity, "Administrator", "admin@example.org",
                                      grants=[(Role.ADMINISTRATOR, None)]),
    }
    world.catch_up()
    return world


def api_client(world: World, app_name: str) -> FlaskClient:
    scopes = ASSESSMENT_SCOPES if app_name == "assessment" else ()
    return authed_client(world.apps[app_name], bearer(world.identity, *scopes))


_INPUT = re.compile(r"<(input|textarea|select)\b([^>]*)>", re.I)
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


def form_fields(html: str) -> dict[str, str]:
    """The named inputs of the page with their default values (what a browser would send)."""
    fields: dict[str, str] = {}
    for _tag, attrs in _INPUT.findall(html):
        parsed = dict(_ATTR.findall(attrs))
        if "name" in parsed:
            fields.setdefault(parsed["name"], parsed.get("value", ""))
    return fields


def csrf_token_of(html: str) -> str | None:
    match = re.search(r'name="[\w-]*csrf_token"[^>]*value="([^"]+)"', html)
    return match.group(1) if match else None
