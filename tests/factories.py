"""Small builders the tests share: a valid one-page PDF and unique canary strings."""

from __future__ import annotations

import io
import secrets

from pypdf import PdfWriter


def blank_pdf(size: int = 200) -> bytes:
    """A valid one-page PDF of `size` × `size` points: what an upload accepts."""
    writer = PdfWriter()
    writer.add_blank_page(width=size, height=size)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def canary(nbytes: int = 6) -> str:
    """A string no fixture or translation holds, to search stores and pages for after erasure."""
    return "cnry" + secrets.token_hex(nbytes)
