"""The diploma PDF: a `DiplomaDocument` rendered by WeasyPrint from a jinja2 template. Pure: no database.

`render_diploma(doc)` returns the PDF's bytes. The same document always gives the same bytes (the
PDF's dates come from `doc.issued_on`, its identifier from `doc.number`, nothing reads the clock),
so the issuing workflow can store the file with its SHA-256 and a re-render proves it unchanged.
The output is PDF/A-3u (archival, every glyph mapped to Unicode).

Safety: the template autoescapes every value, and WeasyPrint fetches through `AssetFetcher`,
which serves only the files of `diploma_assets/` under the `cim-asset:` scheme and refuses
everything else (`file:`, `http(s):`, `data:` ...) fatally, so a crafted value can never pull a
server file into a PDF. A render runs under a wall-clock deadline (`RenderTimeout`).

Speed: one `_Renderer` per process keeps the jinja environment, the parsed stylesheet and its
`FontConfiguration` (the @font-face fonts decoded and registered once), so a warm render only lays
out and writes the page; fonts are subset by HarfBuzz per render (bench/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any

import segno
from babel import Locale
from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from assessment_service.diploma_document import SETTINGS, DiplomaDocument, Merit

#: The folder of everything a diploma may load: the template, the stylesheet, the fonts.
ASSETS = Path(__file__).resolve().parent / "diploma_assets"
#: The only URL scheme the renderer serves: cim-asset:fonts/x.woff2 is ASSETS/fonts/x.woff2.
ASSET_SCHEME = "cim-asset:"
#: Only these kinds of packaged file are served (never the template or anything else).
_SERVED_SUFFIXES = {".woff2": "font/woff2", ".svg": "image/svg+xml", ".png": "image/png"}
#: A warm render takes ~0.1 s; a cold one (first in a process) about a second more.
DEFAULT_DEADLINE_S = 20.0
#: PDF/A-3u: archival, with Unicode text (WeasyPrint adds the sRGB output intent and XMP metadata).
PDF_VARIANT = "pdf/a-3u"

_SETTING_HEADINGS = {
    "abroad": ("Abroad", "Utomlands"),
    "at_home": ("At home", "På hemmaplan"),
    "digital": ("Digital", "Digitalt"),
}


class AssetRefused(Exception):
    """WeasyPrint asked for a URL that is not a packaged diploma asset."""


class RenderTimeout(Exception):
    """A render ran past its deadline."""


class AssetFetcher(URLFetcher):
    """Serves `cim-asset:` URLs from the asset folder's fonts/images; refuses every other URL.

    `fail_on_errors` makes a refusal fatal (WeasyPrint's `FatalURLFetchingError`): a diploma that
    tries to load anything else is not rendered at all, rather than rendered without it.
    """

    def __init__(self, root: Path = ASSETS) -> None:
        super().__init__(allowed_protocols=(), fail_on_errors=True)
        self._root = root.resolve()
        self.refused: list[str] = []

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        try:
            path = self._resolve(url)
        except AssetRefused:
            self.refused.append(url)
            raise
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": _SERVED_SUFFIXES[path.suffix]})

    def _resolve(self, url: str) -> Path:
        if not url.startswith(ASSET_SCHEME):
            raise AssetRefused(f"not a packaged asset: {url[:80]!r}")
        relative = url[len(ASSET_SCHEME):]
        if not relative or any(c in relative for c in "?#%\\\0") or relative.startswith("/"):
            raise AssetRefused(f"not a packaged asset: {url[:80]!r}")
        path = (self._root / relative).resolve()
        if (not path.is_relative_to(self._root) or path.suffix not in _SERVED_SUFFIXES
                or not path.is_file()):
            raise AssetRefused(f"not a packaged asset: {url[:80]!r}")
        return path


def stylesheets(name: str, fetcher: AssetFetcher, font_config: FontConfiguration) -> list[CSS]:
    """The shared fonts (diploma_assets/fonts.css), then the stylesheet `name` of diploma_assets."""
    return [CSS(filename=str(ASSETS / sheet), url_fetcher=fetcher, font_config=font_config)
            for sheet in ("fonts.css", name)]


@dataclass(frozen=True)
class _MeritRow:
    merit: Merit
    country_en: str | None
    country_sv: str | None
    dates: str


class _Renderer:
    """What a process keeps warm between renders: templates, the stylesheet, the fonts."""

    def __init__(self) -> None:
        self.fetcher = AssetFetcher()
        self.env = Environment(loader=FileSystemLoader(ASSETS), autoescape=select_autoescape(["html"]),
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.template = self.env.get_template("diploma.html")
        self.font_config = FontConfiguration()
        self.css = stylesheets("diploma.css", self.fetcher, self.font_config)
        self.en = Locale.parse("en_GB")
        self.sv = Locale.parse("sv_SE")
        self.lock = threading.Lock()

    def html(self, doc: DiplomaDocument) -> str:
        groups = [(setting, _SETTING_HEADINGS[setting], [self._row(m) for m in doc.merits_in(setting)])
                  for setting in SETTINGS]
        return self.template.render(
            doc=doc,
            groups=[g for g in groups if g[2]],
            issued_en=format_date(doc.issued_on, "long", locale=self.en),
            issued_sv=format_date(doc.issued_on, "long", locale=self.sv),
            held_en=doc.presentation and format_date(doc.presentation.held_on, "long", locale=self.en),
            held_sv=doc.presentation and format_date(doc.presentation.held_on, "long", locale=self.sv),
            created=_w3c_date(doc.issued_on),
            qr_svg=qr_svg(doc.verify_url),
        )

    def _row(self, merit: Merit) -> _MeritRow:
        code = (merit.country_code or "").upper()
        en = self.en.territories.get(code) if code else None
        sv = self.sv.territories.get(code) if code else None
        if code and en is None:
            en = sv = code  # an unknown code is shown as it is, never guessed
        return _MeritRow(merit, en, sv, _date_span(merit.start_date, merit.end_date))

    def pdf(self, doc: DiplomaDocument) -> bytes:
        html = HTML(string=self.html(doc), url_fetcher=self.fetcher, base_url=ASSET_SCHEME)
        pdf = html.write_pdf(stylesheets=self.css, font_config=self.font_config, pdf_variant=PDF_VARIANT,
                             pdf_identifier=pdf_identifier(doc.number), uncompressed_pdf=False)
        assert isinstance(pdf, bytes)
        return pdf


_renderer: _Renderer | None = None
_renderer_lock = threading.Lock()


def _warm_renderer() -> _Renderer:
    global _renderer
    with _renderer_lock:
        if _renderer is None:
            _renderer = _Renderer()
        return _renderer


def render_diploma(doc: DiplomaDocument, *, deadline_s: float | None = DEFAULT_DEADLINE_S) -> bytes:
    """The diploma as PDF/A bytes; byte-identical for the same document.

    Raises `RenderTimeout` past `deadline_s` seconds (enforced with SIGALRM when called on a
    process's main thread, as in a Celery prefork worker; elsewhere the worker's time limit is
    the bound) and WeasyPrint's `FatalURLFetchingError` if the page asks for a non-asset URL.
    """
    renderer = _warm_renderer()
    with renderer.lock, _deadline(deadline_s):
        return renderer.pdf(doc)


def diploma_html(doc: DiplomaDocument) -> str:
    """The HTML the PDF is made from (for tests and a browser preview)."""
    return _warm_renderer().html(doc)


def warm_up() -> None:
    """Load fonts and stylesheet now (e.g. when a worker process starts), not on the first diploma."""
    from assessment_service.diploma_document import sample_document

    render_diploma(sample_document())


def pdf_identifier(number: str) -> bytes:
    """The PDF's /ID: stable per diploma number (a re-render is the same file), 32 hex digits."""
    return hashlib.sha256(f"cim-diploma:{number}".encode()).hexdigest()[:32].encode()


def qr_svg(url: str) -> Markup:
    """The verification URL as an inline SVG QR code (error correction M, one unit per module)."""
    qr = segno.make(url, error="m", micro=False)
    svg = qr.svg_inline(scale=1, border=0, dark="#1b2a41", omitsize=True)
    return Markup(svg)  # segno's own markup: the URL is in the modules, not in text


def _date_span(start: date, end: date) -> str:
    if start == end:
        return start.isoformat()
    return f"{start.isoformat()} – {end.isoformat()}"


def _w3c_date(day: date) -> str:
    # Midday UTC of the issue date: a fixed instant, the same on every render and machine.
    return f"{day.isoformat()}T12:00:00Z"


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise RenderTimeout(f"the diploma render took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
