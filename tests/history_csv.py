"""Synthetic histories for the historical import of CIM in numbers (issue 15): CSV text of
earlier years' happenings, with made-up person ids only (HIST-000001...). Used by the tests, the
sample file docs/samples/cim-history-sample.csv and bench/bench_import.py."""

from __future__ import annotations

import random
from datetime import date, timedelta

PROGRAMMES = {"SOCSW": "SSASK", "MED": "MALAK", "SAMF": "SAPOL", "HT": "HGKUL"}
COUNTRIES = ("DE", "NO", "ES", "JP", "KE", "BR", "FR", "IN")
HEADER = ("person", "department", "programme", "event", "date", "setting", "country", "reason")


def synthetic_rows(people: int, seed: int = 15, start: date = date(2015, 1, 1),
                   last: date = date(2025, 12, 31)) -> list[tuple[str, ...]]:
    """Rows of `people` persons over the years from `start`, in a sensible order per person."""
    rnd = random.Random(seed)
    rows: list[tuple[str, ...]] = []
    span = (last - start).days - 800
    departments = sorted(PROGRAMMES)
    for n in range(people):
        person = f"HIST-{n + 1:06d}"
        dept = departments[n % len(departments)]
        prog = PROGRAMMES[dept]
        on = start + timedelta(days=rnd.randrange(span))

        def row(what: str, day: date, setting: str = "", country: str = "", reason: str = "",
                who: tuple[str, str, str] = (person, dept, prog)) -> None:
            rows.append((*who, what, day.isoformat(), setting, country, reason))

        row("registered", on)
        if rnd.random() < 0.04:
            row("voided", on + timedelta(days=rnd.randrange(1, 30)), reason=rnd.choice(("other_faculty", "duplicate")))
            continue
        roll = rnd.random()
        if roll < 0.08:
            row("withdrawn", on + timedelta(days=rnd.randrange(10, 200)))
            continue
        for _ in range(rnd.randrange(0, 4)):
            on += timedelta(days=rnd.randrange(5, 120))
            setting = rnd.choice(("abroad", "at_home", "digital"))
            country = rnd.choice(COUNTRIES) if setting == "abroad" else rnd.choice(("", "SE"))
            row("activity", on, setting, country)
        if roll < 0.2:
            row("deregistered", on + timedelta(days=rnd.randrange(200, 400)))
            continue
        on += timedelta(days=rnd.randrange(30, 200))
        row("studies_completed", on)
        on += timedelta(days=rnd.randrange(1, 60))
        row("report_submitted", on)
        if rnd.random() < 0.15:
            continue
        on += timedelta(days=rnd.randrange(5, 60))
        row("approved", on)
        on += timedelta(days=rnd.randrange(5, 60))
        row("presentation_held", on)
        if rnd.random() < 0.1:
            continue
        row("diploma_issued", on + timedelta(days=rnd.randrange(1, 30)))
    return rows


def to_csv(rows: list[tuple[str, ...]], delimiter: str = ",", bom: bool = False) -> str:
    """The rows as CSV text with the header (the cells hold no delimiter or quote)."""
    lines = [delimiter.join(HEADER), *(delimiter.join(r) for r in rows)]
    return ("\ufeff" if bom else "") + "\n".join(lines) + "\n"


if __name__ == "__main__":  # the sample file: python -m tests.history_csv > docs/samples/cim-history-sample.csv
    print(to_csv(synthetic_rows(12, seed=2036)), end="")
