"""Deadlines end to end, with the real parts: gunicorn-served apps, a Celery worker, TWO beat
processes, a real redis-server and the embedded SQLite default, all moved across a deadline by the
test-only clock file (`CIM_CLOCK_FILE`, honoured only with `CIM_ENV=test`; docs/deadlines.md).

A student completes their studies; the deadline reaches My CIM; the clock moves to 60, 14 and 3
days before it and the day after, and on each day the sweep task is sent twice (as two beats
would; beat's own daily entry fires on the wall clock, which the test cannot wait for), once with
the worker killed mid-run: each reminder and the deregistration is recorded exactly once. The
deregistered student's new activity is refused with the clear message; a coordinator reinstates
them through the page with a new deadline, and they can log activities and submit again.

With the SMTP sink of scripts/test.sh (CIM_TEST_SMTP_PORT, CIM_TEST_SMTP_DIR), every mail the
student is sent arrives in the sink's Maildir exactly once: the registration, each reminder, the
deregistration and the reinstatement (assessment_service/notifications.py through the outbox),
also with the worker killed mid-run."""

from __future__ import annotations

import mailbox
import os
import re
import sqlite3
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from shared import task_names
from shared.clock import SystemClock
from shared.identity.models import Role, RoleGrant
from shared.identity.wiring import build_identity
from tests.authkit import IDENTITY_KEY, SESSION_COOKIE
from tests.e2e.conftest import BIN, Pipeline, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ACTIVITY = {"kind": "exchange", "title": "Exchange term in Lyon", "organiser": "Université Lyon 2",
            "setting": "abroad", "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01"}
ANSWERS = {"learning": "Working through an interpreter.", "profession": "It changes how I listen.",
           "perspective": "Wider than before."}


def _get(url: str, cookies: dict[str, str]) -> tuple[str, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
    with urllib.request.urlopen(request, timeout=10) as response:
        jar = dict(cookies)
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0]
        return response.read().decode(), jar


def _post_form(url: str, fields: dict[str, str], cookies: dict[str, str]) -> str:
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(fields).encode(), method="POST",
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
                 "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _deadline_events(pipeline: Pipeline, sid: str) -> list[tuple[str, str]]:
    path = pipeline.env["CIM_ASSESSMENT_DB_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute("SELECT type, data FROM events WHERE stream_id = ? ORDER BY version",
                            (f"deadline-{sid}",)).fetchall()
    return [(kind, data) for kind, data in rows]


def _checkpoint_exists(pipeline: Pipeline, name: str) -> bool:
    path = pipeline.env["CIM_ASSESSMENT_DB_URL"].removeprefix("sqlite:///")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute("SELECT 1 FROM projection_checkpoints WHERE name = ?", (name,)).fetchone() is not None
    except sqlite3.Error:  # not created yet
        return False


def _subjects_to(address: str) -> Counter[str]:
    """The subjects of the mails the SMTP sink holds for `address` (each file one delivery)."""
    directory = os.environ.get("CIM_TEST_SMTP_DIR")
    if not directory:
        return Counter()
    box = mailbox.Maildir(directory, factory=None, create=False)
    return Counter(str(make_header(decode_header(m["Subject"] or ""))) for m in box
                   if address in str(m["To"] or ""))


@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_reminded_deregistered_then_reinstated_across_the_deadline(pipeline: Pipeline, tmp_path: Path) -> None:
    import redis
    from celery import Celery

    clock_file = tmp_path / "clock"
    clock_file.write_text("0")
    pipeline.stop_all()  # again, on the movable clock
    # The clock jumps weeks at a time here: lift the clock guard's limit (shared/clock_guard.py;
    # tests/e2e/test_clock_guard_e2e.py is where the guard itself is tried).
    pipeline.env.update({"CIM_ENV": "test", "CIM_CLOCK_FILE": str(clock_file), "CIM_CLOCK_JUMP_DAYS": "3650"})
    smtp = os.environ.get("CIM_TEST_SMTP_PORT")
    if smtp:  # the real SMTP sink of scripts/test.sh
        pipeline.env.update({"CIM_SMTP_HOST": "127.0.0.1", "CIM_SMTP_PORT": smtp})
    address = f"frida.{uuid.uuid4().hex[:8]}@example.org"  # one run's mails among the sink's others
    pipeline.start_apps()
    pipeline.start_worker()
    pipeline.start_beat()
    pipeline._start("beat-2", [str(BIN / "celery"), "-A", "workers.celery_app", "beat", "--loglevel", "INFO",
                               "--schedule", str(tmp_path / "celerybeat-schedule-2")])
    sender = Celery(broker=pipeline.redis_url)

    def sweep_twice(kill: bool = False) -> None:
        for _ in range(2):
            sender.send_task(task_names.SWEEP_DEADLINES, kwargs={"correlation_id": "e2e"}, queue=task_names.QUEUE)
        if kill:  # a worker dies mid-run: the task is delivered again and decides again
            pipeline.wait_worker_ready()
            pipeline.kill_pool_child()

    def move_to(day: date) -> None:
        target = datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC)
        clock_file.write_text(str((target - datetime.now(UTC)).total_seconds()))

    # The notification policies start where the read models are when a worker first runs them
    # (assessment_service/notifications.py): wait for that, so the registration mails too.
    wait_for(lambda: _checkpoint_exists(pipeline, "notifications_intake"), 60, "the notification policies")
    today = datetime.now(UTC).date()
    # the term today falls in (a completion date must fall in its stated term: issue 17)
    term = f"HT{today.year}" if today.month >= 8 else f"VT{today.year}"
    status, body = pipeline.intake("POST", "/students", {
        "name": "Frida Fristlös", "email": address, "university_id": "ff-0001",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "HT2026"})
    assert status == 201, body
    sid = body["student_id"]
    status, body = pipeline.intake("POST", f"/students/{sid}/studies-completed",
                                   {"completed_on": today.isoformat(), "term": term})
    assert status in (200, 201), body

    sessions = redis.Redis.from_url(pipeline.redis_url)
    identity = build_identity(clock=SystemClock(), identity_key=IDENTITY_KEY,
                              db_url=pipeline.env["CIM_IDENTITY_DB_URL"], redis=sessions)
    try:
        coordinator = identity.accounts.create_account("Cora Koordinator", "cora@example.org",
                                                       grants=[RoleGrant(Role.COORDINATOR, "SOCSW")])
        coordinator_session = identity.sessions.create(coordinator.id, auth_method="test")
        student_account = identity.accounts.create_account(
            "Frida Fristlös", address, student_id=sid, grants=[RoleGrant(Role.STUDENT, "SOCSW")])
        student_session = identity.sessions.create(student_account.id, auth_method="test")
    finally:
        identity.store.dispose()  # type: ignore[attr-defined]

    sender.send_task(task_names.SET_DEADLINES, queue=task_names.QUEUE)
    events = wait_for(lambda: _deadline_events(pipeline, sid), 60, "the deadline set")
    assert events[0][0] == "DeadlineSet"
    deadline = date.fromisoformat(re.search(r'"deadline": ?"([0-9-]+)"', events[0][1]).group(1))  # type: ignore[union-attr]
    my_cim = f"{pipeline.intake_url}/students/{sid}"
    wait_for(lambda: "Your deadline to submit your report" in _get(my_cim, {SESSION_COOKIE: student_session})[0],
             30, "the deadline on My CIM")

    expected = ["DeadlineSet"]
    for offset, kill in ((60, False), (14, True), (3, False)):
        move_to(deadline - timedelta(days=offset))
        sweep_twice(kill)
        expected.append("DeadlineReminderDue")
        count = len(expected)
        wait_for(lambda count=count: len(_deadline_events(pipeline, sid)) >= count, 60, f"the {offset}-day reminder")
    move_to(deadline + timedelta(days=1))
    sweep_twice(kill=True)
    expected.append("StudentDeregistered")
    wait_for(lambda: len(_deadline_events(pipeline, sid)) >= len(expected), 60, "the deregistration")
    sweep_twice()  # the next day's beat finds nothing more
    time.sleep(5)  # let every queued and redelivered sweep run (a killed pool child is replaced)
    recorded = _deadline_events(pipeline, sid)
    assert [kind for kind, _ in recorded] == expected, recorded
    offsets = [re.search(r'"offset_days": ?(\d+)', data).group(1) for kind, data in recorded  # type: ignore[union-attr]
               if kind == "DeadlineReminderDue"]
    assert offsets == ["60", "14", "3"]
    mails = [f"{n} days left to submit your CIM report" for n in (60, 14, 3)] + [
        "You are registered for CIM", "You are deregistered from CIM"]
    if smtp:
        def all_arrived() -> bool:
            got = _subjects_to(address)
            return all(got[m] for m in mails)

        wait_for(all_arrived, 60, "the reminder and deregistration mails")
        time.sleep(6)  # a beat's delivery period: a second copy would have arrived by now
        got = _subjects_to(address)
        assert {m: got[m] for m in mails} == dict.fromkeys(mails, 1), got

    wait_for(lambda: "You were deregistered from CIM" in _get(my_cim, {SESSION_COOKIE: student_session})[0],
             30, "the deregistration on My CIM")
    status, body = pipeline.intake("POST", f"/students/{sid}/activities", ACTIVITY)
    assert status == 409, body
    assert "deregistered from CIM when your deadline passed" in body["detail"]

    # The coordinator reinstates the student through the page, with a new deadline.
    page_url = f"{pipeline.assessment_url}/students/{sid}/deadline"
    page, jar = _get(page_url, {SESSION_COOKIE: coordinator_session})
    assert "Reinstate the student" in page
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    token = re.search(r'name="form_token" type="hidden" value="([^"]+)"|name="form_token" value="([^"]+)"', page)
    assert token is not None
    done = _post_form(f"{page_url}/reinstate", {
        "csrf_token": csrf.group(1) or csrf.group(2), "form_token": token.group(1) or token.group(2),
        "deadline": (deadline + timedelta(days=120)).isoformat(), "reason_code": "by_agreement"}, jar)
    assert "Reinstated with the deadline" in done  # the page after the redirect: its history
    assert _deadline_events(pipeline, sid)[-1][0] == "StudentReinstated"
    wait_for(lambda: "Your deadline was extended to" in _get(my_cim, {SESSION_COOKIE: student_session})[0],
             30, "the reinstatement on My CIM")
    if smtp:
        wait_for(lambda: _subjects_to(address)["You are registered for CIM again"], 60, "the reinstatement mail")
    status, body = pipeline.intake("POST", f"/students/{sid}/activities", ACTIVITY)
    assert status == 201, body
    status, body = pipeline.intake("POST", f"/students/{sid}/reports",
                                   {"answers": ANSWERS, "activity_ids": [body["activity_id"]]})
    assert status == 201, body
