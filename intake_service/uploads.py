"""Report attachments: checked to really be a harmless PDF, stored under generated names (S6).

What an upload goes through (`check_pdf`), cheapest first; the first failure refuses it (422,
naming the field `attachment`) and nothing is stored:

1. size: not empty, at most `max_bytes`;
2. shape: starts with `%PDF-`, no HTML in the first KiB (what a browser sniffs), not a ZIP (a
   PDF+ZIP polyglot has a ZIP directory at its end), nothing but white space after the last
   `%%EOF` (where polyglots hide their second format);
3. active content, on the raw bytes outside streams, with `#xx` escapes in names decoded
   (`/J#61vaScript` is `/JavaScript`): JavaScript, launch/submit/import/remote actions, additional
   actions (`/AA`), embedded files, rich media, XFA forms;
4. the parse, in a child process: pypdf reads the file and walks *every* object in the
   cross-reference table, including those inside compressed object streams (where a byte grep
   sees nothing), looking for the same names; an `/OpenAction` is allowed only when it goes to a
   page of the document (a destination, or a lone `/GoTo` action, as LaTeX/hyperref writes it),
   never any other action or a chain (`/Next`); a URI action (a link) whose target is a
   `javascript:`, `vbscript:` or `data:` URI (`REFUSED_URI_SCHEMES`, however the string is
   written: literal, hex, escaped, mixed case, with white space) is refused like a script; it
   refuses encryption, more than `MAX_PAGES` pages or a page count that lies, more than
   `MAX_OBJECTS` objects, and more than `MAX_DECOMPRESSED_BYTES` of decompressed streams (a zip
   bomb).

Why a child process: pypdf is a pure-Python parser of hostile input. A crafted file can make it
loop, recurse or allocate without bound, and a thread cannot be stopped or bounded in memory. The
child gets hard limits from the kernel (address space `PROBE_MEMORY_BYTES`, CPU `PROBE_CPU_SECONDS`,
no file writes, no core dumps) and a wall-clock timeout (`PROBE_TIMEOUT_SECONDS`), and any way it
dies is a refusal, never a 500 and never a stuck web worker. It costs one interpreter start
(~0.2 s) per upload, which is rare.

Stored files are named by generated ids only, under one root, written atomically; the display
name is kept (sealed) in the event after `safe_filename` removed paths, control and bidi
characters. Downloads must be served as attachments with `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import Reason, ValidationFailed

log = logging.getLogger(__name__)

FIELD = "attachment"
MAX_PAGES = 500
MAX_OBJECTS = 100_000
MAX_DECOMPRESSED_BYTES = 300 * 1024 * 1024
PROBE_MEMORY_BYTES = 1024 * 1024 * 1024
PROBE_CPU_SECONDS = 10
PROBE_TIMEOUT_SECONDS = 20.0

#: Names that run code, open or submit things, or carry files: refused wherever they appear.
FORBIDDEN_NAMES = frozenset({
    "JavaScript", "JS", "Launch", "SubmitForm", "ImportData", "GoToE", "GoToR", "Rendition",
    "AA", "EmbeddedFile", "EmbeddedFiles", "EF", "FileAttachment", "RichMedia", "RichMediaExecute",
    "XFA",
})

#: Link targets (`/URI` of a URI action, e.g. a link annotation) that run script when followed:
#: refused like /JavaScript. Other links (https:, mailto:) are a document's ordinary content.
REFUSED_URI_SCHEMES = ("javascript:", "vbscript:", "data:")

MSG_EMPTY = Reason("file_empty", "The file is empty.")
MSG_NOT_PDF = Reason("not_a_pdf", "The file is not a PDF.")
MSG_ACTIVE = Reason("pdf_active", "PDFs with scripts, actions or embedded files are not accepted.")
MSG_ENCRYPTED = Reason("pdf_encrypted", "Encrypted PDFs are not accepted.")
MSG_UNREADABLE = Reason("pdf_unreadable", "The PDF could not be read.")
MSG_NO_PAGES = Reason("pdf_no_pages", "The PDF has no pages.")
MSG_TOO_MANY_PAGES = Reason("pdf_too_many_pages", "The PDF has too many pages (at most {max_pages}).")
FILE_TOO_LARGE = Reason("file_too_large", "The file is too large.")
MAX_FILE_SIZE = Reason("max_file_size", "The file must be at most {max_bytes} bytes.")
#: Every reason an upload is refused for (the pages have a text for each).
REASONS = (
    MSG_EMPTY, MSG_NOT_PDF, MSG_ACTIVE, MSG_ENCRYPTED, MSG_UNREADABLE, MSG_NO_PAGES, MSG_TOO_MANY_PAGES,
    FILE_TOO_LARGE, MAX_FILE_SIZE,
)

_HTML_HEAD = re.compile(rb"<\s*(?:!doctype|html|head|body|script|iframe|svg|object|embed|meta)\b", re.I)
_STREAM = re.compile(rb"(?<![A-Za-z])stream(?:\r\n|\n|\r).*?(?<![A-Za-z])endstream", re.S)
_NAME = re.compile(rb"/((?:[^\x00\t\n\x0c\r ()<>\[\]{}/%#]|#[0-9A-Fa-f]{2})+)")
_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class CheckedPdf:
    content: bytes
    filename: str
    sha256: str
    pages: int


def safe_filename(name: str | None) -> str:
    """A display name without paths, control or bidi characters, ending in .pdf."""
    base = (name or "report.pdf").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] not in {"C"})
    base = re.sub(r"[^\w .()-]", "_", base).strip(" .") or "report"
    if not base.lower().endswith(".pdf"):
        base += ".pdf"
    return base[-120:]


def _refuse(reason: Reason, **params: Any) -> ValidationFailed:
    problem = reason(**params)
    return ValidationFailed(problem, {FIELD: [problem]})


def pdf_names(raw: bytes) -> set[str]:
    """Every PDF name in `raw` outside stream bodies, with `#xx` escapes decoded."""
    outside = _STREAM.sub(b"stream endstream", raw)
    names = set()
    for match in _NAME.finditer(outside):
        decoded = _HEX.sub(lambda m: bytes([int(m.group(1), 16)]), match.group(1))
        names.add(decoded.decode("latin-1"))
    return names


def _check_shape(content: bytes) -> None:
    if not content.startswith(b"%PDF-"):
        raise _refuse(MSG_NOT_PDF)
    if _HTML_HEAD.search(content[:1024]):
        raise _refuse(MSG_NOT_PDF)
    if zipfile.is_zipfile(io.BytesIO(content)):
        raise _refuse(MSG_NOT_PDF)
    if FORBIDDEN_NAMES & pdf_names(content):
        raise _refuse(MSG_ACTIVE)
    end = content.rfind(b"%%EOF")
    if end < 0:
        raise _refuse(MSG_UNREADABLE)
    if content[end + 5:].strip(b"\x00\t\n\x0c\r "):
        raise _refuse(MSG_NOT_PDF)


# The child: limits first, then read the PDF from stdin, print one JSON verdict. It imports only
# the standard library and pypdf, and runs isolated (-I: no user site, no PYTHON* variables).
_PROBE = r"""
import io, json, resource, sys

def cap(which, value):
    try:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass

memory, cpu, max_pages, max_objects, max_bytes = (int(a) for a in sys.argv[1:6])
forbidden = set(sys.argv[6].split(","))
cap(resource.RLIMIT_CPU, cpu)
cap(resource.RLIMIT_FSIZE, 0)
cap(resource.RLIMIT_CORE, 0)

def verdict(**answer):
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    sys.exit(0)

try:
    from pypdf import PdfReader
    from pypdf.generic import (ArrayObject, ByteStringObject, DictionaryObject, IndirectObject,
                               NameObject, StreamObject)
except ImportError as exc:
    verdict(verdict="broken", detail=str(exc))
# The address-space cap comes after our own imports (trusted code) and before the hostile bytes.
cap(resource.RLIMIT_AS, memory)
data = sys.stdin.buffer.read()

IMAGE_FILTERS = {"/DCTDecode", "/JPXDecode", "/JBIG2Decode", "/CCITTFaxDecode"}
refused_schemes = tuple(sys.argv[7].split(","))

def refused_uri(value):
    # A URI action's target, as a viewer would read it: the string decoded (literal, hex or
    # escaped), then without the white space and control characters that browsers strip.
    if isinstance(value, ByteStringObject):
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        return False
    scheme = "".join(c for c in value if ord(c) > 32).lower()
    return scheme.startswith(refused_schemes)

decompressed = 0

def visit(obj, depth=0):
    global decompressed
    if depth > 100:
        verdict(verdict="unreadable", detail="nesting")
    if isinstance(obj, IndirectObject):
        return  # every indirect object is visited on its own, from the xref
    if isinstance(obj, NameObject):
        if obj[1:] in forbidden:
            verdict(verdict="active", detail=str(obj))
        return
    if isinstance(obj, DictionaryObject):
        for key, value in list(obj.items()):
            if key[1:] in forbidden:
                verdict(verdict="active", detail=str(key))
            if key == "/URI" and refused_uri(value.get_object() if isinstance(value, IndirectObject) else value):
                verdict(verdict="active", detail="/URI script")
            if key == "/OpenAction":
                target = value.get_object() if isinstance(value, IndirectObject) else value
                plain_goto = (isinstance(target, DictionaryObject) and target.get("/S") == "/GoTo"
                              and "/Next" not in target)
                if not (isinstance(target, ArrayObject) or plain_goto):
                    verdict(verdict="active", detail="/OpenAction action")
            visit(value, depth + 1)
        if isinstance(obj, StreamObject):
            filters = obj.get("/Filter")
            filters = [] if filters is None else (
                list(filters) if isinstance(filters, ArrayObject) else [filters])
            if IMAGE_FILTERS & {str(f) for f in filters}:
                decompressed += len(obj._data or b"")
            else:
                decompressed += len(obj.get_data())
            if decompressed > max_bytes:
                verdict(verdict="bomb")
        return
    if isinstance(obj, ArrayObject):
        for item in obj:
            visit(item, depth + 1)

try:
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        verdict(verdict="encrypted")
    refs = [(gen, num) for gen, table in reader.xref.items() for num in table]
    refs += [(0, num) for num in reader.xref_objStm]
    if len(refs) > max_objects:
        verdict(verdict="too_many_objects", count=len(refs))
    visit(reader.trailer)
    for gen, num in refs:
        visit(IndirectObject(num, gen, reader).get_object())
    declared = reader.trailer["/Root"]["/Pages"].get("/Count")
    if isinstance(declared, int) and declared > max_pages:
        verdict(verdict="too_many_pages", count=int(declared))
    pages = len(reader.pages)
    if pages > max_pages:
        verdict(verdict="too_many_pages", count=pages)
    if declared is not None and declared != pages:
        verdict(verdict="unreadable", detail="page count lies")
    verdict(verdict="ok", pages=pages)
except SystemExit:
    raise
except MemoryError:
    verdict(verdict="unreadable", detail="memory")
except RecursionError:
    verdict(verdict="unreadable", detail="recursion")
except Exception as exc:
    verdict(verdict="unreadable", detail=type(exc).__name__)
"""


def probe_pdf(content: bytes) -> dict[str, object]:
    """Parse `content` with pypdf in a resource-limited child; its verdict, or
    {"verdict": "unreadable"} if it died, hung or said nothing."""
    args = [
        sys.executable, "-I", "-c", _PROBE,
        str(PROBE_MEMORY_BYTES), str(PROBE_CPU_SECONDS), str(MAX_PAGES), str(MAX_OBJECTS),
        str(MAX_DECOMPRESSED_BYTES), ",".join(sorted(FORBIDDEN_NAMES)), ",".join(REFUSED_URI_SCHEMES),
    ]
    try:
        done = subprocess.run(  # our interpreter, our code, no shell
            args, input=content, capture_output=True, timeout=PROBE_TIMEOUT_SECONDS,
            env={"LANG": "C.UTF-8"}, check=False,
        )
    except subprocess.TimeoutExpired:
        log.warning("PDF probe timed out after %ss: upload refused", PROBE_TIMEOUT_SECONDS)
        return {"verdict": "unreadable", "detail": "timeout"}
    try:
        answer = json.loads(done.stdout.decode("utf-8") or "null")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        log.warning("PDF probe ended with %s and no verdict: upload refused (%s)", done.returncode,
                    done.stderr.decode("utf-8", "replace")[-300:])
        return {"verdict": "unreadable", "detail": f"exit {done.returncode}"}
    if answer.get("verdict") == "broken":
        # Our own installation is broken (pypdf missing): that is not the student's fault.
        raise RuntimeError(f"PDF probe cannot run: {answer.get('detail')}")
    return answer


def check_pdf(content: bytes, filename: str | None, max_bytes: int) -> CheckedPdf:
    """Refuse anything that is not a plain, parseable, unencrypted PDF within the size limit."""
    if not content:
        raise _refuse(MSG_EMPTY)
    if len(content) > max_bytes:
        raise ValidationFailed(FILE_TOO_LARGE(), {FIELD: [MAX_FILE_SIZE(max_bytes=max_bytes)]})
    _check_shape(content)
    answer = probe_pdf(content)
    verdict = answer.get("verdict")
    if verdict == "encrypted":
        raise _refuse(MSG_ENCRYPTED)
    if verdict == "active":
        raise _refuse(MSG_ACTIVE)
    if verdict == "too_many_pages":
        raise _refuse(MSG_TOO_MANY_PAGES, max_pages=MAX_PAGES)
    if verdict != "ok":
        log.info("PDF refused: %s (%s)", verdict, answer.get("detail", ""))
        raise _refuse(MSG_UNREADABLE)
    pages = answer.get("pages")
    if not isinstance(pages, int) or pages < 1:
        raise _refuse(MSG_NO_PAGES)
    return CheckedPdf(content, safe_filename(filename), hashlib.sha256(content).hexdigest(), pages)


class UploadStore:
    """Files under one root, named by generated ids only; written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, attachment_id: str) -> Path:
        if not isinstance(attachment_id, str) or not _UUID.fullmatch(attachment_id):
            raise ValueError("bad attachment id")
        path = self.root / f"{attachment_id}.pdf"
        if path.parent.resolve() != self.root.resolve():  # belt and braces: never outside the root
            raise ValueError("attachment path outside the upload root")
        return path

    def save(self, attachment_id: str, content: bytes) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path_for(attachment_id)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def delete(self, attachment_id: str) -> None:
        self.path_for(attachment_id).unlink(missing_ok=True)

    def read(self, attachment_id: str) -> bytes:
        return self.path_for(attachment_id).read_bytes()
