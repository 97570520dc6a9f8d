"""Issue 17's proof: a student and each member of staff, in English and in Swedish, sign in through
the real sign-in form and reach their work in one navigation, on pages in their language and in
Lund's time, with 0 axe-core WCAG 2.1 AA violations on every page they reach.

Real processes (the `pipeline` fixture on the embedded default: gunicorn-served apps, a Celery
worker and beat, redis-server, the SMTP sink scripts/test.sh starts), one headless Chromium
(Debian's `chromium`, npm's `puppeteer-core`) driven by tests/browser/role_walk.mjs, one browser
context per person. Staff type their password and a TOTP code (made here with pyotp when the
driver asks, so each code is fresh and used once); a student types their e-mail address and opens
the link from the mail the SMTP sink received. Each person's account has its language saved; the
browser asks for English, so a Swedish page proves the saved language is followed.

What is asserted, per person and language:
- the landing page per role (student → My CIM; assessor and coordinator → the assessment
  service's queue, across origins from the intake's sign-in form; administrator → accounts);
- every link of the staff menu opens (200) and every page reached has 0 violations and
  `<html lang>` of the person's language;
- times in Lund's zone, 24-hour (an account's creation time on the administrator's page);
- the activity form's country list in the language's order (Åland among the A's in English,
  after Z in Swedish);
- a coordinator's view of a student's My CIM offers none of the student's own buttons;
- the report form shows the department's requirements before submitting, and a PDF over the
  upload limit re-shows the form with the typed answers kept.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
import pytest
from babel.dates import format_datetime

from shared.clock import SystemClock
from shared.identity.models import Role, RoleGrant
from shared.identity.wiring import build_identity
from shared.web.workspace import STAFF_MENU
from tests.authkit import IDENTITY_KEY
from tests.e2e.conftest import Pipeline, wait_for
from tests.e2e.test_pages_accessibility import BROWSER_DIR, _browser_tools
from tests.e2e.test_sign_in_e2e import SmtpSink

LOCALES = ("en", "sv")
STAFF = (Role.ASSESSOR, Role.COORDINATOR, Role.ADMINISTRATOR)
PASSWORD = "a-long-synthetic-passphrase-17"
DAY_AND_TIME = "EEEE d MMMM y, HH:mm"
ANSWERS = ("What I learnt abroad, typed in the browser.", "How it changes my work.", "A wider view.")
STAFF_FORM = 'form[action$="/auth/staff"]'
LINK_FORM = 'form[action$="/auth/link"]'


def _seed(pipeline: Pipeline) -> dict[str, Any]:
    """A student with an activity (the coordinator's view of My CIM), and per language a student
    with an activity and no report yet (their own walk)."""
    ids: dict[str, Any] = {}
    for key, name, email in (("vera", "Vera Provdocka", "vera.walk@example.org"),
                             ("student-en", "Elin Exempel", "elin.walk@example.org"),
                             ("student-sv", "Sune Svensk", "sune.walk@example.org")):
        status, body = pipeline.intake("POST", "/students", {
            "name": name, "email": email, "university_id": f"{key[:2]}-{len(ids):04d}", "department": "SOCSW",
            "programme": "SSASK", "expected_end_term": "VT2028"})
        assert status == 201, body
        sid = body["student_id"]
        status, body = pipeline.intake("POST", f"/students/{sid}/activities", {
            "kind": "exchange", "title": f"Exchange term in Lyon ({key})", "organiser": "Université Lyon 2",
            "setting": "abroad", "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01"})
        assert status == 201, body
        ids[key] = {"student_id": sid, "name": name, "email": email}
    return ids


def _accounts(pipeline: Pipeline, ids: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per language: a student account and one account per staff role, each with the language
    saved; staff with a password and an enrolled TOTP secret."""
    import redis

    identity = build_identity(clock=SystemClock(), identity_key=IDENTITY_KEY,
                              db_url=pipeline.env["CIM_IDENTITY_DB_URL"],
                              redis=redis.Redis.from_url(pipeline.redis_url))
    people: dict[str, dict[str, Any]] = {}
    try:
        for locale in LOCALES:
            student = ids[f"student-{locale}"]
            account = identity.accounts.create_account(student["name"], student["email"],
                                                       student_id=student["student_id"],
                                                       grants=[RoleGrant(Role.STUDENT, "SOCSW")])
            identity.accounts.set_locale(account.id, locale)
            people[f"student-{locale}"] = {**student, "account_id": account.id}
            for role in STAFF:
                email = f"{role.value}.{locale}@example.org"
                department = None if role is Role.ADMINISTRATOR else "SOCSW"
                account = identity.accounts.create_account(f"Synthetic {role.value} {locale}", email,
                                                           grants=[RoleGrant(role, department)])
                identity.accounts.set_locale(account.id, locale)
                identity.staff.set_password(account.id, PASSWORD)
                secret = identity.staff.enrol_totp(account.id, email).secret
                stored = identity.store.get_account(account.id)
                assert stored is not None
                people[f"{role.value}-{locale}"] = {"email": email, "secret": secret, "role": role,
                                                    "account_id": account.id, "created_at": stored.created_at}
    finally:
        identity.store.dispose()  # type: ignore[attr-defined]
    return people


def _journeys(pipeline: Pipeline, ids: dict[str, Any], people: dict[str, dict[str, Any]],
              big_pdf: Path) -> list[dict[str, Any]]:
    intake, assessment = pipeline.intake_url, pipeline.assessment_url
    journeys = []
    for locale in LOCALES:
        who = f"student-{locale}"
        sid = people[who]["student_id"]
        journeys.append({"name": who, "steps": [
            {"goto": f"{intake}/auth/sign-in"},
            {"check": f"{who} sign-in"},
            {"type": "#link-email", "text": people[who]["email"]},
            {"submit": f"{LINK_FORM} button[type=submit]", "name": f"{who} link asked"},
            {"check": f"{who} check-email"},
            {"goto_ask": {"mail_link": people[who]["email"]}},
            {"check": f"{who} confirm"},
            {"submit": "main form button[type=submit]", "name": f"{who} landing"},
            {"check": f"{who} my-cim"},
            {"goto": f"{intake}/students/{sid}/my-data"},
            {"check": f"{who} my-data"},
            {"goto": f"{intake}/students/{sid}/activities/new"},
            {"check": f"{who} activity-new"},
            {"goto": f"{intake}/students/{sid}/report"},
            {"check": f"{who} report"},
            *({"type": f"#answer_{i}", "text": text} for i, text in enumerate(ANSWERS)),
            {"click": 'input[name="activities"]'},
            {"upload": "#attachment", "file": str(big_pdf)},
            {"submit": "main form button[type=submit]", "name": f"{who} report too large"},
            {"check": f"{who} report too large"},
        ]})
        for role in STAFF:
            who = f"{role.value}-{locale}"
            steps: list[dict[str, Any]] = [
                {"goto": f"{intake}/auth/sign-in"},
                {"type": "#staff-email", "text": people[who]["email"]},
                {"type": "#staff-password", "text": PASSWORD},
                {"type": "#staff-code", "ask": {"totp": who}},
                {"submit": f"{STAFF_FORM} button[type=submit]", "name": f"{who} landing"},
                {"check": f"{who} landing"},
                {"menu": f"{who} menu", "origin": assessment},
            ]
            if role is Role.COORDINATOR:
                steps += [{"goto": f"{intake}/students/{ids['vera']['student_id']}"},
                          {"check": f"{who} staff-my-cim"}]
            journeys.append({"name": who, "steps": steps})
    return journeys


def _walk(plan: dict[str, Any], people: dict[str, dict[str, Any]], smtp: SmtpSink,
          log: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Run the driver, answering its questions; the checks and submissions by name, and errors."""
    checks: dict[str, dict[str, Any]] = {}
    submitted: dict[str, dict[str, Any]] = {}
    errors: list[dict[str, Any]] = []
    with log.open("w") as stderr:  # the driver logs each step there
        driver = subprocess.Popen(["node", str(BROWSER_DIR / "role_walk.mjs")], cwd=BROWSER_DIR, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, bufsize=1)
        assert driver.stdin is not None
        assert driver.stdout is not None
        try:
            driver.stdin.write(json.dumps(plan) + "\n")
            driver.stdin.flush()
            for line in driver.stdout:
                message = json.loads(line)
                if "ask" in message:
                    question = message["ask"]
                    if "totp" in question:  # a fresh code of this person's own secret, used once
                        value = pyotp.TOTP(people[question["totp"]]["secret"]).now()
                    else:
                        value = _mailed_link(smtp, question["mail_link"])
                    driver.stdin.write(json.dumps({"value": value}) + "\n")
                    driver.stdin.flush()
                elif "check" in message:
                    checks[message["check"]] = message
                elif "submitted" in message:
                    submitted[message["submitted"]] = message
                else:
                    errors.append(message)
            assert driver.wait(timeout=60) == 0, log.read_text()
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    return checks, submitted, errors


def _mailed_link(smtp: SmtpSink, email: str) -> str:
    import re

    mail = smtp.wait_for(email, timeout=30)
    body = mail.get_body(("plain",))
    assert body is not None
    found = re.search(r"https?://\S+/auth/link/\S+", body.get_content())
    assert found, body.get_content()
    return found.group(0)


@pytest.fixture
def upload_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """A small upload limit for the apps the pipeline starts (requested before it), so the
    oversized PDF stays small."""
    limit = 200_000
    monkeypatch.setenv("CIM_MAX_UPLOAD_BYTES", str(limit))
    return limit


@pytest.fixture
def smtp_sink() -> SmtpSink:
    port, directory = os.environ.get("CIM_TEST_SMTP_PORT"), os.environ.get("CIM_TEST_SMTP_DIR")
    if not port or not directory:
        pytest.skip("CIM_TEST_SMTP_PORT and CIM_TEST_SMTP_DIR are needed (scripts/test.sh starts the sink)")
    return SmtpSink(int(port), Path(directory))


def _menu_paths(role: Role) -> set[str]:
    return {item.path for item in STAFF_MENU if role in item.roles}


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_each_role_walks_to_its_work_in_its_language(upload_limit: int, smtp_sink: SmtpSink,
                                                     pipeline: Pipeline, tmp_path: Path) -> None:
    chromium, _script = _browser_tools()
    ids = _seed(pipeline)
    people = _accounts(pipeline, ids)
    big_pdf = tmp_path / "too-large.pdf"
    big_pdf.write_bytes(b"%PDF-1.4\n" + b"0" * (upload_limit + 1024) + b"\n%%EOF\n")
    shots = Path(os.environ.get("CIM_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    plan = {"chromium": chromium, "screenshots": str(shots),
            "journeys": _journeys(pipeline, ids, people, big_pdf)}
    # The coordinator's view of Vera's page needs her activity projected nowhere: My CIM reads the
    # intake itself. The queue is empty for now, which is still the queue.
    wait_for(lambda: pipeline.intake_head() > 0, 10, "the intake's events")
    checks, submitted, errors = _walk(plan, people, smtp_sink, shots / "driver.log")
    assert not errors, errors

    problems: list[str] = []
    for name, result in checks.items():
        locale = name.split(" ")[0].rsplit("-", 1)[1]
        expected_lang = "en" if name.endswith((" sign-in", " check-email", " confirm")) else locale
        expected_status = 422 if name.endswith(" report too large") else 200
        if result["status"] != expected_status:
            problems.append(f"{name}: HTTP {result['status']} (expected {expected_status}) at {result['final_url']}")
        if result["lang"] != expected_lang:
            problems.append(f"{name}: <html lang={result['lang']!r}> (expected {expected_lang!r})")
        for violation in result["violations"]:
            problems.append(f"{name}: {violation['id']} ({violation['impact']}): {violation['help']} "
                            f"at {violation['nodes'][:3]}")
    assert not problems, "\n".join(problems)

    intake, assessment = pipeline.intake_url, pipeline.assessment_url
    for locale in LOCALES:
        # The student: the mailed link signs in and lands on My CIM in one navigation.
        who = f"student-{locale}"
        sid = people[who]["student_id"]
        landing = submitted[f"{who} landing"]
        assert landing["final_url"] == f"{intake}/students/{sid}", landing
        assert len(landing["chain"]) == 1, landing  # the POST's 303, then the page
        assert people[who]["name"] in checks[f"{who} my-cim"]["text"]
        # My data reads as words: a term's name, not its code; the export one click away.
        my_data = checks[f"{who} my-data"]["text"]
        assert ("Spring term 2028" if locale == "en" else "Vårterminen 2028") in my_data, my_data[:2000]
        assert "VT2028" not in my_data
        # The countries in the language's order.
        countries = checks[f"{who} activity-new"]["selects"]["country_code"]
        aland = next(i for i, name in enumerate(countries) if name.startswith("Åland"))
        if locale == "en":
            assert countries[aland - 1] < "B", countries[aland - 1:aland + 2]
            assert countries[aland + 1] < "B", countries[aland - 1:aland + 2]
            assert countries.index("Zimbabwe") > aland
        else:
            z_names = [i for i, name in enumerate(countries) if name.startswith("Z")]
            assert aland > max(z_names), (countries[aland - 2:aland + 2])
            assert any(name.startswith("Ö") for name in countries[aland + 1:])
        # The requirements before submitting; a too-large PDF keeps every typed answer.
        assert "requirements-heading" in checks[f"{who} report"]["ids"]
        too_large = checks[f"{who} report too large"]
        assert too_large["final_url"] == f"{intake}/students/{sid}/report", too_large["final_url"]
        assert [too_large["textareas"][f"answer_{i}"] for i in range(len(ANSWERS))] == list(ANSWERS)
        assert "attachment-error" in too_large["ids"], too_large["ids"]

        for role in STAFF:
            who = f"{role.value}-{locale}"
            # One navigation from the intake's sign-in form to the work, across origins.
            home = "/admin/accounts" if role is Role.ADMINISTRATOR else "/queue"
            landing = submitted[f"{who} landing"]
            assert landing["final_url"] == f"{assessment}{home}", landing
            assert landing["chain"] == [f"{intake}/auth/staff"], landing
            # Every link of the staff menu, and only those the role may open, reached.
            menu = {name.split(" ", 2)[2] for name in checks if name.startswith(f"{who} menu ")}
            assert menu == _menu_paths(role), (who, menu)
        # Lund's time, 24-hour, in the page's language: an account's creation on the administrator's page.
        created: datetime = people[f"administrator-{locale}"]["created_at"]
        text = checks[f"administrator-{locale} landing"]["text"]
        lund = format_datetime(created, DAY_AND_TIME, tzinfo=ZoneInfo("Europe/Stockholm"), locale=locale)
        utc = format_datetime(created, DAY_AND_TIME, tzinfo=ZoneInfo("UTC"), locale=locale)
        assert lund in text, (lund, text[:2000])
        assert utc not in text or utc == lund
        # A coordinator looking at a student's My CIM: the student's name, none of their buttons.
        staff_view = checks[f"coordinator-{locale} staff-my-cim"]
        assert ids["vera"]["name"] in staff_view["text"]
        forbidden = {"en": ("Log an activity", "Withdraw"), "sv": ("Registrera en aktivitet", "Återkalla")}[locale]
        offered = [c for c in staff_view["controls"] if c.startswith(forbidden)]
        assert not offered, offered
