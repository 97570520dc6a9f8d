"""Departments, their activity catalogues and reflection questions, read from a TOML file (shared by both services)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SETTINGS = ("abroad", "at_home", "digital")


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
            raise ValueError(f"{where}: expected a string or a table with at least 'en'")
        return cls(str(raw["en"]), str(raw.get("sv", "")))


@dataclass(frozen=True)
class ActivityKind:
    code: str
    name: Text
    settings: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    code: str
    text: Text


@dataclass(frozen=True)
class Programme:
    code: str
    name: Text


@dataclass(frozen=True)
class Department:
    code: str
    version: int
    name: Text
    faculty: Text
    programmes: tuple[Programme, ...]
    activity_kinds: tuple[ActivityKind, ...]
    reflection_questions: tuple[Question, ...]
    requires_abroad: bool
    min_activities: int

    def kind(self, code: str) -> ActivityKind | None:
        return next((k for k in self.activity_kinds if k.code == code), None)

    def programme(self, code: str) -> Programme | None:
        return next((p for p in self.programmes if p.code == code), None)

    @property
    def rules_ref(self) -> str:
        """The rule-set reference every decision records, e.g. 'SOCSW@1'."""
        return f"{self.code}@{self.version}"


@dataclass(frozen=True)
class Catalogue:
    departments: dict[str, Department]

    def department(self, code: str) -> Department | None:
        return self.departments.get(code)

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Catalogue:
        departments = {}
        for code, body in (raw.get("departments") or {}).items():
            where = f"departments.{code}"
            kinds = []
            for index, kind in enumerate(body.get("activity_kinds", [])):
                settings = tuple(kind.get("settings", SETTINGS))
                unknown = set(settings) - set(SETTINGS)
                if unknown:
                    raise ValueError(f"{where}.activity_kinds[{index}]: unknown settings {unknown}")
                kinds.append(
                    ActivityKind(kind["code"], Text.parse(kind["name"], where), settings)
                )
            questions = [
                Question(q["code"], Text.parse(q["text"], where))
                for q in body.get("reflection_questions", [])
            ]
            programmes = [
                Programme(p["code"], Text.parse(p["name"], where)) for p in body.get("programmes", [])
            ]
            if not kinds or not questions or not programmes:
                raise ValueError(f"{where}: needs programmes, activity_kinds and reflection_questions")
            departments[code] = Department(
                code=code,
                version=int(body.get("version", 1)),
                name=Text.parse(body["name"], where),
                faculty=Text.parse(body.get("faculty", body["name"]), where),
                programmes=tuple(programmes),
                activity_kinds=tuple(kinds),
                reflection_questions=tuple(questions),
                requires_abroad=bool(body.get("requires_abroad", False)),
                min_activities=int(body.get("min_activities", 1)),
            )
        if not departments:
            raise ValueError("the catalogue names no departments")
        return cls(departments)
