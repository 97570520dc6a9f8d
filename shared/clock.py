"""Injected time: domain code asks a Clock, never datetime.now(), so any date can be tested."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current time as a tz-aware UTC datetime."""
        ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests: stands still until moved."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a tz-aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(UTC)


class OffsetFileClock:
    """TEST ONLY: the wall clock moved by the number of seconds written in a file (read on every
    call, so a running process follows when a test moves it; a missing or empty file is 0). What
    `CIM_CLOCK_FILE` sets up, honoured only when `CIM_ENV=test` (shared/config.py): end-to-end
    tests move real worker and app processes across a deadline with it."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def now(self) -> datetime:
        try:
            text = self._path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        return datetime.now(UTC) + timedelta(seconds=float(text or 0))


def configured_clock(clock_file: Path | None) -> Clock:
    """The clock a service runs on: the wall clock, or in tests the offset file's."""
    return SystemClock() if clock_file is None else OffsetFileClock(clock_file)
