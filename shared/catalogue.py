"""Departments and their versioned rule sets (catalogue, completion rule, questions, review policy),
read and validated from a TOML file shared by both services."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from datetime import datetime as datetime_type
from pathlib import Path
from typing import Any

SETTINGS = ("abroad", "at_home", "digital")

# The requirement primitives a completion rule is composed of (evaluated by shared.completion).
MIN_COUNT = "min_count"
MIN_DISTINCT_KINDS = "min_distinct_kinds"
MIN_WITH_SETTING = "min_with_setting"
MIN_OF_CLASS = "min_of_class"
REQUIREMENTS = (MIN_COUNT, MIN_DISTINCT_KINDS, MIN_WITH_SETTING, MIN_OF_CLASS)

# Who settles a report whose reviews disagree.
#: Who decides a round whose reviews disagree: the department's coordinator (counted in their
#: weekly digest), or the assessor group at its meeting (on the agenda; a coordinator records it).
DISAGREEMENT_DECIDERS = ("coordinator", "assessor_group")
#: Policies named in the design but not built: a rule set naming one is refused, saying why.
_NOT_BUILT_DECIDERS = {
    "third_assessor": "a third assessor is not yet assigned and asked automatically on a disagreement",
}


def _disagreement_problem(value: Any, where: str) -> str | None:
    """What is wrong with `on_disagreement = value`, or None."""
    if value in DISAGREEMENT_DECIDERS:
        return None
    choices = ", ".join(DISAGREEMENT_DECIDERS)
    if isinstance(value, str) and value in _NOT_BUILT_DECIDERS:
        return f"{where}.on_disagreement: {value!r} is not supported yet ({_NOT_BUILT_DECIDERS[value]}): " \
               f"use one of {choices}"
    return f"{where}.on_disagreement: {value!r} is not one of {choices}"

_DEPARTMENT_KEYS = frozenset(
    {
        "version", "name", "faculty", "programmes", "activity_kinds", "reflection_questions",
        "requires_abroad", "min_activities", "classes", "completion", "report_required",
        "presentation_required", "preparatory_lecture_required", "grace_terms", "approvals_required",
        "on_disagreement", "review_target_days", "criteria", "reminder_days", "review_days", "signatories",
    }
)
_COMPLETION_KEYS = frozenset({"completion", "min_activities", "requires_abroad"})
_KIND_KEYS = frozenset({"code", "name", "settings", "class"})
_QUESTION_KEYS = frozenset({"code", "text"})
_PROGRAMME_KEYS = frozenset({"code", "name"})
_REQUIREMENT_KEYS = {
    MIN_COUNT: frozenset({"requirement", "count", "label"}),
    MIN_DISTINCT_KINDS: frozenset({"requirement", "count", "label"}),
    MIN_WITH_SETTING: frozenset({"requirement", "count", "setting", "label"}),
    MIN_OF_CLASS: frozenset({"requirement", "count", "class", "substitutes", "label"}),
}
_SUBSTITUTE_KEYS = frozenset({"class", "count"})
_SIGNATORY_KEYS = frozenset({"name", "title", "from", "until"})
_CRITERION_KEYS = frozenset({"code", "label"})
# A criterion's code names form fields and JSON keys: lower-case letters, digits and underscores.
_CRITERION_CODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CatalogueError(ValueError):
    """The departments file breaks a rule; the message names the department and the field."""


@dataclass(frozen=True)
class Text:
    """A text in English and Swedish; `get` falls back to English."""

    en: str
    sv: str

    def get(self, locale: str) -> str:
        return self.sv if locale.startswith("sv") and self.sv else self.en

    @classmethod
    def parse(cls, raw: Any, where: str) -> Text:
        if isinstance(raw, str):
            return cls(raw, raw)
        if not isinstance(raw, dict) or "en" not in raw:
            raise CatalogueError(f"{where}: expected a string or a table with at least 'en'")
        return cls(str(raw["en"]), str(raw.get("sv", "")))


@dataclass(frozen=True)
class ActivityKind:
    code: str
    name: Text
    settings: tuple[str, ...]
    activity_class: str | None = None  # "A"/"B"/"C" where the faculty uses classes


@dataclass(frozen=True)
class Question:
    code: str
    text: Text


@dataclass(frozen=True)
class Programme:
    code: str
    name: Text


@dataclass(frozen=True)
class Substitute:
    """`count` activities of `activity_class` may replace one activity the requirement asks for."""

    activity_class: str
    count: int


@dataclass(frozen=True)
class Requirement:
    """One part of a completion rule: at least `count` counted activities of some shape.

    `requirement` is one of REQUIREMENTS: any activities (min_count), of different kinds
    (min_distinct_kinds), in a setting (min_with_setting), or of a class, where other classes may
    substitute (min_of_class). `label` overrides the wording the rule engine would give it."""

    requirement: str
    count: int
    setting: str | None = None
    activity_class: str | None = None
    substitutes: tuple[Substitute, ...] = ()
    label: Text | None = None


@dataclass(frozen=True)
class Criterion:
    """What a reviewer judges in a report (met / not met, with a comment): a code and its wording."""

    code: str
    label: Text


#: The review criteria of a rule set that names none (the issue's: the activities meet the
#: requirements; the reflections compare contexts and relate to the future profession; complete).
DEFAULT_CRITERIA = (
    Criterion("activities_meet_requirements",
              Text("The activities meet the requirements", "Aktiviteterna uppfyller kraven")),
    Criterion("reflection_compares_contexts",
              Text("The reflections compare the contexts", "Reflektionerna jämför sammanhangen")),
    Criterion("reflection_relates_to_profession",
              Text("The reflections relate to the future profession",
                   "Reflektionerna knyter an till det framtida yrket")),
    Criterion("report_complete", Text("The report is complete", "Rapporten är fullständig")),
)


@dataclass(frozen=True)
class Signatory:
    """Who signs the department's diplomas from `starts` (`from` in the file) to `until` (both
    inclusive; None: until further notice), with their title in English and Swedish."""

    name: str
    title: Text
    starts: date
    until: date | None = None

    def signs_on(self, day: date) -> bool:
        return self.starts <= day and (self.until is None or day <= self.until)


#: When a rule set names no `reminder_days`: 60, 14 and 3 days before the deadline.
DEFAULT_REMINDER_DAYS: tuple[int, ...] = (60, 14, 3)
#: Days an assessor has for a review from the day of the assignment, unless the rule set says.
DEFAULT_REVIEW_DAYS = 14
#: The longest review period a rule set may give (a year).
MAX_REVIEW_DAYS = 365


def _review_days(body: dict[str, Any], where: str) -> int:
    """`review_days`: a whole number of days, 1 to MAX_REVIEW_DAYS (default DEFAULT_REVIEW_DAYS)."""
    days = _count(body.get("review_days", DEFAULT_REVIEW_DAYS), f"{where}.review_days", minimum=1)
    if days > MAX_REVIEW_DAYS:
        raise CatalogueError(f"{where}.review_days: {days} is more than {MAX_REVIEW_DAYS} days")
    return days


def _reminder_days(body: dict[str, Any], where: str) -> tuple[int, ...]:
    """`reminder_days`: distinct whole days from 1 to 366 before the deadline, largest first."""
    if "reminder_days" not in body:
        return DEFAULT_REMINDER_DAYS
    days = _list(body["reminder_days"], f"{where}.reminder_days")
    if any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 366 for d in days):
        raise CatalogueError(f"{where}.reminder_days: give whole days from 1 to 366, e.g. [60, 14, 3]")
    if len(set(days)) != len(days):
        raise CatalogueError(f"{where}.reminder_days: a day is named twice")
    return tuple(sorted(days, reverse=True))


@dataclass(frozen=True)
class Department:
    """A department's rule set at one version: what counts, what completes, how reports are reviewed."""

    code: str
    version: int
    name: Text
    faculty: Text
    programmes: tuple[Programme, ...]
    activity_kinds: tuple[ActivityKind, ...]
    reflection_questions: tuple[Question, ...]
    requires_abroad: bool
    min_activities: int
    completion: tuple[Requirement, ...] = ()
    classes: tuple[str, ...] = ()
    report_required: bool = True
    presentation_required: bool = True
    preparatory_lecture_required: bool = False
    grace_terms: int = 1
    approvals_required: int = 2
    on_disagreement: str = "coordinator"
    review_target_days: int = 30
    criteria: tuple[Criterion, ...] = DEFAULT_CRITERIA
    #: Days before the deadline on which a student is reminded (largest first).
    reminder_days: tuple[int, ...] = DEFAULT_REMINDER_DAYS
    #: Days an assessor has to give a review, counted from the day they were assigned (Lund time).
    review_days: int = DEFAULT_REVIEW_DAYS
    #: Who signs the department's diplomas, per period (not a rule: no version needed to change).
    signatories: tuple[Signatory, ...] = ()
    earlier: dict[int, Department] = field(default_factory=dict, compare=False, repr=False)

    def signatories_on(self, day: date) -> tuple[Signatory, ...]:
        """Who signs a diploma issued on `day`, in the file's order."""
        return tuple(s for s in self.signatories if s.signs_on(day))

    def kind(self, code: str) -> ActivityKind | None:
        return next((k for k in self.activity_kinds if k.code == code), None)

    def programme(self, code: str) -> Programme | None:
        return next((p for p in self.programmes if p.code == code), None)

    @property
    def criterion_codes(self) -> tuple[str, ...]:
        """The codes of the review criteria, in the order the review form asks them."""
        return tuple(c.code for c in self.criteria)

    @property
    def rules_ref(self) -> str:
        """The rule-set reference every decision records, e.g. 'SOCSW@1'."""
        return f"{self.code}@{self.version}"

    def at_version(self, version: int) -> Department | None:
        """This rule set as it was at `version` (kept in the file as `earlier`), or None."""
        if version == self.version:
            return self
        return self.earlier.get(version)


@dataclass(frozen=True)
class Catalogue:
    departments: dict[str, Department]

    def department(self, code: str) -> Department | None:
        return self.departments.get(code)

    def rule_set(self, ref: str) -> Department | None:
        """The rule set a recorded `CODE@version` names (current or earlier), or None if unknown."""
        code, sep, version = ref.rpartition("@")
        dept = self.departments.get(code) if sep else None
        if dept is None or not version.isdigit():
            return None
        return dept.at_version(int(version))

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        with open(path, "rb") as handle:
            try:
                raw = tomllib.load(handle)
            except tomllib.TOMLDecodeError as err:
                raise CatalogueError(f"{path}: not valid TOML: {err}") from err
        try:
            return cls.parse(raw)
        except CatalogueError as err:
            raise CatalogueError(f"{path}: {err}") from err

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Catalogue:
        departments = raw.get("departments") or {}
        if not isinstance(departments, dict):
            raise CatalogueError("departments: expected a table of departments")
        parsed = {code: _department(code, body) for code, body in departments.items()}
        if not parsed:
            raise CatalogueError("the catalogue names no departments")
        return cls(parsed)


# -- checking a file before it is deployed -------------------------------------------------------------
def check_file(path: Path) -> list[str]:
    """Every problem of the departments file at `path`, each naming its place (an empty list: the
    services will load it). Loading stops at the first problem; this goes on, department by
    department and item by item, so one run shows a coordinator everything to mend."""
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except OSError as err:
        return [f"{path}: cannot be read: {err.strerror or err}"]
    except tomllib.TOMLDecodeError as err:
        return [f"{path}: not valid TOML: {err}"]
    return [f"{path}: {problem}" for problem in check(raw)]


def check(raw: dict[str, Any]) -> list[str]:
    """Every problem of a parsed departments file (see `check_file`)."""
    departments = raw.get("departments")
    if departments is None or departments == {}:
        return ["the catalogue names no departments"]
    if not isinstance(departments, dict):
        return ["departments: expected a table of departments"]
    found: list[str] = []
    for code, body in departments.items():
        for problem in _department_problems(code, body):
            if problem not in found:
                found.append(problem)
    return found


def rules_of(dept: Department) -> tuple[Any, ...]:
    """What a rule set decides, without its wording: a change here needs a new `version`, a change
    of names and texts alone (a typo in a kind's name) does not."""
    return (
        dept.classes,
        tuple((k.code, k.settings, k.activity_class) for k in dept.activity_kinds),
        tuple((r.requirement, r.count, r.setting, r.activity_class, r.substitutes) for r in dept.completion),
        tuple(q.code for q in dept.reflection_questions),
        dept.report_required, dept.presentation_required, dept.preparatory_lecture_required, dept.grace_terms,
        dept.approvals_required, dept.on_disagreement, dept.review_target_days,
        dept.criterion_codes,
    )


def check_change(deployed: Catalogue, edited: Catalogue) -> list[str]:
    """What an edit of the departments file breaks for the reports already checked and decided:
    a rule changed without a new `version`, a version going back, or a version that events record
    no longer kept (as the current one or under `earlier`) as it was."""
    found: list[str] = []
    for code, before in deployed.departments.items():
        where = f"departments.{code}"
        after = edited.department(code)
        if after is None:
            found.append(f"{where}: removed, but events record {before.rules_ref}; keep the department")
            continue
        if after.version < before.version:
            found.append(f"{where}.version: {after.version} is below the deployed version {before.version}")
            continue
        if after.version == before.version:
            if rules_of(after) != rules_of(before):
                found.append(
                    f"{where}.version: the rules changed but the version is still {before.version}; "
                    f"make it {before.version + 1} and keep version {before.version} under "
                    f"[[{where}.earlier]]"
                )
            continue
        for version in sorted({before.version, *before.earlier}):
            kept, was = after.at_version(version), before.at_version(version)
            if kept is None:
                found.append(
                    f"{where}.earlier: version {version} is not kept; reports checked under {code}@{version} "
                    f"need it (add [[{where}.earlier]] with version = {version} and what it said)"
                )
            elif was is not None and rules_of(kept) != rules_of(was):
                found.append(f"{where}.earlier: version {version} now says something else than when it was deployed")
    return found


def _department_problems(code: str, body: Any) -> list[str]:
    where = f"departments.{code}"
    if not isinstance(body, dict):
        return [f"{where}: expected a table"]
    found: list[str] = []

    def attempt(check: Any, *args: Any) -> Any:
        try:
            return check(*args)
        except CatalogueError as err:
            found.append(str(err))
            return None

    current = {k: v for k, v in body.items() if k != "earlier"}
    attempt(_no_unknown_keys, current, _DEPARTMENT_KEYS, where)
    classes = attempt(lambda: tuple(str(c) for c in _list(body.get("classes", []), f"{where}.classes"))) or ()

    def items(name: str) -> list[tuple[Any, str]]:
        listed = body.get(name, [])  # not a list: the whole rule set's check below says so
        return [(item, f"{where}.{name}[{i}]") for i, item in enumerate(listed)] if isinstance(listed, list) else []

    kinds = [kind for item, at in items("activity_kinds") if (kind := attempt(_kind, item, classes, at))]
    for item, at in items("reflection_questions"):
        attempt(_question, item, at)
    for item, at in items("programmes"):
        attempt(_programme, item, at)
    attempt(_criteria, body, where)
    attempt(_reminder_days, body, where)
    attempt(_review_days, body, where)
    attempt(_signatories, body, where)
    for key, minimum in (("version", 1), ("grace_terms", 0), ("approvals_required", 1), ("review_target_days", 1)):
        if key in body:
            attempt(_count, body[key], f"{where}.{key}", minimum)
    for key in ("report_required", "presentation_required", "preparatory_lecture_required", "requires_abroad"):
        attempt(_flag, body, key, False, where)
    if (problem := _disagreement_problem(body.get("on_disagreement", "coordinator"), where)) is not None:
        found.append(problem)
    for item, at in items("completion"):
        attempt(_requirement, item, tuple(kinds), classes, at)
    current = attempt(_rule_set, code, {k: v for k, v in body.items() if k != "earlier"}, where)
    if current is not None:
        for overrides, at in items("earlier"):
            attempt(_earlier_version, code, body, overrides, current, at)
    attempt(_department, code, body)  # what only the whole rule set shows, and its earlier versions
    return list(dict.fromkeys(found))


# -- parsing and validation ----------------------------------------------------------------------------
def _department(code: str, body: Any) -> Department:
    where = f"departments.{code}"
    if not isinstance(body, dict):
        raise CatalogueError(f"{where}: expected a table")
    earlier_raw = body.get("earlier", [])
    current = _rule_set(code, {k: v for k, v in body.items() if k != "earlier"}, where)
    if not isinstance(earlier_raw, list):
        raise CatalogueError(f"{where}.earlier: expected a list of earlier versions")
    earlier: dict[int, Department] = {}
    for index, overrides in enumerate(earlier_raw):
        old = _earlier_version(code, body, overrides, current, f"{where}.earlier[{index}]")
        if old.version in earlier:
            raise CatalogueError(f"{where}.earlier[{index}].version: version {old.version} is kept twice")
        earlier[old.version] = old
    if not earlier:
        return current
    return Department(**{**_fields(current), "earlier": earlier})


def _earlier_version(code: str, body: dict[str, Any], overrides: Any, current: Department, at: str) -> Department:
    """One `[[departments.CODE.earlier]]` block: what differed from the current version; the rest
    is as now. A completion rule given either way replaces the current one whichever way it is given."""
    if not isinstance(overrides, dict) or "version" not in overrides:
        raise CatalogueError(f"{at}.version: every earlier version names its version")
    base = {k: v for k, v in body.items() if k != "earlier"}
    if _COMPLETION_KEYS & set(overrides):
        base = {k: v for k, v in base.items() if k not in _COMPLETION_KEYS}
    old = _rule_set(code, {**base, **overrides}, at)
    if old.version >= current.version:
        raise CatalogueError(f"{at}.version: {old.version} must be below the current version {current.version}")
    return old


def _fields(dept: Department) -> dict[str, Any]:
    return {name: getattr(dept, name) for name in Department.__dataclass_fields__}


def _rule_set(code: str, body: dict[str, Any], where: str) -> Department:
    _no_unknown_keys(body, _DEPARTMENT_KEYS, where)
    classes = tuple(str(c) for c in _list(body.get("classes", []), f"{where}.classes"))
    if len(set(classes)) != len(classes):
        raise CatalogueError(f"{where}.classes: a class is named twice")
    kinds = tuple(
        _kind(kind, classes, f"{where}.activity_kinds[{index}]")
        for index, kind in enumerate(_list(body.get("activity_kinds", []), f"{where}.activity_kinds"))
    )
    questions = tuple(
        _question(q, f"{where}.reflection_questions[{index}]")
        for index, q in enumerate(_list(body.get("reflection_questions", []), f"{where}.reflection_questions"))
    )
    programmes = tuple(
        _programme(p, f"{where}.programmes[{index}]")
        for index, p in enumerate(_list(body.get("programmes", []), f"{where}.programmes"))
    )
    if not kinds or not questions or not programmes:
        raise CatalogueError(f"{where}: needs programmes, activity_kinds and reflection_questions")
    for name, items in (("activity_kinds", kinds), ("reflection_questions", questions), ("programmes", programmes)):
        codes = [item.code for item in items]
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise CatalogueError(f"{where}.{name}: code named twice: {', '.join(twice)}")
    if "name" not in body:
        raise CatalogueError(f"{where}.name: missing")
    criteria = _criteria(body, where)

    legacy = {"min_activities", "requires_abroad"} & set(body)
    if "completion" in body:
        if legacy:
            raise CatalogueError(
                f"{where}.completion: give either a completion rule or {' and '.join(sorted(legacy))}, not both"
            )
        completion = tuple(
            _requirement(item, kinds, classes, f"{where}.completion[{index}]")
            for index, item in enumerate(_list(body["completion"], f"{where}.completion"))
        )
        if not completion:
            raise CatalogueError(f"{where}.completion: name at least one requirement")
    else:  # the first shape of the file: a minimum count and, perhaps, one activity abroad
        completion = (Requirement(MIN_COUNT, _count(body.get("min_activities", 1), f"{where}.min_activities")),)
        if _flag(body, "requires_abroad", False, where):
            completion += (Requirement(MIN_WITH_SETTING, 1, setting="abroad"),)
        for requirement in completion:
            _check_satisfiable(requirement, kinds, where)

    approvals = _count(body.get("approvals_required", 2), f"{where}.approvals_required")
    on_disagreement = body.get("on_disagreement", "coordinator")
    if (problem := _disagreement_problem(on_disagreement, where)) is not None:
        raise CatalogueError(problem)
    return Department(
        code=code,
        version=_count(body.get("version", 1), f"{where}.version"),
        name=Text.parse(body["name"], f"{where}.name"),
        faculty=Text.parse(body.get("faculty", body["name"]), f"{where}.faculty"),
        programmes=programmes,
        activity_kinds=kinds,
        reflection_questions=questions,
        requires_abroad=any(r.requirement == MIN_WITH_SETTING and r.setting == "abroad" for r in completion),
        min_activities=max((r.count for r in completion if r.requirement == MIN_COUNT), default=0),
        completion=completion,
        classes=classes,
        report_required=_flag(body, "report_required", True, where),
        presentation_required=_flag(body, "presentation_required", True, where),
        preparatory_lecture_required=_flag(body, "preparatory_lecture_required", False, where),
        grace_terms=_count(body.get("grace_terms", 1), f"{where}.grace_terms", minimum=0),
        approvals_required=approvals,
        on_disagreement=str(on_disagreement),
        review_target_days=_count(body.get("review_target_days", 30), f"{where}.review_target_days"),
        criteria=criteria,
        reminder_days=_reminder_days(body, where),
        review_days=_review_days(body, where),
        signatories=_signatories(body, where),
    )


def _signatories(body: dict[str, Any], where: str) -> tuple[Signatory, ...]:
    """`[[departments.CODE.signatories]]`: name, title = { en, sv }, from = date, until = date (optional)."""
    found = []
    for index, raw in enumerate(_list(body.get("signatories", []), f"{where}.signatories")):
        at = f"{where}.signatories[{index}]"
        item = _table(raw, at)
        _no_unknown_keys(item, _SIGNATORY_KEYS, at)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 120:
            raise CatalogueError(f"{at}.name: expected the signatory's name (at most 120 characters)")
        title = Text.parse(item.get("title"), f"{at}.title")
        if not title.sv:
            raise CatalogueError(f"{at}.title: give the title in Swedish too (sv)")
        starts, until = item.get("from"), item.get("until")
        if not isinstance(starts, date) or isinstance(starts, datetime_type):
            raise CatalogueError(f"{at}.from: expected a date (2027-01-01), got {starts!r}")
        if until is not None and (not isinstance(until, date) or isinstance(until, datetime_type)):
            raise CatalogueError(f"{at}.until: expected a date (2027-12-31), got {until!r}")
        if until is not None and until < starts:
            raise CatalogueError(f"{at}.until: {until} is before from = {starts}")
        found.append(Signatory(name.strip(), title, starts, until))
    return tuple(found)


def _criteria(body: dict[str, Any], where: str) -> tuple[Criterion, ...]:
    """The rule set's review criteria (`criteria = [{ code, label = { en, sv } }, ...]`), or the
    default four when it names none."""
    if "criteria" not in body:
        return DEFAULT_CRITERIA
    criteria = []
    for index, raw in enumerate(_list(body["criteria"], f"{where}.criteria")):
        at = f"{where}.criteria[{index}]"
        code, label = _coded_text(raw, at, _CRITERION_KEYS, "label")
        if not _CRITERION_CODE.match(code):
            raise CatalogueError(
                f"{at}.code: {code!r} must be lower-case letters, digits and underscores, starting with a letter"
            )
        criteria.append(Criterion(code, label))
    if not criteria:
        raise CatalogueError(f"{where}.criteria: name at least one criterion, or leave `criteria` out")
    codes = [c.code for c in criteria]
    twice = sorted({c for c in codes if codes.count(c) > 1})
    if twice:
        raise CatalogueError(f"{where}.criteria: code named twice: {', '.join(twice)}")
    return tuple(criteria)


def _kind(raw: Any, classes: tuple[str, ...], where: str) -> ActivityKind:
    body = _table(raw, where)
    _no_unknown_keys(body, _KIND_KEYS, where)
    if "code" not in body or "name" not in body:
        raise CatalogueError(f"{where}: needs a code and a name")
    settings = tuple(_list(body.get("settings", list(SETTINGS)), f"{where}.settings"))
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise CatalogueError(f"{where}.settings: unknown settings {unknown} (known: {', '.join(SETTINGS)})")
    if not settings:
        raise CatalogueError(f"{where}.settings: name at least one setting")
    activity_class = body.get("class")
    if classes and activity_class not in classes:
        raise CatalogueError(f"{where}.class: {activity_class!r} is not one of the classes {', '.join(classes)}")
    if not classes and activity_class is not None:
        raise CatalogueError(f"{where}.class: the department declares no classes")
    return ActivityKind(str(body["code"]), Text.parse(body["name"], f"{where}.name"), settings, activity_class)


def _coded_text(raw: Any, where: str, keys: frozenset[str], text_key: str) -> tuple[str, Text]:
    """A table of a code and a translated text (`text_key`), and nothing else of `keys`."""
    body = _table(raw, where)
    _no_unknown_keys(body, keys, where)
    if "code" not in body or text_key not in body:
        raise CatalogueError(f"{where}: needs a code and a {text_key}")
    return str(body["code"]), Text.parse(body[text_key], f"{where}.{text_key}")


def _question(raw: Any, where: str) -> Question:
    return Question(*_coded_text(raw, where, _QUESTION_KEYS, "text"))


def _programme(raw: Any, where: str) -> Programme:
    return Programme(*_coded_text(raw, where, _PROGRAMME_KEYS, "name"))


def _requirement(raw: Any, kinds: tuple[ActivityKind, ...], classes: tuple[str, ...], where: str) -> Requirement:
    body = _table(raw, where)
    name = body.get("requirement")
    if name not in REQUIREMENTS:
        raise CatalogueError(f"{where}.requirement: {name!r} is not one of {', '.join(REQUIREMENTS)}")
    _no_unknown_keys(body, _REQUIREMENT_KEYS[name], where)
    count = _count(body.get("count", 1), f"{where}.count")
    label = Text.parse(body["label"], f"{where}.label") if "label" in body else None
    setting = body.get("setting")
    activity_class = body.get("class")
    substitutes: list[Substitute] = []
    if name == MIN_WITH_SETTING and setting not in SETTINGS:
        raise CatalogueError(f"{where}.setting: {setting!r} is not one of {', '.join(SETTINGS)}")
    if name == MIN_OF_CLASS:
        if activity_class not in classes:
            raise CatalogueError(
                f"{where}.class: {activity_class!r} is not a class of the department "
                f"(classes: {', '.join(classes) or 'none declared'})"
            )
        for index, sub in enumerate(_list(body.get("substitutes", []), f"{where}.substitutes")):
            at = f"{where}.substitutes[{index}]"
            sub_body = _table(sub, at)
            _no_unknown_keys(sub_body, _SUBSTITUTE_KEYS, at)
            if sub_body.get("class") not in classes or sub_body.get("class") == activity_class:
                raise CatalogueError(f"{at}.class: {sub_body.get('class')!r} is not another class of the department")
            substitutes.append(Substitute(str(sub_body["class"]), _count(sub_body.get("count", 1), f"{at}.count")))
    requirement = Requirement(
        requirement=name,
        count=count,
        setting=setting if name == MIN_WITH_SETTING else None,
        activity_class=activity_class if name == MIN_OF_CLASS else None,
        substitutes=tuple(substitutes),
        label=label,
    )
    _check_satisfiable(requirement, kinds, where)
    return requirement


def _check_satisfiable(requirement: Requirement, kinds: tuple[ActivityKind, ...], where: str) -> None:
    """Refuse a rule no student could ever meet with this catalogue (a typo, most likely)."""
    if requirement.requirement == MIN_DISTINCT_KINDS and requirement.count > len(kinds):
        raise CatalogueError(
            f"{where}.count: {requirement.count} different kinds asked for, the catalogue has {len(kinds)}"
        )
    if requirement.requirement == MIN_WITH_SETTING and not any(requirement.setting in k.settings for k in kinds):
        raise CatalogueError(f"{where}.setting: no activity kind can be {requirement.setting}")
    if requirement.requirement == MIN_OF_CLASS:
        usable = {requirement.activity_class} | {s.activity_class for s in requirement.substitutes}
        if not any(k.activity_class in usable for k in kinds):
            raise CatalogueError(f"{where}.class: no activity kind is of class {requirement.activity_class}")


def _no_unknown_keys(body: dict[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise CatalogueError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _table(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: expected a table")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise CatalogueError(f"{where}: expected a list")
    return raw


def _count(raw: Any, where: str, minimum: int = 1) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise CatalogueError(f"{where}: expected a whole number of at least {minimum}, got {raw!r}")
    return raw


def _flag(body: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise CatalogueError(f"{where}.{key}: expected true or false, got {value!r}")
    return value
