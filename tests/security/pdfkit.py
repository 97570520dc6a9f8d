"""Builds PDFs byte by byte for the upload tests: classic cross-reference tables, or compressed
object streams with a cross-reference stream (where a byte grep cannot see the objects)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"

#: A one-page document: catalog 1, pages 2, page 3, contents 4.
def page_objects(catalog_extra: bytes = b"", page_extra: bytes = b"", count: int | None = None,
                 text: bytes = b"Report") -> dict[int, bytes]:
    content = b"BT /F1 12 Tf 72 720 Td (" + text + b") Tj ET"
    return {
        1: b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count " + str(1 if count is None else count).encode() + b" >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R " + page_extra + b">>",
        4: stream(content),
    }


def stream(data: bytes, *, compress: bool = False, extra: bytes = b"") -> bytes:
    if compress:
        data = zlib.compress(data, 9)
        extra = b"/Filter /FlateDecode " + extra
    return b"<< /Length " + str(len(data)).encode() + b" " + extra + b">>\nstream\n" + data + b"\nendstream"


def build(objects: Mapping[int, bytes], *, compressed: frozenset[int] | set[int] = frozenset(),
          root: int = 1, trailer_extra: bytes = b"", tail: bytes = b"", header: bytes = HEADER) -> bytes:
    """A PDF of `objects` (number -> body). Objects in `compressed` go into one FlateDecode object
    stream, and the file then has a cross-reference stream instead of a table."""
    out = bytearray(header)
    offsets: dict[int, int] = {}
    plain = {n: b for n, b in objects.items() if n not in compressed}
    for number in sorted(plain):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + plain[number] + b"\nendobj\n"
    size = max(objects) + 1
    if not compressed:
        xref_at = len(out)
        out += f"xref\n0 {size}\n".encode() + b"0000000000 65535 f \n"
        for number in range(1, size):
            if number in offsets:
                out += f"{offsets[number]:010d} 00000 n \n".encode()
            else:
                out += b"0000000000 65535 f \n"
        out += b"trailer\n<< /Size " + str(size).encode() + b" /Root " + str(root).encode() + b" 0 R "
        out += trailer_extra + b">>\nstartxref\n" + str(xref_at).encode() + b"\n%%EOF\n" + tail
        return bytes(out)
    inner = sorted(compressed)
    bodies = b""
    index = []
    for number in inner:
        index.append(f"{number} {len(bodies)}")
        bodies += objects[number] + b"\n"
    head = (" ".join(index) + "\n").encode()
    objstm = size
    offsets[objstm] = len(out)
    out += f"{objstm} 0 obj\n".encode() + stream(
        head + bodies, compress=True, extra=f"/Type /ObjStm /N {len(inner)} /First {len(head)} ".encode()
    ) + b"\nendobj\n"
    xref_num = objstm + 1
    offsets[xref_num] = len(out)
    rows = bytearray()
    for number in range(xref_num + 1):
        if number in compressed:
            rows += bytes([2]) + objstm.to_bytes(4, "big") + inner.index(number).to_bytes(2, "big")
        elif number in offsets:
            rows += bytes([1]) + offsets[number].to_bytes(4, "big") + (0).to_bytes(2, "big")
        else:
            rows += bytes([0]) + (0).to_bytes(4, "big") + (65535).to_bytes(2, "big")
    extra = (f"/Type /XRef /Size {xref_num + 1} /W [1 4 2] /Root {root} 0 R ").encode() + trailer_extra
    out += f"{xref_num} 0 obj\n".encode() + stream(bytes(rows), extra=extra) + b"\nendobj\n"
    out += b"startxref\n" + str(offsets[xref_num]).encode() + b"\n%%EOF\n" + tail
    return bytes(out)


def simple_pdf(**kwargs: object) -> bytes:
    return build(page_objects(**kwargs))  # type: ignore[arg-type]
