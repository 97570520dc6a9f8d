"""Issue 15's "done when", in one story: a synthetic history of several years and departments is
imported through the coordinator's page; the page's JSON, its CSV tables and the PDF appendix then
show the figures that a recount straight from the recorded events gives, as of several dates; and
the figures as of a past date do not move when later events are recorded (a second import of later
years, a registration voided today)."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from assessment_service.web.statistics_pages import APPENDIX_COLUMNS
from tests.history_csv import synthetic_rows, to_csv
from tests.unit.test_assessment_access import World, build_world

DATES = (date(2017, 6, 30), date(2019, 12, 31), date(2022, 3, 1), date(2025, 12, 31))
COLUMNS = {"registered": "registrations", "withdrawn": "withdrawals", "deregistered": "deregistrations",
           "diploma_issued": "diplomas"}
STEPS = (("registered", "registered"), ("activity", "activity"), ("submitted", "report_submitted"),
         ("approved", "approved"), ("presented", "presentation_held"), ("diploma", "diploma_issued"))


@pytest.fixture
def world(tmp_path: Path, clock: Any) -> World:
    from shared.config import Settings

    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    made = build_world(settings, clock)
    made.ctx.own_runner.catch_up()
    return made


def _import(world: World, rows: list[tuple[str, ...]]) -> None:
    """Upload the rows as a semicolon CSV on the page, check the dry run, confirm, catch up."""
    admin = world.browser("administrator")
    dry = admin.post("/statistics/import", content_type="multipart/form-data",
                     data={"file": (io.BytesIO(to_csv(rows, ";").encode()), "history.csv")})
    html = dry.get_data(as_text=True)
    assert dry.status_code == 200, html[:3000]
    digest = html.split('name="digest" value="')[1].split('"')[0]
    done = admin.post("/statistics/import/confirm", data={"digest": digest})
    assert done.status_code == 200
    assert f"{len(rows)} rows recorded now" in done.get_data(as_text=True)
    world.ctx.own_runner.catch_up()


def recount(world: World, as_of: date) -> dict[str, Any]:
    """The per-year table, the totals and the funnel counted by hand from the recorded
    HistoryImported events (their payloads: person key, department, happening, date), not
    through statistics.facts_of or the read model."""
    happened: dict[tuple[str, str], dict[str, date]] = defaultdict(dict)
    for event in world.ctx.store.read_all(0, 1_000_000):
        if event.type != "HistoryImported":
            continue
        d = event.data
        on = d["on"] if isinstance(d["on"], date) else date.fromisoformat(str(d["on"]))
        if on <= as_of:
            happened[(d["department"], d["person_key"])].setdefault(d["happening"], on)
    per_year: Counter[tuple[int, str]] = Counter()
    funnel: Counter[str] = Counter()
    for what in happened.values():
        if "voided" in what:
            per_year[(what["registered"].year, "voided")] += 1
            continue
        for happening, column in COLUMNS.items():
            if happening in what:
                per_year[(what[happening].year, column)] += 1
        for step, happening in STEPS:
            if happening not in what:
                break
            funnel[step] += 1
    totals: Counter[str] = Counter()
    for (_, column), n in per_year.items():
        totals[column] += n
    return {"per_year": dict(per_year), "totals": dict(totals), "funnel": dict(funnel)}


def _from_json(body: dict[str, Any]) -> dict[str, Any]:
    per_year = {(row["year"], c): n for row in body["per_year"] for c, n in row.items() if c != "year" and n}
    return {"per_year": per_year, "totals": {c: n for c, n in body["totals"].items() if n},
            "funnel": {row["step"]: row["students"] for row in body["funnel"] if row["students"]}}


def _from_csv(world: World, as_of: date) -> dict[str, Any]:
    browser = world.browser("administrator")

    def table(name: str) -> list[list[str]]:
        response = browser.get(f"/statistics/{name}.csv?as_of={as_of.isoformat()}")
        assert response.status_code == 200
        return list(csv.reader(io.StringIO(response.get_data(as_text=True))))

    header, *year_rows = table("per_year")
    per_year: dict[tuple[int, str], int] = {}
    totals: dict[str, int] = {}
    for row in year_rows:
        cells = {c: int(v) for c, v in zip(header[1:], row[1:], strict=True) if int(v)}
        if row[0] == "total":
            totals = cells
        else:
            per_year.update({(int(row[0]), c): n for c, n in cells.items()})
    funnel = {step: int(n) for step, n in table("funnel")[1:] if int(n)}
    return {"per_year": per_year, "totals": totals, "funnel": funnel}


def _figures(world: World, as_of: date) -> dict[str, Any]:
    response = world.token("administrator", "assessment:statistics").get(
        f"/api/v1/statistics?as_of={as_of.isoformat()}")
    assert response.status_code == 200
    body = dict(response.json)
    body.pop("computed_at", None)  # when the answer was made, not what it says
    return body


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages).split())


def test_an_imported_history_shows_the_recounted_figures_and_past_dates_do_not_move(world: World) -> None:
    rows = synthetic_rows(240, seed=1515, start=date(2015, 1, 1), last=date(2023, 12, 31))
    assert len({r[1] for r in rows}) == 4  # several departments
    assert len({r[4][:4] for r in rows}) >= 8  # and years
    _import(world, rows)

    before = {}
    for as_of in DATES:
        expected = recount(world, as_of)
        assert expected["totals"].get("registrations", 0) > 0 or as_of == DATES[0]
        assert _from_json(_figures(world, as_of)) == expected, as_of
        assert _from_csv(world, as_of) == expected, as_of
        before[as_of] = _figures(world, as_of)

    # the PDF appendix of 2018-2020, whose figures are those as of its last day
    pdf = world.browser("administrator").get("/statistics/appendix.pdf?from=2018&to=2020&lang=en")
    assert pdf.status_code == 200
    text = _pdf_text(pdf.data)
    whole = recount(world, date(2020, 12, 31))
    for year in (2018, 2019, 2020):
        cells = [whole["per_year"].get((year, c), 0) for c in APPENDIX_COLUMNS[:-1]]
        assert f"{year} {' '.join(map(str, cells))} " in text, year
    for label, step in (("Registered", "registered"), ("Logged an activity", "activity")):
        assert f"{label} {whole['funnel'][step]}" in text

    # later events: a second import of later years (new people) and a live registration voided today
    later = [row for n in range(12) for row in (
        (f"LATER-{n}", "SOCSW", "SSASK", "registered", "2026-01-12", "", "", ""),
        (f"LATER-{n}", "SOCSW", "SSASK", "activity", "2026-02-02", "abroad", "DE", ""))]
    _import(world, later)
    voided = world.token("coordinator", "assessment:statistics").post(
        f"/api/v1/students/{world.students['B']}/registration-void", json={"reason_code": "duplicate"})
    assert voided.status_code == 201
    world.ctx.own_runner.catch_up()

    for as_of in DATES:
        assert _figures(world, as_of) == before[as_of], as_of
    today = _figures(world, date(2026, 3, 16))
    assert today["totals"]["registrations"] > before[DATES[-1]]["totals"]["registrations"]
    assert today["totals"]["voided"] > before[DATES[-1]]["totals"].get("voided", 0)
