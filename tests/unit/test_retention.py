"""Retention: a FixedClock jumped to just before, exactly at and just after each period of
config/retention.toml disposes of exactly the eligible records, once; each run records
RecordsDisposed (ids only); and neither the Celery message of the task nor any log record of a
whole request + task run carries personal data (bar G3; the key is in tests/README.md)."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import smtplib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from intake_service import create_app
from intake_service.bootstrap import build_services
from intake_service.domain import RegisterStudent
from intake_service.retention import RetentionContext, candidates, dispose_due
from intake_service.services import IntakeServices, RequestContext
from shared import mail as mail_module
from shared import retention as rules
from shared import task_names
from shared.adapters.sql import make_engine
from shared.adapters.stores import open_event_store
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import Role
from shared.identity.sql_store import used_tokens
from shared.identity.wiring import Identity, build_identity
from shared.retention import Candidate, RetentionConfigError, load_policy, parse_policy
from tests.authkit import FAST_HASHER, IDENTITY_KEY, authed_client, integration_token, make_account, sign_in
from tests.factories import blank_pdf, canary

T0 = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)
SECOND = timedelta(seconds=1)
STUDENT = {"department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"}
CTX = RequestContext(actor="test", correlation_id="retention-test")


# -- the pure rule ----------------------------------------------------------------------------
def test_due_is_since_plus_period_inclusive() -> None:
    policy = load_policy()
    keep = policy.keep(rules.UNREFERENCED_ATTACHMENTS)
    c = Candidate(rules.UNREFERENCED_ATTACHMENTS, "e1", T0)
    assert rules.due([c], policy, T0 + keep - SECOND) == []
    assert rules.due([c], policy, T0 + keep) == [c]
    assert rules.due([c], policy, T0 + keep + SECOND) == [c]


def test_the_policy_file_names_every_kind_and_says_it_is_a_placeholder() -> None:
    policy = load_policy()
    assert set(policy.rules) == set(rules.KINDS)
    assert "PLACEHOLDER" in policy.decision
    assert policy.decided_by(rules.UNREFERENCED_ATTACHMENTS) == (
        f"config/retention.toml#unreferenced_attachments@{policy.version}"
    )


@pytest.mark.parametrize("raw", [
    {"kinds": {}},
    {"kinds": {k: {"keep_days": 1} for k in rules.KINDS if k != rules.UNREFERENCED_ATTACHMENTS}},
    {"kinds": {k: {"keep_days": -1} for k in rules.KINDS}},
    {"kinds": {k: {"keep_days": "2 years"} for k in rules.KINDS}},
])
def test_a_policy_without_a_valid_period_for_every_kind_is_refused(raw: dict) -> None:
    with pytest.raises(RetentionConfigError):
        parse_policy(raw)


# -- the executor against SQLite stores --------------------------------------------------------
class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FixedClock(T0)
        self.settings = Settings(data_dir=tmp_path, wakeup="none")
        self.store = open_event_store(self.settings.intake_db_url, self.clock)
        self.store.create_schema()
        self.services: IntakeServices = build_services(self.settings, store=self.store, clock=self.clock)
        self.identity: Identity = build_identity(
            clock=self.clock, identity_key=IDENTITY_KEY, db_url=self.settings.identity_db_url,
            password_hasher=FAST_HASHER,
        )
        self.identity.store.create_schema()  # type: ignore[attr-defined]
        self.ctx = RetentionContext(self.services, self.identity, load_policy())

    def register(self, name: str | None = None) -> str:
        outcome = self.services.register_student(RegisterStudent(
            name=name or f"Synthetic {canary(8)}", email=f"{canary(8)}@example.org",
            university_id=f"u-{secrets.token_hex(4)}", **STUDENT), CTX)
        return str(outcome.result["student_id"])

    def used_token_count(self) -> int:
        with self.identity.store.engine.connect() as conn:  # type: ignore[attr-defined]
            return int(conn.execute(sa.select(sa.func.count()).select_from(used_tokens)).scalar_one())


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def seed_one_of_each(w: World) -> dict[str, list[str]]:
    """At T0: one record of each kind whose clock starts now, and records that never fall due."""
    from intake_service import domain

    expected: dict[str, list[str]] = {kind: [] for kind in rules.KINDS}
    # used sign-in token: expires at T0
    w.identity.store.mark_used("a" * 64, "email-link", T0, T0 - timedelta(minutes=15))
    # an API token revoked at T0, and a live one (never due)
    revoked = w.identity.api_tokens.create("old integration", ["intake:read"])
    w.identity.api_tokens.revoke(revoked.record.id)
    w.identity.api_tokens.create("live integration", ["intake:read"])
    expected[rules.REVOKED_API_TOKENS] = [revoked.record.id]
    # a withdrawn student (with an account), and an active one (never due)
    gone = w.register()
    w.identity.accounts.create_account("Synthetic Gone", f"{canary(8)}@example.org", student_id=gone)
    w.services.withdraw_registration(gone, "moved away", CTX)
    expected[rules.WITHDRAWN_REGISTRATIONS] = [gone]
    active = w.register()
    # an unreferenced upload of the active student, one referenced by a report (never due), and
    # an orphan file no event points at
    loose = w.services.upload_attachment(active, blank_pdf(), "draft.pdf", CTX).result["attachment_id"]
    kept = w.services.upload_attachment(active, blank_pdf(), "final.pdf", CTX).result["attachment_id"]
    details = domain.ActivityDetails(
        kind="exchange", title="Exchange", organiser="U", setting="abroad", country_code="DE",
        start_date=datetime(2026, 1, 10).date(), end_date=datetime(2026, 3, 1).date(), hours=10, description="",
    )
    activity = w.services.log_activity(active, details, CTX).result["activity_id"]
    answers = {"learning": "a", "profession": "b", "perspective": "c"}
    report = w.services.submit_report(active, answers, [activity], kept, CTX).result["report_id"]
    # ... and one sent only with the report's second round, after a revision was requested
    revised = w.services.upload_attachment(active, blank_pdf(), "revised.pdf", CTX).result["attachment_id"]
    w.services.report_steps = lambda _sid: {report: {"round": 1, "state": "revision_requested"}}
    w.services.resubmit_report(active, report, answers, [activity], revised, CTX)
    orphan_id = str(uuid.uuid4())
    orphan = w.services.uploads.save(orphan_id, blank_pdf())
    os.utime(orphan, (T0.timestamp(), T0.timestamp()))
    expected[rules.UNREFERENCED_ATTACHMENTS] = sorted([loose, orphan.name])
    # a staff look at the active student: the audit log is kept (never a candidate)
    w.services.record_staff_access(active, str(uuid.uuid4()), "my_cim", CTX)
    expected[rules.USED_SIGN_IN_TOKENS] = []  # only hashes: disposed of by count
    expected["_kept_attachment"] = [kept, revised]
    expected["_active"] = [active]
    return expected


def test_each_kind_is_disposed_of_exactly_at_its_period_and_only_once(world: World) -> None:
    expected = seed_one_of_each(world)
    policy = world.ctx.policy
    assert dispose_due(world.ctx) == dict.fromkeys(rules.KINDS, 0)  # nothing is due at T0
    for period in sorted({policy.keep(k) for k in rules.KINDS}):
        kinds_now = {k for k in rules.KINDS if policy.keep(k) == period}
        world.clock.set(T0 + period - SECOND)
        assert dispose_due(world.ctx) == dict.fromkeys(rules.KINDS, 0), f"early at {period}"
        world.clock.set(T0 + period)
        counts = dispose_due(world.ctx)
        for kind in rules.KINDS:
            want = 1 if kind == rules.USED_SIGN_IN_TOKENS else len(expected[kind])
            assert counts[kind] == (want if kind in kinds_now else 0), (kind, period, counts)
        world.clock.set(T0 + period + SECOND)
        assert dispose_due(world.ctx) == dict.fromkeys(rules.KINDS, 0), f"again after {period}"
    # What was disposed of is gone; what was never eligible is still there.
    assert world.used_token_count() == 0
    tokens = world.identity.store.api_tokens()
    assert [t.name for t in tokens] == ["live integration"]
    gone = expected[rules.WITHDRAWN_REGISTRATIONS][0]
    assert world.store.read_stream(f"student-{gone}")[-1].type == "StudentErased"
    assert world.identity.accounts.account_for_student(gone).email is None  # type: ignore[union-attr]
    assert world.services.history(gone)[0].data["name"] is None
    active = expected["_active"][0]
    assert world.services.history(active)[0].data["name"] is not None
    assert all(world.services.uploads.path_for(a).exists() for a in expected["_kept_attachment"])
    assert sorted(p.name for p in world.services.uploads.root.iterdir()) == sorted(
        f"{a}.pdf" for a in expected["_kept_attachment"])
    assert [e.type for e in world.store.read_stream(f"audit-{active}")] == ["PersonalDataViewed"]
    # One RecordsDisposed per kind, ids only, naming the rule it applied.
    for kind in rules.KINDS:
        recorded = world.store.read_stream(f"retention-{kind}")
        assert len(recorded) == 1, kind
        data = recorded[0].data
        assert data["count"] == (1 if kind == rules.USED_SIGN_IN_TOKENS else len(expected[kind]))
        assert data["ids"] == expected[kind]
        assert data["decided_by"] == policy.decided_by(kind)
    # Nothing is a candidate any more but the records that never fall due.
    left = {(c.kind, c.record_id) for c in candidates(world.ctx)}
    assert left == set()


def test_a_second_worker_running_the_same_day_disposes_of_nothing_more(world: World) -> None:
    seed_one_of_each(world)
    world.clock.set(T0 + timedelta(days=10_000))
    first = dispose_due(world.ctx)
    assert sum(first.values()) > 0
    assert dispose_due(world.ctx) == dict.fromkeys(rules.KINDS, 0)


# -- no personal data in Celery messages or logs -----------------------------------------------
class RefusingSMTP:
    """Stands in for smtplib.SMTP inside the real Mailer: the server refuses the recipient, as a
    real one does for an unknown mailbox (smtplib puts the address in the exception)."""

    refused: ClassVar[list[str]] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> RefusingSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send_message(self, message: Any) -> None:
        to = message["To"].addresses[0].addr_spec  # smtplib keys refusals by envelope address
        RefusingSMTP.refused.append(to)
        raise smtplib.SMTPRecipientsRefused({to: (550, b"5.1.1 mailbox unknown")})


def test_celery_messages_and_logs_of_a_request_and_task_run_hold_no_personal_data(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import celery_app
    from workers.tasks import retention as retention_tasks

    caplog.set_level(logging.DEBUG)
    canaries = [canary(8) for _ in range(6)]
    name, email, description, answer, filename, reason = canaries
    email = f"{email}@example.org"
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    app = create_app(settings, store=world.store, clock=world.clock, identity=world.identity,
                     vault=world.services.codec.vault)
    _, headers = integration_token(world.identity)
    api = authed_client(app, headers)
    response = api.post("/api/v1/students", json={"name": name, "email": email, "university_id": "u-7", **STUDENT})
    assert response.status_code == 201
    sid = response.json["student_id"]
    bad = api.post("/api/v1/students", json={"name": name, "email": "not-an-address", "university_id": "u-8",
                                            **STUDENT})
    assert bad.status_code == 422  # a refused request logs too
    assert api.post(f"/api/v1/students/{sid}/activities", json={
        "kind": "exchange", "title": "Exchange", "organiser": "U", "setting": "abroad", "country_code": "DE",
        "start_date": "2026-01-10", "end_date": "2026-03-01", "hours": 10, "description": description,
    }).status_code == 201
    assert api.post(f"/api/v1/students/{sid}/attachments", data={"file": (io.BytesIO(blank_pdf()), filename)},
                    content_type="multipart/form-data").status_code == 201
    account = world.identity.accounts.create_account(name, email, student_id=sid)
    coordinator = make_account(world.identity, "Coordinator", "c@example.org", grants=[(Role.COORDINATOR, "SOCSW")])
    browser = app.test_client()
    sign_in(browser, world.identity, coordinator)
    assert browser.get(f"/students/{sid}/my-data").status_code == 200
    sign_in(browser, world.identity, account)
    assert browser.get(f"/students/{sid}/my-data.json").status_code == 200
    # A sign-in link whose mail the server refuses: the error path logs, with its traceback.
    app.config["WTF_CSRF_ENABLED"] = False
    monkeypatch.setattr(mail_module.smtplib, "SMTP", RefusingSMTP)
    browser = app.test_client()
    world.identity.accounts.grant_role(account.id, Role.STUDENT, "SOCSW")
    assert browser.post("/auth/link", data={"link-email": email}).status_code == 303
    assert RefusingSMTP.refused, "the mail path was not exercised"
    assert api.post(f"/api/v1/students/{sid}/withdrawal", json={"reason": reason}).status_code in (200, 201)

    # The task, called as the worker calls it, two years on: it erases the withdrawn student.
    monkeypatch.setattr(retention_tasks, "retention_context", lambda: world.ctx)
    assessment = SimpleNamespace(engine=make_engine(f"sqlite:///{tmp_path / 'assessment.db'}"))
    monkeypatch.setattr(retention_tasks, "assessment_context", lambda: assessment)
    world.clock.set(T0 + world.ctx.policy.keep(rules.WITHDRAWN_REGISTRATIONS) + timedelta(days=1))
    counts = retention_tasks.dispose_due_records(correlation_id="corr-g3")
    assert counts[rules.WITHDRAWN_REGISTRATIONS] == 1
    assert world.services.history(sid)[0].data["name"] is None

    # The message beat sends for the task, as it goes onto the broker (kombu's memory transport).
    with celery_app.app.connection_for_write("memory://") as conn:
        retention_tasks.dispose_due_records.apply_async(kwargs={"correlation_id": "corr-g3"}, connection=conn)
        queue = conn.SimpleQueue(task_names.QUEUE)
        message = queue.get(timeout=2)
        raw = json.dumps({"body": message.body if isinstance(message.body, str) else message.body.decode(),
                          "headers": message.headers}, default=str)
        message.ack()
        queue.close()
    assert task_names.DISPOSE_DUE_RECORDS in raw
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logs = "\n".join(f"{formatter.format(r)} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    assert caplog.records, "the run logged nothing: the check below would prove nothing"
    disposed = world.store.read_stream(f"retention-{rules.WITHDRAWN_REGISTRATIONS}")
    events = json.dumps([e.data for e in disposed] + [e.metadata for e in disposed])
    for value in (name, email, description, answer, filename, reason, email.split("@")[0]):
        assert value not in raw
        assert value not in logs
        assert value not in events
