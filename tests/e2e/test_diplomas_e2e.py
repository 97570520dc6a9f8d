"""Diplomas end to end, with the real parts: gunicorn-served apps, a Celery worker and beat, a real
redis-server and the embedded SQLite default. A student's report is approved by two assessors and
they present; the issuing task is sent twice (as two beats would) with the worker killed mid-run:
exactly one `DiplomaIssued` is recorded, with one number. The public verification page answers
over HTTP without sign-in; My CIM links to the diploma; the coordinator revokes it through the
API and the verification flips to revoked. With the SMTP sink of scripts/test.sh the student gets
the diploma mail exactly once. The worker renders the PDF once; the student downloads it and its QR
code reads the verification URL; the signed credential downloaded from the public page verifies
against the keys and status list the service publishes, and fails as revoked after the revocation."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assessment_service import credentials
from assessment_service.credential_keys import KeyStore
from shared import task_names
from shared.clock import SystemClock
from shared.identity.models import Role, RoleGrant
from shared.identity.wiring import build_identity
from tests.authkit import IDENTITY_KEY, SESSION_COOKIE
from tests.e2e.conftest import Pipeline, http, wait_for
from tests.e2e.test_deadlines_e2e import _subjects_to

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CRITERIA = ("activities_meet_requirements", "reflection_compares_contexts", "reflection_relates_to_profession",
            "report_complete")


def page(url: str, session: str | None = None) -> str:
    headers = {"Cookie": f"{SESSION_COOKIE}={session}"} if session else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return response.read().decode()


def _accessible(pipeline: Pipeline, tmp_path: Path, pages: list[tuple[str, str, str | None]]) -> None:
    """The pages with a diploma on them pass the axe check in both languages (the walk of
    tests/e2e/test_pages_accessibility.py; skipped where its browser tools are missing)."""
    from tests.e2e.test_pages_accessibility import LOCALES, Visit, _browser_tools, _walk

    if not shutil.which("chromium") and not shutil.which("chromium-browser"):
        return
    _browser_tools()
    visits = [Visit(f"{name}-{locale}", f"{url}?lang={locale}", session) for name, url, session in pages
              for locale in LOCALES]
    problems = []
    for result in _walk(visits, pipeline, tmp_path / "screenshots"):
        if "error" in result or result["status"] != 200:
            problems.append(f"{result['name']}: {result.get('error') or result['status']}")
        problems += [f"{result['name']}: {v['id']} ({v['impact']}): {v['help']} at {v['nodes'][:3]}"
                     for v in result.get("violations", [])]
    assert not problems, "\n".join(problems)


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _verified(credential: dict[str, Any]) -> credentials.Result:
    """Verify as a stranger would: the issuer's published keys and status list, over HTTP."""
    keys = credentials.public_keys_from_document(_json(credential["issuer"]["id"]))
    return credentials.verify(credential, keys,
                              status_list=_json(credential["credentialStatus"]["statusListCredential"]))


def _qr_codes(pdf: bytes, tmp_path: Path) -> list[str]:
    """The QR codes on the PDF's first page (poppler's pdftoppm, zbar's zbarimg)."""
    (tmp_path / "diploma.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", str(tmp_path / "diploma.pdf"),
                    str(tmp_path / "page")], check=True, timeout=60)
    found = subprocess.run(["zbarimg", "-q", "--raw", str(tmp_path / "page-1.png")], capture_output=True,
                           text=True, timeout=60)
    return found.stdout.split()


def diploma_events(pipeline: Pipeline) -> list[tuple[str, str]]:
    path = pipeline.env["CIM_ASSESSMENT_DB_URL"].removeprefix("sqlite:///")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute("SELECT type, data FROM events WHERE stream_id = 'diplomas-SOCSW' ORDER BY version"
                                ).fetchall()
    except sqlite3.Error:
        return []


@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_an_eligible_student_is_issued_one_diploma_verifiable_and_revocable(pipeline: Pipeline,
                                                                            tmp_path: Path) -> None:
    import os

    import redis
    from celery import Celery

    smtp = os.environ.get("CIM_TEST_SMTP_PORT")
    if smtp:
        pipeline.stop_all()
        pipeline.env.update({"CIM_SMTP_HOST": "127.0.0.1", "CIM_SMTP_PORT": smtp})
        pipeline.start_apps()
        pipeline.start_worker()
        pipeline.start_beat()
    address = f"disa.{int(time.time() * 1000)}@example.org"
    status, body = pipeline.intake("POST", "/students", {
        "name": "Disa Diplomerad", "email": address, "university_id": "dd-0001",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2027"})
    assert status == 201, body
    sid = body["student_id"]
    status, body = pipeline.intake("POST", f"/students/{sid}/activities", {
        "kind": "exchange", "title": "Exchange term in Lyon", "organiser": "Université Lyon 2",
        "setting": "abroad", "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01"})
    assert status == 201, body
    status, body = pipeline.intake("POST", f"/students/{sid}/reports", {
        "answers": {"learning": "Much.", "profession": "A lot.", "perspective": "Wider."},
        "activity_ids": [body["activity_id"]]})
    assert status == 201, body
    rid = body["report_id"]
    wait_for(lambda: pipeline.assessment(f"/reports/{rid}")[0] == 200, 30, "the report on the assessment side")

    sessions = redis.Redis.from_url(pipeline.redis_url)
    identity = build_identity(clock=SystemClock(), identity_key=IDENTITY_KEY,
                              db_url=pipeline.env["CIM_IDENTITY_DB_URL"], redis=sessions)
    scopes = ["assessment:read", "assessment:review", "assessment:presentations", "assessment:diplomas"]
    try:
        def person(name: str, role: Role) -> tuple[str, dict[str, str]]:
            account = identity.accounts.create_account(name, f"{name.split()[0].lower()}@example.org",
                                                       grants=[RoleGrant(role, "SOCSW")])
            token = identity.api_tokens.create(f"{name} token", scopes, account_id=account.id).token
            return account.id, {"Authorization": f"Bearer {token}"}

        coordinator_id, coordinator = person("Cora Koordinator", Role.COORDINATOR)
        coordinator_session = identity.sessions.create(coordinator_id, auth_method="test")
        first_id, first = person("Assar Bedömare", Role.ASSESSOR)
        second_id, second = person("Berit Bedömare", Role.ASSESSOR)
        student_account = identity.accounts.create_account(
            "Disa Diplomerad", address, student_id=sid, grants=[RoleGrant(Role.STUDENT, "SOCSW")])
        student = identity.sessions.create(student_account.id, auth_method="test")
    finally:
        identity.store.dispose()  # type: ignore[attr-defined]

    api = f"{pipeline.assessment_url}/api/v1/reports/{rid}"
    for assessor in (first_id, second_id):
        status, body = http("POST", f"{api}/assessors", {"assessor_account_id": assessor}, coordinator)
        assert status == 201, body
    for headers in (first, second):
        status, body = http("POST", f"{api}/reviews", {"verdicts": dict.fromkeys(CRITERIA, "met"),
                                                       "recommendation": "approve"}, headers)
        assert status == 201, body
    starts = datetime.now(UTC) + timedelta(seconds=4)
    status, body = http("POST", f"{pipeline.assessment_url}/api/v1/occasions", {
        "department": "SOCSW", "kind": "international_cafe", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(), "place": "Allhelgona kyrkogata 8", "capacity": 12,
    }, coordinator)
    assert status == 201, body
    occasion = f"{pipeline.assessment_url}/api/v1/occasions/{body['occasion_id']}"
    status, body = http("POST", f"{occasion}/bookings", {"student_id": sid}, coordinator)
    assert status == 201, body
    time.sleep(max((starts - datetime.now(UTC)).total_seconds(), 0) + 0.5)
    status, body = http("POST", f"{occasion}/attendance", {"student_id": sid, "presented": True}, coordinator)
    assert status == 201, body

    # Two beats' ticks at once, and a worker killed mid-run: one diploma, one number.
    sender = Celery(broker=pipeline.redis_url)
    for _ in range(2):
        sender.send_task(task_names.ISSUE_DIPLOMAS, kwargs={"correlation_id": "e2e"}, queue=task_names.QUEUE)
    pipeline.wait_worker_ready()
    pipeline.kill_pool_child()
    sender.send_task(task_names.ISSUE_DIPLOMAS, kwargs={"correlation_id": "e2e"}, queue=task_names.QUEUE)
    wait_for(lambda: any(kind == "DiplomaIssued" for kind, _ in diploma_events(pipeline)), 60, "the diploma issued")
    time.sleep(5)  # every queued and redelivered tick has run
    issued = [data for kind, data in diploma_events(pipeline) if kind == "DiplomaIssued"]
    assert len(issued) == 1, issued

    status, mine = http("GET", f"{pipeline.assessment_url}/api/v1/students/{sid}/diplomas", headers=coordinator)
    assert status == 200, mine
    (diploma,) = mine["items"]
    assert diploma["number"].startswith("CIM-SOCSW-")
    code = diploma["verification_code"]
    public = page(f"{pipeline.assessment_url}/verify/{code}")  # no sign-in
    assert "This diploma is valid." in public
    assert "Disa Diplomerad" in public
    wait_for(lambda: "Your diploma" in page(f"{pipeline.intake_url}/students/{sid}", student), 30,
             "the diploma link on My CIM")

    # The worker rendered the PDF once; the student downloads it; its QR code opens this page.
    # At most a claim (60 s) and a beat period (60 s) after a kill between claim and send.
    wait_for(lambda: any(kind == "DiplomaRendered" for kind, _ in diploma_events(pipeline)), 240, "the PDF")
    request = urllib.request.Request(f"{pipeline.assessment_url}/diplomas/{diploma['diploma_id']}.pdf",
                                     headers={"Cookie": f"{SESSION_COOKIE}={student}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        pdf = response.read()
    assert pdf.startswith(b"%PDF-")
    assert _qr_codes(pdf, tmp_path) == [diploma["verify_url"]]
    # The downloaded credential verifies against the keys and the status list the service publishes.
    KeyStore(Path(pipeline.env["CIM_CREDENTIAL_KEYS_DIR"])).create("SOCSW", now=datetime.now(UTC))
    credential = _json(f"{pipeline.assessment_url}/verify/{code}/credential.json")
    assert _verified(credential).valid

    _accessible(pipeline, tmp_path, [
        ("verify-valid", f"{pipeline.assessment_url}/verify/{code}", None),
        ("student-diploma-issued", f"{pipeline.assessment_url}/students/{sid}/diploma", student),
        ("staff-diploma-forms", f"{pipeline.assessment_url}/students/{sid}/diploma", coordinator_session),
        ("department-diplomas-listed", f"{pipeline.assessment_url}/departments/SOCSW/diplomas", coordinator_session),
    ])
    status, body = http("POST", f"{pipeline.assessment_url}/api/v1/diplomas/{diploma['diploma_id']}/revocation",
                        {"reason": "Issued in error."}, coordinator)
    assert status == 201, body
    status, shown = http("GET", f"{pipeline.assessment_url}/verify/{code}.json")
    assert status == 200, shown
    assert shown["status"] == "revoked"
    assert _verified(credential).status == credentials.REVOKED  # the same download, now revoked
    _accessible(pipeline, tmp_path, [("verify-revoked", f"{pipeline.assessment_url}/verify/{code}", None)])

    if smtp:
        subject = "Your CIM diploma is ready"
        wait_for(lambda: _subjects_to(address)[subject], 60, "the diploma mail")
        time.sleep(6)  # a beat's delivery period: a second copy would have arrived by now
        assert _subjects_to(address)[subject] == 1
