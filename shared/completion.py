"""The completion rule engine, pure: a rule set and a student's activities in, a checklist out.
Shared: the assessors' queue shows it, and the student's report form warns with it.

No I/O and no Flask: the rule set (a `shared.catalogue.Department`) and the activities are passed
in. The checklist informs the assessors, who decide; it says for each requirement whether it is
met and which activities meet it, never only yes or no. Withdrawn activities, and activities of a
kind the rule set does not list (e.g. one awaiting the assessor group's ruling), do not count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.catalogue import (
    MIN_COUNT,
    MIN_DISTINCT_KINDS,
    MIN_OF_CLASS,
    MIN_WITH_SETTING,
    Department,
    Requirement,
    Text,
)

WITHDRAWN = "withdrawn"
UNKNOWN_KIND = "unknown_kind"
SETTING_NOT_ALLOWED = "setting_not_allowed"


@dataclass(frozen=True)
class ActivityFact:
    """What the rules look at in one logged activity (as last amended)."""

    activity_id: str
    kind: str
    setting: str
    title: str | None  # personal: None once the student is erased
    start_date: date
    withdrawn: bool = False

    def describe(self) -> str:
        """'Summer school in Berlin, 2026-07': how the checklist names the activity (by its kind
        once the title is erased)."""
        return f"{self.title or self.kind}, {self.start_date:%Y-%m}"


@dataclass(frozen=True)
class CheckItem:
    """One requirement of the completion rule, met or not, with the activities that meet it."""

    label: Text
    met: bool
    needed: int
    found: int
    activities: tuple[ActivityFact, ...]

    def describe(self, locale: str) -> str:
        """E.g. 'At least one activity abroad: yes — Summer school in Berlin, 2026-07'."""
        answer = _YES.get(locale) if self.met else _NO.get(locale)
        line = f"{self.label.get(locale)}: {answer}"
        if self.activities:
            line += " — " + "; ".join(a.describe() for a in self.activities)
        return line


@dataclass(frozen=True)
class Uncounted:
    """An activity the rules left out, and why (WITHDRAWN, UNKNOWN_KIND or SETTING_NOT_ALLOWED)."""

    activity: ActivityFact
    reason: str


@dataclass(frozen=True)
class Checklist:
    """The completion rule of one rule set (`rules`, e.g. 'SOCSW@1') applied to a student's activities."""

    rules: str
    items: tuple[CheckItem, ...]
    uncounted: tuple[Uncounted, ...] = ()

    @property
    def all_met(self) -> bool:
        return all(item.met for item in self.items)

    @property
    def met_count(self) -> int:
        return sum(item.met for item in self.items)

    def summary(self, locale: str) -> str:
        """'2 of 3 requirements met' / '2 av 3 krav uppfyllda'."""
        if locale.startswith("sv"):
            return f"{self.met_count} av {len(self.items)} krav uppfyllda"
        return f"{self.met_count} of {len(self.items)} requirements met"

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives, for a read model; `from_dict` gives back an equal checklist."""
        return {
            "rules": self.rules,
            "items": [
                {
                    "label": {"en": item.label.en, "sv": item.label.sv},
                    "met": item.met,
                    "needed": item.needed,
                    "found": item.found,
                    "activities": [_fact_dict(a) for a in item.activities],
                }
                for item in self.items
            ],
            "uncounted": [{"activity": _fact_dict(u.activity), "reason": u.reason} for u in self.uncounted],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Checklist:
        return cls(
            rules=raw["rules"],
            items=tuple(
                CheckItem(
                    label=Text(item["label"]["en"], item["label"]["sv"]),
                    met=item["met"],
                    needed=item["needed"],
                    found=item["found"],
                    activities=tuple(_fact(a) for a in item["activities"]),
                )
                for item in raw["items"]
            ),
            uncounted=tuple(Uncounted(_fact(u["activity"]), u["reason"]) for u in raw.get("uncounted", [])),
        )


def evaluate(rule_set: Department, activities: Iterable[ActivityFact]) -> Checklist:
    """Apply the rule set's completion rule to the activities: one checklist item per requirement.

    Activities are taken in date order (then id), so the same activities give the same checklist
    whatever order they arrive in. Requirements on classes share the activities between them:
    an activity counted for one class requirement is not counted again for the next."""
    counted: list[ActivityFact] = []
    uncounted: list[Uncounted] = []
    for activity in sorted(activities, key=lambda a: (a.start_date, a.activity_id)):
        kind = rule_set.kind(activity.kind)
        if activity.withdrawn:
            uncounted.append(Uncounted(activity, WITHDRAWN))
        elif kind is None:
            uncounted.append(Uncounted(activity, UNKNOWN_KIND))
        elif activity.setting not in kind.settings:
            uncounted.append(Uncounted(activity, SETTING_NOT_ALLOWED))
        else:
            counted.append(activity)
    used: set[str] = set()  # by class requirements
    items = tuple(_check(rule_set, requirement, counted, used) for requirement in rule_set.completion)
    return Checklist(rule_set.rules_ref, items, tuple(uncounted))


def _check(rule_set: Department, requirement: Requirement, counted: list[ActivityFact], used: set[str]) -> CheckItem:
    label = requirement.label or label_of(requirement)
    need = requirement.count
    if requirement.requirement == MIN_COUNT:
        return CheckItem(label, len(counted) >= need, need, len(counted), tuple(counted))
    if requirement.requirement == MIN_WITH_SETTING:
        matching = tuple(a for a in counted if a.setting == requirement.setting)
        return CheckItem(label, len(matching) >= need, need, len(matching), matching)
    if requirement.requirement == MIN_DISTINCT_KINDS:
        first_of_kind: dict[str, ActivityFact] = {}
        for activity in counted:
            first_of_kind.setdefault(activity.kind, activity)
        distinct = tuple(first_of_kind.values())
        return CheckItem(label, len(distinct) >= need, need, len(distinct), distinct)
    if requirement.requirement == MIN_OF_CLASS:
        return _check_class(rule_set, requirement, label, counted, used)
    raise ValueError(f"unknown requirement {requirement.requirement!r}")  # the catalogue refuses these at load


def _check_class(
    rule_set: Department, requirement: Requirement, label: Text, counted: list[ActivityFact], used: set[str]
) -> CheckItem:
    def free_of(activity_class: str | None) -> list[ActivityFact]:
        return [
            a for a in counted
            if a.activity_id not in used and (kind := rule_set.kind(a.kind)) and kind.activity_class == activity_class
        ]

    taken = free_of(requirement.activity_class)[: requirement.count]
    used.update(a.activity_id for a in taken)
    found = len(taken)
    for substitute in requirement.substitutes:
        short = requirement.count - found
        if short <= 0:
            break
        available = free_of(substitute.activity_class)
        groups = min(short, len(available) // substitute.count)
        stand_ins = available[: groups * substitute.count]
        used.update(a.activity_id for a in stand_ins)
        taken.extend(stand_ins)
        found += groups
    return CheckItem(label, found >= requirement.count, requirement.count, found, tuple(taken))


# -- wording ------------------------------------------------------------------------------------------
_YES = Text("yes", "ja")
_NO = Text("no", "nej")
_NUMBERS_EN = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBERS_SV = ("inga", "en", "två", "tre", "fyra", "fem", "sex", "sju", "åtta", "nio", "tio")
_SETTING_WORDS = {
    "abroad": Text("abroad", "utomlands"),
    "at_home": Text("at home (internationalisation at home)", "på hemmaplan (internationalisering på hemmaplan)"),
    "digital": Text("online", "digitalt"),
}


def _number(count: int) -> Text:
    if count < len(_NUMBERS_EN):
        return Text(_NUMBERS_EN[count], _NUMBERS_SV[count])
    return Text(str(count), str(count))


def label_of(requirement: Requirement) -> Text:
    """The wording of a requirement in English and Swedish, e.g. 'At least one activity abroad'."""
    n = _number(requirement.count)
    one = requirement.count == 1
    activities = Text("activity" if one else "activities", "aktivitet" if one else "aktiviteter")
    if requirement.requirement == MIN_COUNT:
        return Text(f"At least {n.en} {activities.en}", f"Minst {n.sv} {activities.sv}")
    if requirement.requirement == MIN_DISTINCT_KINDS:
        return Text(
            f"At least {n.en} different kinds of activity" if not one else "At least one kind of activity",
            f"Minst {n.sv} olika slags aktiviteter" if not one else "Minst ett slags aktivitet",
        )
    if requirement.requirement == MIN_WITH_SETTING:
        where = _SETTING_WORDS.get(requirement.setting or "", Text(str(requirement.setting), str(requirement.setting)))
        return Text(f"At least {n.en} {activities.en} {where.en}", f"Minst {n.sv} {activities.sv} {where.sv}")
    if requirement.requirement == MIN_OF_CLASS:
        cls = requirement.activity_class
        label = Text(f"At least {n.en} class {cls} {activities.en}", f"Minst {n.sv} {activities.sv} i klass {cls}")
        for sub in requirement.substitutes:
            s = _number(sub.count)
            sub_one = sub.count == 1
            label = Text(
                f"{label.en} ({s.en} class {sub.activity_class} {'activity' if sub_one else 'activities'} "
                f"may replace one)",
                f"{label.sv} ({s.sv} {'aktivitet' if sub_one else 'aktiviteter'} i klass {sub.activity_class} "
                f"kan ersätta en)",
            )
        return label
    return Text(requirement.requirement, requirement.requirement)


def _fact_dict(activity: ActivityFact) -> dict[str, Any]:
    return {
        "activity_id": activity.activity_id,
        "kind": activity.kind,
        "setting": activity.setting,
        "title": activity.title,
        "start_date": activity.start_date.isoformat(),
        "withdrawn": activity.withdrawn,
    }


def _fact(raw: dict[str, Any]) -> ActivityFact:
    return ActivityFact(
        activity_id=raw["activity_id"],
        kind=raw["kind"],
        setting=raw["setting"],
        title=raw["title"],
        start_date=date.fromisoformat(raw["start_date"]),
        withdrawn=raw["withdrawn"],
    )
