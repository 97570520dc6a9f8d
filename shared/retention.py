"""Retention ("gallring"): the periods of config/retention.toml and the pure rule "what is due at T".

Flask-free and I/O-free except for reading the policy file (the stores' `compact()` clears
what disposal leaves on disk). The executor that finds candidates and disposes of them lives in
intake_service/retention.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shared.config import ROOT

DEFAULT_POLICY_FILE = ROOT / "config" / "retention.toml"

#: The kinds the executor knows how to dispose of; the policy file must give a period for each.
USED_SIGN_IN_TOKENS = "used_sign_in_tokens"
REVOKED_API_TOKENS = "revoked_api_tokens"
WITHDRAWN_REGISTRATIONS = "withdrawn_registrations"
UNREFERENCED_ATTACHMENTS = "unreferenced_attachments"
KINDS = (USED_SIGN_IN_TOKENS, REVOKED_API_TOKENS, WITHDRAWN_REGISTRATIONS, UNREFERENCED_ATTACHMENTS)


class RetentionConfigError(ValueError):
    """The policy file is missing a kind or gives a period that is not a whole number of days >= 0."""


@dataclass(frozen=True)
class RetentionRule:
    kind: str
    keep: timedelta
    after: str


@dataclass(frozen=True)
class RetentionPolicy:
    """The periods per kind of record, and which decision (and file version) they come from."""

    version: int
    decision: str
    rules: dict[str, RetentionRule]

    def keep(self, kind: str) -> timedelta:
        return self.rules[kind].keep

    def cutoff(self, kind: str, now: datetime) -> datetime:
        """Records of `kind` whose clock started at or before this moment are due."""
        return now - self.keep(kind)

    def decided_by(self, kind: str) -> str:
        """What a RecordsDisposed event names as its authority."""
        return f"config/retention.toml#{kind}@{self.version}"


def parse_policy(raw: dict[str, Any]) -> RetentionPolicy:
    kinds = raw.get("kinds") or {}
    rules: dict[str, RetentionRule] = {}
    for kind in KINDS:
        entry = kinds.get(kind)
        if not isinstance(entry, dict):
            raise RetentionConfigError(f"retention policy has no period for {kind!r}")
        days = entry.get("keep_days")
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise RetentionConfigError(f"{kind}.keep_days must be a whole number of days >= 0")
        rules[kind] = RetentionRule(kind, timedelta(days=days), str(entry.get("after", "")))
    version = raw.get("version", 1)
    if not isinstance(version, int):
        raise RetentionConfigError("version must be an integer")
    return RetentionPolicy(version=version, decision=str(raw.get("decision", "")), rules=rules)


def load_policy(path: Path | None = None) -> RetentionPolicy:
    with open(path or DEFAULT_POLICY_FILE, "rb") as handle:
        return parse_policy(tomllib.load(handle))


@dataclass(frozen=True)
class Candidate:
    """A record that may fall due: its kind, its id (never personal data) and when its
    retention clock started (the expiry, revocation, withdrawal, upload or access)."""

    kind: str
    record_id: str
    since: datetime


def due(candidates: Iterable[Candidate], policy: RetentionPolicy, now: datetime) -> list[Candidate]:
    """The candidates due for disposal at `now`: `since + keep <= now`. Pure; sorted by kind, id."""
    return sorted(
        (c for c in candidates if c.since + policy.keep(c.kind) <= now),
        key=lambda c: (c.kind, c.record_id),
    )
