"""Every setting the product accepts is read by the product: a field of `Settings` that nothing
uses is a dead knob an operator could set and expect to matter (as `terms_file` once was)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("shared", "intake_service", "assessment_service", "workers", "config")


def _product_source() -> str:
    """The product's Python, with config.py's own declarations and `from_env` left out: a field
    counts as used when some code reads it (`settings.x`, `self.x` in a property, `x=`)."""
    parts = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if path == ROOT / "shared" / "config.py":
                before, after = text.split("def from_env", 1)
                text = before + after.split("\n    def ", 1)[-1]  # from_env's body names every field
            parts.append(text)
    return "\n".join(parts)


def test_every_settings_field_is_read_somewhere_in_the_product() -> None:
    source = _product_source()
    unused = [
        field.name
        for field in dataclasses.fields(Settings)
        if not re.search(rf"\.{field.name}\b|\b{field.name}=", source)
    ]
    assert unused == []
