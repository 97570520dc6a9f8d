"""The historical import of CIM in numbers (issue 15): parsing and checking a CSV (every error
kind with its line number), the all-or-nothing rule, idempotency, the facts the imported events
give, and figures after an import equal to an independent recount from the CSV rows."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from assessment_service import history_import as hi
from assessment_service import statistics as stats
from assessment_service.events import REGISTRY
from shared.events import RecordedEvent
from tests.history_csv import synthetic_rows, to_csv

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "samples" / "cim-history-sample.csv"
KEY = hi.pseudonym_key("a-test-secret-of-at-least-thirty-two-chars")
TODAY = date(2026, 3, 16)
HEADER = "person,department,programme,event,date,setting,country,reason\n"
GOOD = "P1,SOCSW,SSASK,registered,2020-01-10,,,\n"


def _plan(text: str | bytes, **kw: Any) -> hi.Plan:
    return hi.plan(text, secret_key=KEY, departments=("SOCSW", "MED"), today=TODAY, **kw)


def _errors(text: str | bytes, **kw: Any) -> list[tuple[int, str]]:
    return [(e.line, e.code) for e in _plan(text, **kw).errors]


@pytest.mark.parametrize(("rows", "expected"), [
    ("P1,NOPE,SSASK,registered,2020-01-10,,,\n", [(2, "department")]),
    (GOOD + "P1,SOCSW,SSASK,graduated,2020-02-10,,,\n", [(3, "event")]),
    ("P1,SOCSW,SSASK,registered,2020-02-30,,,\n", [(2, "date")]),
    ("P1,SOCSW,SSASK,registered,10/01/2020,,,\n", [(2, "date")]),
    ("P1,SOCSW,SSASK,registered,2026-03-17,,,\n", [(2, "future")]),
    (GOOD + "P1,SOCSW,SSASK,activity,2020-02-10,,,\n", [(3, "setting_missing")]),
    (GOOD + "P1,SOCSW,SSASK,activity,2020-02-10,on the moon,,\n", [(3, "setting")]),
    (GOOD + "P1,SOCSW,SSASK,activity,2020-02-10,abroad,XX,\n", [(3, "country")]),
    (GOOD + "P1,SOCSW,SSASK,activity,2020-02-10,abroad,EU,\n", [(3, "country")]),
    (GOOD + "P1,SOCSW,SSASK,activity,2020-02-10,abroad,,\n", [(3, "country_missing")]),
    (GOOD + "P1,SOCSW,SSASK,approved,2020-02-10,abroad,,\n", [(3, "setting_not_here")]),
    (GOOD + "P1,SOCSW,SSASK,voided,2020-02-10,,,\n", [(3, "reason_missing")]),
    (GOOD + "P1,SOCSW,SSASK,voided,2020-02-10,,,because\n", [(3, "reason")]),
    (GOOD + "P1,SOCSW,SSASK,withdrawn,2020-02-10,,,duplicate\n", [(3, "reason_not_here")]),
    (",SOCSW,SSASK,registered,2020-01-10,,,\n", [(2, "person")]),
    ("P1,SOCSW,,registered,2020-01-10,,,\n", [(2, "programme")]),
    ("P1,SOCSW,SSASK,registered\n", [(2, "columns")]),
    (GOOD + GOOD, [(3, "duplicate")]),
    ("P1,SOCSW,SSASK,approved,2020-01-10,,,\n", [(2, "no_registration")]),
    (GOOD + "P1,SOCSW,SSASK,registered,2020-03-10,,,\n", [(3, "second_registration")]),
    (GOOD + "P1,SOCSW,SSASK,diploma_issued,2019-12-31,,,\n", [(3, "before_registration")]),
    (GOOD + "P1,SOCSW,SSASK,report_submitted,2020-05-01,,,\nP1,SOCSW,SSASK,approved,2020-04-01,,,\n",
     [(4, "approved_before_submitted")]),
    (GOOD + "P1,SOCSW,SSASK,approved,2020-05-01,,,\nP1,SOCSW,SSASK,diploma_issued,2020-04-01,,,\n",
     [(4, "diploma_before_approved")]),
    (GOOD + "P1,SOCSW,SSASK,withdrawn,2020-05-01,,,\nP1,SOCSW,SSASK,approved,2020-06-01,,,\n",
     [(4, "after_withdrawal")]),
    (GOOD + "P1,SOCSW,SSASK,voided,2020-05-01,,,duplicate\nP1,SOCSW,SSASK,voided,2020-06-01,,,in_error\n",
     [(4, "second_void")]),
])
def test_each_kind_of_error_is_named_with_its_line(rows: str, expected: list[tuple[int, str]]) -> None:
    assert _errors(HEADER + rows) == expected
    assert _plan(HEADER + rows).rows == []  # a file with an error records nothing


@pytest.mark.parametrize(("header", "code"), [
    ("person,department,programme,event\n", "missing_column"),
    ("person,department,programme,event,date,colour\n", "unknown_column"),
    ("person,department,programme,event,date,date\n", "duplicate_column"),
])
def test_a_bad_header_is_line_one(header: str, code: str) -> None:
    assert (1, code) in _errors(header + "P1,SOCSW,SSASK,registered,2020-01-10\n")


def test_an_empty_or_non_utf8_file_is_refused() -> None:
    assert _errors(b"") == [(1, "empty")]
    assert _errors("person,department\n".encode("utf-16")) == [(1, "encoding")]


def test_every_error_of_every_row_is_listed_in_line_order() -> None:
    text = HEADER + GOOD + "P2,NOPE,SSASK,registered,2020-13-01,,,\nP1,SOCSW,SSASK,activity,2020-02-01,,,\n"
    assert _errors(text) == [(3, "department"), (3, "date"), (4, "setting_missing")]
    assert str(_plan(text).errors[0]) == "line 3: Unknown department NOPE."


def test_a_department_the_importer_does_not_coordinate_is_refused() -> None:
    text = HEADER + GOOD + "P2,MED,MALAK,registered,2020-01-10,,,\n"
    assert _errors(text, allowed=lambda d: d == "SOCSW") == [(3, "department_not_yours")]
    assert _errors(text) == []


def test_semicolons_a_bom_and_loose_spelling_are_read() -> None:
    text = "\ufeffPerson;Department;Programme;Event;Date;Setting;Country\n" \
           "P1;SOCSW;SSASK;Registered;2020-01-10;;\nP1;SOCSW;SSASK;Activity;2020-02-01;At home;se\n"
    planned = _plan(text.encode())
    assert planned.ok, planned.errors
    assert [(r.line, r.event.happening, r.event.setting, r.event.country) for r in planned.rows] == [
        (2, "registered", None, None), (3, "activity", "at_home", "SE")]


def test_the_person_is_a_keyed_pseudonym_never_the_identifier() -> None:
    planned = _plan(HEADER + "19900101-1234,SOCSW,SSASK,registered,2020-01-10,,,\n")
    event = planned.rows[0].event
    type_, _version, data = REGISTRY.encode(event)  # a valid event of the registry
    assert type_ == "HistoryImported"
    assert data["imported"] is True
    assert "19900101-1234" not in repr(data)
    assert event.person_key == hi.person_key(KEY, "SOCSW", "19900101-1234")
    assert event.person_key != hi.person_key(hi.pseudonym_key("another-secret-another-secret-xx"), "SOCSW",
                                             "19900101-1234")
    assert event.person_key != hi.person_key(KEY, "MED", "19900101-1234")  # per department


def test_the_same_happening_has_the_same_row_in_any_file() -> None:
    one = _plan(HEADER + GOOD + "P2,SOCSW,SSASK,registered,2021-01-10,,,\n")
    two = _plan(HEADER + "P2,SOCSW,SSASK,registered,2021-01-10,,,\n" + GOOD)
    assert {r.stream_id for r in one.rows} == {r.stream_id for r in two.rows}
    assert {r.event_id for r in one.rows} == {r.event_id for r in two.rows}


def test_the_fast_encoding_equals_the_registrys() -> None:
    from assessment_service.history_import_services import encode

    planned = hi.plan(SAMPLE.read_bytes(), secret_key=KEY, departments=("SOCSW", "MED", "SAMF", "HT"), today=TODAY)
    for row in planned.rows:
        assert encode(row.event) == REGISTRY.encode(row.event)[2]


def test_the_sample_file_is_valid_and_rich() -> None:
    planned = hi.plan(SAMPLE.read_bytes(), secret_key=KEY, departments=("SOCSW", "MED", "SAMF", "HT"), today=TODAY)
    assert planned.ok, planned.errors
    assert {r.event.happening for r in planned.rows} == set(hi.HAPPENINGS)
    assert planned.summary()[0] == ("HT", 2015, "activity", 2)


def _recorded(planned: hi.Plan, versions: int = 1) -> list[RecordedEvent]:
    out = []
    for n, row in enumerate(planned.rows, 1):
        type_, schema, data = REGISTRY.encode(row.event)
        for v in range(1, versions + 1):
            out.append(RecordedEvent(n * 10 + v, row.event_id, row.stream_id, v, type_, schema, data, {},
                                     row_moment(row.event.on), row_moment(TODAY)))
    return out


def row_moment(on: date) -> Any:
    from datetime import UTC, datetime, time
    return datetime.combine(on, time(12), tzinfo=UTC)


def test_each_happening_gives_the_fact_its_live_event_gives() -> None:
    rows = (GOOD + "P1,SOCSW,SSASK,activity,2020-02-01,abroad,DE,\nP1,SOCSW,SSASK,studies_completed,2020-03-01,,,\n"
            "P1,SOCSW,SSASK,report_submitted,2020-03-02,,,\nP1,SOCSW,SSASK,approved,2020-03-03,,,\n"
            "P1,SOCSW,SSASK,presentation_held,2020-03-04,,,\nP1,SOCSW,SSASK,diploma_issued,2020-03-05,,,\n"
            "P2,SOCSW,SSASK,registered,2020-01-10,,,\nP2,SOCSW,SSASK,deregistered,2021-01-10,,,\n"
            "P3,SOCSW,SSASK,registered,2020-01-10,,,\nP3,SOCSW,SSASK,withdrawn,2020-01-11,,,\n"
            "P4,SOCSW,SSASK,registered,2020-01-10,,,\nP4,SOCSW,SSASK,voided,2020-01-12,,,other_faculty\n")
    planned = _plan(HEADER + rows)
    assert planned.ok, planned.errors
    facts = [f for e in _recorded(planned) for f in stats.facts_of(e)]
    assert [(f.kind, f.on.isoformat()) for f in facts[:7]] == [
        ("registered", "2020-01-10"), ("activity", "2020-02-01"), ("submitted", "2020-03-02"),
        ("approved", "2020-03-03"), ("presented", "2020-03-04"), ("diploma", "2020-03-05"),
        ("registered", "2020-01-10")]  # studies completed gives no fact, as StudiesCompleted gives none
    assert (facts[1].setting, facts[1].country, facts[1].department) == ("abroad", "DE", "SOCSW")
    assert {f.student_id for f in facts[:6]} == {stats.imported_student(planned.rows[0].event.person_key)}
    figures = stats.figures(facts, TODAY)
    assert figures.totals == {"registrations": 3, "diplomas": 1, "withdrawals": 1, "deregistrations": 1,
                              "voided": 1}
    assert figures.funnel == {"registered": 3, "activity": 1, "submitted": 1, "approved": 1, "presented": 1,
                              "diploma": 1}
    assert figures.activities_by_country == {"DE": 1}
    # a row a race recorded twice on its stream counts once
    twice = [f for e in _recorded(planned, versions=2) for f in stats.facts_of(e)]
    assert stats.figures(twice, TODAY).totals == figures.totals


def recount_rows(rows: list[tuple[str, ...]], as_of: date) -> dict[str, Any]:
    """The per-year table and the funnel recomputed by hand from the CSV rows."""
    by_person: dict[tuple[str, str], list[tuple[str, ...]]] = defaultdict(list)
    for r in rows:
        if date.fromisoformat(r[4]) <= as_of:
            by_person[(r[1], r[0])].append(r)
    per_year: Counter[tuple[int, str]] = Counter()
    funnel: Counter[str] = Counter()
    columns = {"registered": "registrations", "withdrawn": "withdrawals", "deregistered": "deregistrations",
               "diploma_issued": "diplomas"}
    for happenings in by_person.values():
        what = {h[3]: date.fromisoformat(h[4]) for h in happenings}
        if "voided" in what:
            per_year[(what["registered"].year, "voided")] += 1
            continue
        for event, column in columns.items():
            if event in what:
                per_year[(what[event].year, column)] += 1
        for step, event in (("registered", "registered"), ("activity", "activity"),
                            ("submitted", "report_submitted"), ("approved", "approved"),
                            ("presented", "presentation_held"), ("diploma", "diploma_issued")):
            if event not in what:
                break
            funnel[step] += 1
    return {"per_year": dict(per_year), "funnel": dict(funnel)}


def as_counted(f: stats.Figures) -> dict[str, Any]:
    return {"per_year": {(y, c): n for y, row in f.per_year.items() for c, n in row.items() if n},
            "funnel": {s: n for s, n in f.funnel.items() if n}}


@pytest.mark.parametrize("as_of", [date(2016, 12, 31), date(2019, 6, 30), date(2023, 1, 1), TODAY])
def test_the_figures_after_an_import_equal_a_recount_from_the_csv_rows(as_of: date) -> None:
    rows = synthetic_rows(400)
    planned = hi.plan(to_csv(rows, ";", bom=True).encode(), secret_key=KEY,
                      departments=("SOCSW", "MED", "SAMF", "HT"), today=TODAY)
    assert planned.ok, planned.errors[:3]
    facts = [f for e in _recorded(planned) for f in stats.facts_of(e)]
    assert as_counted(stats.figures(facts, as_of)) == recount_rows(rows, as_of)
