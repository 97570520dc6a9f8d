"""PURE term calendar: Lund University's autumn (HT) and spring (VT) terms with their dates, as data
(`config/terms.toml`, edited by staff), and the arithmetic deadlines need: which term a day falls
in, and the last day of the term N terms after it. No I/O but `load` reading the file."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

_CODE = re.compile(r"^(HT|VT)(\d{4})$")
_KEYS = frozenset({"code", "starts", "ends"})


class TermCalendarError(ValueError):
    """The terms file breaks a rule, or a day lies outside the calendar; the message says where."""


@dataclass(frozen=True)
class Term:
    """One term: `HT2025` (autumn, starting in 2025) or `VT2026` (spring), its first and last day."""

    code: str
    starts: date
    ends: date

    @property
    def kind(self) -> str:
        return self.code[:2]

    @property
    def year(self) -> int:
        return int(self.code[2:])


@dataclass(frozen=True)
class TermCalendar:
    """The terms in order, alternating HT and VT without overlap (checked by `parse`)."""

    terms: tuple[Term, ...]

    @classmethod
    def load(cls, path: Path) -> TermCalendar:
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise TermCalendarError(f"{path}: {err}") from err
        return cls.parse(data)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> TermCalendar:
        found = problems(data)
        if found:
            raise TermCalendarError("; ".join(found))
        return cls(tuple(Term(t["code"], t["starts"], t["ends"]) for t in data["terms"]))

    def term_of(self, day: date) -> Term:
        """The term `day` falls in; a day in the summer between a VT and the next HT belongs to
        that VT. TermCalendarError before the first term or after the last one ends."""
        if not self.terms or day < self.terms[0].starts or day > self.terms[-1].ends:
            raise TermCalendarError(f"{day.isoformat()} is outside the term calendar")
        found = self.terms[0]
        for term in self.terms:
            if term.starts > day:
                break
            found = term
        return found

    def term_after(self, term: Term, count: int) -> Term:
        """The term `count` terms after `term` (0: `term` itself)."""
        index = self.terms.index(term) + count
        if not 0 <= index < len(self.terms):
            raise TermCalendarError(f"the term {count} after {term.code} is not in the term calendar yet")
        return self.terms[index]

    def end_of_term_after(self, day: date, count: int) -> date:
        """The last day of the term `count` terms after the one `day` falls in."""
        return self.term_after(self.term_of(day), count).ends

    def by_code(self, code: str) -> Term | None:
        return next((t for t in self.terms if t.code == code), None)


def problems(data: Any) -> list[str]:
    """Every rule the parsed terms file breaks, each naming the term and field ([] when sound)."""
    if not isinstance(data, dict) or not isinstance(data.get("terms"), list) or not data["terms"]:
        return ["terms: give at least one [[terms]] block with code, starts and ends"]
    unknown = set(data) - {"terms"}
    found = [f"{key}: unknown key" for key in sorted(unknown)]
    previous: tuple[str, date, date] | None = None
    seen: set[str] = set()
    for index, raw in enumerate(data["terms"]):
        where = f"terms[{index}]"
        if not isinstance(raw, dict):
            found.append(f"{where}: expected a table")
            previous = None
            continue
        code = raw.get("code")
        where = f"terms[{index}] ({code})" if isinstance(code, str) else where
        found += [f"{where}.{key}: unknown key" for key in sorted(set(raw) - _KEYS)]
        match = _CODE.match(code) if isinstance(code, str) else None
        if match is None:
            found.append(f"{where}.code: write HT or VT and the year, e.g. HT2025")
        elif code in seen:
            found.append(f"{where}.code: named twice")
        starts, ends = raw.get("starts"), raw.get("ends")
        bad_date = False
        for key, value in (("starts", starts), ("ends", ends)):
            if not isinstance(value, date) or hasattr(value, "hour"):
                found.append(f"{where}.{key}: give a date, e.g. 2025-09-01")
                bad_date = True
        if bad_date or match is None:
            previous = None
            continue
        assert isinstance(code, str)
        assert isinstance(starts, date)
        assert isinstance(ends, date)
        seen.add(code)
        if ends <= starts:
            found.append(f"{where}.ends: the term must end after it starts")
        if starts.year != int(match.group(2)):
            found.append(f"{where}.starts: {code} must start in {match.group(2)}")
        if previous is not None:
            before_code, _before_starts, before_ends = previous
            expected = _next_code(before_code)
            if code != expected:
                found.append(f"{where}.code: expected {expected} after {before_code} (terms in order, none left out)")
            if starts <= before_ends:
                found.append(f"{where}.starts: overlaps {before_code}, which ends {before_ends.isoformat()}")
        previous = (code, starts, ends)
    return found


def _next_code(code: str) -> str:
    kind, year = code[:2], int(code[2:])
    return f"VT{year + 1}" if kind == "HT" else f"HT{year}"
