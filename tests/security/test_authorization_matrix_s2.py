"""The authorization matrix: every endpoint of both apps × every actor × an object of their
own and a foreign one, each cell asserted against a hand-written policy table (not against the
rules in the code). An endpoint without a policy here fails the test; so does an endpoint whose
view declares no access rule (bar S2; the key is in tests/README.md).

Two passes:
1. The access decision, probed: a `before_request` hook added after the apps' own (authentication,
   then access enforcement) answers 299 when a request got through, so the decision of every cell
   is read without running the handlers (no side effects between cells).
2. The real answers of every denied cell: 303 to the sign-in page (pages) or 401 (API) for
   anonymous callers, 403 for a role that never has access, and, for objects, a 404 whose status
   and body equal those for an unknown id — plus 1,000 random ids answered exactly like a
   foreign one (no enumeration).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, g
from flask.testing import FlaskClient

from shared.adapters.feed import StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.wakeup import RecordingWakeUp
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from shared.identity.wiring import Identity
from tests.authkit import SESSION_COOKIE, bearer, make_account, make_identity
from tests.factories import blank_pdf

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PROBE_STATUS = 299

ALLOW, SIGNIN, FORBIDDEN, NOTFOUND = "allow", "sign-in", "403", "404"

INTAKE_SCOPES = ("intake:register", "intake:write", "intake:read")
ASSESSMENT_SCOPES = ("assessment:read", "assessment:review", "assessment:presentations", "assessment:diplomas",
                     "assessment:statistics")


# -- the world: two students in two departments, staff around them -----------------------------
@dataclass
class StudentObject:
    student_id: str
    department: str
    activity_id: str = ""
    report_id: str = ""
    attachment_id: str = ""
    #: Presentation occasions are checked in their views (404 outside the department): the rule
    #: lets every person through, so any id serves here.
    occasion_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: Diplomas too are checked in their views (404 outside the department, unit-tested in
    #: tests/unit/test_diplomas.py): any id serves here.
    diploma_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def params(self) -> dict[str, str]:
        return {
            "occasion_id": self.occasion_id,
            "diploma_id": self.diploma_id,
            "student_id": self.student_id,
            "activity_id": self.activity_id,
            "report_id": self.report_id,
            "attachment_id": self.attachment_id,
        }


def unknown_object() -> StudentObject:
    """Ids nobody holds: in no department, so no policy can grant them to a person."""
    return StudentObject(str(uuid.uuid4()), "", str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))


@dataclass
class Actor:
    name: str
    account_id: str | None = None
    student_id: str | None = None
    student_department: str | None = None
    assessor_of: set[str] = field(default_factory=set)  # report ids assigned (not conflicted)
    conflicted: set[str] = field(default_factory=set)
    assessor_departments: set[str] = field(default_factory=set)
    coordinator_of: set[str] = field(default_factory=set)
    administrator: bool = False
    session_id: str | None = None
    api_headers: dict[str, str] = field(default_factory=dict)
    integration: bool = False
    integration_scopes: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.account_id is None and not self.integration

    @property
    def staff(self) -> bool:
        return bool(self.assessor_departments or self.coordinator_of or self.administrator)


MED_ACTIVITY = {
    "kind": "clinical-elective-abroad", "title": "Elective in Accra", "organiser": "Korle Bu Teaching Hospital",
    "setting": "abroad", "country_code": "GH", "start_date": "2026-01-10", "end_date": "2026-02-20",
}
SOCSW_ACTIVITY = {
    "kind": "exchange", "title": "Exchange in Lyon", "organiser": "Université Lumière Lyon 2",
    "setting": "abroad", "country_code": "FR", "start_date": "2026-01-10", "end_date": "2026-06-01",
}


@dataclass
class World:
    intake: Flask
    assessment: Flask
    identity: Identity
    actors: list[Actor]
    objects: dict[str, StudentObject]  # "socsw" (student A's), "med" (student C's)


def _register(client: FlaskClient, headers: dict[str, str], department: str, name: str) -> StudentObject:
    programme = {"SOCSW": "SSASK", "MED": "MALAK"}[department]
    response = client.post("/api/v1/students", headers=headers, json={
        "name": name, "email": f"{name.split()[0].lower()}@example.org", "university_id": "ab-1234",
        "department": department, "programme": programme, "expected_end_term": "VT2028",
    })
    assert response.status_code == 201, response.json
    sid = response.json["student_id"]
    obj = StudentObject(sid, department)
    activity = SOCSW_ACTIVITY if department == "SOCSW" else MED_ACTIVITY
    response = client.post(f"/api/v1/students/{sid}/activities", headers=headers, json=activity)
    assert response.status_code == 201, response.json
    obj.activity_id = response.json["activity_id"]
    response = client.post(f"/api/v1/students/{sid}/attachments", data=blank_pdf(),
                           headers={**headers, "Content-Type": "application/pdf", "X-Filename": "r.pdf"})
    assert response.status_code == 201, response.json
    obj.attachment_id = response.json["attachment_id"]
    answers = {"learning": "Much.", "profession": "A lot."}
    if department == "SOCSW":
        answers["perspective"] = "Wider."
    response = client.post(f"/api/v1/students/{sid}/reports", headers=headers, json={
        "answers": answers, "activity_ids": [obj.activity_id], "attachment_id": obj.attachment_id,
    })
    assert response.status_code == 201, response.json
    obj.report_id = response.json["report_id"]
    return obj


def build_world(tmp_path: Path) -> World:
    from assessment_service import create_app as create_assessment_app
    from intake_service import create_app as create_intake_app

    clock = FixedClock(NOW)
    identity = make_identity(clock)
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://",
                        ratelimit_post="100000 per minute", ratelimit_signin="100000 per minute")
    store = InMemoryEventStore(clock)
    intake = create_intake_app(settings, store=store, clock=clock, wakeup=RecordingWakeUp(), identity=identity)
    opener = intake.extensions["cim.intake"].open_events
    assessment = create_assessment_app(settings, feed=StoreEventFeed(store, opener=opener), identity=identity,
                                       clock=clock)
    install_probe(intake)
    install_probe(assessment)
    integration = bearer(identity, *INTAKE_SCOPES, *ASSESSMENT_SCOPES, "feed:read", "ops:read", name="setup")
    client = intake.test_client()
    socsw = _register(client, integration, "SOCSW", "Alva Provsson")
    b_id = _register(client, integration, "SOCSW", "Bruno Testberg").student_id  # student B's own record
    med = _register(client, integration, "MED", "Cleo Exempelsdotter")
    assessment.extensions["cim.assessment"].runner.catch_up()

    actors: list[Actor] = [Actor("anonymous")]

    def person(name: str, **roles: Any) -> Actor:
        grants: list[tuple[Role, str | None]] = []
        actor = Actor(name, **roles)
        if actor.student_id:
            grants.append((Role.STUDENT, actor.student_department))
        grants += [(Role.ASSESSOR, d) for d in actor.assessor_departments]
        grants += [(Role.COORDINATOR, d) for d in actor.coordinator_of]
        if actor.administrator:
            grants.append((Role.ADMINISTRATOR, None))
        account = make_account(identity, name, f"{name.replace(' ', '.')}@example.org",
                               student_id=actor.student_id, grants=grants)
        actor.account_id = account.id
        actor.session_id = identity.sessions.create(account.id, auth_method="test")
        actor.api_headers = bearer(identity, *INTAKE_SCOPES, *ASSESSMENT_SCOPES, account_id=account.id,
                                   name=f"{name} token")
        actors.append(actor)
        return actor

    person("student A", student_id=socsw.student_id, student_department="SOCSW")
    person("student B", student_id=b_id, student_department="SOCSW")
    person("student C", student_id=med.student_id, student_department="MED")
    person("assigned assessor", assessor_departments={"SOCSW"}, assessor_of={socsw.report_id})
    person("unassigned assessor", assessor_departments={"SOCSW"})
    person("conflicted assessor", assessor_departments={"SOCSW"}, conflicted={socsw.report_id})
    person("coordinator SOCSW", coordinator_of={"SOCSW"})
    person("coordinator MED", coordinator_of={"MED"})
    person("administrator", administrator=True)
    actors.append(Actor("integration token", integration=True,
                        integration_scopes=(*INTAKE_SCOPES, *ASSESSMENT_SCOPES, "feed:read", "ops:read"),
                        api_headers=integration))
    actors.append(Actor("token without scopes", integration=True, integration_scopes=("other:scope",),
                        api_headers=bearer(identity, "other:scope", name="unscoped")))
    assign_reports(assessment, identity, actors, socsw)
    return World(intake, assessment, identity, actors, {"socsw": socsw, "med": med})


def assign_reports(assessment: Flask, identity: Identity, actors: list[Actor], obj: StudentObject) -> None:
    """Assignment and the declared conflict, through the assessment service's own use cases."""
    from assessment_service import services
    from assessment_service.domain import CONFLICT_REASONS

    ctx = assessment.extensions["cim.assessment"]
    coordinator = next(a for a in actors if a.name == "coordinator SOCSW")
    by = identity.accounts.principal(coordinator.account_id or "")
    assert by is not None
    for n, actor in enumerate(actors):
        if obj.report_id not in actor.assessor_of | actor.conflicted:
            continue
        req = services.RequestContext(actor=f"account:{coordinator.account_id}", correlation_id=f"matrix-{n}")
        services.assign_assessor(ctx, identity, by, obj.report_id, actor.account_id or "", req)
        if obj.report_id in actor.conflicted:
            assessor = identity.accounts.principal(actor.account_id or "")
            assert assessor is not None
            services.declare_conflict(ctx, assessor, obj.report_id, sorted(CONFLICT_REASONS)[0],
                                      services.RequestContext(actor=f"account:{actor.account_id}",
                                                              correlation_id=f"matrix-c{n}"))


# -- the policy table: hand-written, one entry per (app, endpoint, method) ----------------------
Policy = Callable[[Actor, StudentObject], str]


def public(actor: Actor, obj: StudentObject) -> str:
    return ALLOW


def signed_in(actor: Actor, obj: StudentObject) -> str:
    return SIGNIN if actor.anonymous or actor.integration else ALLOW


def student_write_page(actor: Actor, obj: StudentObject) -> str:
    if actor.anonymous or actor.integration:
        return SIGNIN
    return ALLOW if actor.student_id == obj.student_id else NOTFOUND


def student_read_page(actor: Actor, obj: StudentObject) -> str:
    if actor.anonymous or actor.integration:
        return SIGNIN
    if actor.student_id == obj.student_id or obj.department in actor.coordinator_of:
        return ALLOW
    return NOTFOUND


def api_student(scope: str, *, write: bool) -> Policy:
    def policy(actor: Actor, obj: StudentObject) -> str:
        if actor.anonymous:
            return SIGNIN
        if actor.integration:
            return ALLOW if scope in actor.integration_scopes else FORBIDDEN
        if actor.student_id == obj.student_id:
            return ALLOW
        if not write and obj.department in actor.coordinator_of:
            return ALLOW
        return NOTFOUND

    return policy


def api_token_scope(scope: str) -> Policy:
    """Machine endpoints: an integration token holding the scope; account tokens don't have it."""

    def policy(actor: Actor, obj: StudentObject) -> str:
        if actor.anonymous:
            return SIGNIN
        return ALLOW if actor.integration and scope in actor.integration_scopes else FORBIDDEN

    return policy


def reviewers_page(actor: Actor, obj: StudentObject) -> str:
    if actor.anonymous or actor.integration:
        return SIGNIN
    return ALLOW if actor.assessor_departments or actor.coordinator_of else FORBIDDEN


def assigned_to(actor: Actor, obj: StudentObject) -> bool:
    return obj.report_id in actor.assessor_of and obj.report_id not in actor.conflicted


def report_page(actor: Actor, obj: StudentObject) -> str:
    """A report: its department's coordinator, or the assessor assigned to it (no conflict)."""
    if actor.anonymous or actor.integration:
        return SIGNIN
    return ALLOW if obj.department in actor.coordinator_of or assigned_to(actor, obj) else NOTFOUND


def report_coordination(actor: Actor, obj: StudentObject) -> str:
    """Assign/unassign: the coordinator; the assessor who may read the report is refused (403)."""
    if actor.anonymous or actor.integration:
        return SIGNIN
    if obj.department in actor.coordinator_of:
        return ALLOW
    return FORBIDDEN if assigned_to(actor, obj) else NOTFOUND


def conflict_declaration(actor: Actor, obj: StudentObject) -> str:
    """Declare a conflict: the assessor assigned (or who already declared); the coordinator 403."""
    if actor.anonymous or actor.integration:
        return SIGNIN
    if obj.report_id in actor.assessor_of or obj.report_id in actor.conflicted:
        return ALLOW
    return FORBIDDEN if obj.department in actor.coordinator_of else NOTFOUND


def api_report(actor: Actor, obj: StudentObject) -> str:
    if actor.anonymous:
        return SIGNIN
    if actor.integration:
        return ALLOW if "assessment:read" in actor.integration_scopes else FORBIDDEN
    return ALLOW if obj.department in actor.coordinator_of or assigned_to(actor, obj) else NOTFOUND


def api_assessment_student(actor: Actor, obj: StudentObject) -> str:
    """As the intake read rule, plus the assessor assigned to one of the student's reports."""
    verdict = api_student("assessment:read", write=False)(actor, obj)
    return ALLOW if verdict == NOTFOUND and assigned_to(actor, obj) else verdict


def api_review_queue(actor: Actor, obj: StudentObject) -> str:
    """Integrations with the scope see the whole queue; reviewers' own tokens their share of it."""
    if actor.anonymous:
        return SIGNIN
    if actor.integration:
        return ALLOW if "assessment:read" in actor.integration_scopes else FORBIDDEN
    return ALLOW if actor.assessor_departments or actor.coordinator_of else FORBIDDEN


def queue_coordinator(actor: Actor, obj: StudentObject) -> str:
    """Bulk assignment from the queue: a coordinator of some department (the view answers 404 for
    reports outside theirs); anyone else signed in 403."""
    if actor.anonymous or actor.integration:
        return SIGNIN
    return ALLOW if actor.coordinator_of else FORBIDDEN


def _person(actor: Actor, *, api: bool) -> str | None:
    """The answer to someone who is not a person signed in (None for a person): anonymous callers
    sign in; an integration's token decides nothing through the API (403) and is anonymous on a
    page."""
    if actor.anonymous or (actor.integration and not api):
        return SIGNIN
    return FORBIDDEN if actor.integration else None


def report_decider(role: str, *, api: bool) -> Policy:
    """Review (`role` "assessor": the assessor assigned, no conflict) or decide (`role`
    "coordinator": the department's coordinator) a report; the other of the two 403, anyone else
    404."""

    def policy(actor: Actor, obj: StudentObject) -> str:
        answer = _person(actor, api=api)
        if answer is not None:
            return answer
        coordinates, assigned = obj.department in actor.coordinator_of, assigned_to(actor, obj)
        allowed, other = (assigned, coordinates) if role == "assessor" else (coordinates, assigned)
        return ALLOW if allowed else FORBIDDEN if other else NOTFOUND

    return policy


def ruling_staff(*, api: bool) -> Policy:
    """Rulings and precedents: assessors and coordinators (the view answers 404 outside their
    department); anyone else signed in 403."""

    def policy(actor: Actor, obj: StudentObject) -> str:
        answer = _person(actor, api=api)
        if answer is not None:
            return answer
        return ALLOW if actor.assessor_departments or actor.coordinator_of else FORBIDDEN

    return policy


def presentation_person(*, api: bool) -> Policy:
    """Presentations: every person signed in (the views answer 404 for an occasion or student
    they may not see, unit-tested in tests/unit/test_presentations.py)."""

    def policy(actor: Actor, obj: StudentObject) -> str:
        return _person(actor, api=api) or ALLOW

    return policy


def rule_set_staff(*, api: bool, one: bool) -> Policy:
    """Rule sets (`one`: a department's, by its code): staff read their departments', an
    administrator every one; another department's or an unknown code 404; anyone else signed in
    403. Through the API, also an integration's token with assessment:read."""

    def policy(actor: Actor, obj: StudentObject) -> str:
        if actor.anonymous or (actor.integration and not api):
            return SIGNIN
        if actor.integration:
            return ALLOW if "assessment:read" in actor.integration_scopes else FORBIDDEN
        if not actor.staff:
            return FORBIDDEN
        mine = actor.assessor_departments | actor.coordinator_of
        return ALLOW if not one or (obj.department and (actor.administrator or obj.department in mine)) else NOTFOUND

    return policy


def outbox_staff(*, templates: bool) -> Policy:
    """The outbox (issue 13): administrators and coordinators (the view scopes the rows to their
    departments; a retry of another department's mail answers 404 in the view); the template
    previews (sample data only): any member of staff. Pages only: an integration is sent to sign in."""

    def policy(actor: Actor, obj: StudentObject) -> str:
        if actor.anonymous or actor.integration:
            return SIGNIN
        if templates:
            return ALLOW if actor.staff else FORBIDDEN
        return ALLOW if actor.administrator or actor.coordinator_of else FORBIDDEN

    return policy


def statistics_reader(*, api: bool) -> Policy:
    """CIM in numbers (issue 15): coordinators (their departments) and administrators (all); anyone
    else signed in 403; an integration's token 403 through the API (a person's figures only), sent
    to sign in on a page. Another department's figures 403 in the view (tests/unit/test_statistics.py)."""

    def policy(actor: Actor, obj: StudentObject) -> str:
        answer = _person(actor, api=api)
        if answer is not None:
            return answer
        return ALLOW if actor.administrator or actor.coordinator_of else FORBIDDEN

    return policy


def administrators_only(actor: Actor, obj: StudentObject) -> str:
    """The administrators' pages (issue 16: accounts, roles, API tokens), as the identity CLI:
    administrators only; anyone else signed in 403; pages only, so an integration signs in. An
    unknown account or token answers 404 in the view (tests/unit/test_admin_pages.py)."""
    if actor.anonymous or actor.integration:
        return SIGNIN
    return ALLOW if actor.administrator else FORBIDDEN


#: Sign-in pages, in both apps (shared/web/auth_pages.py).
AUTH_POLICIES: dict[tuple[str, str], Policy] = {
    ("auth.sign_in_page", "GET"): public,
    ("auth.request_link", "POST"): public,
    ("auth.check_email", "GET"): public,
    ("auth.confirm_link", "GET"): public,
    ("auth.redeem_link", "POST"): public,
    ("auth.staff_sign_in", "POST"): public,
    ("auth.oidc_start", "GET"): public,
    ("auth.oidc_callback", "GET"): public,
    ("auth.account", "GET"): signed_in,
    ("auth.sign_out_view", "POST"): signed_in,
    ("auth.sign_out_everywhere", "POST"): signed_in,
    ("auth.set_language", "POST"): signed_in,  # the person's language (issue 13)
    # the visual identity's stylesheets and logos (issue 17): public, no personal data
    ("branding.theme", "GET"): public,
    ("branding.logo", "GET"): public,
}

INTAKE_POLICIES: dict[tuple[str, str], Policy] = {
    **AUTH_POLICIES,
    ("static", "GET"): public,
    ("ops.health", "GET"): public,  # issue 16: liveness and readiness, no personal data
    ("ops.ready", "GET"): public,
    ("metrics.metrics", "GET"): api_token_scope("ops:read"),  # issue 16.4
    ("forms.home", "GET"): public,
    ("forms.register", "GET"): public,
    ("forms.register", "POST"): public,
    ("forms.my_cim", "GET"): student_read_page,
    ("forms.my_own_cim", "GET"): signed_in,
    ("privacy.my_data", "GET"): student_read_page,  # H4: right of access
    ("privacy.my_data_json", "GET"): student_read_page,
    ("privacy.attachment", "GET"): student_read_page,
    ("forms.log_activity", "GET"): student_write_page,
    ("forms.log_activity", "POST"): student_write_page,
    ("forms.amend_activity", "GET"): student_write_page,
    ("forms.amend_activity", "POST"): student_write_page,
    ("forms.withdraw_activity", "GET"): student_write_page,
    ("forms.withdraw_activity", "POST"): student_write_page,
    ("forms.submit_report", "GET"): student_write_page,
    ("forms.submit_report", "POST"): student_write_page,
    ("forms.resubmit_report", "GET"): student_write_page,
    ("forms.resubmit_report", "POST"): student_write_page,
    ("forms.complete_studies", "GET"): student_write_page,
    ("forms.complete_studies", "POST"): student_write_page,
    ("forms.withdraw_registration", "GET"): student_write_page,
    ("forms.withdraw_registration", "POST"): student_write_page,
    ("api.register_student", "POST"): api_token_scope("intake:register"),
    ("api.log_activity", "POST"): api_student("intake:write", write=True),
    ("api.amend_activity", "POST"): api_student("intake:write", write=True),
    ("api.withdraw_activity", "POST"): api_student("intake:write", write=True),
    ("api.upload_attachment", "POST"): api_student("intake:write", write=True),
    ("api.submit_report", "POST"): api_student("intake:write", write=True),
    ("api.resubmit_report", "POST"): api_student("intake:write", write=True),
    ("api.complete_studies", "POST"): api_student("intake:write", write=True),
    ("api.withdraw_registration", "POST"): api_student("intake:write", write=True),
    ("api.student_events", "GET"): api_student("intake:read", write=False),
    ("api.student_attachment", "GET"): api_token_scope("feed:read"),
    ("api.feed", "GET"): api_token_scope("feed:read"),
    ("api.openapi", "GET"): public,
}

ASSESSMENT_POLICIES: dict[tuple[str, str], Policy] = {
    **AUTH_POLICIES,
    ("static", "GET"): public,
    ("ops.health", "GET"): public,
    ("ops.ready", "GET"): public,
    ("metrics.metrics", "GET"): api_token_scope("ops:read"),
    ("pages.home", "GET"): signed_in,
    ("pages.review_queue", "GET"): reviewers_page,
    ("pages.report", "GET"): report_page,
    ("pages.report_pdf", "GET"): report_page,
    ("pages.assign", "POST"): report_coordination,
    ("pages.unassign", "POST"): report_coordination,
    ("pages.conflict", "POST"): conflict_declaration,
    ("pages.reviews_page", "GET"): report_page,
    ("pages.report_changes", "GET"): report_page,
    ("pages.submit_review", "POST"): report_decider("assessor", api=False),
    ("pages.decide", "POST"): report_coordination,
    ("api.review_queue", "GET"): api_review_queue,
    ("api.report", "GET"): api_report,
    ("api.submit_review", "POST"): report_decider("assessor", api=True),
    ("api.decide", "POST"): report_decider("coordinator", api=True),
    ("api.assign", "POST"): report_decider("coordinator", api=True),
    ("ruling_api.rule", "POST"): ruling_staff(api=True),
    ("ruling_api.awaited", "GET"): ruling_staff(api=True),
    ("ruling_api.precedents", "GET"): ruling_staff(api=True),
    ("ruling_pages.awaiting", "GET"): ruling_staff(api=False),
    ("ruling_pages.precedents", "GET"): ruling_staff(api=False),
    ("ruling_pages.ruling", "GET"): ruling_staff(api=False),
    ("ruling_pages.rule", "POST"): ruling_staff(api=False),
    ("api.department_occasions", "GET"): presentation_person(api=True),
    ("api.publish_occasion", "POST"): presentation_person(api=True),
    ("api.occasion", "GET"): presentation_person(api=True),
    ("api.cancel_occasion", "POST"): presentation_person(api=True),
    ("api.book", "POST"): presentation_person(api=True),
    ("api.cancel_booking", "POST"): presentation_person(api=True),
    ("api.attendance", "POST"): presentation_person(api=True),
    ("api.student_presentation", "GET"): presentation_person(api=True),
    ("presentation_pages.occasions", "GET"): presentation_person(api=False),
    ("presentation_pages.publish", "POST"): presentation_person(api=False),
    ("presentation_pages.occasion", "GET"): presentation_person(api=False),
    ("presentation_pages.attendance", "POST"): presentation_person(api=False),
    ("presentation_pages.cancel_booking", "POST"): presentation_person(api=False),
    ("presentation_pages.cancel_occasion", "POST"): presentation_person(api=False),
    ("presentation_pages.student_presentation", "GET"): presentation_person(api=False),
    ("presentation_pages.book", "POST"): presentation_person(api=False),
    ("presentation_pages.unbook", "POST"): presentation_person(api=False),
    ("api.report_reviews", "GET"): api_report,
    ("api.report_history", "GET"): api_report,
    ("api.student", "GET"): api_assessment_student,
    ("api.projections", "GET"): api_token_scope("ops:read"),
    ("api.status_feed", "GET"): api_token_scope("feed:read"),
    ("api.own_events", "GET"): api_token_scope("feed:read"),
    ("privacy.my_data", "GET"): student_read_page,
    ("privacy.my_data_json", "GET"): student_read_page,
    # The queue table's JSON, bulk assignment and the agenda (issue 12).
    ("queue_api.queue_json", "GET"): api_review_queue,
    ("queue_pages.assign_preview", "POST"): queue_coordinator,
    ("queue_pages.assign_confirm", "POST"): queue_coordinator,
    ("queue_pages.agenda", "GET"): reviewers_page,
    # The rule sets staff read (issue 12).
    ("rule_sets.rule_sets_page", "GET"): rule_set_staff(api=False, one=False),
    ("rule_sets.rule_set_page", "GET"): rule_set_staff(api=False, one=True),
    ("rule_sets_api.rule_set_json", "GET"): rule_set_staff(api=True, one=True),
    # Deadlines (issue 13): every person signed in; the views answer 404 to anyone but a
    # coordinator of the student's department (or the student, for their own page and calendar
    # link), unit-tested in tests/unit/test_deadlines.py. The calendar feed's secret link is the key.
    ("deadline_pages.overview", "GET"): presentation_person(api=False),
    ("deadline_pages.what_if", "GET"): presentation_person(api=False),
    ("deadline_pages.student_deadline", "GET"): presentation_person(api=False),
    ("deadline_pages.extend", "POST"): presentation_person(api=False),
    ("deadline_pages.reinstate", "POST"): presentation_person(api=False),
    ("deadline_pages.make_link", "POST"): presentation_person(api=False),
    ("deadline_pages.revoke_link", "POST"): presentation_person(api=False),
    ("deadline_pages.calendar", "GET"): public,
    ("deadline_pages.deadline_json", "GET"): presentation_person(api=True),
    # The outbox and the mail templates (issue 13).
    ("mail.outbox_page", "GET"): outbox_staff(templates=False),
    ("mail.retry", "POST"): outbox_staff(templates=False),
    ("mail.templates_page", "GET"): outbox_staff(templates=True),
    ("mail.template_html", "GET"): outbox_staff(templates=True),
    # Diplomas (issue 14): every person signed in; the views answer 404 to anyone but the holder
    # and staff of the department (issue, revoke and re-issue: its coordinators), unit-tested in
    # tests/unit/test_diplomas.py. The public verification page needs no sign-in.
    ("diploma_pages.diplomas_home", "GET"): presentation_person(api=False),
    ("diploma_pages.student_diploma", "GET"): presentation_person(api=False),
    ("diploma_pages.issue", "POST"): presentation_person(api=False),
    ("diploma_pages.revoke", "POST"): presentation_person(api=False),
    ("diploma_pages.reissue", "POST"): presentation_person(api=False),
    ("diploma_pages.pdf", "GET"): presentation_person(api=False),
    ("diploma_pages.department_diplomas", "GET"): presentation_person(api=False),
    ("diploma_pages.department_diplomas_csv", "GET"): presentation_person(api=False),
    ("diploma_pages.verify", "GET"): public,
    ("diploma_pages.verify_credential", "GET"): public,
    ("diploma_pages.credential_issuer", "GET"): public,
    ("diploma_pages.credential_status", "GET"): public,
    ("api.student_diplomas", "GET"): presentation_person(api=True),
    ("api.issue_diploma", "POST"): presentation_person(api=True),
    ("api.diploma", "GET"): presentation_person(api=True),
    ("api.revoke_diploma", "POST"): presentation_person(api=True),
    ("api.reissue_diploma", "POST"): presentation_person(api=True),
    ("api.department_diplomas", "GET"): presentation_person(api=True),
    # The administrators' pages (issue 16).
    ("admin.accounts_page", "GET"): administrators_only,
    ("admin.create_account", "POST"): administrators_only,
    ("admin.account_page", "GET"): administrators_only,
    ("admin.grant", "POST"): administrators_only,
    ("admin.revoke", "POST"): administrators_only,
    ("admin.disable", "POST"): administrators_only,
    ("admin.enable", "POST"): administrators_only,
    ("admin.tokens_page", "GET"): administrators_only,
    ("admin.create_token", "POST"): administrators_only,
    ("admin.revoke_token", "POST"): administrators_only,
    ("admin.send_setup_link", "POST"): administrators_only,
    # The set-up link a new member of staff follows (shared/web/staff_setup.py): public pages, the
    # signed one-time token in the path is what authorizes (tests/unit/test_staff_setup.py).
    ("setup.confirm", "GET"): public,
    ("setup.start", "POST"): public,
    ("setup.finish", "POST"): public,
    # CIM in numbers (issue 15).
    ("statistics_pages.statistics_page", "GET"): statistics_reader(api=False),
    ("statistics_pages.statistics_csv", "GET"): statistics_reader(api=False),
    ("api.statistics_api", "GET"): statistics_reader(api=True),
    # Voiding a mis-registration: the rule as the figures'; the view answers 404 outside the
    # coordinator's department (tests/unit/test_statistics.py).
    ("api.void_registration_api", "POST"): statistics_reader(api=True),
    ("api.undo_void_registration_api", "POST"): statistics_reader(api=True),
    # The page form that voids and undoes a void; the appendix PDF (same rule, same 404s).
    ("statistics_pages.registration_void_page", "GET"): statistics_reader(api=False),
    ("statistics_pages.registration_void", "POST"): statistics_reader(api=False),
    ("statistics_pages.registration_void_undo", "POST"): statistics_reader(api=False),
    ("statistics_pages.statistics_appendix", "GET"): statistics_reader(api=False),
}


# -- requests ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    app: str
    endpoint: str
    method: str
    url: str
    api: bool


def cells_of(app_name: str, app: Flask, obj: StudentObject) -> Iterator[Cell]:
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            values: dict[str, str] = {}
            for arg in rule.arguments:
                if arg == "filename":
                    values[arg] = "cim.css"
                elif arg == "code":  # a department (an unknown object's is nobody's)
                    values[arg] = obj.department or "NO-SUCH-DEPT"
                elif arg == "token":  # an e-mail sign-in link: public pages, any token reaches them
                    values[arg] = "not-a-real-link-token"
                elif arg in ("row_id", "name", "locale"):  # an outbox row, a mail template (no object)
                    values[arg] = {"row_id": "1", "name": "sign_in_link", "locale": "en"}[arg]
                elif arg == "table":  # a table of CIM in numbers
                    values[arg] = "funnel"
                elif arg in ("account_id", "token_id"):  # the administrators' pages (no student object)
                    values[arg] = str(uuid.UUID(int=0))
                elif arg in obj.params():
                    values[arg] = obj.params()[arg]
                else:
                    pytest.fail(f"{app_name} {rule.endpoint}: the matrix has no value for <{arg}>; add it")
            url = rule.build(values, append_unknown=False)[1]  # type: ignore[index]
            yield Cell(app_name, rule.endpoint, method, url, rule.rule.startswith("/api/"))


def client_for(app: Flask, actor: Actor, api: bool) -> tuple[FlaskClient, dict[str, str]]:
    client = app.test_client()
    headers: dict[str, str] = {}
    if api:
        headers = dict(actor.api_headers)
    elif actor.session_id:
        client.set_cookie(SESSION_COOKIE, actor.session_id, path="/", secure=True, httponly=True)
    return client, headers


def send(app: Flask, actor: Actor, cell: Cell) -> Response:
    client, headers = client_for(app, actor, cell.api)
    if cell.method == "GET":
        return client.get(cell.url, headers=headers)
    if cell.api:
        headers["Content-Type"] = "application/json"
        return client.open(cell.url, method=cell.method, headers=headers, data="{}")
    return client.open(cell.url, method=cell.method, headers=headers, data={})


def install_probe(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF has its own test (S3); here only access counts

    @app.before_request
    def _probe() -> Response | None:
        if app.config.get("CIM_MATRIX_PROBE"):
            g.cim_matrix_passed = True
            return Response("access granted", status=PROBE_STATUS)
        return None


def decision(response: Response, cell: Cell) -> str:
    if response.status_code == PROBE_STATUS:
        return ALLOW
    if response.status_code == 401 and cell.api:
        return SIGNIN
    if response.status_code == 303 and "/auth/sign-in" in response.headers.get("Location", ""):
        return SIGNIN
    if response.status_code == 403:
        return FORBIDDEN
    if response.status_code == 404:
        return NOTFOUND
    return f"unexpected {response.status_code}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("matrix"))


def apps(world: World) -> list[tuple[str, Flask, dict[tuple[str, str], Policy]]]:
    return [("intake", world.intake, INTAKE_POLICIES), ("assessment", world.assessment, ASSESSMENT_POLICIES)]


def test_every_endpoint_has_a_policy_here_and_a_rule_in_the_code(world: World) -> None:
    from shared.web.access import rule_of

    missing, unruled, stale = [], [], []
    for name, app, policies in apps(world):
        seen = set()
        for rule in app.url_map.iter_rules():
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                seen.add((rule.endpoint, method))
                if (rule.endpoint, method) not in policies:
                    missing.append(f"{name} {method} {rule.rule} ({rule.endpoint})")
            if rule.endpoint != "static" and rule_of(app.view_functions[rule.endpoint]) is None:
                unruled.append(f"{name} {rule.endpoint}")
        stale += [f"{name} {k}" for k in policies if k not in seen]
    assert not missing, "endpoints without a policy in the matrix:\n" + "\n".join(missing)
    assert not unruled, "views without @access:\n" + "\n".join(unruled)
    assert not stale, "policies for endpoints that no longer exist:\n" + "\n".join(stale)


def test_every_cell_of_the_matrix(world: World) -> None:
    """Endpoint × actor × (own-department object, other-department object, unknown id)."""
    failures: list[str] = []
    checked = 0
    for name, app, policies in apps(world):
        app.config["CIM_MATRIX_PROBE"] = True
        try:
            for label, obj in [*world.objects.items(), ("unknown", unknown_object())]:
                for cell in cells_of(name, app, obj):
                    policy = policies.get((cell.endpoint, cell.method))
                    if policy is None:
                        continue  # reported by the test above
                    for actor in world.actors:
                        expected = policy(actor, obj)
                        got = decision(send(app, actor, cell), cell)
                        checked += 1
                        if got != expected:
                            failures.append(f"{name} {cell.method} {cell.endpoint} [{label}] as {actor.name}: "
                                            f"expected {expected}, got {got}")
        finally:
            app.config["CIM_MATRIX_PROBE"] = False
    assert checked > 500
    assert not failures, f"{len(failures)} of {checked} cells differ:\n" + "\n".join(failures[:80])


def test_denied_cells_answer_alike_and_unknown_ids_like_foreign_ones(world: World) -> None:
    """The real answers (no probe): a foreign object and an unknown id get the same status and the
    same body, for every endpoint and actor; 1,000 random ids on top answer like them too."""
    rng = random.Random(4)
    differences: list[str] = []
    random_checks = 0
    for name, app, policies in apps(world):
        for cell_foreign in cells_of(name, app, world.objects["med"]):
            policy = policies.get((cell_foreign.endpoint, cell_foreign.method))
            if policy is None:
                continue
            for actor in world.actors:
                if policy(actor, world.objects["med"]) != NOTFOUND:
                    continue
                foreign = send(app, actor, cell_foreign)
                unknown_cell_obj = unknown_object()
                unknown_cell = next(c for c in cells_of(name, app, unknown_cell_obj)
                                    if (c.endpoint, c.method) == (cell_foreign.endpoint, cell_foreign.method))
                unknown = send(app, actor, unknown_cell)
                if answer_of(foreign, world.objects["med"]) != answer_of(unknown, unknown_cell_obj):
                    differences.append(f"{name} {cell_foreign.method} {cell_foreign.endpoint} as {actor.name}: "
                                       f"foreign {foreign.status_code} vs unknown {unknown.status_code}")
                for _ in range(8):
                    obj = unknown_object()
                    obj.student_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    random_cell = next(c for c in cells_of(name, app, obj)
                                       if (c.endpoint, c.method) == (cell_foreign.endpoint, cell_foreign.method))
                    answer = send(app, actor, random_cell)
                    random_checks += 1
                    if answer_of(answer, obj) != answer_of(foreign, world.objects["med"]):
                        differences.append(f"{name} {random_cell.method} {random_cell.endpoint} as {actor.name}: "
                                           f"random id {answer.status_code} vs foreign {foreign.status_code}")
    assert random_checks >= 1000, random_checks
    assert not differences, "\n".join(differences[:50])


def answer_of(response: Response, obj: StudentObject) -> tuple[int, bytes]:
    """Status and body, with the ids of the request itself (pages echo their own path, e.g. in
    the language links) replaced by a placeholder: what is left must not tell the ids apart."""
    body = response.get_data()
    # ... and the department code of a `<code>` in the path (the rule sets page, issue 12).
    for value in [*obj.params().values(), f"/{obj.department or 'NO-SUCH-DEPT'}?"]:
        if value:
            body = body.replace(value.encode(), b"<id>")
    # The sign-out form's CSRF token is signed with a timestamp: new on every page.
    body = re.sub(rb'(name="csrf_token" value=")[^"]*', rb"\1<csrf>", body)
    # The staff pages' pipeline notice says how long ago the read models moved: it changes by the
    # second, whoever's page it is.
    body = re.sub(rb'<p class="notice notice-warning">[^<]*</p>', b"<notice>", body)
    return response.status_code, body


def test_denials_are_the_documented_answers(world: World) -> None:
    """Anonymous pages go to sign-in (303), the anonymous API gets 401 with a Bearer challenge,
    a role without access gets 403 — checked on the real responses, not the probe."""
    wrong: list[str] = []
    for name, app, policies in apps(world):
        for cell in cells_of(name, app, world.objects["socsw"]):
            policy = policies.get((cell.endpoint, cell.method))
            if policy is None:
                continue
            for actor in world.actors:
                expected = policy(actor, world.objects["socsw"])
                if expected == ALLOW:
                    continue
                response = send(app, actor, cell)
                if expected == SIGNIN and cell.api:
                    ok = response.status_code == 401 and "Bearer" in response.headers.get("WWW-Authenticate", "")
                elif expected == SIGNIN:
                    ok = response.status_code == 303 and response.headers["Location"].startswith("/auth/sign-in?")
                elif expected == FORBIDDEN:
                    ok = response.status_code == 403
                else:
                    ok = response.status_code == 404
                if not ok:
                    wrong.append(f"{name} {cell.method} {cell.endpoint} as {actor.name}: expected {expected}, "
                                 f"got {response.status_code}")
    assert not wrong, "\n".join(wrong[:50])
