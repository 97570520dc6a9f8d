"""CIM in numbers: a synthetic multi-year history of two departments as recorded events; the
figures as of several dates are recomputed here independently from the raw events, equal through
the read model (live and rebuilt), and a later event never moves a past date's figures."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from assessment_service import statistics as stats
from assessment_service.projections import statistics as projection
from assessment_service.projections.base import metadata
from shared.events import RecordedEvent

START = date(2019, 1, 1)
DATES = (date(2019, 12, 31), date(2021, 6, 30), date(2023, 1, 1), date(2025, 12, 31), date(2030, 1, 1))


class History:
    """Events of the intake log and of the assessment's own store, with positions in each."""

    def __init__(self) -> None:
        self.intake: list[RecordedEvent] = []
        self.own: list[RecordedEvent] = []

    def add(self, log: list[RecordedEvent], type_: str, stream: str, on: date, data: dict[str, Any]) -> None:
        moment = datetime.combine(on, time(10, 0), tzinfo=UTC)
        log.append(RecordedEvent(len(log) + 1, str(uuid.uuid4()), stream, 1, type_, 1, data, {},
                                 moment, moment + timedelta(days=3)))


def synthetic(seed: int = 7, students: int = 120) -> History:
    rnd = random.Random(seed)
    h = History()
    for n in range(students):
        sid = str(uuid.UUID(int=n + 1, version=4))
        dept = ("SOCSW", "MED")[n % 2]
        on = START + timedelta(days=rnd.randrange(0, 6 * 365))
        stream = f"student-{sid}"
        h.add(h.intake, "StudentRegistered", stream, on, {"student_id": sid, "department": dept,
                                                           "programme": "P", "rules": "X@1"})
        roll = rnd.random()
        if rnd.random() < 0.05:  # a mis-registration, voided by a coordinator
            h.add(h.own, "RegistrationVoided", f"registration-void-{sid}", on + timedelta(days=10),
                  {"student_id": sid, "department": dept, "reason_code": "other_faculty"})
        if roll < 0.1:
            h.add(h.intake, "RegistrationWithdrawn", stream, on + timedelta(days=40), {"reason": None})
            continue
        acts = []
        for _ in range(rnd.randrange(0, 3)):
            on += timedelta(days=rnd.randrange(5, 90))
            aid = str(uuid.uuid4())
            acts.append(aid)
            h.add(h.intake, "ActivityLogged", stream, on, {
                "activity_id": aid, "setting": rnd.choice(("abroad", "at_home", "digital")),
                "country_code": rnd.choice(("DE", "NO", None))})
        if acts and rnd.random() < 0.2:
            h.add(h.intake, "ActivityWithdrawn", stream, on + timedelta(days=1), {"activity_id": acts[0]})
        if not acts or roll < 0.25:
            if rnd.random() < 0.5:
                h.add(h.own, "StudentDeregistered", f"deadline-{sid}", on + timedelta(days=400),
                      {"student_id": sid, "department": dept})
                if rnd.random() < 0.3:
                    h.add(h.own, "StudentReinstated", f"deadline-{sid}", on + timedelta(days=430),
                          {"student_id": sid, "department": dept})
            continue
        on += timedelta(days=rnd.randrange(10, 200))
        h.add(h.intake, "ReportSubmitted", stream, on, {"report_id": sid})
        if rnd.random() < 0.2:
            continue
        on += timedelta(days=rnd.randrange(5, 60))
        h.add(h.own, "ReportApproved", f"assessment-report-{sid}", on, {"student_id": sid, "department": dept})
        on += timedelta(days=rnd.randrange(5, 60))
        h.add(h.own, "PresentationHeld", "occasion", on, {"student_id": sid, "department": dept})
        if rnd.random() < 0.15:
            continue
        on += timedelta(days=rnd.randrange(1, 30))
        first = str(uuid.uuid4())
        h.add(h.own, "DiplomaIssued", f"diplomas-{dept}", on, {
            "diploma_id": first, "student_id": sid, "department": dept, "issued_on": on.isoformat()})
        if rnd.random() < 0.2:  # revoked and re-issued (twice for some): still one person
            for _ in range(rnd.randrange(1, 3)):
                h.add(h.own, "DiplomaRevoked", f"diplomas-{dept}", on + timedelta(days=20),
                      {"diploma_id": first, "student_id": sid, "department": dept})
                first = str(uuid.uuid4())
                h.add(h.own, "DiplomaIssued", f"diplomas-{dept}", on + timedelta(days=21), {
                    "diploma_id": first, "student_id": sid, "department": dept,
                    "issued_on": (on + timedelta(days=21)).isoformat()})
    return h


def recount(h: History, as_of: date, department: str | None = None, *, known: bool = False) -> dict[str, Any]:
    """The figures recomputed by hand from the raw events, independently of the module; `known`:
    only the events recorded by the end of `as_of` (what was known on that date)."""
    def day(e: RecordedEvent) -> date:
        return date.fromisoformat(e.data["issued_on"]) if e.type == "DiplomaIssued" else e.occurred_at.date()

    events = [e for e in h.intake + h.own if day(e) <= as_of and (not known or e.recorded_at.date() <= as_of)]
    dept_of = {e.data["student_id"]: e.data["department"] for e in events if e.type == "StudentRegistered"}

    def who(e: RecordedEvent) -> str:
        return e.stream_id.removeprefix("student-") if e.stream_id.startswith("student-") else e.data["student_id"]

    events = [e for e in events if who(e) in dept_of and (department is None or dept_of[who(e)] == department)]
    voided = {who(e) for e in events if e.type == "RegistrationVoided"}
    per_year: Counter[tuple[int, str]] = Counter()
    for e in events:
        if e.type == "StudentRegistered" and who(e) in voided:
            per_year[(day(e).year, "voided")] += 1
    events = [e for e in events if who(e) not in voided]
    reg: dict[str, date] = {}
    for e in events:
        if e.type == "StudentRegistered":
            per_year[(day(e).year, "registrations")] += 1
            reg[who(e)] = day(e)
        if e.type == "RegistrationWithdrawn":
            per_year[(day(e).year, "withdrawals")] += 1
    dereg_first: dict[str, date] = {}
    for e in sorted(events, key=day):
        if e.type == "StudentDeregistered":
            dereg_first.setdefault(who(e), day(e))
    for d in dereg_first.values():
        per_year[(d.year, "deregistrations")] += 1
    diplomas: dict[str, list[date]] = {}
    for e in events:
        if e.type == "DiplomaIssued":
            diplomas.setdefault(who(e), []).append(day(e))
    for days in diplomas.values():
        per_year[(min(days).year, "diplomas")] += 1
    steps = {"ActivityLogged": "activity", "ReportSubmitted": "submitted", "ReportApproved": "approved",
             "PresentationHeld": "presented"}
    reached = {s: {"registered"} for s in reg}
    for e in events:
        if e.type in steps:
            reached[who(e)].add(steps[e.type])
    for s in diplomas:
        reached[s].add("diploma")
    funnel = {step: sum(1 for r in reached.values() if all(x in r for x in stats.FUNNEL[:i + 1]))
              for i, step in enumerate(stats.FUNNEL)}
    withdrawn = {who(e) for e in events if e.type == "RegistrationWithdrawn"}
    state: dict[str, bool] = {}
    for e in sorted(events, key=lambda e: (day(e), e.position)):
        if e.type in ("StudentDeregistered", "StudentReinstated"):
            state[who(e)] = e.type == "StudentDeregistered"
    active = sum(1 for s in reg if s not in withdrawn and not state.get(s) and s not in diplomas)
    live_acts: dict[str, str] = {}
    for e in events:
        if e.type == "ActivityLogged":
            live_acts[e.data["activity_id"]] = e.data["setting"]
        if e.type == "ActivityWithdrawn":
            live_acts.pop(e.data["activity_id"], None)
    gaps = sorted((min(d) - reg[s]).days for s, d in diplomas.items())
    mid = len(gaps) // 2
    median = None if not gaps else (gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2)
    years = sorted({y for y, _ in per_year})
    return {
        "per_year": {y: {c: per_year[(y, c)] for c in stats.YEARLY} for y in years},
        "funnel": funnel, "active": active, "settings": dict(Counter(live_acts.values())), "median": median,
    }


def as_tuple(f: stats.Figures) -> dict[str, Any]:
    return {"per_year": f.per_year, "funnel": f.funnel, "active": f.active,
            "settings": f.activities_by_setting, "median": f.median_days_to_diploma}


def all_facts(h: History) -> list[stats.Fact]:
    return [fact for e in h.intake + h.own for fact in stats.facts_of(e)]


@pytest.mark.parametrize("as_of", DATES)
@pytest.mark.parametrize("department", [None, "SOCSW"])
def test_the_figures_equal_an_independent_recount_from_the_events(as_of: date, department: str | None) -> None:
    h = synthetic()
    got = stats.figures(all_facts(h), as_of, None if department is None else [department])
    assert as_tuple(got) == recount(h, as_of, department)


def test_the_history_is_rich_enough_to_mean_something() -> None:
    final = stats.figures(all_facts(synthetic()), DATES[-1])
    assert len(final.per_year) >= 5
    assert all(final.totals[c] > 0 for c in stats.YEARLY)
    assert final.funnel["registered"] > final.funnel["submitted"] > final.funnel["diploma"] > 0
    assert final.median_days_to_diploma is not None
    assert set(final.per_department) == {"SOCSW", "MED"}


def test_a_revoked_and_reissued_diploma_counts_the_person_once() -> None:
    h = History()
    sid, dept = str(uuid.uuid4()), "SOCSW"
    h.add(h.intake, "StudentRegistered", f"student-{sid}", date(2022, 3, 1), {"student_id": sid, "department": dept})
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for n, did in enumerate(ids):
        on = date(2023, 5, 1) + timedelta(days=30 * n)
        if n:
            h.add(h.own, "DiplomaRevoked", f"diplomas-{dept}", on, {"diploma_id": ids[n - 1], "student_id": sid,
                                                                     "department": dept})
        h.add(h.own, "DiplomaIssued", f"diplomas-{dept}", on, {"diploma_id": did, "student_id": sid,
                                                               "department": dept, "issued_on": on.isoformat()})
    f = stats.figures(all_facts(h), date(2024, 1, 1))
    assert f.totals["diplomas"] == 1
    assert f.per_year[2023]["diplomas"] == 1
    assert f.median_days_to_diploma == (date(2023, 5, 1) - date(2022, 3, 1)).days
    assert f.active == 0


def test_a_later_event_does_not_move_a_past_dates_figures() -> None:
    h = synthetic()
    before = {d: stats.figures(all_facts(h), d).as_json() for d in DATES[:3]}
    sid = str(uuid.uuid4())
    later = date(2024, 2, 2)
    h.add(h.intake, "StudentRegistered", f"student-{sid}", later, {"student_id": sid, "department": "MED"})
    h.add(h.own, "DiplomaIssued", "diplomas-MED", later, {"diploma_id": sid, "student_id": sid, "department": "MED",
                                                          "issued_on": later.isoformat()})
    for d in DATES[:3]:
        assert stats.figures(all_facts(h), d).as_json() == before[d]
    assert stats.figures(all_facts(h), later).totals["diplomas"] == \
        stats.figures(all_facts(synthetic()), later).totals["diplomas"] + 1


def test_small_counts_are_suppressed_in_published_exports_only() -> None:
    f = stats.figures(all_facts(synthetic(students=6)), DATES[-1])
    plain, published = f.as_json(), f.as_json(suppress=True)
    assert plain["funnel"][0]["students"] == 6
    assert published["funnel"][0]["students"] == 6
    small = [row for row in plain["funnel"] if 0 < row["students"] < 5]
    assert small
    assert all(row["students"] == "<5" for row in published["funnel"] if row["step"] in {s["step"] for s in small})


def _project(h: History, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for e in h.intake:
            projection.PROJECTION.apply(conn, e)
        for e in h.own:
            projection.OWN.apply(conn, e)


def test_the_read_model_selects_the_same_figures_as_the_events() -> None:
    h = synthetic()
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine, tables=[projection.facts, projection.own_facts])
    _project(h, engine)
    with engine.connect() as conn:
        for d in DATES:
            for deps in (None, ["MED"]):
                rows = projection.facts_as_of(conn, d, deps)
                assert all(r.on <= d for r in rows)
                assert as_tuple(stats.figures(rows, d, deps)) == recount(h, d, None if deps is None else deps[0])
        # every intake row knows its department from the registration
        assert conn.execute(sa.select(sa.func.count()).select_from(projection.facts)
                            .where(projection.facts.c.department.is_(None))).scalar() == 0


# -- the summed counts the page reads ----------------------------------------------------------------

CACHE = [projection.facts, projection.own_facts, *projection.CACHE_TABLES]
LATE = (date(2020, 2, 29), date(2022, 1, 3), date(2024, 7, 1), DATES[-1])


def _counted(conn: sa.Connection, d: date, deps: list[str] | None, basis: str = "b") -> stats.Figures:
    return stats.from_counts(projection.counts_as_of(conn, d, deps, basis), d, deps)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def counts_engine(request: pytest.FixtureRequest) -> Any:
    if request.param == "sqlite":
        engine = sa.create_engine("sqlite://")
    else:
        engine = sa.create_engine(request.getfixturevalue("pg_url").replace("postgresql://", "postgresql+psycopg://"))
    metadata.create_all(engine, tables=CACHE)
    yield engine
    engine.dispose()


def test_the_counts_give_the_figures_of_an_independent_recount_by_business_and_recording_date(
        counts_engine: sa.Engine) -> None:
    h = synthetic()
    engine = counts_engine
    half = History()
    half.intake, half.own = h.intake[: len(h.intake) // 2], h.own[: len(h.own) // 3]
    _project(half, engine)  # counted in three goes, as facts arrive
    with engine.begin() as conn:
        assert projection.refresh(conn) > 0
        assert projection.refresh(conn) == 0  # nothing new: nothing recounted
    rest = History()
    rest.intake, rest.own = h.intake[len(h.intake) // 2:], h.own[len(h.own) // 3:]
    _project(rest, engine)
    with engine.begin() as conn:
        projection.refresh(conn)
    with engine.connect() as conn:
        for d in (*DATES, *LATE, date(2019, 3, 31)):
            for deps in (None, ["MED"]):
                dep = None if deps is None else deps[0]
                assert as_tuple(_counted(conn, d, deps)) == recount(h, d, dep), (d, deps)
                assert as_tuple(_counted(conn, d, deps, "k")) == recount(h, d, dep, known=True), (d, deps)
                assert _counted(conn, d, deps).as_json() == stats.figures(all_facts(h), d, deps).as_json()
                assert _counted(conn, d, deps, "k").as_json() == stats.known_on(all_facts(h), d, deps).as_json()
        kept = {tuple(r) for r in conn.execute(sa.select(projection.counts).where(projection.counts.c.n != 0))}
    # every event here is recorded three days after it happened: the two differ on some dates
    assert sum(recount(h, d) != recount(h, d, known=True) for d in (*DATES, *LATE, date(2019, 3, 31))) >= 3
    with engine.begin() as conn:  # made again from nothing: the same counts
        projection.recount(conn)
    with engine.connect() as conn:
        again = {tuple(r) for r in conn.execute(sa.select(projection.counts).where(projection.counts.c.n != 0))}
    assert again == kept


def test_what_was_known_on_a_date_never_moves_and_a_past_date_moves_only_by_late_facts() -> None:
    h = synthetic()
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine, tables=CACHE)
    _project(h, engine)
    with engine.begin() as conn:
        projection.refresh(conn)
    with engine.connect() as conn:
        before = {d: (_counted(conn, d, None).as_json(), _counted(conn, d, None, "k").as_json()) for d in LATE}
    # a diploma recorded in 2025 for a student registered earlier, issued (business date) in 2021
    sid = str(uuid.uuid4())
    moment = datetime(2020, 5, 4, 10, tzinfo=UTC)
    late = History()
    late.intake = [RecordedEvent(len(h.intake) + 1, str(uuid.uuid4()), f"student-{sid}", 1, "StudentRegistered", 1,
                                 {"student_id": sid, "department": "MED"}, {}, moment, moment)]
    recorded = datetime(2025, 3, 3, 10, tzinfo=UTC)
    late.own = [RecordedEvent(len(h.own) + 1, str(uuid.uuid4()), "diplomas-MED", 1, "DiplomaIssued", 1,
                              {"diploma_id": sid, "student_id": sid, "department": "MED", "issued_on": "2021-09-01"},
                              {}, recorded, recorded)]
    _project(late, engine)
    with engine.begin() as conn:
        projection.refresh(conn)
    with engine.connect() as conn:
        after = {d: (_counted(conn, d, None).as_json(), _counted(conn, d, None, "k").as_json()) for d in LATE}
        for d in LATE:
            assert after[d][1]["totals"]["diplomas"] == before[d][1]["totals"]["diplomas"] + (d >= date(2025, 3, 3))
        assert after[LATE[0]] == before[LATE[0]] or after[LATE[0]][0]["totals"]["registrations"] == \
            before[LATE[0]][0]["totals"]["registrations"] + 1
        # as of 2022-01-03 the diploma counts by its date, though nobody knew of it yet
        d = LATE[1]
        assert after[d][0]["totals"]["diplomas"] == before[d][0]["totals"]["diplomas"] + 1
        assert after[d][1]["totals"]["diplomas"] == before[d][1]["totals"]["diplomas"]
        figures = _counted(conn, d, None)
        figures.known = _counted(conn, d, None, "k")
        assert figures.as_json()["recorded_later"]["diplomas"] == \
            figures.totals["diplomas"] - figures.known.totals["diplomas"] >= 1


# -- the page, the CSV and the JSON, with the real apps ---------------------------------------------

from tests.unit.test_assessment_access import World, build_world  # noqa: E402


@pytest.fixture
def world(tmp_path: Any, clock: Any) -> World:
    from shared.config import Settings

    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    world = build_world(settings, clock)  # A, B in SOCSW and M in MED: registered, an activity, a report
    world.ctx.own_runner.catch_up()
    return world


def _json(world: World, who: str, query: str = "") -> Any:
    return world.token(who, "assessment:statistics").get(f"/api/v1/statistics{query}")


def test_coordinators_see_their_departments_and_administrators_all(world: World) -> None:
    today = stats.business_date(world.ctx.clock.now())
    socsw = _json(world, "coordinator")
    assert socsw.status_code == 200, socsw.json
    assert socsw.json["as_of"] == today.isoformat()
    assert socsw.json["departments"] == ["SOCSW"]
    assert [r["students"] for r in socsw.json["funnel"]] == [2, 2, 2, 0, 0, 0]
    assert socsw.json["active"] == 2
    assert _json(world, "other_coordinator").json["funnel"][0]["students"] == 1
    assert _json(world, "administrator").json["funnel"][0]["students"] == 3
    assert _json(world, "administrator", "?department=MED").json["funnel"][0]["students"] == 1
    yesterday = (today - timedelta(days=1)).isoformat()
    assert _json(world, "coordinator", f"?as_of={yesterday}").json["funnel"][0]["students"] == 0
    assert _json(world, "coordinator", "?suppress=1").json["funnel"][0]["students"] == "<5"


def test_nobody_else_sees_the_figures(world: World) -> None:
    assert _json(world, "other_coordinator", "?department=SOCSW").status_code == 403
    assert world.browser("other_coordinator").get("/statistics?department=SOCSW").status_code == 403
    assert world.browser("other_coordinator").get("/statistics/funnel.csv?department=SOCSW").status_code == 403
    for who in ("assigned", "med_assessor", "student_A"):
        assert _json(world, who).status_code == 403, who
        assert world.browser(who).get("/statistics").status_code == 403, who
        assert world.browser(who).get("/statistics/per_year.csv").status_code == 403, who
    # a token without the scope
    assert world.token("coordinator", "assessment:read").get("/api/v1/statistics").status_code == 403
    assert world.app.test_client().get("/statistics").status_code in (302, 303, 401)


def test_the_page_shows_charts_and_tables_in_both_languages(world: World) -> None:
    page = world.browser("coordinator").get("/statistics")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('<svg role="img"') == 4
    assert "<title id=\"chart-funnel-title\">From registration to diploma</title>" in html
    assert "Submitted a report: 2." in html  # the chart's description states its values
    assert "MED" not in html.split("<h2>")[2]  # the per-department table holds only SOCSW
    sv = world.browser("coordinator").get("/statistics", headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert "CIM i siffror" in sv
    bad = world.browser("coordinator").get("/statistics?as_of=2026-13-45")
    assert bad.status_code == 400
    assert 'aria-invalid="true"' in bad.get_data(as_text=True)
    assert _json(world, "coordinator", "?as_of=yesterday").status_code in (400, 422)


def test_each_table_downloads_as_csv(world: World) -> None:
    import csv as csvlib
    import io

    body = world.browser("coordinator").get("/statistics/funnel.csv")
    assert body.status_code == 200
    assert body.mimetype == "text/csv"
    rows = list(csvlib.reader(io.StringIO(body.get_data(as_text=True))))
    assert rows == [["step", "students"], ["registered", "2"], ["activity", "2"], ["submitted", "2"],
                    ["approved", "0"], ["presented", "0"], ["diploma", "0"]]
    published = world.browser("coordinator").get("/statistics/funnel.csv?suppress=1").get_data(as_text=True)
    assert "registered,<5" in published
    year = world.browser("administrator").get("/statistics/per_year.csv").get_data(as_text=True)
    assert year.splitlines()[-1].startswith("total,3,")
    assert world.browser("coordinator").get("/statistics/nonsense.csv").status_code == 404
    from assessment_service.web.diploma_pages import _cell
    assert _cell("=SUM(A1)") == "'=SUM(A1)"  # the guard every label cell passes


def test_the_rebuilt_facts_equal_the_live_ones(world: World) -> None:
    ctx = world.ctx

    def snapshot() -> list[Any]:
        with ctx.engine.connect() as conn:
            return [tuple(r) for t in (projection.facts, projection.own_facts)
                    for r in conn.execute(sa.select(t).order_by(t.c.position, t.c.seq))]

    def counted() -> stats.Figures:
        from assessment_service.web.statistics_pages import compute

        with world.app.app_context():
            return compute(stats.business_date(ctx.clock.now()), None)

    live, figures = snapshot(), counted().as_json()
    assert len(live) == 9  # 3 registrations, 3 activities, 3 reports
    ctx.runner.rebuild([projection.PROJECTION.name])
    assert snapshot() == live
    assert counted().as_json() == figures
    ctx.own_runner.rebuild([projection.OWN.name])  # empties the counts: made again on the next read
    assert counted().as_json() == figures


def test_the_synthetic_history_voids_some_registrations() -> None:
    final = stats.figures(all_facts(synthetic()), DATES[-1])
    assert final.totals["voided"] > 0
    h = synthetic()
    registered = sum(1 for e in h.intake if e.type == "StudentRegistered")
    assert final.totals["registrations"] + final.totals["voided"] == registered


def test_a_coordinator_voids_a_mis_registration_once_and_it_is_counted_out(world: World) -> None:
    b = world.students["B"]
    coordinator = world.token("coordinator", "assessment:statistics")
    assert coordinator.post(f"/api/v1/students/{b}/registration-void", json={"reason_code": "nonsense"}).status_code \
        == 422
    for who in ("other_coordinator", "administrator"):  # not a coordinator of SOCSW: as unknown
        assert world.token(who, "assessment:statistics").post(
            f"/api/v1/students/{b}/registration-void", json={"reason_code": "other_faculty"}).status_code == 404, who
    assert coordinator.post("/api/v1/students/not-an-id/registration-void",
                            json={"reason_code": "other_faculty"}).status_code == 404
    assert world.ctx.store.read_stream(f"registration-void-{b}") == []  # nothing stored by the refusals
    done = coordinator.post(f"/api/v1/students/{b}/registration-void", json={"reason_code": "other_faculty"})
    assert done.status_code == 201, done.json
    again = coordinator.post(f"/api/v1/students/{b}/registration-void", json={"reason_code": "duplicate"})
    assert again.status_code == 409
    assert [e.type for e in world.ctx.store.read_stream(f"registration-void-{b}")] == ["RegistrationVoided"]
    world.ctx.own_runner.catch_up()
    body = _json(world, "coordinator").json
    assert body["totals"]["registrations"] == 1
    assert body["totals"]["voided"] == 1
    assert body["funnel"][0]["students"] == 1
    assert body["active"] == 1
    page = world.browser("coordinator").get("/statistics").get_data(as_text=True)
    assert "1 voided, not counted" in page


def test_the_page_shows_what_was_known_on_the_date_where_it_differs(world: World) -> None:
    today = stats.business_date(world.ctx.clock.now())
    yesterday = today - timedelta(days=1)
    assert "recorded_later" in _json(world, "coordinator").json
    assert _json(world, "coordinator").json["recorded_later"] == {}
    page = world.browser("coordinator").get("/statistics").get_data(as_text=True)
    assert "as known on" not in page
    # a registration dated yesterday, recorded today (as an import records one)
    with world.ctx.engine.begin() as conn:
        conn.execute(projection.facts.insert().values(
            position=10_000, seq=0, student_id=str(uuid.uuid4()), department="SOCSW", kind=stats.REGISTERED,
            business_date=yesterday, recorded_at=world.ctx.clock.now().isoformat()))
    body = _json(world, "coordinator", f"?as_of={yesterday.isoformat()}").json
    assert body["totals"]["registrations"] == 1
    assert body["known_on_date"]["totals"]["registrations"] == 0
    assert body["recorded_later"] == {"registrations": 1, "active": 1}
    assert _json(world, "coordinator").json["recorded_later"] == {}  # known today: no difference
    page = world.browser("coordinator").get(f"/statistics?as_of={yesterday.isoformat()}").get_data(as_text=True)
    assert f"Registrations: 1 by the date it happened; as known on {yesterday.isoformat()}: 0." in page
    sv = world.browser("coordinator").get(f"/statistics?as_of={yesterday.isoformat()}",
                                          headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert f"känt den {yesterday.isoformat()}" in sv


def test_the_faculty_figures_from_the_counts_equal_those_from_the_facts(world: World) -> None:
    from assessment_service.web import statistics_pages as pages

    today = stats.business_date(world.ctx.clock.now())
    with world.app.test_request_context():
        for departments in (None, ["SOCSW"], ["MED", "SOCSW"]):
            figures, by_faculty = pages.counted(today, departments)
            facts = pages.load_facts(today, departments)
            assert figures.as_json()["funnel"] == stats.figures(facts, today, departments).as_json()["funnel"]
            slow = pages.faculties(facts, today, departments)
            assert [pages.faculty_json(f, False) for f in by_faculty] == [pages.faculty_json(f, False) for f in slow]
            assert by_faculty
