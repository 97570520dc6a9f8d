"""The historical import recorded (issue 15): through the page (dry run, line-numbered errors,
confirm re-checks the kept file, roles), the CLI (dry run, progress, exit status) and the service
(all or nothing, idempotent), with the imported rows counted by the figures like live ones."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from assessment_service import history_import_services as importer
from assessment_service.cli import statistics_cli
from tests.unit.test_assessment_access import World, build_world

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "cim-history-sample.csv"
SOCSW_ROWS = ("person;department;programme;event;date;setting;country\n"
              "S1;SOCSW;SSASK;registered;2019-09-01;;\nS1;SOCSW;SSASK;activity;2019-10-01;abroad;DE\n"
              "S2;SOCSW;SSASK;registered;2020-09-01;;\nS2;SOCSW;SSASK;withdrawn;2020-10-01;;\n")


@pytest.fixture
def world(tmp_path: Path, clock: Any) -> World:
    from shared.config import Settings

    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://")
    made = build_world(settings, clock)  # A, B in SOCSW and M in MED: registered, an activity, a report
    made.ctx.own_runner.catch_up()
    return made


def _history(world: World) -> list[Any]:
    return [e for e in world.ctx.store.read_all(0, 100000) if e.type == "HistoryImported"]


def _upload(client: Any, data: bytes, name: str = "history.csv") -> Any:
    return client.post("/statistics/import", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_a_coordinator_checks_then_confirms_and_the_figures_count_the_rows(world: World) -> None:
    coordinator = world.browser("coordinator")
    figures_page = coordinator.get("/statistics").get_data(as_text=True)
    assert 'href="/statistics/import"' in figures_page  # found from the figures
    assert coordinator.get("/statistics/import").status_code == 200
    dry = _upload(coordinator, SOCSW_ROWS.encode())
    html = dry.get_data(as_text=True)
    assert dry.status_code == 200, html
    assert "What the file would record" in html
    assert "Import these 4 rows" in html
    assert _history(world) == []  # the dry run records nothing
    digest = html.split('name="digest" value="')[1].split('"')[0]
    done = coordinator.post("/statistics/import/confirm", data={"digest": digest})
    assert done.status_code == 200
    assert "4 rows recorded now, 0 recorded before" in done.get_data(as_text=True)
    assert len(_history(world)) == 4
    figures = world.token("coordinator", "assessment:statistics").get("/api/v1/statistics").json
    assert figures["totals"]["registrations"] == 2 + 2  # the two live students and the two imported
    assert figures["totals"]["withdrawals"] == 1
    assert figures["activities_by_country"].get("DE") == 1
    # the kept file is gone: a second confirm must upload again; a second upload records nothing new
    assert coordinator.post("/statistics/import/confirm", data={"digest": digest}).status_code == 400
    again = coordinator.post("/statistics/import/confirm", data={
        "digest": _upload(coordinator, SOCSW_ROWS.encode()).get_data(as_text=True)
        .split('name="digest" value="')[1].split('"')[0]})
    assert "0 rows recorded now, 4 recorded before" in again.get_data(as_text=True)
    assert len(_history(world)) == 4


def test_errors_are_shown_by_line_and_nothing_is_kept_or_recorded(world: World) -> None:
    coordinator = world.browser("coordinator")
    bad = _upload(coordinator, (SOCSW_ROWS + "S3;MED;MALAK;registered;2020-01-01;;\n"
                                "S4;SOCSW;SSASK;registered;2020-02-30;;\n").encode())
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "<th scope=\"row\">6</th><td>You are not a coordinator of the department MED.</td>" in html
    assert "<th scope=\"row\">7</th><td>The date 2020-02-30 is not a date written YYYY-MM-DD.</td>" in html
    assert 'name="digest"' not in html
    assert _history(world) == []
    sv = _upload(coordinator, b"person,department\n", "x.csv")
    assert sv.status_code == 422
    swedish = coordinator.post("/statistics/import", data={}, headers={"Accept-Language": "sv"})
    assert swedish.status_code == 400
    assert 'aria-invalid="true"' in swedish.get_data(as_text=True)
    assert "Välj en CSV-fil" in swedish.get_data(as_text=True)
    assert coordinator.post("/statistics/import/confirm", data={"digest": "../../etc/passwd"}).status_code == 400


def test_only_coordinators_and_administrators_import(world: World) -> None:
    for who in ("assigned", "med_assessor", "student_A"):
        assert world.browser(who).get("/statistics/import").status_code == 403, who
        assert _upload(world.browser(who), SOCSW_ROWS.encode()).status_code == 403, who
    assert world.app.test_client().get("/statistics/import").status_code in (302, 303, 401)
    # the confirmation checks again with the confirming person's roles
    digest = _upload(world.browser("administrator"), SOCSW_ROWS.encode()).get_data(as_text=True) \
        .split('name="digest" value="')[1].split('"')[0]
    refused = world.browser("other_coordinator").post("/statistics/import/confirm", data={"digest": digest})
    assert refused.status_code == 422
    assert _history(world) == []


def test_an_oversized_upload_is_refused(world: World) -> None:
    from assessment_service.web import import_pages

    big = b"x" * (import_pages.IMPORT_MAX_BYTES + 1)
    assert _upload(world.browser("administrator"), big).status_code == 413


def test_the_service_records_all_or_nothing(world: World) -> None:
    ctx = world.ctx
    bad = importer.check(ctx, (SOCSW_ROWS + "S9;SOCSW;SSASK;diploma_issued;2019-01-01;;\n").encode(), by=None,
                         actor="t")
    assert [(e.line, e.code) for e in bad.errors] == [(6, "no_registration")]
    with pytest.raises(ValueError, match="errors records nothing"):
        importer.record(ctx, bad, actor="t")
    assert _history(world) == []


def test_the_cli_dry_runs_imports_and_imports_nothing_new_twice(world: World, tmp_path: Path) -> None:
    runner = world.app.test_cli_runner()
    dry = runner.invoke(statistics_cli, ["import", str(SAMPLE), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would be recorded (dry run: nothing recorded)" in dry.output
    assert _history(world) == []
    first = runner.invoke(statistics_cli, ["import", str(SAMPLE)])
    assert first.exit_code == 0, first.output
    rows = len(_history(world))
    assert rows == len(SAMPLE.read_text().splitlines()) - 1
    assert f"recorded {rows} row(s), 0 recorded before" in first.output
    second = runner.invoke(statistics_cli, ["import", str(SAMPLE)])
    assert f"recorded 0 row(s), {rows} recorded before" in second.output
    assert len(_history(world)) == rows
    broken = tmp_path / "broken.csv"
    broken.write_text("person,department,programme,event,date\nP,NOPE,X,registered,2020-01-01\n")
    refused = runner.invoke(statistics_cli, ["import", str(broken)])
    assert refused.exit_code == 1
    assert "line 2: Unknown department NOPE." in refused.output
    assert len(_history(world)) == rows


def test_a_large_import_is_left_to_the_regular_catch_up(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from assessment_service.web import import_pages

    monkeypatch.setattr(import_pages, "PROJECT_AT_ONCE", 3)
    admin = world.browser("administrator")
    digest = _upload(admin, SOCSW_ROWS.encode()).get_data(as_text=True).split('name="digest" value="')[1].split('"')[0]
    done = admin.post("/statistics/import/confirm", data={"digest": digest}).get_data(as_text=True)
    assert "counts these rows within a few minutes" in done
    token = world.token("administrator", "assessment:statistics")
    assert token.get("/api/v1/statistics").json["totals"]["registrations"] == 3  # not projected yet
    world.ctx.own_runner.catch_up()
    assert token.get("/api/v1/statistics").json["totals"]["registrations"] == 5
