"""`rules check [FILE]`: a coordinator's edit of the departments file is checked before it is
deployed, every problem listed with its place (exit 1), the shipped file passes (exit 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assessment_service.cli import check, rules_cli
from shared.catalogue import Catalogue, check_change, check_file
from tests.unit.test_catalogue_rules import VALID

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "departments.toml"
ROOT = SHIPPED.parents[1]

# Three mistakes in one department and one in another: all four are reported in one run.
BROKEN = VALID.replace('on_disagreement = "coordinator"', 'on_disagreement = "dean"').replace(
    'settings = ["at_home"]', 'settings = ["moon"]').replace(
    "grace_terms = 1", "grace_terms = -1") + """
[departments.OTHER]
name = "Other"
programmes = [{ code = "P", name = "P" }]
[[departments.OTHER.activity_kinds]]
code = "a"
name = "A"
[[departments.OTHER.reflection_questions]]
code = "q"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "departments.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_has_no_problem() -> None:
    assert check_file(SHIPPED) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(VALID, [], id="valid"),
        pytest.param(BROKEN, [
            "departments.TEST.activity_kinds[1].settings: unknown settings ['moon']",
            "departments.TEST.grace_terms: expected a whole number of at least 0, got -1",
            "departments.TEST.on_disagreement: 'dean' is not one of",
            "departments.OTHER.reflection_questions[0]: needs a code and a text",
        ], id="every-problem-with-its-place"),
        pytest.param("[departments.X\nname = 1", ["not valid TOML"], id="not-toml"),
        pytest.param("title = 'no departments'", ["the catalogue names no departments"], id="empty"),
        pytest.param(VALID + "\n[[departments.TEST.earlier]]\nversion = 3\n",
                     ["departments.TEST.earlier[0].version: 3 must be below the current version 2"],
                     id="earlier-version-not-older"),
        pytest.param(VALID + "\n[[departments.TEST.earlier]]\nversion = 1\napprovals_required = 0\n"
                     "\n[[departments.TEST.earlier]]\nreport_required = true\n",
                     ["departments.TEST.earlier[0].approvals_required: expected a whole number of at least 1",
                      "departments.TEST.earlier[1].version: every earlier version names its version"],
                     id="every-earlier-version-checked"),
        pytest.param(VALID + "\n[[departments.TEST.earlier]]\nversion = 1\n" * 2,
                     ["departments.TEST.earlier[1].version: version 1 is kept twice"], id="earlier-version-twice"),
        pytest.param(VALID.replace('on_disagreement = "coordinator"', 'on_disagreement = "third_assessor"'),
                     ["departments.TEST.on_disagreement: 'third_assessor' is not supported yet (a third assessor "
                      "is not yet assigned and asked automatically on a disagreement): use one of coordinator, "
                      "assessor_group"], id="decider-not-built"),
    ],
)
def test_check_lists_every_problem_with_its_place(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    problems = check_file(path)
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(f"{path}: ")
        assert start in problem


def test_a_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (problem,) = check_file(tmp_path / "nope.toml")
    assert "cannot be read" in problem


def test_cli_exits_1_and_prints_every_problem(tmp_path: Path) -> None:
    result = CliRunner().invoke(check, [str(write(tmp_path, BROKEN))])
    assert result.exit_code == 1
    assert "departments.TEST.on_disagreement" in result.output
    assert "departments.OTHER.reflection_questions[0]" in result.output
    assert "4 problem(s)" in result.output


def test_cli_exits_0_and_names_each_rule_set_with_its_version(tmp_path: Path) -> None:
    text = VALID + "\n[[departments.TEST.earlier]]\nversion = 1\napprovals_required = 1\n"
    result = CliRunner().invoke(check, [str(write(tmp_path, text))])
    assert result.exit_code == 0, result.output
    assert "TEST@2" in result.output
    assert "earlier versions kept: @1" in result.output


def test_cli_without_a_file_checks_the_one_the_services_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIM_DEPARTMENTS_FILE", str(write(tmp_path, BROKEN)))
    assert CliRunner().invoke(check, []).exit_code == 1
    monkeypatch.setenv("CIM_DEPARTMENTS_FILE", str(SHIPPED))
    assert CliRunner().invoke(check, []).exit_code == 0


def test_the_flask_group_has_the_command(tmp_path: Path) -> None:
    from assessment_service import create_app
    from shared.config import Settings

    app = create_app(Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://"))
    assert app.cli.get_command(None, "rules") is rules_cli  # type: ignore[arg-type]
    result = app.test_cli_runner().invoke(args=["rules", "check", str(write(tmp_path, BROKEN))])
    assert result.exit_code == 1
    assert "departments.TEST.grace_terms" in result.output


def test_it_runs_without_the_app(tmp_path: Path) -> None:
    """`python -m assessment_service.cli rules check FILE`: when the deployed file is the broken
    one, the app does not start, and the check still runs."""
    done = subprocess.run(
        [sys.executable, "-m", "assessment_service.cli", "rules", "check", str(write(tmp_path, BROKEN))],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=60,
    )
    assert done.returncode == 1
    assert "departments.TEST.on_disagreement" in done.stderr


# -- checking an edit against the deployed file --------------------------------------------------------
SOCSW_V1 = "[departments.SOCSW]\nversion = 1\n"
KEEP_V1 = "\n[[departments.SOCSW.earlier]]\nversion = 1\nreport_required = true\n"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda t: t, [], id="unchanged"),
        pytest.param(lambda t: t.replace("Exchange studies", "Exchange semester", 1), [], id="wording-only"),
        pytest.param(lambda t: t.replace("approvals_required = 2", "approvals_required = 1", 1),
                     ["departments.SOCSW.version: the rules changed but the version is still 1; make it 2"],
                     id="rule-changed-version-not-bumped"),
        pytest.param(lambda t: t.replace(SOCSW_V1, "[departments.SOCSW]\nversion = 2\napprovals_required = 1\n", 1)
                     .replace("approvals_required = 2\non", "on", 1),
                     ["departments.SOCSW.earlier: version 1 is not kept; reports checked under SOCSW@1 need it"],
                     id="bumped-but-old-version-dropped"),
        pytest.param(lambda t: t.replace(SOCSW_V1, "[departments.SOCSW]\nversion = 2\n", 1)
                     .replace("approvals_required = 2\non", "approvals_required = 1\non", 1)
                     + KEEP_V1.replace("report_required = true", "approvals_required = 2"),
                     [], id="bumped-and-old-version-kept"),
        pytest.param(lambda t: t.replace(SOCSW_V1, "[departments.SOCSW]\nversion = 2\n", 1)
                     .replace("approvals_required = 2\non", "approvals_required = 1\non", 1) + KEEP_V1,
                     ["departments.SOCSW.earlier: version 1 now says something else"],
                     id="kept-old-version-misremembered"),
    ],
)
def test_an_edit_keeps_every_version_events_record(tmp_path: Path, edit: Any, expected: list[str]) -> None:
    deployed = tmp_path / "deployed.toml"
    deployed.write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    edited = write(tmp_path, edit(SHIPPED.read_text(encoding="utf-8")))
    assert check_file(edited) == []  # each edit is a valid file on its own
    problems = check_change(Catalogue.load(deployed), Catalogue.load(edited))
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem
    result = CliRunner().invoke(check, [str(edited), "--against", str(deployed)])
    assert result.exit_code == (1 if expected else 0), result.output


def test_a_removed_department_is_refused(tmp_path: Path) -> None:
    deployed = Catalogue.load(SHIPPED)
    edited = Catalogue({code: d for code, d in deployed.departments.items() if code != "MED"})
    assert check_change(deployed, edited) == [
        "departments.MED: removed, but events record MED@1; keep the department"]
