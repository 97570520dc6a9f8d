"""The clock guard (shared/clock_guard.py, issue 16): the date-driven jobs refuse a date far past
their last run until an operator confirms it, say so (log, metric, stored hold), and a clock that
goes back repeats nothing."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from shared.clock import FixedClock
from shared.clock_guard import DIGESTS, JOBS, OVERDUE_REVIEWS, RETENTION, SWEEP_DEADLINES, ClockGuard, local_date
from shared.config import Settings

D = date(2027, 3, 1)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2027, 3, 1, 4, 30, tzinfo=UTC))


@pytest.fixture
def guard(tmp_path: Path, clock: FixedClock) -> ClockGuard:
    return ClockGuard.from_url(f"sqlite:///{tmp_path / 'identity.db'}", max_jump_days=3, clock=clock)


def _run(guard: ClockGuard, job: str, day: date) -> bool:
    if guard.admit(job, day).admitted:
        guard.record(job, day)
        return True
    return False


def test_the_first_run_and_daily_runs_are_admitted(guard: ClockGuard) -> None:
    assert guard.admit(SWEEP_DEADLINES, D).reference is None
    for n in range(10):
        assert _run(guard, SWEEP_DEADLINES, D + timedelta(days=n))
    assert guard.holds() == []


def test_a_gap_up_to_the_limit_is_admitted_one_day_more_is_held(guard: ClockGuard) -> None:
    assert _run(guard, RETENTION, D)
    assert guard.admit(RETENTION, D + timedelta(days=3)).admitted  # a long weekend's outage
    verdict = guard.admit(RETENTION, D + timedelta(days=4))
    assert not verdict.admitted
    assert verdict.days_ahead == 4
    assert verdict.reference == D


def test_a_jump_is_held_logged_and_stored_until_an_operator_confirms_it(
    guard: ClockGuard, caplog: pytest.LogCaptureFixture
) -> None:
    assert _run(guard, SWEEP_DEADLINES, D)
    jumped = D + timedelta(days=40)
    with caplog.at_level(logging.ERROR, logger="shared.clock_guard"):
        assert not _run(guard, SWEEP_DEADLINES, jumped)
    line = next(r for r in caplog.records if "refusing" in r.getMessage())
    assert "sweep-deadlines" in line.getMessage()
    assert "40 days after the last run on 2027-03-01" in line.getMessage()
    assert "clock confirm" in line.getMessage()
    [hold] = guard.holds()
    assert (hold.job, hold.held_date, hold.reference) == (SWEEP_DEADLINES, jumped, D)
    # Still held the next day, and every other guarded job is held too (one reference for all).
    assert not _run(guard, SWEEP_DEADLINES, jumped + timedelta(days=1))
    assert not _run(guard, OVERDUE_REVIEWS, jumped + timedelta(days=1))
    assert {h.job for h in guard.holds()} == {SWEEP_DEADLINES, OVERDUE_REVIEWS}

    confirmed = guard.confirm("ops on duty")
    assert {h.job for h in confirmed} == {SWEEP_DEADLINES, OVERDUE_REVIEWS}
    assert guard.holds() == []
    assert _run(guard, SWEEP_DEADLINES, jumped + timedelta(days=1))
    assert _run(guard, RETENTION, jumped + timedelta(days=2))
    row = next(r for r in guard.status() if r.job == OVERDUE_REVIEWS)
    assert row.accepted_by == "ops on duty"


def test_confirming_needs_an_operator_and_nothing_held_confirms_nothing(guard: ClockGuard) -> None:
    with pytest.raises(ValueError, match="operator"):
        guard.confirm("  ")
    assert guard.confirm("ops") == []


def test_the_weekly_digest_is_not_held_while_the_daily_jobs_keep_running(guard: ClockGuard) -> None:
    assert _run(guard, DIGESTS, D)  # a Monday
    for n in range(1, 7):
        assert _run(guard, SWEEP_DEADLINES, D + timedelta(days=n))
    assert _run(guard, DIGESTS, D + timedelta(days=7))


def test_a_clock_that_goes_back_is_admitted_and_never_moves_the_last_run_back(
    guard: ClockGuard, caplog: pytest.LogCaptureFixture
) -> None:
    assert _run(guard, SWEEP_DEADLINES, D + timedelta(days=10))
    with caplog.at_level(logging.WARNING, logger="shared.clock_guard"):
        assert _run(guard, SWEEP_DEADLINES, D)
    assert any("the clock went back" in r.getMessage() for r in caplog.records)
    [row] = guard.status()
    assert row.last_date == D + timedelta(days=10)
    # back to the right date: no jump
    assert _run(guard, SWEEP_DEADLINES, D + timedelta(days=11))


def test_the_state_is_durable_across_processes(tmp_path: Path, clock: FixedClock) -> None:
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    assert _run(ClockGuard.from_url(url, clock=clock), RETENTION, D)
    again = ClockGuard.from_url(url, clock=clock)
    assert not again.admit(RETENTION, D + timedelta(days=30)).admitted
    assert [h.job for h in ClockGuard.from_url(url, clock=clock).holds()] == [RETENTION]


def test_the_date_is_the_lund_date() -> None:
    assert local_date(datetime(2027, 3, 1, 23, 30, tzinfo=UTC)) == date(2027, 3, 2)


def test_the_limit_is_configurable_and_checked() -> None:
    assert Settings.from_env({"CIM_ENV": "test", "CIM_CLOCK_JUMP_DAYS": "10", "CIM_SECRET_KEY": "s" * 40,
                              "CIM_VAULT_KEY": "v" * 40, "CIM_IDENTITY_KEY": "i" * 40}).clock_jump_days == 10
    assert Settings().clock_jump_days == 3
    with pytest.raises(RuntimeError, match="CIM_CLOCK_JUMP_DAYS"):
        Settings(clock_jump_days=0)
    assert set(JOBS) == {RETENTION, SWEEP_DEADLINES, OVERDUE_REVIEWS, DIGESTS}


# -- the workers' wrapper and the operator's command -----------------------------------------------
def test_a_held_task_does_nothing_counts_the_refusal_and_acts_after_confirm(
    tmp_path: Path, clock: FixedClock
) -> None:
    from prometheus_client import REGISTRY

    from workers.base import guard_of, guarded

    settings = Settings(data_dir=tmp_path)
    runs: list[date] = []

    def refusals() -> float:
        return REGISTRY.get_sample_value("cim_clock_guard_refusals_total", {"job": RETENTION}) or 0.0

    before = refusals()
    assert guarded(RETENTION, D, lambda: runs.append(D) or 1, 0, guard_of(settings)) == 1
    jumped = D + timedelta(days=60)
    assert guarded(RETENTION, jumped, lambda: runs.append(jumped) or 1, 0, guard_of(settings)) == 0
    assert runs == [D]
    assert refusals() == before + 1
    ClockGuard.from_url(settings.identity_db_url, clock=clock).confirm("ops")
    assert guarded(RETENTION, jumped, lambda: runs.append(jumped) or 1, 0, guard_of(settings)) == 1
    assert runs == [D, jumped]


def test_the_clock_command_shows_the_hold_and_confirms_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          clock: FixedClock) -> None:
    from assessment_service.cli import clock_cli

    monkeypatch.setenv("CIM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CIM_ENV", "test")
    for name in ("CIM_IDENTITY_DB_URL", "CIM_CLOCK_JUMP_DAYS"):
        monkeypatch.delenv(name, raising=False)
    guard = ClockGuard.from_url(Settings.from_env().identity_db_url, clock=clock)
    assert _run(guard, SWEEP_DEADLINES, D)
    assert not guard.admit(SWEEP_DEADLINES, D + timedelta(days=20)).admitted
    runner = CliRunner()
    shown = runner.invoke(clock_cli, ["status"])
    assert shown.exit_code == 1
    assert "sweep-deadlines" in shown.output
    assert "HELD on 2027-03-21" in shown.output
    assert runner.invoke(clock_cli, ["confirm"]).exit_code == 2  # --operator is required
    confirmed = runner.invoke(clock_cli, ["confirm", "--operator", "ops on duty"])
    assert confirmed.exit_code == 0, confirmed.output
    assert "2027-03-21 confirmed" in confirmed.output
    assert runner.invoke(clock_cli, ["status"]).exit_code == 0
    with guard.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT accepted_by FROM clock_guard")).scalar() == "ops on duty"
