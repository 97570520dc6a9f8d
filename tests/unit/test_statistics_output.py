"""CIM in numbers, the output side: the page form that voids a registration and undoes a void,
faculty totals, and the PDF appendix (docs/statistics.md)."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from assessment_service import statistics as stats
from tests.unit.test_assessment_access import World, build_world


@pytest.fixture
def world(tmp_path: Any, clock: Any) -> World:
    from shared.config import Settings

    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    world = build_world(settings, clock)  # A, B in SOCSW and M in MED: registered, an activity, a report
    world.ctx.own_runner.catch_up()
    return world


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def _json(world: World, who: str = "coordinator", query: str = "") -> Any:
    return world.token(who, "assessment:statistics").get(f"/api/v1/statistics{query}").json


def test_a_coordinator_voids_on_a_page_and_undoes_it(world: World) -> None:
    world.app.config["WTF_CSRF_ENABLED"] = True
    b = world.students["B"]
    browser = world.browser("coordinator")
    url = f"/students/{b}/registration-void"
    page = browser.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="reason_code"' in html
    assert "Void the registration" in html
    csrf = _csrf(html)
    # no reason, not confirmed: the form again, naming both fields; nothing stored
    bad = browser.post(url, data={"csrf_token": csrf, "form_token": str(uuid.uuid4()), "reason_code": "nonsense"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert 'href="#reason_code"' in text
    assert 'href="#confirm"' in text
    assert world.ctx.store.read_stream(f"registration-void-{b}") == []
    # a forged CSRF token stores nothing
    forged = browser.post(url, data={"csrf_token": "forged", "form_token": str(uuid.uuid4()),
                                     "reason_code": "duplicate", "confirm": "y"})
    assert forged.status_code == 400
    assert world.ctx.store.read_stream(f"registration-void-{b}") == []
    done = browser.post(url, data={"csrf_token": csrf, "form_token": str(uuid.uuid4()),
                                   "reason_code": "duplicate", "confirm": "y"})
    assert done.status_code == 303
    shown = browser.get(url).get_data(as_text=True)
    assert "This registration is voided" in shown
    assert "Registered twice" in shown
    # voided meanwhile (another tab): the old form answers 409, plainly
    again = browser.post(url, data={"csrf_token": csrf, "form_token": str(uuid.uuid4()),
                                    "reason_code": "other", "confirm": "y"})
    assert again.status_code == 409
    assert "This registration is already voided." in again.get_data(as_text=True)
    world.ctx.own_runner.catch_up()
    assert _json(world)["totals"]["voided"] == 1
    assert _json(world)["totals"]["registrations"] == 1
    # undo: needs the confirmation, then counts the student back in
    undo = f"{url}/undo"
    assert browser.post(undo, data={"csrf_token": csrf, "form_token": str(uuid.uuid4())}).status_code == 422
    assert browser.post(undo, data={"csrf_token": csrf, "form_token": str(uuid.uuid4()),
                                    "confirm": "y"}).status_code == 303
    assert browser.post(undo, data={"csrf_token": csrf, "form_token": str(uuid.uuid4()),
                                    "confirm": "y"}).status_code == 409
    assert [e.type for e in world.ctx.store.read_stream(f"registration-void-{b}")] == [
        "RegistrationVoided", "RegistrationVoidUndone"]
    world.ctx.own_runner.catch_up()
    body = _json(world)
    assert body["totals"]["voided"] == 0
    assert body["totals"]["registrations"] == 2
    # in Swedish too
    sv = browser.get(url, headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert "Makulera registreringen" in sv


def test_only_the_departments_coordinator_reaches_the_void_form(world: World) -> None:
    b = world.students["B"]
    for who in ("other_coordinator", "administrator"):
        assert world.browser(who).get(f"/students/{b}/registration-void").status_code == 404, who
    for who in ("assigned", "student_B"):
        assert world.browser(who).get(f"/students/{b}/registration-void").status_code == 403, who
    assert world.browser("coordinator").get("/students/not-an-id/registration-void").status_code == 404
    assert world.browser("coordinator").get(
        f"/students/{uuid.uuid4()}/registration-void").status_code == 404
    deadline = world.browser("coordinator").get(f"/students/{b}/deadline").get_data(as_text=True)
    assert f"/students/{b}/registration-void" in deadline


def test_an_undone_void_counts_the_registration_in_from_its_date() -> None:
    sid = str(uuid.uuid4())
    facts = [stats.Fact(sid, "SOCSW", stats.REGISTERED, date(2024, 1, 10), 1),
             stats.Fact(sid, "SOCSW", stats.VOIDED, date(2024, 2, 1), 1),
             stats.Fact(sid, "SOCSW", stats.UNVOIDED, date(2024, 3, 1), 2)]
    assert stats.figures(facts, date(2024, 1, 31)).totals["registrations"] == 1
    during = stats.figures(facts, date(2024, 2, 15))
    assert (during.totals["registrations"], during.totals["voided"], during.active) == (0, 1, 0)
    after = stats.figures(facts, date(2024, 3, 1))
    assert (after.totals["registrations"], after.totals["voided"], after.active) == (1, 0, 1)
    again = [*facts, stats.Fact(sid, "SOCSW", stats.VOIDED, date(2024, 4, 1), 3)]
    assert stats.figures(again, date(2024, 4, 2)).totals["voided"] == 1


def test_faculty_totals_on_the_page_csv_and_json(world: World) -> None:
    import csv as csvlib
    import io

    body = _json(world, "administrator")
    faculties = {f["faculty"]["en"]: f for f in body["per_faculty"]}
    social = faculties["Faculty of Social Sciences"]
    assert "SOCSW" in social["departments"]
    assert "MED" not in social["departments"]
    assert social["registrations"] == 2
    assert social["active"] == 2
    assert faculties["Faculty of Medicine"]["registrations"] == 1
    assert sum(f["registrations"] for f in body["per_faculty"]) == body["totals"]["registrations"]
    # a coordinator's faculty row counts only their departments
    assert [f["departments"] for f in _json(world)["per_faculty"]] == [["SOCSW"]]
    table = world.browser("administrator").get("/statistics/per_faculty.csv").get_data(as_text=True)
    rows = list(csvlib.reader(io.StringIO(table)))
    assert rows[0] == ["faculty", *stats.YEARLY, "active", "median_days_to_diploma"]
    assert ["Faculty of Medicine", "1", "0", "0", "0", "0", "1", ""] in rows
    published = world.browser("administrator").get("/statistics/per_faculty.csv?suppress=1").get_data(as_text=True)
    assert "Faculty of Medicine,<5," in published
    page = world.browser("administrator").get("/statistics", headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert "Medicinska fakulteten" in page


def test_a_facultys_median_is_over_its_students_not_a_median_of_medians() -> None:
    def student(dep: str, days: int, n: int) -> list[stats.Fact]:
        sid = str(uuid.UUID(int=n, version=4))
        start = date(2024, 1, 1)
        return [stats.Fact(sid, dep, stats.REGISTERED, start, n),
                stats.Fact(sid, dep, stats.DIPLOMA, start + timedelta(days=days), n, ref=f"d{n}")]

    facts = student("A", 10, 1) + student("A", 30, 2) + student("B", 100, 3)
    as_of = date(2025, 1, 1)
    assert stats.figures(facts, as_of, ["A"]).median_days_to_diploma == 20
    assert stats.figures(facts, as_of, ["A", "B"]).median_days_to_diploma == 30  # not (20 + 100) / 2


def test_the_api_undoes_a_void(world: World) -> None:
    b = world.students["B"]
    api = world.token("coordinator", "assessment:statistics")
    assert api.post(f"/api/v1/students/{b}/registration-void/undo").status_code == 409
    assert api.post(f"/api/v1/students/{b}/registration-void", json={"reason_code": "in_error"}).status_code == 201
    assert world.token("other_coordinator", "assessment:statistics").post(
        f"/api/v1/students/{b}/registration-void/undo").status_code == 404
    assert api.post(f"/api/v1/students/{b}/registration-void/undo").status_code == 201
    assert api.post(f"/api/v1/students/{b}/registration-void", json={"reason_code": "in_error"}).status_code == 201


# -- the appendix as a PDF --------------------------------------------------------------------------

def _pdf_text(pdf: bytes) -> str:
    import io

    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages).split())


def test_the_appendix_pdf_shows_the_figures(world: World, tmp_path: Any) -> None:
    import time

    today = stats.business_date(world.ctx.clock.now())
    year = today.year
    b = world.students["B"]
    world.token("coordinator", "assessment:statistics").post(
        f"/api/v1/students/{b}/registration-void", json={"reason_code": "duplicate"})
    world.ctx.own_runner.catch_up()
    browser = world.browser("administrator")
    started = time.perf_counter()
    response = browser.get(f"/statistics/appendix.pdf?from={year - 1}&to={year}&lang=en")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="cim-in-numbers-')
    text = _pdf_text(response.data)
    (tmp_path / "appendix.pdf").write_bytes(response.data)
    expected = _json(world, "administrator")
    assert f"CIM in numbers {year - 1}–{year}" in text
    assert expected["totals"]["registrations"] == 2
    assert "2 registrations; 1 voided, not counted." in text
    assert f"Students active at the end of the period: {expected['active']}." in text
    # the year's row: registrations, voided, diplomas, withdrawals, deregistrations, active
    row = expected["per_year"][-1]
    assert f"{year} {row['registrations']} {row['voided']} {row['diplomas']} {row['withdrawals']} " \
        f"{row['deregistrations']} {expected['active']}" in text
    assert f"{year - 1} 0 0 0 0 0 0" in text
    assert "Faculty of Medicine 1 0 0 0 0 1" in text
    assert "School of Social Work 1 1 0 0 0 1" in text
    assert "Logged an activity 2" in text
    # Swedish, one department, small counts hidden
    sv = browser.get(f"/statistics/appendix.pdf?from={year}&to={year}&lang=sv&scope=department:SOCSW&suppress=1")
    assert sv.status_code == 200
    sv_text = _pdf_text(sv.data)
    assert f"CIM i siffror {year}" in sv_text
    assert "Aktiva studenter vid periodens slut: <5." in sv_text
    assert "Medicinska" not in sv_text
    assert "<5" in sv_text
    assert f"{year} <5 <5 0 0 0 <5" in sv_text
    started = time.perf_counter()
    assert browser.get(f"/statistics/appendix.pdf?from={year - 1}&to={year}&lang=en").status_code == 200
    print(f"appendix request: cold {elapsed:.3f} s, warm {time.perf_counter() - started:.3f} s")


def test_a_bad_appendix_request_re_shows_the_form(world: World) -> None:
    browser = world.browser("coordinator")
    for query, field in (("from=20x&to=2025", "from"), ("from=2026&to=2024", "to"),
                         ("from=1990&to=2025", "to"), ("from=2025&to=2025&lang=de", "lang"),
                         ("from=2025&to=2025&scope=department:MED", "scope")):
        page = browser.get(f"/statistics/appendix.pdf?{query}")
        assert page.status_code == 400, query
        html = page.get_data(as_text=True)
        assert f'id="appendix-{field}-error"' in html, query
        assert 'href="#appendix-' in html
    assert world.browser("student_A").get("/statistics/appendix.pdf?from=2025&to=2025").status_code == 403


@pytest.mark.parametrize(("start", "end"), [(2019, 2021), (2022, 2024)])
def test_the_appendix_of_a_synthetic_history_equals_an_independent_recount(world: World, start: int, end: int) -> None:
    from flask import render_template

    from assessment_service.statistics_pdf import render_appendix
    from assessment_service.web import statistics_pages as pages
    from tests.unit.test_statistics import all_facts, recount, synthetic

    h = synthetic()
    facts = all_facts(h)
    as_of = date(end, 12, 31)
    with world.app.test_request_context("/statistics/appendix.pdf"):
        data = pages.appendix_data(facts, start, end, as_of, None)
        html = render_template("statistics_appendix.html", lang="en", start=start, end=end, as_of=as_of,
                               scope_name=None, suppress=False, columns=pages.APPENDIX_COLUMNS, label=pages._label,
                               n=lambda v: v, charts={"registrations": [], "diplomas": [], "funnel": []}, **data)
    text = _pdf_text(render_appendix(html, identifier="test"))
    whole = recount(h, as_of)
    totals = dict.fromkeys(pages.APPENDIX_COLUMNS, 0)
    for year in range(start, end + 1):
        row = whole["per_year"].get(year, dict.fromkeys(stats.YEARLY, 0))
        active = recount(h, date(year, 12, 31))["active"]
        cells = [row["registrations"], row["voided"], row["diplomas"], row["withdrawals"], row["deregistrations"],
                 active]
        assert f"{year} {' '.join(map(str, cells))}" in text, year
        for c in stats.YEARLY:
            totals[c] += row[c]
    assert f"Total {' '.join(str(totals[c]) for c in pages.APPENDIX_COLUMNS[:-1])} {whole['active']}" in text
    med = recount(h, as_of, "MED")
    med_row = [sum(med["per_year"].get(y, {}).get(c, 0) for y in range(start, end + 1))
               for c in pages.APPENDIX_COLUMNS[:-1]]
    median = "–" if med["median"] is None else str(round(med["median"]))
    assert f"Faculty of Medicine {' '.join(map(str, med_row))} {med['active']} {median}" in text
    assert " ".join(f"{label} {whole['funnel'][s]}" for label, s in (
        ("Registered", "registered"), ("Logged an activity", "activity"))) in text
