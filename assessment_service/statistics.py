"""CIM in numbers: the figures a coordinator publishes, as they stood on any date (pure code).

Every figure is counted from *facts*: one per happening (a student registered, logged an
activity, submitted a report, was approved, presented, was issued a diploma, withdrew, was
deregistered or reinstated), each with its **business date** (the Lund date it happened on: an
event's `occurred_at`, or the date the event itself states, e.g. a diploma's `issued_on`).
The figures *as of* a date D count only facts dated on or before D, never read-model state,
so recording later events cannot move a past date's figures.

`facts_of(event)` turns one recorded event (of the intake feed or of the assessment service's own
store) into its facts; `figures(facts, as_of)` computes everything from them. The read model
`statistics_facts` (projections/statistics.py) stores the facts so the page selects only those
dated up to D; a test recomputes the same figures straight from the events.
"""

from __future__ import annotations

import statistics as pystats
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from shared.events import RecordedEvent

LOCAL = ZoneInfo("Europe/Stockholm")

REGISTERED = "registered"
ACTIVITY = "activity"
ACTIVITY_AMENDED = "activity_amended"
ACTIVITY_WITHDRAWN = "activity_withdrawn"
SUBMITTED = "submitted"
APPROVED = "approved"
PRESENTED = "presented"
DIPLOMA = "diploma"
DIPLOMA_REVOKED = "diploma_revoked"
WITHDRAWN = "withdrawn"
DEREGISTERED = "deregistered"
REINSTATED = "reinstated"
VOIDED = "voided"
UNVOIDED = "unvoided"

KINDS = (REGISTERED, ACTIVITY, ACTIVITY_AMENDED, ACTIVITY_WITHDRAWN, SUBMITTED, APPROVED, PRESENTED,
         DIPLOMA, DIPLOMA_REVOKED, WITHDRAWN, DEREGISTERED, REINSTATED, VOIDED, UNVOIDED)

#: The funnel's steps, in order: how many students reached each one.
FUNNEL = (REGISTERED, ACTIVITY, SUBMITTED, APPROVED, PRESENTED, DIPLOMA)

#: The per-year table's columns. "voided": registrations of the year voided as mis-registrations
#: (RegistrationVoided), counted out of every other figure and shown beside them.
YEARLY = ("registrations", "diplomas", "withdrawals", "deregistrations", "voided")

#: Published exports show counts below this as "<5" (they could identify a person).
SUPPRESS_BELOW = 5


class Fact(NamedTuple):
    """One happening counted by the figures. `department` is None for intake facts other than the
    registration (the student's registration names it); `ref` is the activity or diploma id;
    `position` orders facts of the same date (the event's position in its log)."""

    student_id: str
    department: str | None
    kind: str
    on: date
    position: int = 0
    ref: str | None = None
    setting: str | None = None
    country: str | None = None
    #: the Lund date the event was recorded (None: as its business date)
    recorded: date | None = None


def business_date(moment: datetime) -> date:
    """The Lund calendar date of an instant (a naive instant is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LOCAL).date()


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _student_of_stream(stream_id: str) -> str | None:
    return stream_id[len("student-"):] if stream_id.startswith("student-") else None


def facts_of(event: RecordedEvent) -> list[Fact]:
    """The facts one recorded event states (none for events the figures do not count), each with
    its business date and the Lund date it was recorded on."""
    recorded = business_date(event.recorded_at)
    return [f._replace(recorded=recorded) for f in _facts_of(event)]


def _facts_of(event: RecordedEvent) -> list[Fact]:
    d: Mapping[str, Any] = event.data
    on = business_date(event.occurred_at)
    pos = event.position
    t = event.type
    if t == "StudentRegistered":
        return [Fact(d["student_id"], d["department"], REGISTERED, on, pos)]
    student = _student_of_stream(event.stream_id)
    if t in ("ActivityLogged", "ActivityAmended") and student:
        kind = ACTIVITY if t == "ActivityLogged" else ACTIVITY_AMENDED
        return [Fact(student, None, kind, on, pos, d["activity_id"], d.get("setting"), d.get("country_code"))]
    if t == "ActivityWithdrawn" and student:
        return [Fact(student, None, ACTIVITY_WITHDRAWN, on, pos, d["activity_id"])]
    if t in ("ReportSubmitted", "ReportResubmitted") and student:
        return [Fact(student, None, SUBMITTED, on, pos, d["report_id"])]
    if t == "RegistrationWithdrawn" and student:
        return [Fact(student, None, WITHDRAWN, on, pos)]
    own = {"ReportApproved": APPROVED, "PresentationHeld": PRESENTED, "StudentDeregistered": DEREGISTERED,
           "StudentReinstated": REINSTATED, "RegistrationVoided": VOIDED,
           "RegistrationVoidUndone": UNVOIDED}
    if t in own:
        return [Fact(d["student_id"], d["department"], own[t], on, pos)]
    if t == "DiplomaIssued":
        return [Fact(d["student_id"], d["department"], DIPLOMA, _as_date(d["issued_on"]), pos, d["diploma_id"])]
    if t == "DiplomaRevoked":
        return [Fact(d["student_id"], d["department"], DIPLOMA_REVOKED, on, pos, d["diploma_id"])]
    if t == "HistoryImported":
        return _imported_facts(event)
    return []


#: An imported row's happening -> the fact the live event gives ("studies_completed": none, as
#: the live StudiesCompleted gives none).
_IMPORTED = {"registered": REGISTERED, "activity": ACTIVITY, "report_submitted": SUBMITTED,
             "approved": APPROVED, "presentation_held": PRESENTED, "diploma_issued": DIPLOMA,
             "withdrawn": WITHDRAWN, "deregistered": DEREGISTERED, "voided": VOIDED}


def imported_student(person_key: str) -> str:
    """The student id facts give an imported person: never a live student's (a UUID)."""
    return f"h-{person_key}"


def _imported_facts(event: RecordedEvent) -> list[Fact]:
    """A historical import's row (HistoryImported, assessment_service/history_import.py) as the
    fact its live event gives, on its original date. Only the first event of its stream counts,
    so a row two imports raced to record is counted once."""
    d = event.data
    kind = _IMPORTED.get(d["happening"])
    if kind is None or event.version != 1:
        return []
    ref = d["row_id"] if kind in (ACTIVITY, SUBMITTED, DIPLOMA) else None
    return [Fact(imported_student(d["person_key"]), d["department"], kind, _as_date(d["on"]), event.position,
                 ref, d.get("setting"), d.get("country"))]


def _voided(items: list[Fact]) -> bool:
    """Whether a student's registration stands voided: the later of their voids and undone voids."""
    voided = False
    for f in items:
        if f.kind in (VOIDED, UNVOIDED):
            voided = f.kind == VOIDED
    return voided


@dataclass
class Figures:
    """The figures as of `as_of`, over the departments counted."""

    as_of: date
    departments: tuple[str, ...]
    #: year -> column (YEARLY) -> count
    per_year: dict[int, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    #: department -> column (YEARLY + "active") -> count, over all years
    per_department: dict[str, dict[str, int]] = field(default_factory=dict)
    active: int = 0
    #: funnel step (FUNNEL) -> number of students who reached it
    funnel: dict[str, int] = field(default_factory=dict)
    median_days_to_diploma: float | None = None
    activities_by_setting: dict[str, int] = field(default_factory=dict)
    activities_by_country: dict[str, int] = field(default_factory=dict)
    #: the same figures as known at the end of `as_of`: counting only facts recorded by then
    known: Figures | None = None

    def recorded_later(self) -> dict[str, int]:
        """Per total (YEARLY, "active"): how many more by business date than known on the date;
        only those that differ."""
        if self.known is None:
            return {}
        mine = {**self.totals, "active": self.active}
        theirs = {**self.known.totals, "active": self.known.active}
        return {k: mine[k] - theirs.get(k, 0) for k in mine if mine[k] != theirs.get(k, 0)}

    def as_json(self, *, suppress: bool = False) -> dict[str, Any]:
        """The figures as plain JSON (counts below SUPPRESS_BELOW as "<5" when `suppress`)."""
        def c(n: int) -> int | str:
            return shown(n, suppress)
        return {
            "as_of": self.as_of.isoformat(),
            "departments": list(self.departments),
            "per_year": [{"year": y, **{k: c(v) for k, v in row.items()}} for y, row in sorted(self.per_year.items())],
            "totals": {k: c(v) for k, v in self.totals.items()},
            "per_department": [{"department": dep, **{k: c(v) for k, v in row.items()}}
                               for dep, row in sorted(self.per_department.items())],
            "active": c(self.active),
            "funnel": [{"step": s, "students": c(self.funnel.get(s, 0))} for s in FUNNEL],
            "median_days_to_diploma": self.median_days_to_diploma,
            "activities_by_setting": {k: c(v) for k, v in sorted(self.activities_by_setting.items())},
            "activities_by_country": {k: c(v) for k, v in sorted(self.activities_by_country.items())},
            **({} if self.known is None else {
                "known_on_date": {"totals": {k: c(v) for k, v in self.known.totals.items()},
                                  "active": c(self.known.active)},
                "recorded_later": {k: c(v) for k, v in self.recorded_later().items()},
            }),
        }


def shown(count: int, suppress: bool) -> int | str:
    """A count as published: "<5" for 1-4 when suppressing small counts."""
    return f"<{SUPPRESS_BELOW}" if suppress and 0 < count < SUPPRESS_BELOW else count


def known_date(fact: Fact) -> date:
    """The first date at whose end the fact was both true (business date) and recorded: what
    was known on D counts the facts whose known date is on or before D."""
    return fact.on if fact.recorded is None or fact.recorded <= fact.on else fact.recorded


#: The department of counts already limited to the departments asked (the median's gaps).
ANY_DEPARTMENT = "*"

#: A student's contribution to the figures: (department, key) -> count. Keys: "<column>@<year>"
#: (YEARLY), "active", "funnel:<step>", "setting:<s>", "country:<code>", "gap:<days>" (days from
#: registration to the first diploma, for the median).
Contribution = Counter[tuple[str, str]]


def student_contribution(items: list[Fact]) -> Contribution:
    """What one student's facts (all dated on or before the date counted) add to the figures."""
    out: Contribution = Counter()
    if not items:
        return out
    items = sorted(items, key=lambda f: (f.on, f.position))
    registration = next((f for f in items if f.kind == REGISTERED and f.department), None)
    if registration is not None:
        dep = registration.department or ""
    else:
        found = next((f.department for f in items if f.department), None)
        if found is None:
            return out
        dep = found
    registered = next((f.on for f in items if f.kind == REGISTERED), None)

    def count(on: date, column: str) -> None:
        out[(dep, f"{column}@{on.year}")] += 1

    if _voided(items):  # a mis-registration (the latest void not undone): counted out, shown as voided
        if registered is not None:
            count(registered, "voided")
        return out
    reached: set[str] = set()
    diplomas: dict[str, date] = {}
    revoked: set[str] = set()
    activities: dict[str, tuple[str | None, str | None]] = {}
    withdrawn = deregistered = False
    for f in items:
        if f.kind == REGISTERED and registered == f.on and REGISTERED not in reached:
            count(f.on, "registrations")
        elif f.kind in (ACTIVITY, ACTIVITY_AMENDED) and f.ref:
            activities[f.ref] = (f.setting, f.country)
        elif f.kind == ACTIVITY_WITHDRAWN and f.ref:
            activities.pop(f.ref, None)
        elif f.kind == DIPLOMA and f.ref:
            diplomas[f.ref] = f.on
        elif f.kind == DIPLOMA_REVOKED and f.ref:
            revoked.add(f.ref)
        elif f.kind == WITHDRAWN and not withdrawn:
            withdrawn = True
            count(f.on, "withdrawals")
        elif f.kind == DEREGISTERED:
            if not deregistered:
                count(f.on, "deregistrations")
            deregistered = True
        elif f.kind == REINSTATED:
            deregistered = False
        reached.add(f.kind)
    for setting, country in activities.values():
        out[(dep, f"setting:{setting or 'unknown'}")] += 1
        if country:
            out[(dep, f"country:{country}")] += 1
    # A person is counted once, at their first diploma, while any diploma of theirs stands.
    first_diploma = min(diplomas.values()) if set(diplomas) - revoked else None
    if first_diploma is not None:
        count(first_diploma, "diplomas")
        if registered is not None:
            out[(dep, f"gap:{(first_diploma - registered).days}")] += 1
    if registered is not None:
        steps = {REGISTERED: True, ACTIVITY: ACTIVITY in reached, SUBMITTED: SUBMITTED in reached,
                 APPROVED: APPROVED in reached, PRESENTED: PRESENTED in reached,
                 DIPLOMA: first_diploma is not None}
        for step in FUNNEL:  # each step counts those who reached it and every step before
            if not steps[step]:
                break
            out[(dep, f"funnel:{step}")] += 1
        if not (withdrawn or deregistered or first_diploma is not None):
            out[(dep, "active")] += 1
    return out


def timeline(items: list[Fact], *, known: bool = False) -> list[tuple[date, Contribution]]:
    """How one student's contribution changes over time: (date, change) for each date on which
    it changes, so the contribution as of D is the sum of the changes dated on or before D. By
    business date, or (`known`) by the date each fact was known (`known_date`)."""
    when = known_date if known else (lambda f: f.on)
    days = sorted({when(f) for f in items})
    out: list[tuple[date, Contribution]] = []
    before: Contribution = Counter()
    for day in days:
        now = student_contribution([f for f in items if when(f) <= day])
        change: Contribution = Counter(now)
        change.subtract(before)
        change = Counter({k: v for k, v in change.items() if v})
        if change:
            out.append((day, change))
        before = now
    return out


def figures(facts: Iterable[Fact], as_of: date, departments: Iterable[str] | None = None) -> Figures:
    """The figures as they stood at the end of `as_of` (Lund date), counting only facts dated on or
    before it, for the students of `departments` (every department when None)."""
    by_student: dict[str, list[Fact]] = defaultdict(list)
    for f in facts:
        if f.on <= as_of:
            by_student[f.student_id].append(f)
    counts: Contribution = Counter()
    for items in by_student.values():
        counts.update(student_contribution(items))
    return from_counts(counts, as_of, departments)


def known_on(facts: Iterable[Fact], as_of: date, departments: Iterable[str] | None = None) -> Figures:
    """The figures as they were known at the end of `as_of`: only facts recorded by then."""
    return figures([f for f in facts if known_date(f) <= as_of], as_of, departments)


def from_counts(counts: Mapping[tuple[str, str], int], as_of: date,
                departments: Iterable[str] | None = None) -> Figures:
    """The figures from summed contributions ((department, key) -> count, see `Contribution`)."""
    wanted = None if departments is None else set(departments)
    per_year: dict[int, Counter[str]] = defaultdict(Counter)
    per_dep: dict[str, Counter[str]] = defaultdict(Counter)
    funnel: Counter[str] = Counter()
    settings: Counter[str] = Counter()
    countries: Counter[str] = Counter()
    gaps: Counter[int] = Counter()
    active = 0
    for (dep, key), n in counts.items():
        if not n or (wanted is not None and dep not in wanted and dep != ANY_DEPARTMENT):
            continue
        if "@" in key:
            column, year = key.split("@")
            per_year[int(year)][column] += n
            per_dep[dep][column] += n
        elif key == "active":
            active += n
            per_dep[dep]["active"] += n
        else:
            kind, _, value = key.partition(":")
            if kind == "funnel":
                funnel[value] += n
            elif kind == "setting":
                settings[value] += n
            elif kind == "country":
                countries[value] += n
            elif kind == "gap":
                gaps[int(value)] += n
    result = Figures(as_of=as_of, departments=tuple(sorted(wanted)) if wanted is not None else
                     tuple(sorted(per_dep)))
    result.per_year = {y: {c: row.get(c, 0) for c in YEARLY} for y, row in sorted(per_year.items())}
    result.totals = {c: sum(row.get(c, 0) for row in per_year.values()) for c in YEARLY}
    result.per_department = {d: {c: row.get(c, 0) for c in (*YEARLY, "active")} for d, row in sorted(per_dep.items())}
    result.active = active
    result.funnel = {s: funnel.get(s, 0) for s in FUNNEL}
    days = sorted(gaps.elements())
    result.median_days_to_diploma = float(pystats.median(days)) if days else None
    result.activities_by_setting = {k: v for k, v in settings.items() if v}
    result.activities_by_country = {k: v for k, v in countries.items() if v}
    return result
