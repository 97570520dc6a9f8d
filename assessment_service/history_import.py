"""The historical import of CIM in numbers (issue 15), pure: a CSV of earlier years' happenings
(one row each: person, department, programme, event, date[, setting, country, reason]) parsed and
checked into the `HistoryImported` events it would record, or every row's errors with their
line numbers. Nothing here reads or writes a store (history_import_services.py records).

The CSV's person identifier is personal data and never leaves this module in clear: each row
carries a keyed one-way pseudonym of it (`person_key`, HMAC-SHA256 under a key derived from the
service's vault secret, per department), so the same person in the same department gets the same
key in every import and no one without the secret can recompute or reverse it.

Each row has a deterministic id (a hash of department, person key, event, date, setting, country
and reason): its stream is `history-<row_id>` and holds that one event, so importing the same
file again records nothing new (docs/statistics.md, "Historical import").
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from assessment_service.events import HAPPENINGS, HISTORY_SETTINGS, VOID_REASONS, HistoryImported
from shared.validation import country_codes

REQUIRED = ("person", "department", "programme", "event", "date")
OPTIONAL = ("setting", "country", "reason")
#: Rows are kept at most this many; a bigger file is refused whole.
MAX_ROWS = 500_000
MAX_PERSON = 200
MAX_PROGRAMME = 64

#: What an error code means, in English with its parameters (the page translates the same codes).
MESSAGES: Mapping[str, str] = {
    "empty": "The file is empty: it needs a header row and at least one row.",
    "encoding": "The file is not UTF-8 text.",
    "too_many_rows": "The file has more than {limit} rows.",
    "missing_column": "The header lacks the column {column}.",
    "unknown_column": "The header has an unknown column {column}.",
    "duplicate_column": "The header names the column {column} twice.",
    "columns": "The row has {found} fields where the header has {expected}.",
    "person": "The person identifier is missing or longer than 200 characters.",
    "department": "Unknown department {value}.",
    "department_not_yours": "You are not a coordinator of the department {value}.",
    "programme": "The programme code is missing or not a code (letters, digits, - _ .; at most 64).",
    "event": "Unknown event {value}: use one of {choices}.",
    "date": "The date {value} is not a date written YYYY-MM-DD.",
    "future": "The date {value} is in the future.",
    "setting_missing": "An activity needs a setting: one of {choices}.",
    "setting": "Unknown setting {value}: use one of {choices}.",
    "setting_not_here": "Only an activity has a setting or a country.",
    "country": "{value} is not a country code (ISO 3166-1, two letters, e.g. DE).",
    "country_missing": "An activity abroad needs a country.",
    "reason_missing": "A voided registration needs a reason: one of {choices}.",
    "reason": "Unknown reason {value}: use one of {choices}.",
    "reason_not_here": "Only a voided row has a reason.",
    "duplicate": "The same happening as line {line}.",
    "no_registration": "This person has no registered row in this department in the file.",
    "second_registration": "This person is registered already on line {line}.",
    "before_registration": "Dated before the person's registration on line {line}.",
    "approved_before_submitted": "Approved before the person's report was submitted (line {line}).",
    "diploma_before_approved": "A diploma before the person's approval (line {line}).",
    "after_withdrawal": "Dated after the person withdrew on line {line}.",
    "second_void": "This person's registration is voided already on line {line}.",
}

_PROGRAMME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class RowError:
    """One problem of the file: its line (1: the header), a code of MESSAGES and its parameters."""

    line: int
    code: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return MESSAGES[self.code].format(**self.params)

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class PlannedRow:
    """A valid row: the event it records on the stream `history-<row_id>`."""

    line: int
    row_id: str
    event: HistoryImported

    @property
    def stream_id(self) -> str:
        return history_stream(self.row_id)

    @property
    def event_id(self) -> str:
        """A deterministic event id (a UUID version 8 made of the row id)."""
        value = int(self.row_id, 16)
        value = value & ~(0xF << 76) | 0x8 << 76
        value = value & ~(0x3 << 62) | 0x2 << 62
        return str(uuid.UUID(int=value))


@dataclass
class Plan:
    """What a file would record (`rows`), or why not (`errors`: any error records nothing)."""

    rows: list[PlannedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    #: How many data rows the file has.
    total: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> list[tuple[str, int, str, int]]:
        """(department, year, event, rows) for every row to record, sorted."""
        counts = Counter((r.event.department, r.event.on.year, r.event.happening) for r in self.rows)
        return sorted((dep, year, what, n) for (dep, year, what), n in counts.items())


def history_stream(row_id: str) -> str:
    return f"history-{row_id}"


def pseudonym_key(secret: str) -> bytes:
    """The key of the person pseudonyms, derived from a service secret (never stored)."""
    return hmac.new(secret.encode(), b"cim history person pseudonym v1", hashlib.sha256).digest()


def person_key(key: bytes, department: str, person: str) -> str:
    """A keyed one-way pseudonym of a person identifier within a department (32 hex digits)."""
    message = f"{department}\x1f{person.strip()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def row_id(event: HistoryImported) -> str:
    """The row's deterministic id: the same happening in any file has the same id."""
    parts = (event.department, event.person_key, event.happening, event.on.isoformat(),
             event.setting or "", event.country or "", event.reason_code or "")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def decode(data: bytes) -> str:
    """UTF-8 text with or without a byte-order mark; UnicodeDecodeError otherwise."""
    return data.decode("utf-8-sig")


def _dialect(header_line: str) -> str:
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _norm(value: str) -> str:
    return value.strip().lower().replace("-", "_").replace(" ", "_")


def plan(
    data: bytes | str,
    *,
    secret_key: bytes,
    departments: Iterable[str],
    allowed: Callable[[str], bool] = lambda _d: True,
    today: date,
    by: str = "system:import",
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """Parse and check a CSV: the rows to record, or every error with its line number.

    `departments`: the codes the catalogue knows; `allowed(code)`: whether the importer may import
    into a department (a coordinator of it, or an administrator); `today`: the Lund date (later
    dates are refused); `progress(n)` is called every 1000 rows read."""
    result = Plan()
    try:
        text = decode(data) if isinstance(data, bytes) else data.removeprefix("\ufeff")
    except UnicodeDecodeError:
        result.errors.append(RowError(1, "encoding"))
        return result
    first = text.split("\n", 1)[0]
    if not text.strip():
        result.errors.append(RowError(1, "empty"))
        return result
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_dialect(first))
    header = [_norm(h) for h in next(reader)]
    errors = result.errors
    for column in header:
        if column not in REQUIRED and column not in OPTIONAL:
            errors.append(RowError(1, "unknown_column", {"column": column}))
    for column, n in Counter(header).items():
        if n > 1:
            errors.append(RowError(1, "duplicate_column", {"column": column}))
    for column in REQUIRED:
        if column not in header:
            errors.append(RowError(1, "missing_column", {"column": column}))
    if errors:
        return result
    at = {name: header.index(name) for name in (*REQUIRED, *OPTIONAL) if name in header}
    known = set(departments)
    countries = country_codes()
    happenings = ", ".join(HAPPENINGS)
    settings = ", ".join(HISTORY_SETTINGS)
    reasons = ", ".join(VOID_REASONS)
    may: dict[str, bool] = {}
    seen: dict[str, int] = {}
    #: (department, person key) -> [(line, event)]
    people: dict[tuple[str, str], list[tuple[int, HistoryImported]]] = defaultdict(list)
    valid: list[PlannedRow] = []

    def cell(row: list[str], name: str) -> str:
        i = at.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # a blank line
        result.total += 1
        if progress is not None and result.total % 1000 == 0:
            progress(result.total)
        if result.total > MAX_ROWS:
            errors.append(RowError(line, "too_many_rows", {"limit": str(MAX_ROWS)}))
            break
        if len(fields) != len(header):
            errors.append(RowError(line, "columns", {"found": str(len(fields)), "expected": str(len(header))}))
            continue
        found: list[RowError] = []
        person = cell(fields, "person")
        if not person or len(person) > MAX_PERSON:
            found.append(RowError(line, "person"))
        dept = cell(fields, "department")
        if dept not in known:
            found.append(RowError(line, "department", {"value": dept}))
        else:
            if dept not in may:
                may[dept] = allowed(dept)
            if not may[dept]:
                found.append(RowError(line, "department_not_yours", {"value": dept}))
        programme = cell(fields, "programme")
        if not programme or len(programme) > MAX_PROGRAMME or not set(programme) <= _PROGRAMME_CHARS:
            found.append(RowError(line, "programme"))
        what = _norm(cell(fields, "event"))
        if what not in HAPPENINGS:
            found.append(RowError(line, "event", {"value": cell(fields, "event"), "choices": happenings}))
        raw_date = cell(fields, "date")
        on: date | None = None
        try:
            on = date.fromisoformat(raw_date) if len(raw_date) == 10 else None
        except ValueError:
            on = None
        if on is None:
            found.append(RowError(line, "date", {"value": raw_date}))
        elif on > today:
            found.append(RowError(line, "future", {"value": raw_date}))
        setting = _norm(cell(fields, "setting")) or None
        country = cell(fields, "country").upper() or None
        reason = _norm(cell(fields, "reason")) or None
        if what == "activity":
            if setting is None:
                found.append(RowError(line, "setting_missing", {"choices": settings}))
            elif setting not in HISTORY_SETTINGS:
                found.append(RowError(line, "setting", {"value": cell(fields, "setting"), "choices": settings}))
            if country is not None and country not in countries:
                found.append(RowError(line, "country", {"value": cell(fields, "country")}))
            elif country is None and setting == "abroad":
                found.append(RowError(line, "country_missing"))
        elif what in HAPPENINGS and (setting is not None or country is not None):
            found.append(RowError(line, "setting_not_here"))
        if what == "voided":
            if reason is None:
                found.append(RowError(line, "reason_missing", {"choices": reasons}))
            elif reason not in VOID_REASONS:
                found.append(RowError(line, "reason", {"value": cell(fields, "reason"), "choices": reasons}))
        elif what in HAPPENINGS and reason is not None:
            found.append(RowError(line, "reason_not_here"))
        if found or on is None:
            errors.extend(found)
            continue
        event = HistoryImported(
            person_key=person_key(secret_key, dept, person), department=dept, programme=programme,
            happening=what, on=on, setting=setting, country=country, reason_code=reason,
            row_id="", imported=True, imported_by=by,
        )
        rid = row_id(event)
        if rid in seen:
            errors.append(RowError(line, "duplicate", {"line": str(seen[rid])}))
            continue
        seen[rid] = line
        event = HistoryImported(**{**event.__dict__, "row_id": rid})
        valid.append(PlannedRow(line, rid, event))
        people[(dept, event.person_key)].append((line, event))
    errors.extend(_order_errors(people))
    errors.sort(key=lambda e: e.line)
    if not errors:
        result.rows = valid
    return result


def _order_errors(people: Mapping[tuple[str, str], list[tuple[int, HistoryImported]]]) -> list[RowError]:
    """Orders that make no sense for one person: no or two registrations, anything before the
    registration, an approval before the report, a diploma before the approval, anything after a
    withdrawal, two voids."""
    errors: list[RowError] = []
    for rows in people.values():
        first: dict[str, tuple[int, date]] = {}
        for line, e in rows:
            if e.happening == "registered" and "registered" in first:
                errors.append(RowError(line, "second_registration", {"line": str(first["registered"][0])}))
            elif e.happening == "voided" and "voided" in first:
                errors.append(RowError(line, "second_void", {"line": str(first["voided"][0])}))
            elif e.happening not in first or e.on < first[e.happening][1]:
                first[e.happening] = (line, e.on)
        if "registered" not in first:
            errors.append(RowError(rows[0][0], "no_registration"))
            continue
        reg_line, reg_on = first["registered"]
        for line, e in rows:
            if e.on < reg_on:
                errors.append(RowError(line, "before_registration", {"line": str(reg_line)}))
            elif e.happening == "approved" and "report_submitted" in first and e.on < first["report_submitted"][1]:
                errors.append(RowError(line, "approved_before_submitted", {"line": str(first["report_submitted"][0])}))
            elif e.happening == "diploma_issued" and "approved" in first and e.on < first["approved"][1]:
                errors.append(RowError(line, "diploma_before_approved", {"line": str(first["approved"][0])}))
            elif ("withdrawn" in first and e.happening not in ("withdrawn", "voided")
                  and e.on > first["withdrawn"][1]):
                errors.append(RowError(line, "after_withdrawal", {"line": str(first["withdrawn"][0])}))
    return errors
