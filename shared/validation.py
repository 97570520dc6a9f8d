"""Reusable marshmallow fields and validators: safe text, terms, country codes, ids."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from marshmallow import ValidationError, fields

# C0 and C1 control characters, DEL, and bidi overrides that can disguise text; tab and newline
# are allowed only where a field says multiline. The same classes go into the OpenAPI patterns.
_CTRL_MULTI = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CTRL_SINGLE = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_CTRL_MULTI}]")
#: Lone (unpaired) surrogates: no UTF-8 form, so sealing and storing them fails. orjson refuses
#: them in request bodies already; the fields refuse them too, whatever decoded the input.
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL_SINGLE_LINE = re.compile(f"[{_CTRL_SINGLE}]")
TERM_PATTERN = re.compile(r"^(HT|VT)(20[0-9]{2}|2100)$")
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUID = re.compile(UUID_PATTERN)


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a code point U+D800-U+DFFF (which no valid UTF-8 text decodes to)."""
    return _SURROGATE.search(text) is not None


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
        ctrl = _CTRL_MULTI if multiline else _CTRL_SINGLE
        pattern = f"^[^{ctrl}]*$" if min_length == 0 else f"^[^{ctrl}]*[^{ctrl}\\s][^{ctrl}]*$"
        described = {"maxLength": max_length, "minLength": min_length, "pattern": pattern}
        kwargs["metadata"] = {**described, **kwargs.get("metadata", {})}
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
        if has_lone_surrogate(text):
            raise ValidationError("Must be valid Unicode text (no unpaired surrogates).")
        if len(text) > self.max_length:
            raise ValidationError(f"Must be at most {self.max_length} characters.")
        text = text.strip()
        if len(text) < self.min_length:
            raise ValidationError(
                "Must not be blank." if self.min_length == 1 else f"Must be at least {self.min_length} characters."
            )
        return text


class Term(fields.String):
    """An academic term such as 'HT2026' (autumn) or 'VT2027' (spring)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"pattern": TERM_PATTERN.pattern, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not TERM_PATTERN.match(text):
            raise ValidationError("Must be a term such as HT2026 (autumn) or VT2027 (spring).")
        return text


#: CLDR territories that are not countries a person travels to: unions and groupings (EU, EZ,
#: UN, QO), the unknown region (ZZ), and codes ISO 3166-1 only reserves for places that are part
#: of a country listed anyway (Ascension AC, Clipperton CP, Sark CQ, Diego Garcia DG, Ceuta and
#: Melilla EA, the Canary Islands IC, Tristan da Cunha TA).
NOT_COUNTRIES = frozenset({"ZZ", "EU", "EZ", "UN", "QO", "AC", "CP", "CQ", "DG", "EA", "IC", "TA"})


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes of countries and territories known to CLDR (via Babel): not the
    pseudo-locales' XA and XB or any other user-assigned code (AA, QM-QZ, XA-XZ), except Kosovo's
    XK, which the EU and CLDR use."""
    from babel import Locale

    territories: list[str] = [str(code) for code in Locale("en").territories]
    return frozenset(
        code
        for code in territories
        if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES
        and not _user_assigned(code)
    )


def _user_assigned(code: str) -> bool:
    return code == "AA" or ("QM" <= code <= "QZ") or (code.startswith("X") and code != "XK")


def validate_country(value: str) -> None:
    if value not in country_codes():
        raise ValidationError("Must be an ISO 3166 two-letter country code such as SE or DE.")


class CountryCode(fields.String):
    """An ISO 3166-1 alpha-2 country code (documented as an enum)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"enum": sorted(country_codes()), **kwargs.get("metadata", {})}
        super().__init__(validate=validate_country, **kwargs)


class UUIDString(fields.String):
    """A canonical (lower-case, hyphenated) UUID string."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"format": "uuid", "pattern": UUID_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not is_uuid(text):
            raise ValidationError("Must be a valid id.")
        return text


def is_uuid(value: object) -> bool:
    """True for a canonical lower-case UUID string (what this system hands out)."""
    return isinstance(value, str) and _UUID.match(value) is not None

