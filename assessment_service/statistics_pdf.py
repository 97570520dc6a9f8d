"""The appendix "CIM in numbers" as a PDF: HTML (rendered by the statistics pages from
templates/statistics_appendix.html) laid out by WeasyPrint with the diploma work's renderer
pieces (assessment_service/diploma_pdf.py): the same `AssetFetcher` (only the packaged fonts under
`cim-asset:`; every other URL is refused fatally, so no value can pull a server file into the
PDF), the same packaged fonts, PDF/A-3u, and the same wall-clock deadline (`RenderTimeout`).

Rendered synchronously on request: a warm render of a ten-year appendix takes ~0.3 s, a cold one
(the first in a process: fonts and stylesheet) about a second more (docs/statistics.md).
"""

from __future__ import annotations

import hashlib
import threading

from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration

from assessment_service.diploma_pdf import (
    ASSET_SCHEME,
    DEFAULT_DEADLINE_S,
    PDF_VARIANT,
    AssetFetcher,
    _deadline,
    stylesheets,
)

STYLESHEET = "statistics_appendix.css"


class _AppendixRenderer:
    """What a process keeps warm between renders: the stylesheet and its fonts."""

    def __init__(self) -> None:
        self.fetcher = AssetFetcher()
        self.font_config = FontConfiguration()
        self.css = stylesheets(STYLESHEET, self.fetcher, self.font_config)
        self.lock = threading.Lock()

    def pdf(self, html: str, identifier: str) -> bytes:
        document = HTML(string=html, url_fetcher=self.fetcher, base_url=ASSET_SCHEME)
        pdf = document.write_pdf(stylesheets=self.css, font_config=self.font_config, pdf_variant=PDF_VARIANT,
                                 pdf_identifier=hashlib.sha256(identifier.encode()).hexdigest()[:32].encode(),
                                 uncompressed_pdf=False)
        assert isinstance(pdf, bytes)
        return pdf


_renderer: _AppendixRenderer | None = None
_renderer_lock = threading.Lock()


def _warm() -> _AppendixRenderer:
    global _renderer
    with _renderer_lock:
        if _renderer is None:
            _renderer = _AppendixRenderer()
        return _renderer


def render_appendix(html: str, *, identifier: str, deadline_s: float | None = DEFAULT_DEADLINE_S) -> bytes:
    """The appendix's HTML as PDF/A bytes (`identifier` makes the PDF's /ID: the same appendix, the
    same ID). Raises `RenderTimeout` past the deadline and WeasyPrint's `FatalURLFetchingError` if
    the page asks for anything but a packaged asset."""
    renderer = _warm()
    with renderer.lock, _deadline(deadline_s):
        return renderer.pdf(html, identifier)
