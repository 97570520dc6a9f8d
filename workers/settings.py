"""The workers' settings and per-process context, built lazily (after the prefork, never at import)."""

from __future__ import annotations

from functools import cache

from shared.config import Settings


@cache
def settings() -> Settings:
    """The settings, checked as the apps check theirs: in production a worker refuses to run
    with a default secret, SQLite, DEBUG on and the rest of `check_production_safety`."""
    loaded = Settings.from_env()
    loaded.check_production_safety()
    return loaded
