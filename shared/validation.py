"""Reusable marshmallow fields and validators: safe text, terms, country codes, ids."""

from __future__ import annotations

import re
import uuid
from functools import cache
from typing import Any

from marshmallow import ValidationError, fields, validate

# C0 and C1 control characters, DEL, and bidi overrides that can disguise text; tab and newline
# are allowed only where a field says multiline.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
TERM_PATTERN = re.compile(r"^(HT|VT)(\d{4})$")


class SafeText(fields.String):
    """A string with no control characters, stripped, non-blank unless allowed, bounded length."""

    def __init__(
        self,
        *,
        max_length: int,
        min_length: int = 1,
        multiline: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length
        self.multiline = multiline

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.multiline:
            text = text.replace("\r\n", "\n")
        pattern = _CONTROL if self.multiline else _CONTROL_SINGLE_LINE
        if pattern.search(text):
            raise ValidationError("Must not contain control characters.")
        text = text.strip()
        if len(text) < self.min_length:
            raise ValidationError(
                "Must not be blank." if self.min_length == 1 else f"Must be at least {self.min_length} characters."
            )
        if len(text) > self.max_length:
            raise ValidationError(f"Must be at most {self.max_length} characters.")
        return text


class Term(fields.String):
    """An academic term such as 'HT2026' (autumn) or 'VT2027' (spring)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        match = TERM_PATTERN.match(text)
        if not match or not 2000 <= int(match.group(2)) <= 2100:
            raise ValidationError("Must be a term such as HT2026 (autumn) or VT2027 (spring).")
        return text


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes known to CLDR (via Babel)."""
    from babel import Locale

    return frozenset(
        code
        for code in Locale("en").territories
        if len(code) == 2 and code.isalpha() and code not in {"ZZ", "EU", "EZ", "UN", "QO"}
    )


def validate_country(value: str) -> None:
    if value not in country_codes():
        raise ValidationError("Must be an ISO 3166 two-letter country code such as SE or DE.")


class UUIDString(fields.String):
    """A canonical UUID string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parsed = uuid.UUID(text)
        except ValueError:
            raise ValidationError("Must be a valid id.") from None
        if str(parsed) != text.lower():
            raise ValidationError("Must be a valid id.")
        return str(parsed)


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False


StrictInt = fields.Integer  # strict=True passed at use: "1" is not an integer in JSON
Length = validate.Length
OneOf = validate.OneOf
Range = validate.Range
