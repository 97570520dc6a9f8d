"""What the tests share: a registration's fields, a valid one-page PDF, unique canary strings and
the compiled Swedish catalogue."""

from __future__ import annotations

import io
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from typing import TypeVar

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from pypdf import PdfWriter

from shared.config import ROOT

T = TypeVar("T")

PO = ROOT / "translations" / "sv" / "LC_MESSAGES" / "messages.po"

#: A registration form's fields, as a student fills them in (a synthetic person).
STUDENT = {
    "name": "Astrid Lindqvist",
    "email": "astrid@example.com",
    "university_id": "as1234li-s",
    "department": "SOCSW",
    "programme": "SSASK",
    "expected_end_term": "VT2028",
}


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


def compile_swedish() -> None:
    """What `make translations` does: compile messages.po (the .mo is not committed)."""
    mo = PO.with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= PO.stat().st_mtime:
        return
    with open(PO, "rb") as handle:
        catalog = read_po(handle, locale="sv")
    fd, tmp = tempfile.mkstemp(dir=mo.parent, prefix=".messages-")
    with os.fdopen(fd, "wb") as handle:
        write_mo(handle, catalog)
    os.replace(tmp, mo)


def at_once(count: int, action: Callable[[], T]) -> list[T]:
    """Run `action` in `count` threads released together; what each returned, in finishing order."""
    results: list[T] = []
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        results.append(action())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
