"""PURE: what changed between two rounds of a report, for the assessors' side-by-side view.

Each answer (in the rule set's question order) before and after, marked changed or not; each
activity covered by either round: added, removed, amended (its details differ) or unchanged.
After the student's erasure the texts read as None: an answer whose text is gone on either side
is "erased" (no one can tell whether it changed), and an activity compares on what is left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CHANGED, UNCHANGED, ERASED = "changed", "unchanged", "erased"
ADDED, REMOVED, AMENDED = "added", "removed", "amended"


@dataclass(frozen=True)
class AnswerChange:
    code: str
    before: str | None
    after: str | None
    mark: str  # CHANGED, UNCHANGED or ERASED


@dataclass(frozen=True)
class ActivityChange:
    activity_id: str
    before: Mapping[str, Any] | None  # None: not covered in the earlier round
    after: Mapping[str, Any] | None  # None: not covered in the later round
    mark: str  # ADDED, REMOVED, AMENDED or UNCHANGED
    #: The details that differ (an amended activity's), in the read model's order.
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoundChanges:
    answers: list[AnswerChange]
    activities: list[ActivityChange]

    @property
    def changed(self) -> int:
        """How many answers and activities differ."""
        return sum(a.mark == CHANGED for a in self.answers) + sum(a.mark != UNCHANGED for a in self.activities)


def _answer_mark(before: str | None, after: str | None) -> str:
    if before is None or after is None:
        return ERASED
    return UNCHANGED if before.strip() == after.strip() else CHANGED


def compare_rounds(
    before: Mapping[str, Any], after: Mapping[str, Any], question_codes: Sequence[str]
) -> RoundChanges:
    """`before` and `after`: rounds as `round_queries.report_round` gives them; `question_codes`:
    the rule set's questions in order (codes only either round answered come after them)."""
    old, new = before.get("answers"), after.get("answers")
    answered = set(old or {}) | set(new or {})
    codes = [c for c in question_codes if c in answered] + sorted(answered - set(question_codes))
    answers = []
    for code in codes:
        was = None if old is None else old.get(code, "")
        now = None if new is None else new.get(code, "")
        answers.append(AnswerChange(code, was, now, _answer_mark(was, now)))
    activities = []
    old_ids, new_ids = list(before.get("activity_ids") or []), list(after.get("activity_ids") or [])
    old_details, new_details = before.get("activities") or {}, after.get("activities") or {}
    for activity_id in new_ids + [a for a in old_ids if a not in new_ids]:
        was = old_details.get(activity_id, {}) if activity_id in old_ids else None
        now = new_details.get(activity_id, {}) if activity_id in new_ids else None
        if was is None:
            activities.append(ActivityChange(activity_id, None, now, ADDED))
        elif now is None:
            activities.append(ActivityChange(activity_id, was, None, REMOVED))
        else:
            differ = tuple(k for k in now if k in was and was[k] != now[k] and None not in (was[k], now[k]))
            activities.append(ActivityChange(activity_id, was, now, AMENDED if differ else UNCHANGED, differ))
    return RoundChanges(answers, activities)
