"""The workers' settings and per-process context, built lazily (after the prefork, never at import)."""

from __future__ import annotations

from functools import cache

from shared.config import Settings


@cache
def settings() -> Settings:
    return Settings.from_env()
