"""Issue 12's "done when", in a browser: a coordinator assigns a submitted report to two assessors,
both review, a revision is requested, the student resubmits, both approve, the student books a
presentation, the coordinator records it held, and the student's page shows each step.

Real processes (the `pipeline` fixture on the embedded default: gunicorn-served apps, a Celery
worker and beat, redis-server, the SMTP sink scripts/test.sh starts) and one headless Chromium
driven by tests/browser/workflow_walk.mjs through the real pages: every form is filled and
clicked, no JSON. Staff sign in with their password and a TOTP code, the student with the link
mailed to them (as tests/e2e/test_role_walks.py). Each person keeps their own browser context.
The occasion must have started before attendance can be recorded: the apps and workers run on the
test-only movable clock (`CIM_CLOCK_FILE`, honoured only with `CIM_ENV=test`), moved past the
occasion's start after the booking instead of waiting for it.

What is asserted: each step's page answers 200 (a refusal would re-show a form with 4xx) with 0
axe-core WCAG 2.1 AA violations; the student's My CIM shows, in turn, the report submitted, in
review, the revision requested with the coordinator's summary, resubmitted, approved, the
presentation booked, and eligible for the diploma with the presentation held; the reviews page
shows both rounds' reviews and the history names each step.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
import pytest

from shared.clock import SystemClock
from shared.identity.models import Role, RoleGrant
from shared.identity.wiring import build_identity
from tests.authkit import IDENTITY_KEY
from tests.e2e.conftest import Pipeline, wait_for
from tests.e2e.test_pages_accessibility import BROWSER_DIR, _browser_tools
from tests.e2e.test_role_walks import LINK_FORM, PASSWORD, STAFF_FORM, _mailed_link
from tests.e2e.test_sign_in_e2e import SmtpSink

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LUND = ZoneInfo("Europe/Stockholm")
ANSWERS = ("Working through an interpreter in Lyon.", "It changes how I listen.", "Wider than before.")
REVISED = "Social work in Lyon and in Sweden compared: two welfare systems, two ways to listen."
COMMENT = "Little about the profession in Sweden."
SUMMARY = "Relate the exchange term to social work in Sweden, and compare the two welfare systems."
PLACE = "Allhelgona kyrkogata 8, room 101"
#: What the student's My CIM says at each step (English), in the order they happen.
STEPS = {
    "submitted": "Report submitted. It is waiting for review by the assessors.",
    "in review": "In review by the assessors.",
    "revision requested": SUMMARY,
    "resubmitted": "Report resubmitted. It is waiting for review by the assessors.",
    "approved": "Report approved. Book an occasion to present it.",
    "booked": "Report approved and presentation booked.",
    "eligible": "Eligible for the diploma: your report is approved and your presentation held.",
}


@pytest.fixture
def smtp_sink() -> SmtpSink:
    port, directory = os.environ.get("CIM_TEST_SMTP_PORT"), os.environ.get("CIM_TEST_SMTP_DIR")
    if not port or not directory:
        pytest.skip("CIM_TEST_SMTP_PORT and CIM_TEST_SMTP_DIR are needed (scripts/test.sh starts the sink)")
    return SmtpSink(int(port), Path(directory))


@pytest.fixture
def clock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The movable clock of every process the pipeline starts (requested before it). Near
    midnight in Lund it starts an hour and a half back, so the occasion falls on one day."""
    path = tmp_path / "clock"
    now = datetime.now(LUND)
    path.write_text("-5400" if now.hour == 23 or (now.hour == 22 and now.minute > 30) else "0")
    monkeypatch.setenv("CIM_ENV", "test")
    monkeypatch.setenv("CIM_CLOCK_FILE", str(path))
    return path


def _offset(clock_file: Path) -> float:
    return float(clock_file.read_text() or 0)


def _seed(pipeline: Pipeline) -> dict[str, Any]:
    status, body = pipeline.intake("POST", "/students", {
        "name": "Tekla Vandrare", "email": "tekla.walk@example.org", "university_id": "tw-0001",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"})
    assert status == 201, body
    sid = body["student_id"]
    status, body = pipeline.intake("POST", f"/students/{sid}/activities", {
        "kind": "exchange", "title": "Exchange term in Lyon", "organiser": "Université Lyon 2",
        "setting": "abroad", "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01"})
    assert status == 201, body
    return {"student_id": sid, "name": "Tekla Vandrare", "email": "tekla.walk@example.org"}


def _accounts(pipeline: Pipeline, student: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The student's account, and a coordinator and two assessors of SOCSW with a password and
    TOTP; everyone in English."""
    import redis

    identity = build_identity(clock=SystemClock(), identity_key=IDENTITY_KEY,
                              db_url=pipeline.env["CIM_IDENTITY_DB_URL"],
                              redis=redis.Redis.from_url(pipeline.redis_url))
    people: dict[str, dict[str, Any]] = {}
    try:
        account = identity.accounts.create_account(student["name"], student["email"],
                                                   student_id=student["student_id"],
                                                   grants=[RoleGrant(Role.STUDENT, "SOCSW")])
        identity.accounts.set_locale(account.id, "en")
        people["student"] = {**student, "account_id": account.id}
        for who, name, role in (("coordinator", "Cora Samordnare", Role.COORDINATOR),
                                ("first", "Assar Bedömare", Role.ASSESSOR),
                                ("second", "Berit Bedömare", Role.ASSESSOR)):
            email = f"{who}.walk@example.org"
            account = identity.accounts.create_account(name, email, grants=[RoleGrant(role, "SOCSW")])
            identity.accounts.set_locale(account.id, "en")
            identity.staff.set_password(account.id, PASSWORD)
            secret = identity.staff.enrol_totp(account.id, email).secret
            people[who] = {"email": email, "secret": secret, "account_id": account.id, "name": name}
    finally:
        identity.store.dispose()  # type: ignore[attr-defined]
    return people


def _occasion_time(clock_file: Path) -> datetime:
    """A start a few minutes ahead on the apps' clock (Lund time, whole minutes)."""
    now = datetime.now(LUND) + timedelta(seconds=_offset(clock_file))
    return (now + timedelta(minutes=4)).replace(second=0, microsecond=0)


def _plan(pipeline: Pipeline, people: dict[str, dict[str, Any]], starts: datetime) -> list[dict[str, Any]]:
    intake, assessment = pipeline.intake_url, pipeline.assessment_url
    sid = people["student"]["student_id"]
    my_cim = f"{intake}/students/{sid}"
    steps: list[dict[str, Any]] = []

    def student(*more: dict[str, Any]) -> None:
        steps.extend({"as": "student", **step} for step in more)

    def staff(who: str, *more: dict[str, Any]) -> None:
        steps.extend({"as": who, **step} for step in more)

    def sign_in(who: str) -> None:
        staff(who,
              {"goto": f"{intake}/auth/sign-in"},
              {"type": "#staff-email", "text": people[who]["email"]},
              {"type": "#staff-password", "text": PASSWORD},
              {"type": "#staff-code", "ask_text": {"totp": who}},
              {"submit": f"{STAFF_FORM} button[type=submit]", "name": f"{who} signed in"},
              {"check": f"{who} queue"})

    def my_cim_shows(step: str) -> None:
        student({"wait_text": STEPS[step], "url": my_cim, "timeout": 40}, {"check": f"my-cim {step}"})

    def review(who: str, round_: int, *, revise: bool) -> None:
        staff(who,
              {"wait_text": f"Your review of round {round_}", "url": "{{REPORT}}/reviews",
               "timeout": 40},
              {"check": f"{who} review form round {round_}"},
              {"click_all": 'input[type=radio][name^="verdict_"][value="met"]'})
        if revise:
            staff(who,
                  {"click": 'input[name="verdict_reflection_relates_to_profession"][value="not_met"]'},
                  {"type": "#comment_reflection_relates_to_profession", "text": COMMENT},
                  {"click": 'input[name="recommendation"][value="revise"]'})
        else:
            staff(who, {"click": 'input[name="recommendation"][value="approve"]'})
        staff(who,
              {"submit": 'form[action$="/reviews"] button[type=submit]', "name": f"{who} reviewed round {round_}"},
              {"check": f"{who} reviewed round {round_}"})

    # The student signs in with the mailed link and submits the report through the form.
    student({"goto": f"{intake}/auth/sign-in"},
            {"type": "#link-email", "text": people["student"]["email"]},
            {"submit": f"{LINK_FORM} button[type=submit]", "name": "student link asked"},
            {"goto_ask": {"mail_link": people["student"]["email"]}},
            {"submit": "main form button[type=submit]", "name": "student signed in"},
            {"goto": f"{intake}/students/{sid}/report"},
            *({"type": f"#answer_{i}", "text": text} for i, text in enumerate(ANSWERS)),
            {"click": 'input[name="activities"]'},
            {"submit": "main form button[type=submit]", "name": "student submitted"})
    my_cim_shows("submitted")

    # The coordinator assigns two assessors on the report's page.
    sign_in("coordinator")
    staff("coordinator", {"ask": {"report": sid}, "remember": "REPORT"}, {"goto": "{{REPORT}}"},
          {"check": "coordinator report"})
    for who in ("first", "second"):
        staff("coordinator",
              {"select": 'form[action$="/assign"] select[name="assessor"]', "value": people[who]["account_id"]},
              {"submit": 'form[action$="/assign"] button[type=submit]', "name": f"assigned {who}"},
              {"check": f"coordinator assigned {who}"})

    # Round 1: one approves, one asks for a revision; the coordinator decides.
    sign_in("first")
    review("first", 1, revise=False)
    my_cim_shows("in review")
    sign_in("second")
    review("second", 1, revise=True)
    staff("coordinator",
          {"goto": "{{REPORT}}/reviews"},
          {"check": "coordinator decision form"},
          {"click": 'input[name="outcome"][value="revise"]'},
          {"type": "#summary", "text": SUMMARY},
          {"submit": 'form[action$="/decision"] button[type=submit]', "name": "revision requested"},
          {"check": "coordinator decided round 1"})
    my_cim_shows("revision requested")

    # The student revises and resubmits from My CIM.
    student({"submit": 'main a[href$="/resubmit"]', "name": "resubmit form"},
            {"check": "student resubmit form"},
            {"fill": "#answer_0", "value": REVISED},
            {"submit": "main form button[type=submit]", "name": "student resubmitted"})
    my_cim_shows("resubmitted")

    # Round 2: both approve (the rule set's policy approves at two approvals).
    review("first", 2, revise=False)
    staff("first", {"goto": "{{REPORT}}/changes"}, {"check": "first changes"})
    review("second", 2, revise=False)
    my_cim_shows("approved")

    # The coordinator publishes an occasion; the student books it from My CIM's link.
    ends = starts + timedelta(minutes=30)
    staff("coordinator",
          {"goto": f"{assessment}/presentations"},
          {"check": "coordinator presentations"},
          {"select": "#kind", "value": "international_cafe"},
          {"fill": "#day", "value": starts.date().isoformat()},
          {"fill": "#starts", "value": starts.strftime("%H:%M")},
          {"fill": "#ends", "value": ends.strftime("%H:%M")},
          {"type": "#place", "text": PLACE},
          {"fill": "#capacity", "value": "12"},
          {"submit": 'form[action$="/presentations"] button[type=submit]', "name": "occasion published",
           "remember": "OCCASION"},
          {"check": "coordinator occasion"})
    student({"goto": my_cim},
            {"submit": f'main a[href$="/students/{sid}/presentation"]', "name": "student presentation page"},
            {"wait_text": PLACE, "url": f"{assessment}/students/{sid}/presentation", "timeout": 40},
            {"check": "student presentation page"},
            {"submit": 'form[action$="/presentation"] button[type=submit]', "name": "student booked"},
            {"check": "student booked"})
    my_cim_shows("booked")

    # Past the occasion's start, the coordinator records that the student presented.
    staff("coordinator",
          {"ask": {"clock": "past the occasion's start"}},
          {"goto": "{{OCCASION}}"},
          {"check": "coordinator occasion started"},
          {"submit": 'button[name="outcome"][value="held"]', "name": "presented"},
          {"check": "coordinator recorded presented"})
    my_cim_shows("eligible")
    student({"goto": f"{assessment}/students/{sid}/presentation"}, {"check": "student eligible"})
    staff("coordinator", {"goto": "{{REPORT}}/reviews"}, {"check": "coordinator history"},
          {"goto": "{{REPORT}}"}, {"check": "coordinator report approved"})
    return steps


class Walk:
    """Runs the driver and answers its questions: TOTP codes, the mailed link, the report's URL
    (once the assessment side has it), moving the clock."""

    def __init__(self, pipeline: Pipeline, people: dict[str, dict[str, Any]], smtp: SmtpSink,
                 clock_file: Path, starts: datetime) -> None:
        self.pipeline, self.people, self.smtp = pipeline, people, smtp
        self.clock_file, self.starts = clock_file, starts
        self.report_id: str | None = None
        self.checks: dict[str, dict[str, Any]] = {}
        self.submitted: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []

    def answer(self, question: dict[str, Any]) -> str:
        if "totp" in question:  # the apps' clock: the wall clock and the file's offset
            return pyotp.TOTP(self.people[question["totp"]]["secret"]).at(time.time() + _offset(self.clock_file))
        if "mail_link" in question:
            return _mailed_link(self.smtp, question["mail_link"])
        if "report" in question:
            return f"{self.pipeline.assessment_url}/reports/{self._report(question['report'])}"
        if "clock" in question:
            now = datetime.now(LUND)
            self.clock_file.write_text(str((self.starts - now).total_seconds() + 20))
            return "moved"
        raise AssertionError(f"unexpected question {question}")

    def _report(self, sid: str) -> str:
        if self.report_id is None:
            status, events = self.pipeline.intake("GET", f"/students/{sid}/events")
            assert status == 200, events
            self.report_id = next(e["data"]["report_id"] for e in events["events"] if e["type"] == "ReportSubmitted")
            rid = self.report_id
            wait_for(lambda: self.pipeline.assessment(f"/reports/{rid}")[0] == 200, 30, "the report's page")
        return self.report_id

    def run(self, plan: dict[str, Any], log: Path) -> None:
        with log.open("w") as stderr:
            driver = subprocess.Popen(["node", str(BROWSER_DIR / "workflow_walk.mjs")], cwd=BROWSER_DIR, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, bufsize=1)
            assert driver.stdin is not None
            assert driver.stdout is not None
            try:
                driver.stdin.write(json.dumps(plan) + "\n")
                driver.stdin.flush()
                for line in driver.stdout:
                    message = json.loads(line)
                    if "ask" in message:
                        driver.stdin.write(json.dumps({"value": self.answer(message["ask"])}) + "\n")
                        driver.stdin.flush()
                    elif "check" in message:
                        self.checks[message["check"]] = message
                    elif "submitted" in message:
                        self.submitted[message["submitted"]] = message
                    else:
                        self.errors.append(message)
                assert driver.wait(timeout=60) == 0, log.read_text()
            finally:
                if driver.poll() is None:
                    driver.kill()
                    driver.wait()


@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_the_assessment_workflow_walked_in_a_browser(clock_file: Path, smtp_sink: SmtpSink, pipeline: Pipeline,
                                                     tmp_path: Path) -> None:
    chromium, _script = _browser_tools()
    student = _seed(pipeline)
    people = _accounts(pipeline, student)
    starts = _occasion_time(clock_file)
    steps = _plan(pipeline, people, starts)
    walk = Walk(pipeline, people, smtp_sink, clock_file, starts)
    shots = Path(os.environ.get("CIM_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    plan = {"chromium": chromium, "screenshots": str(shots), "steps": steps}
    wait_for(lambda: pipeline.intake_head() > 0, 10, "the intake's events")
    walk.run(plan, shots / "driver.log")
    assert not walk.errors, (walk.errors, (shots / "driver.log").read_text()[-3000:])

    problems = []
    for name, result in walk.checks.items():
        if result["status"] != 200:
            problems.append(f"{name}: HTTP {result['status']} at {result['final_url']}")
        if result["lang"] != "en":
            problems.append(f"{name}: <html lang={result['lang']!r}>")
        for violation in result["violations"]:
            problems.append(f"{name}: {violation['id']} ({violation['impact']}): {violation['help']} "
                            f"at {violation['nodes'][:3]}")
    assert not problems, "\n".join(problems)

    # The student's page showed each step, in turn; a later step's page no longer shows an earlier one's status.
    for step, text in STEPS.items():
        assert text in walk.checks[f"my-cim {step}"]["text"], step
    assert "Revision requested" in walk.checks["my-cim revision requested"]["text"]
    assert REVISED not in walk.checks["my-cim revision requested"]["text"]
    assert STEPS["submitted"] not in walk.checks["my-cim eligible"]["text"]
    assert "Eligible for the diploma" in walk.checks["student eligible"]["text"]
    assert "Presented on " in walk.checks["student eligible"]["text"]

    # Each form led where it should: the staff to the queue, each action back to its page.
    assessment = pipeline.assessment_url
    for who in ("coordinator", "first", "second"):
        assert walk.submitted[f"{who} signed in"]["final_url"] == f"{assessment}/queue"
    rid = walk.report_id
    for name in ("assigned first", "assigned second"):
        assert walk.submitted[name]["final_url"] == f"{assessment}/reports/{rid}", walk.submitted[name]
    report_page = walk.checks["coordinator assigned second"]["text"]
    assert people["first"]["name"] in report_page
    assert people["second"]["name"] in report_page
    # The report's page says where its review stands (it said "Waiting for review" throughout).
    assert "Waiting for review · " in walk.checks["coordinator report"]["text"]
    assert "In review · " in report_page
    assert "Approved · " in walk.checks["coordinator report approved"]["text"]
    # A reviewer saw the other's review only after their own: the second's form page did not show
    # the first's comment-free review, their page after submitting shows both.
    assert "1 review(s) are in." in walk.checks["second review form round 1"]["text"]
    assert COMMENT in walk.checks["second reviewed round 1"]["text"]
    assert REVISED in walk.checks["first changes"]["text"]
    assert ANSWERS[0] in walk.checks["first changes"]["text"]
    history = walk.checks["coordinator history"]["text"]
    for name in (people["first"]["name"], people["second"]["name"], people["coordinator"]["name"]):
        assert name in history
    assert "Round 2" in history
    assert "Round 1" in history
    assert PLACE in walk.checks["student booked"]["text"]
    assert walk.submitted["student submitted"]["final_url"].startswith(f"{pipeline.intake_url}/students/")

