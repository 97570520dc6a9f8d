"""Seed synthetic demo data through the intake JSON API (names are invented: "Tova Exempel" ...).

Usage: python scripts/demo_data.py [INTAKE_URL]   (default http://127.0.0.1:8000)
Idempotent: every POST carries an Idempotency-Key derived from the demo student's index, so a
second run stores nothing new.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

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
    request = urllib.request.Request(
        base.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": key, "X-Correlation-ID": key},
        method="POST",
    )
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


def seed(base: str) -> list[str]:
    ids = []
    for index, (name, department, programme) in enumerate(STUDENTS):
        email = name.lower().replace(" ", ".").replace("å", "a").replace("ä", "a").replace("ö", "o") + "@example.org"
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


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    seeded = seed(url)
    print(f"seeded {len(seeded)} synthetic students via {url}")
