"""Rate limits (S5). Filled in by the rate-limit work; until then it installs nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask

from shared.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def init_rate_limits(app: Flask, settings: Settings) -> None:
    return None


def signin_limited(view: F) -> F:
    """Marks a sign-in or link-request view for the stricter sign-in limit."""
    return view
