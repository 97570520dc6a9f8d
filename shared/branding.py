"""PURE visual identity (issue 17): the university's and each department's name, logo and colours,
as data (`config/branding.toml`, `CIM_BRANDING_FILE`), checked when a service starts. No Flask;
no I/O but `load` reading the file and the logos it names (docs/branding.md).

A department's table overrides the global one field by field; what neither sets keeps the
neutral defaults (the colours of `shared/static/cim.css`). Every colour pair the pages draw text
on must reach WCAG 2.1 AA contrast (4.5:1): a file that breaks a rule is refused with a message
naming the table and the field, and the service does not start (as with the term calendar and
the departments file) — a wrong colour must not reach students silently.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from shared.catalogue import CatalogueError, Text


class BrandingError(ValueError):
    """The branding file breaks a rule; the message names the table and the field."""


#: WCAG 2.1 AA contrast for normal-size text (1.4.3).
AA_CONTRAST = 4.5
#: The page background every link is drawn on (cim.css: white).
PAGE_BACKGROUND = "#ffffff"
#: The largest logo file accepted: it is in every page's header.
MAX_LOGO_BYTES = 256 * 1024
#: Raster images only, recognised by their first bytes (not their names). SVG is refused: it is
#: a document that can carry scripts and links, and a logo needs neither.
_IMAGE_TYPES: tuple[tuple[bytes, bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", b"", "image/png"),
    (b"\xff\xd8\xff", b"", "image/jpeg"),
    (b"RIFF", b"WEBP", "image/webp"),
)
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Colours:
    """The colours a look sets (hex, `#rrggbb`); the defaults are cim.css's own."""

    header_background: str = "#0b2a4a"
    header_text: str = "#ffffff"
    link: str = "#0b4f8a"
    button: str = "#00703c"
    button_text: str = "#ffffff"


#: Each pair of colours text is drawn in: (text, background, what it is).
CONTRAST_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("header_text", "header_background", "the header's text on its background"),
    ("link", "page", "links on the page's white background"),
    ("button_text", "button", "a button's text on the button"),
)
_COLOUR_KEYS = frozenset(Colours.__dataclass_fields__)


@dataclass(frozen=True)
class Logo:
    """A checked logo image, read once at start-up and served from memory."""

    content: bytes
    mimetype: str

    @property
    def version(self) -> str:
        return hashlib.sha256(self.content).hexdigest()[:16]


@dataclass(frozen=True)
class Look:
    """What one page's header and colours show: the global identity or a department's."""

    university: Text | None = None
    department: Text | None = None
    logo: Logo | None = None
    logo_alt: Text | None = None
    colours: Colours = field(default_factory=Colours)

    @property
    def themed(self) -> bool:
        """Whether the colours differ from the stylesheet's defaults (a theme stylesheet is due)."""
        return self.colours != Colours()

    @property
    def version(self) -> str:
        """A short hash of the colours: the theme stylesheet's URL carries it, so a browser's
        cached copy is never stale after a change."""
        return hashlib.sha256(repr(self.colours).encode()).hexdigest()[:16]

    def stylesheet(self) -> str:
        """The CSS custom properties `cim.css` reads (`var(--cim-…, default)`)."""
        c = self.colours
        values = {
            "header-bg": c.header_background,
            "header-text": c.header_text,
            "link": c.link,
            "link-hover": shade(c.link, PAGE_BACKGROUND),
            "button": c.button,
            "button-text": c.button_text,
            "button-hover": shade(c.button, c.button_text),
            "button-shadow": shade(shade(c.button, c.button_text), c.button_text),
        }
        lines = "".join(f"  --cim-{name}: {value};\n" for name, value in values.items())
        return f"/* CIM's visual identity (config/branding.toml) */\n:root {{\n{lines}}}\n"


@dataclass(frozen=True)
class Branding:
    """The global look and each department's (already merged over the global one)."""

    default: Look = field(default_factory=Look)
    departments: Mapping[str, Look] = field(default_factory=dict)

    def look_for(self, department: str | None) -> Look:
        return self.departments.get(department or "", self.default)

    @classmethod
    def load(cls, path: Path, department_names: Mapping[str, Text] | None = None) -> Branding:
        """The file's branding; a missing file is the neutral default (nothing configured)."""
        if not path.exists():
            return cls()
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise BrandingError(f"{path}: {err}") from err
        try:
            return cls.parse(data, path.parent, department_names)
        except BrandingError as err:
            raise BrandingError(f"{path}: {err}") from err

    @classmethod
    def parse(
        cls, data: Mapping[str, Any], base_dir: Path, department_names: Mapping[str, Text] | None = None
    ) -> Branding:
        """Raise BrandingError listing every rule the parsed file breaks (`; `-separated).
        `department_names` (the catalogue's) says which departments exist and names those whose
        table gives no name of its own."""
        problems: list[str] = []
        unknown = sorted(set(data) - {"global", "departments"})
        problems += [f"{key}: unknown table (use [global] and [departments.CODE])" for key in unknown]
        default = _look(data.get("global", {}), "global", Look(), base_dir, problems, department=False)
        departments: dict[str, Look] = {}
        raw_departments = data.get("departments", {})
        if not isinstance(raw_departments, dict):
            problems.append("departments: expected a table of departments")
            raw_departments = {}
        names = department_names
        for code, body in raw_departments.items():
            where = f"departments.{code}"
            if names is not None and code not in names:
                problems.append(f"{where}: not a department of the departments file")
                continue
            named = replace(default, department=names[code]) if names is not None else default
            departments[code] = _look(body, where, named, base_dir, problems, department=True)
        if problems:
            raise BrandingError("; ".join(problems))
        return cls(default, departments)


_LOOK_KEYS = frozenset({"university", "department", "logo", "logo_alt", "colours"})


def _look(
    raw: Any, where: str, base: Look, base_dir: Path, problems: list[str], *, department: bool
) -> Look:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a table")
        return base
    allowed = _LOOK_KEYS if department else _LOOK_KEYS - {"department"}
    problems += [f"{where}.{key}: unknown key" for key in sorted(set(raw) - allowed)]
    look = base
    texts: dict[str, Text] = {}
    for key in ("university", "department", "logo_alt"):
        if key in raw and key in allowed:
            try:
                texts[key] = Text.parse(raw[key], f"{where}.{key}")
            except CatalogueError as err:
                problems.append(str(err))
    look = replace(
        look,
        university=texts.get("university", look.university),
        department=texts.get("department", look.department),
        logo_alt=texts.get("logo_alt", look.logo_alt),
    )
    if "logo" in raw:
        # a logo is an image of text: its alternative says the same for people who cannot see it
        if "logo_alt" not in raw:
            problems.append(f"{where}.logo_alt: give the logo's text alternative (what the logo says)")
        try:
            look = replace(look, logo=read_logo(raw["logo"], base_dir))
        except BrandingError as err:
            problems.append(f"{where}.logo: {err}")
    colours = raw.get("colours", {})
    if not isinstance(colours, dict):
        problems.append(f"{where}.colours: expected a table")
        colours = {}
    problems += [f"{where}.colours.{key}: unknown colour" for key in sorted(set(colours) - _COLOUR_KEYS)]
    given = {key: value for key, value in colours.items() if key in _COLOUR_KEYS}
    bad = [key for key, value in given.items() if not (isinstance(value, str) and _HEX.match(value))]
    problems += [f"{where}.colours.{key}: write a hex colour such as #0b2a4a" for key in sorted(bad)]
    if bad:
        return look
    merged = replace(look.colours, **{key: value.lower() for key, value in given.items()})
    problems += [f"{where}.colours: {p}" for p in contrast_problems(merged)]
    return replace(look, colours=merged)


def contrast_problems(colours: Colours) -> list[str]:
    """Every text/background pair below WCAG AA contrast, naming the fields and the ratio."""
    found = []
    for text, background, what in CONTRAST_PAIRS:
        fore = getattr(colours, text)
        back = PAGE_BACKGROUND if background == "page" else getattr(colours, background)
        ratio = contrast_ratio(fore, back)
        if ratio < AA_CONTRAST:
            pair = text if background == "page" else f"{text} on {background}"
            found.append(f"{pair} ({what}) has contrast {ratio:.2f}:1, below WCAG AA's {AA_CONTRAST}:1")
    return found


def read_logo(value: Any, base_dir: Path) -> Logo:
    """The logo file `value` names, relative to the branding file's folder and inside it: no
    absolute path, no `..`, no link leading out; a PNG, JPEG or WebP image (by its first bytes)
    of at most MAX_LOGO_BYTES."""
    if not isinstance(value, str) or not value.strip():
        raise BrandingError("give the logo's file name, relative to the branding file's folder")
    relative = PurePosixPath(value.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or ":" in value:
        raise BrandingError(f"{value!r} must be a path inside the branding file's folder (no '..', not absolute)")
    root = base_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise BrandingError(f"{value!r} leads outside the branding file's folder")
    if not path.is_file():
        raise BrandingError(f"{value!r}: no such file")
    size = path.stat().st_size
    if size > MAX_LOGO_BYTES:
        raise BrandingError(f"{value!r} is {size} bytes; at most {MAX_LOGO_BYTES} are accepted")
    content = path.read_bytes()
    for magic, marker, mimetype in _IMAGE_TYPES:
        if content.startswith(magic) and (not marker or content[8:12] == marker):
            return Logo(content, mimetype)
    raise BrandingError(f"{value!r} is not a PNG, JPEG or WebP image")


# -- colour arithmetic (WCAG 2.1's definitions) ---------------------------------------------
def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def relative_luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2.1's contrast ratio of two hex colours, from 1 to 21."""
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def shade(colour: str, away_from: str, amount: float = 0.2) -> str:
    """`colour` moved `amount` of the way to black or white, whichever is farther from
    `away_from`: a hover colour whose contrast with the text on it only grows."""
    target = 0 if relative_luminance(away_from) > relative_luminance(colour) else 255
    if relative_luminance(away_from) == relative_luminance(colour):
        target = 0
    return "#" + "".join(f"{round(v + (target - v) * amount):02x}" for v in _rgb(colour))
