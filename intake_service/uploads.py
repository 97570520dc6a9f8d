"""Report attachments: checked to really be a harmless PDF, stored under generated names."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ValidationFailed

# Names in a PDF that run code, open things or carry files: refused in uploads.
_ACTIVE = (b"/JavaScript", b"/JS", b"/OpenAction", b"/AA", b"/Launch", b"/EmbeddedFile",
           b"/RichMedia", b"/XFA", b"/SubmitForm", b"/ImportData")


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


def check_pdf(content: bytes, filename: str | None, max_bytes: int) -> CheckedPdf:
    """Refuse anything that is not a plain, parseable, unencrypted PDF within the size limit."""
    field = "attachment"
    if not content:
        raise ValidationFailed("The file is empty.", {field: ["The file is empty."]})
    if len(content) > max_bytes:
        raise ValidationFailed(
            "The file is too large.", {field: [f"The file must be at most {max_bytes} bytes."]}
        )
    if not content.startswith(b"%PDF-"):
        raise ValidationFailed("Not a PDF.", {field: ["The file is not a PDF."]})
    for marker in _ACTIVE:
        if re.search(re.escape(marker) + rb"(?![A-Za-z])", content):
            raise ValidationFailed(
                "The PDF has active content.",
                {field: ["PDFs with scripts, actions or embedded files are not accepted."]},
            )
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError

        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted:
            raise ValidationFailed("Encrypted PDF.", {field: ["Encrypted PDFs are not accepted."]})
        pages = len(reader.pages)
    except ValidationFailed:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError, OSError):
        raise ValidationFailed("Unreadable PDF.", {field: ["The PDF could not be read."]}) from None
    if pages < 1:
        raise ValidationFailed("Empty PDF.", {field: ["The PDF has no pages."]})
    return CheckedPdf(content, safe_filename(filename), hashlib.sha256(content).hexdigest(), pages)


class UploadStore:
    """Files under one root, named by generated ids only; written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, attachment_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f-]{36}", attachment_id):
            raise ValueError("bad attachment id")
        return self.root / f"{attachment_id}.pdf"

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
