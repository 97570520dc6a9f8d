"""Seed synthetic demo data (names are invented: "Tova Exempel" ...).

Usage: CIM_DEMO_TOKEN=<token> python scripts/demo_data.py [INTAKE_URL] [--accounts FILE]
    (default http://127.0.0.1:8000)

* The students go in through the intake JSON API, as an integration would, with the API token in
  CIM_DEMO_TOKEN (scopes intake:register and intake:write; `make run` mints one).
  Idempotent: every POST carries an Idempotency-Key derived from the demo student's index, so a
  second run stores nothing new.
* Each demo student gets an account (student role in their department), so a sign-in link can be
  asked for on the sign-in page; the mail lands in the local SMTP sink (var/mail/new).
* Development only: demo staff (a coordinator and an assessor in SOCSW, an administrator) with a
  random password and a TOTP secret, written to FILE (mode 600) for the terminal summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STAFF = [
    ("Cora Samordnare", "coordinator@example.org", "coordinator", "SOCSW"),
    ("Bo Bedömare", "assessor@example.org", "assessor", "SOCSW"),
    ("Siv Granskare", "assessor2@example.org", "assessor", "SOCSW"),  # reports need two reviews
    ("Ada Administratör", "admin@example.org", "administrator", None),
]

STUDENTS = [
    ("Tova Exempel", "SOCSW", "SSASK"),
    ("Måns Provsson", "SOCSW", "SASWM"),
    ("Ada Testdotter", "MED", "MALAK"),
    ("Nils Demosson", "MED", "VASJU"),
    ("Elsa Påhittad", "SOCSW", "SSASK"),
]

ACTIVITIES = {
    "SOCSW": [
        {"kind": "exchange", "title": "Exchange term in Lyon", "organiser": "Université Lumière Lyon 2",
         "setting": "abroad", "country_code": "FR", "start_date": "2025-01-13", "end_date": "2025-06-06"},
        {"kind": "seminar", "title": "Webinar on migration and welfare", "organiser": "Nordic Social Work Network",
         "setting": "digital", "country_code": None, "start_date": "2025-09-10", "end_date": "2025-09-10",
         "hours": 3},
    ],
    "MED": [
        {"kind": "clinical-elective-abroad", "title": "Clinical elective in Kampala",
         "organiser": "Makerere University", "setting": "abroad", "country_code": "UG",
         "start_date": "2025-02-03", "end_date": "2025-03-14"},
        {"kind": "seminar", "title": "Global surgery seminar", "organiser": "Lund University",
         "setting": "at_home", "country_code": "SE", "start_date": "2025-10-01", "end_date": "2025-10-01",
         "hours": 4},
    ],
}

ANSWERS = {
    "learning": "I learnt to work with colleagues trained in another system.",
    "profession": "It changed how I see my future profession.",
    "perspective": "I now question what I took for granted at home.",
}


def post(base: str, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Idempotency-Key": key, "X-Correlation-ID": key}
    token = os.environ.get("CIM_DEMO_TOKEN", "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base.rstrip("/") + path, data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{path}: {exc.code} {exc.read().decode(errors='replace')}") from None


def questions(department: str) -> list[str]:
    """The department's reflection question codes (from the catalogue in config/departments.toml)."""
    import tomllib
    from pathlib import Path

    raw = tomllib.loads((Path(__file__).resolve().parent.parent / "config" / "departments.toml").read_text())
    return [q["code"] for q in raw["departments"][department]["reflection_questions"]]


def demo_email(name: str) -> str:
    return name.lower().replace(" ", ".").replace("å", "a").replace("ä", "a").replace("ö", "o") + "@example.org"


def seed(base: str) -> list[str]:
    ids = []
    for index, (name, department, programme) in enumerate(STUDENTS):
        email = demo_email(name)
        sid = post(base, "/api/v1/students", {
            "name": name, "email": email, "university_id": f"demo-{index:04d}", "department": department,
            "programme": programme, "expected_end_term": "VT2027",
        }, f"demo-{index}-register")["student_id"]
        ids.append(sid)
        activity_ids = [
            post(base, f"/api/v1/students/{sid}/activities", activity, f"demo-{index}-activity-{n}")["activity_id"]
            for n, activity in enumerate(ACTIVITIES[department])
        ]
        if index % 2 == 0:  # every other demo student has submitted the report
            answers = {code: ANSWERS.get(code, "A thoughtful answer.") for code in questions(department)}
            post(base, f"/api/v1/students/{sid}/reports", {"answers": answers, "activity_ids": activity_ids},
                 f"demo-{index}-report")
    return ids


def demo_accounts(student_ids: list[str], accounts_file: Path) -> None:
    """Student accounts for the seeded students, and demo staff with password + TOTP (written to
    `accounts_file` for the summary). Refuses outside development."""
    from shared.clock import SystemClock
    from shared.config import Settings
    from shared.identity.errors import IdentityConflict
    from shared.identity.models import Role, RoleGrant
    from shared.web.auth import identity_from_settings

    settings = Settings.from_env()
    if settings.env != "development":
        raise SystemExit("demo accounts are for development only (CIM_ENV=development)")
    ident = identity_from_settings(settings, SystemClock())
    for (name, department, _programme), student_id in zip(STUDENTS, student_ids, strict=True):
        if ident.accounts.account_for_student(student_id) is None:
            with contextlib.suppress(IdentityConflict):  # the address already has an account
                ident.accounts.create_account(name, demo_email(name), student_id=student_id,
                                              grants=[RoleGrant(Role.STUDENT, department)])
    lines = ["Demo staff (synthetic; development only). Sign in at /auth/sign-in, 'Staff'.",
             "A current code: .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"", ""]
    for name, email, role, department in STAFF:
        if ident.store.find_account_by_email(email) is not None:
            continue
        account = ident.accounts.create_account(name, email, grants=[RoleGrant(Role(role), department)])
        password = "demo-" + secrets.token_urlsafe(9)
        ident.staff.set_password(account.id, password)
        totp = ident.staff.enrol_totp(account.id, email)
        where = f" in {department}" if department else ""
        lines.append(f"  {role}{where}: {email}  password {password}  TOTP secret {totp.secret}")
    if len(lines) > 3:
        accounts_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(accounts_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write("\n".join(lines) + "\n")
    student_emails = ", ".join(demo_email(n) for n, _d, _p in STUDENTS[:2])
    print(f"demo student accounts: e.g. {student_emails} (sign in with an e-mail link)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--accounts")]
    accounts_arg = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--accounts=")), "")
    url = args[0] if args else "http://127.0.0.1:8000"
    seeded = seed(url)
    print(f"seeded {len(seeded)} synthetic students via {url}")
    if accounts_arg:
        demo_accounts(seeded, Path(accounts_arg))
