"""Rate limits (S5). Filled in by the rate-limit work; until then it installs nothing."""

from __future__ import annotations

from flask import Flask

from shared.config import Settings


def init_rate_limits(app: Flask, settings: Settings) -> None:
    return None
