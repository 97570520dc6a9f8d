"""Every page a person reaches, in English and Swedish, has 0 axe-core WCAG 2.1 AA violations.

Real processes (the `pipeline` fixture on the embedded default: gunicorn-served apps, a Celery
worker and beat, redis-server), a real browser (Debian's headless `chromium` driven by npm's
`puppeteer-core`, tests/browser/walk.mjs) and axe-core injected into each loaded page. People are
signed in by a real server-side session in the same Redis the apps use; the sign-in pages
themselves are visited signed out. `scripts/test.sh` installs chromium and the node packages;
run by hand without them, the test skips and says why.

A page added to the product joins `pages_of` below. Screenshots of every page land in the test's
tmp directory (`screenshots/`), or in CIM_SCREENSHOTS_DIR when it is set, for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.clock import SystemClock
from shared.identity.models import Role, RoleGrant
from shared.identity.wiring import build_identity
from tests.authkit import IDENTITY_KEY, SESSION_COOKIE
from tests.e2e.conftest import Pipeline, http, wait_for

ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = ROOT / "tests" / "browser"
LOCALES = ("en", "sv")


@dataclass(frozen=True)
class Visit:
    name: str
    url: str
    session: str | None = None  # a session id, or None for a signed-out visit
    status: int = 200


def _browser_tools() -> tuple[str, Path]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    script = BROWSER_DIR / "walk.mjs"
    if not chromium or not shutil.which("node") or not (BROWSER_DIR / "node_modules" / "axe-core").is_dir():
        if os.environ.get("CI"):
            pytest.fail("chromium, node or tests/browser/node_modules missing (scripts/test.sh installs them)")
        pytest.skip("chromium, node and `npm ci --prefix tests/browser` are needed (scripts/test.sh installs them)")
    return chromium, script


def _run_walk(pages: list[dict[str, Any]], screenshots: Path | None) -> list[dict[str, Any]]:
    """Run tests/browser/walk.mjs over `pages` (name, url, cookies); one result per page."""
    chromium, script = _browser_tools()
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    plan = {"chromium": chromium, "screenshots": screenshots and str(screenshots), "pages": pages}
    done = subprocess.run(["node", str(script)], input=json.dumps(plan), capture_output=True, text=True,
                          cwd=BROWSER_DIR, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _walk(visits: list[Visit], pipeline: Pipeline, screenshots: Path) -> list[dict[str, Any]]:
    def cookies(visit: Visit) -> list[dict[str, Any]]:
        if visit.session is None:
            return []
        return [{"name": SESSION_COOKIE, "value": visit.session, "url": base, "secure": True, "httpOnly": True,
                 "sameSite": "Lax", "path": "/"}
                for base in (pipeline.intake_url, pipeline.assessment_url)]

    return _run_walk([{"name": v.name, "url": v.url, "cookies": cookies(v)} for v in visits], screenshots)


def test_the_walk_reports_a_violation_when_a_page_has_one(tmp_path: Path) -> None:
    """The harness can fail: an input without a label and low-contrast text are reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><html lang="en"><head><title>Bad</title></head><body><main>'
                    '<p style="color:#bbb;background:#fff">Faint text</p><form><input type="text" name="q">'
                    "</form></main></body></html>", encoding="utf-8")
    [result] = _run_walk([{"name": "bad", "url": page.as_uri(), "cookies": []}], None)
    assert {v["id"] for v in result["violations"]} >= {"label", "color-contrast"}


def _seed(pipeline: Pipeline) -> dict[str, str]:
    """One student with two activities and a submitted report, and one without a report."""
    status, body = pipeline.intake("POST", "/students", {
        "name": "Vera Provdocka", "email": "vera.provdocka@example.org", "university_id": "vp-0001",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"})
    assert status == 201, body
    sid = body["student_id"]
    activity_ids = []
    for activity in (
        {"kind": "exchange", "title": "Exchange term in Lyon", "organiser": "Université Lyon 2",
         "setting": "abroad", "country_code": "FR", "start_date": "2025-01-10", "end_date": "2025-06-01"},
        {"kind": "seminar", "title": "Webinar on social resilience", "organiser": "Lund University",
         "setting": "digital", "start_date": "2025-09-10", "end_date": "2025-09-10"},
    ):
        status, body = pipeline.intake("POST", f"/students/{sid}/activities", activity)
        assert status == 201, body
        activity_ids.append(body["activity_id"])
    # An activity of a kind the catalogue lacks, awaiting the assessor group's ruling (logged before
    # the report, so it is projected once the report is in the queue).
    status, body = pipeline.intake("POST", f"/students/{sid}/activities", {
        "kind": "other", "title": "Model UN in Geneva", "organiser": "A student society", "setting": "abroad",
        "country_code": "CH", "start_date": "2025-03-01", "end_date": "2025-03-05"})
    assert status == 201, body
    other_activity = body["activity_id"]
    answers = {"learning": "Comparing two welfare systems.", "profession": "It changes how I listen.",
               "perspective": "Wider than before."}
    status, body = pipeline.intake("POST", f"/students/{sid}/reports",
                                   {"answers": answers, "activity_ids": activity_ids})
    assert status == 201, body
    report_id = body["report_id"]
    status, body = pipeline.intake("POST", "/students", {
        "name": "Ossian Testlund", "email": "ossian.testlund@example.org", "university_id": "ot-0002",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "HT2027"})
    assert status == 201, body
    other = body["student_id"]
    # Ossian's report will have a revision requested (the resubmit page); Nils has none yet (the
    # report form, which a student whose report waits is not offered).
    status, body = pipeline.intake("POST", f"/students/{other}/activities", {
        "kind": "summer-school", "title": "Summer school in Oslo", "organiser": "A Nordic university",
        "setting": "abroad", "country_code": "NO", "start_date": "2025-06-01", "end_date": "2025-06-14"})
    assert status == 201, body
    status, body = pipeline.intake("POST", f"/students/{other}/reports",
                                   {"answers": answers, "activity_ids": [body["activity_id"]]})
    assert status == 201, body
    other_report = body["report_id"]
    status, body = pipeline.intake("POST", "/students", {
        "name": "Nils Provström", "email": "nils.provstrom@example.org", "university_id": "np-0003",
        "department": "SOCSW", "programme": "SSASK", "expected_end_term": "HT2027"})
    assert status == 201, body
    wait_for(lambda: pipeline.assessment("/review-queue")[1].get("count") == 2, 30, "the reports in the queue")
    return {"student": sid, "activity": activity_ids[0], "report": report_id, "other_student": other,
            "other_activity": other_activity, "other_report": other_report, "new_student": body["student_id"],
            "first_answers": json.dumps(answers), "first_activities": json.dumps(activity_ids)}


def _sessions(pipeline: Pipeline, ids: dict[str, str]) -> dict[str, str]:
    """Accounts for each kind of person, each with a live session in the apps' Redis."""
    student_id = ids["student"]
    import redis

    identity = build_identity(clock=SystemClock(), identity_key=IDENTITY_KEY,
                              db_url=pipeline.env["CIM_IDENTITY_DB_URL"],
                              redis=redis.Redis.from_url(pipeline.redis_url))
    try:
        accounts = {
            "student": identity.accounts.create_account(
                "Vera Provdocka", "vera.provdocka@example.org", student_id=student_id,
                grants=[RoleGrant(Role.STUDENT, "SOCSW")]),
            "coordinator": identity.accounts.create_account(
                "Cora Koordinator", "cora@example.org", grants=[RoleGrant(Role.COORDINATOR, "SOCSW")]),
            "assessor": identity.accounts.create_account(
                "Assar Bedömare", "assar@example.org", grants=[RoleGrant(Role.ASSESSOR, "SOCSW")]),
            "administrator": identity.accounts.create_account(
                "Ada Administratör", "ada@example.org", grants=[RoleGrant(Role.ADMINISTRATOR, None)]),
            "other_student": identity.accounts.create_account(
                "Ossian Testlund", "ossian.testlund@example.org", student_id=ids["other_student"],
                grants=[RoleGrant(Role.STUDENT, "SOCSW")]),
            "new_student": identity.accounts.create_account(
                "Nils Provström", "nils.provstrom@example.org", student_id=ids["new_student"],
                grants=[RoleGrant(Role.STUDENT, "SOCSW")]),
        }
        sessions = {who: identity.sessions.create(account.id, auth_method="test") for who, account in accounts.items()}
        ids["coordinator_account"] = accounts["coordinator"].id  # the administrators' account page
        _revision_rounds(pipeline, ids, identity, accounts["coordinator"].id, accounts["assessor"].id,
                         sessions["other_student"])
        return sessions
    finally:
        identity.store.dispose()  # type: ignore[attr-defined]


def _revision_rounds(pipeline: Pipeline, ids: dict[str, str], identity: Any, coordinator_id: str,
                     assessor_id: str, other_student: str) -> None:
    """A revision requested of both reports; Vera resubmits hers (round 2: the changes page),
    Ossian's waits for his revision (the resubmit page)."""
    scopes = ["assessment:read", "assessment:review"]
    auth = {who: {"Authorization": "Bearer " + identity.api_tokens.create(who, scopes, account_id=account).token}
            for who, account in (("coordinator", coordinator_id), ("assessor", assessor_id))}
    verdicts = dict.fromkeys(("activities_meet_requirements", "reflection_compares_contexts",
                              "reflection_relates_to_profession", "report_complete"), "met")
    for report in (ids["report"], ids["other_report"]):
        api = f"{pipeline.assessment_url}/api/v1/reports/{report}"
        for path, body, who in (
            ("assessors", {"assessor_account_id": assessor_id}, "coordinator"),
            ("reviews", {"verdicts": verdicts, "recommendation": "revise"}, "assessor"),
            ("decision", {"outcome": "revise", "summary": "Compare the two welfare systems."}, "coordinator"),
        ):
            status, answer = http("POST", f"{api}/{path}", body, auth[who])
            assert status == 201, answer
    revised = {**json.loads(ids["first_answers"]), "learning": "Comparing two welfare systems, now in detail."}
    resubmission = {"answers": revised, "activity_ids": json.loads(ids["first_activities"])[:1]}
    wait_for(lambda: pipeline.intake("POST", f"/students/{ids['student']}/reports/{ids['report']}/resubmission",
                                     resubmission)[0] == 201, 30, "the revision requested, known to the intake")
    wait_for(lambda: http("GET", f"{pipeline.assessment_url}/api/v1/reports/{ids['report']}/reviews",
                          headers=auth["coordinator"])[1].get("current_round") == 2, 30, "round 2 in the assessment")
    my_cim = f"{pipeline.intake_url}/students/{ids['other_student']}"

    def offered() -> bool:
        request = urllib.request.Request(my_cim, headers={"Cookie": f"{SESSION_COOKIE}={other_student}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return "/resubmit" in response.read().decode()

    wait_for(offered, 30, "Revise and resubmit on Ossian's My CIM")


def pages_of(pipeline: Pipeline, ids: dict[str, str], sessions: dict[str, str]) -> list[Visit]:
    """Every page of both services, as the person who reaches it."""
    intake, assessment = pipeline.intake_url, pipeline.assessment_url
    sid, aid, rid = ids["student"], ids["activity"], ids["report"]
    student, coordinator = sessions["student"], sessions["coordinator"]
    return [
        Visit("home", f"{intake}/"),
        Visit("sign-in", f"{intake}/auth/sign-in"),
        Visit("check-email", f"{intake}/auth/check-email"),
        Visit("register", f"{intake}/register", student),
        Visit("not-found", f"{intake}/no-such-page", status=404),
        Visit("my-cim", f"{intake}/students/{sid}", student),
        Visit("activity-new", f"{intake}/students/{sid}/activities/new", student),
        Visit("activity-edit", f"{intake}/students/{sid}/activities/{aid}/edit", student),
        Visit("activity-withdraw", f"{intake}/students/{sid}/activities/{aid}/withdraw", student),
        Visit("report", f"{intake}/students/{ids['new_student']}/report", sessions["new_student"]),
        Visit("resubmit", f"{intake}/students/{ids['other_student']}/reports/{ids['other_report']}/resubmit",
              sessions["other_student"]),
        Visit("studies-completed", f"{intake}/students/{sid}/studies-completed", student),
        Visit("withdraw-registration", f"{intake}/students/{sid}/withdraw", student),
        Visit("my-data", f"{intake}/students/{sid}/my-data", student),
        Visit("account", f"{intake}/auth/account", student),
        Visit("review-queue", f"{assessment}/review-queue", coordinator),
        Visit("review-queue-assessor", f"{assessment}/review-queue", sessions["assessor"]),
        Visit("review-report", f"{assessment}/reports/{rid}", coordinator),
        Visit("review-reviews", f"{assessment}/reports/{rid}/reviews", coordinator),
        Visit("review-changes", f"{assessment}/reports/{rid}/changes", coordinator),
        Visit("staff-my-cim", f"{intake}/students/{sid}", coordinator),
        Visit("staff-my-data", f"{assessment}/students/{sid}/my-data", coordinator),
        Visit("assessment-not-found", f"{assessment}/reports/00000000-0000-4000-8000-000000000000",
              coordinator, status=404),
        Visit("administrator-account", f"{intake}/auth/account", sessions["administrator"]),
        Visit("rulings-awaited", f"{assessment}/rulings", coordinator),
        Visit("ruling-form", f"{assessment}/rulings/{ids['other_activity']}", coordinator),
        Visit("precedents", f"{assessment}/precedents", sessions["assessor"]),
        Visit("presentations", f"{assessment}/presentations", coordinator),
        Visit("student-presentation", f"{assessment}/students/{sid}/presentation", student),
        Visit("queue-table", f"{assessment}/queue?sort=student", coordinator),
        Visit("queue-bad-filter", f"{assessment}/queue?waiting_over=x", coordinator, status=400),
        Visit("agenda", f"{assessment}/agenda", coordinator),
        Visit("rule-sets", f"{assessment}/rules", sessions["administrator"]),
        Visit("rule-set", f"{assessment}/rules/SOCSW", coordinator),
        Visit("rule-set-classes", f"{assessment}/rules/HT", sessions["administrator"]),
        Visit("deadlines", f"{assessment}/deadlines?sort=deadline", coordinator),
        Visit("deadlines-what-if", f"{assessment}/deadlines/what-if?day=2099-01-01", coordinator, status=422),
        Visit("student-deadline", f"{assessment}/students/{sid}/deadline", student),
        Visit("staff-student-deadline", f"{assessment}/students/{sid}/deadline", coordinator),
        Visit("outbox", f"{assessment}/outbox", sessions["administrator"]),
        Visit("outbox-coordinator", f"{assessment}/outbox?status=failed", coordinator),
        Visit("mail-templates", f"{assessment}/mail-templates", coordinator),
        # Diplomas (issue 14): the student's own, the staff view with its forms, the department's
        # list, and the public verification page (an unknown code: its 404 page).
        Visit("student-diploma", f"{assessment}/students/{sid}/diploma", student),
        Visit("staff-student-diploma", f"{assessment}/students/{sid}/diploma", coordinator),
        Visit("department-diplomas", f"{assessment}/departments/SOCSW/diplomas", coordinator),
        Visit("diplomas-home", f"{assessment}/diplomas", sessions["administrator"], status=404),
        Visit("verify-unknown", f"{assessment}/verify/AAAA-BBBB-CCCC-DDDD", status=404),
        Visit("admin-accounts", f"{assessment}/admin/accounts?who=all", sessions["administrator"]),
        Visit("admin-account", f"{assessment}/admin/accounts/{ids['coordinator_account']}",
              sessions["administrator"]),
        Visit("admin-tokens", f"{assessment}/admin/tokens", sessions["administrator"]),
        # The page a staff set-up link opens (any token shows its button; the form is a POST's answer,
        # checked for labels and errors tied to fields in tests/unit/test_staff_setup.py).
        Visit("staff-setup-link", f"{assessment}/auth/setup/v1.sample-link"),
        # CIM in numbers (issue 15): the charts and tables, and the date re-shown with its error.
        Visit("statistics", f"{assessment}/statistics", coordinator),
        Visit("statistics-all", f"{assessment}/statistics?as_of=2030-01-01", sessions["administrator"]),
        Visit("statistics-bad-date", f"{assessment}/statistics?as_of=2026-13-45", coordinator, status=400),
        Visit("statistics-appendix-bad-period", f"{assessment}/statistics/appendix.pdf?from=2026&to=2024",
              coordinator, status=400),
        Visit("registration-void", f"{assessment}/students/{sid}/registration-void", coordinator),
    ]


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_every_page_in_both_languages_has_no_wcag_violations(pipeline: Pipeline, tmp_path: Path) -> None:
    _browser_tools()
    ids = _seed(pipeline)
    sessions = _sessions(pipeline, ids)
    visits = []
    for locale in LOCALES:
        for visit in pages_of(pipeline, ids, sessions):
            sep = "&" if "?" in visit.url else "?"
            visits.append(Visit(f"{visit.name}-{locale}", f"{visit.url}{sep}lang={locale}", visit.session,
                                visit.status))
    shots = Path(os.environ.get("CIM_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    results = {r["name"]: r for r in _walk(visits, pipeline, shots)}

    problems = []
    for visit in visits:
        result = results.get(visit.name)
        if result is None or "error" in result:
            problems.append(f"{visit.name}: not loaded ({result and result.get('error')})")
            continue
        locale = visit.name.rsplit("-", 1)[1]
        if result["status"] != visit.status:
            problems.append(f"{visit.name}: HTTP {result['status']} (expected {visit.status}) at {result['final_url']}")
        if result["lang"] != locale:
            problems.append(f"{visit.name}: <html lang={result['lang']!r}> (expected {locale!r})")
        for violation in result["violations"]:
            problems.append(f"{visit.name}: {violation['id']} ({violation['impact']}): {violation['help']} "
                            f"at {violation['nodes'][:3]}")
    assert not problems, "\n".join(problems)
    # The walk really reached the signed-in pages: the student's name on their page, the report in the queue.
    assert "Vera Provdocka" in results["my-cim-en"]["text"]
    assert "Vera Provdocka" in results["review-queue-en"]["text"]
    # ... and the pages of revision rounds: the form to resubmit, and both rounds side by side.
    assert "Compare the two welfare systems." in results["resubmit-en"]["text"]
    assert "Comparing two welfare systems, now in detail." in results["review-changes-en"]["text"]



def test_a_department_s_themed_pages_have_no_violations(tmp_path: Path) -> None:
    """Issue 17's visual identity: a department's configured colours, names and logo (as a student's
    My CIM and a re-shown activity form render them) keep 0 axe violations in the real browser.
    The pages are rendered by the intake app and opened as files, their stylesheets and logo
    beside them (no servers needed)."""
    import re

    from tests.unit.test_branding import THEMED, intake_app, write_branding
    from tests.unit.test_pages import BERLIN, register, send

    themed = THEMED + '\n[global.colours]\nlink = "#6b2c91"\nbutton = "#1f4e79"\n'
    app = intake_app(tmp_path, write_branding(tmp_path / "config", themed))
    client = app.test_client()
    student_id = register(client)
    files = tmp_path / "themed"
    files.mkdir()
    shutil.copy(ROOT / "shared" / "static" / "cim.css", files / "cim.css")
    pages = []
    for lang in LOCALES:
        client.get(f"/?lang={lang}")
        refused = send(client, f"/students/{student_id}/activities/new",
                       {**BERLIN, "kind": "seminar", "setting": "at_home", "country_code": "DE"})
        assert refused.status_code == 422
        for name, html in (("my-cim", client.get(f"/students/{student_id}").text), ("activity-refused", refused.text)):
            theme = re.search(r'href="(/look/SOCSW/theme\.css\?v=\w+)"', html)
            logo = re.search(r'src="(/look/SOCSW/logo\?v=\w+)"', html)
            assert theme, name
            assert logo, name
            (files / "theme.css").write_bytes(client.get(theme.group(1)).data)
            (files / "logo.png").write_bytes(client.get(logo.group(1)).data)
            html = html.replace('href="/static/cim.css"', f'href="{(files / "cim.css").as_uri()}"')
            html = html.replace(theme.group(1), (files / "theme.css").as_uri())
            html = html.replace(logo.group(1), (files / "logo.png").as_uri())
            page = files / f"{name}-{lang}.html"
            page.write_text(html, encoding="utf-8")
            pages.append({"name": f"themed {name} ({lang})", "url": page.as_uri(), "cookies": []})
    results = _run_walk(pages, Path(os.environ.get("CIM_SCREENSHOTS_DIR") or tmp_path / "screenshots"))
    assert [(r["name"], r["violations"]) for r in results if r["violations"]] == []
    assert len(results) == len(pages)
