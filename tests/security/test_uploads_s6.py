"""Hostile uploads are refused or neutralised; nothing lands outside the upload root
(bar S6; the key is in tests/README.md).

Every hostile file is generated here (raw bytes via tests/security/pdfkit.py, or pypdf), sent
through the real API, and must come back 422 naming `attachment`, with no event and no file. The
names of accepted files are neutralised (no path, control or bidi characters). The parse is
bounded: a hung or memory-hungry parse is killed and refused, never a 500.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfWriter

from intake_service import create_app, uploads
from intake_service.uploads import UploadStore, check_pdf, pdf_names, safe_filename
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import ValidationFailed
from tests.authkit import authed_client, bearer, make_identity
from tests.conftest import CLOCK_START
from tests.security.pdfkit import build, page_objects, simple_pdf, stream

MAX_BYTES = 8 * 1024 * 1024

STUDENT = {
    "name": "Uppladdning Testsson",
    "email": "upload.test@example.org",
    "university_id": "up1234te",
    "department": "SOCSW",
    "programme": "SSASK",
    "expected_end_term": "VT2028",
}


# -- the hostile files ---------------------------------------------------------------------------
def _written(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _blank_writer() -> PdfWriter:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    return writer


def with_objects(extra: dict[int, bytes], *, catalog: bytes = b"", page: bytes = b"",
                 compressed: frozenset[int] = frozenset()) -> bytes:
    objects = page_objects(catalog_extra=catalog, page_extra=page)
    objects.update(extra)
    return build(objects, compressed=compressed)


def encrypted(user_password: str) -> bytes:
    writer = _blank_writer()
    writer.encrypt(user_password=user_password, owner_password="owner-secret")
    return _written(writer)


def embedded_file() -> bytes:
    writer = _blank_writer()
    writer.add_attachment("payload.exe", b"MZ\x90\x00 not really")
    return _written(writer)


def link_to(uri: str) -> bytes:
    """A PDF written by pypdf with one link annotation whose action opens `uri`."""
    from pypdf.annotations import Link
    from pypdf.generic import DictionaryObject, NameObject, TextStringObject

    writer = _blank_writer()
    link = Link(rect=(10, 10, 100, 40), url="https://example.org/")
    link[NameObject("/A")] = DictionaryObject(
        {NameObject("/S"): NameObject("/URI"), NameObject("/URI"): TextStringObject(uri)})
    writer.add_annotation(page_number=0, annotation=link)
    return _written(writer)


def uri_link(uri_string: bytes, compressed: frozenset[int] = frozenset()) -> bytes:
    """A link annotation on the page whose URI action's string is written as `uri_string`."""
    return with_objects(
        {5: b"<< /Type /Annot /Subtype /Link /Rect [0 0 10 10] /A << /S /URI /URI " + uri_string + b" >> >>"},
        page=b"/Annots [5 0 R] ", compressed=compressed)


def zip_appended() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("evil.html", "<script>alert(1)</script>")
    return simple_pdf() + archive.getvalue()


def many_pages(count: int) -> bytes:
    objects: dict[int, bytes] = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: stream(b"")}
    kids = []
    for i in range(count):
        number = 10 + i
        kids.append(f"{number} 0 R".encode())
        objects[number] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] /Contents 3 0 R >>"
    objects[2] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count " + str(count).encode() + b" >>"
    return build(objects)


def deflate_bomb(megabytes: int) -> bytes:
    """A FlateDecode stream of zeros: a few hundred KB that inflate to `megabytes` MB."""
    packer = zlib.compressobj(9)
    chunk = b"\0" * (1024 * 1024)
    data = b"".join(packer.compress(chunk) for _ in range(megabytes)) + packer.flush()
    body = b"<< /Length " + str(len(data)).encode() + b" /Filter /FlateDecode >>\nstream\n" + data + b"\nendstream"
    return with_objects({5: body}, page=b"/Resources << /XObject << /Bomb 5 0 R >> >> ")


def many_objects(count: int) -> bytes:
    objects = page_objects()
    for number in range(5, 5 + count):
        objects[number] = b"null"
    return build(objects)


def deep_nesting(depth: int) -> bytes:
    return with_objects({5: b"[" * depth + b"]" * depth}, catalog=b"/Deep 5 0 R ")


def cyclic_page_tree() -> bytes:
    objects = page_objects()
    objects[2] = b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>"
    return build(objects)


JS = b"<< /S /JavaScript /JS (app.alert(1)) >>"

#: (name, bytes, the words the refusal must contain)
HOSTILE: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty", lambda: b"", "empty"),
    ("html renamed .pdf", lambda: b"<!doctype html><html><script>alert(1)</script></html>", "not a pdf"),
    ("png renamed .pdf", lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a pdf"),
    ("html after the pdf header", lambda: b"%PDF-1.7\n<html><body><script>alert(1)</script>" + simple_pdf()[9:],
     "not a pdf"),
    ("pdf+zip polyglot", zip_appended, "not a pdf"),
    ("html after %%EOF", lambda: simple_pdf() + b"<html><script>alert(1)</script></html>", "not a pdf"),
    ("openaction javascript", lambda: with_objects({5: JS}, catalog=b"/OpenAction 5 0 R "), "scripts"),
    ("names-tree javascript", lambda: with_objects(
        {5: b"<< /JavaScript 6 0 R >>", 6: b"<< /Names [(x) 7 0 R] >>", 7: JS}, catalog=b"/Names 5 0 R "),
     "scripts"),
    ("page additional actions /AA", lambda: with_objects({5: b"<< /O 6 0 R >>", 6: b"<< /S /GoTo /D [3 0 R /Fit] >>"},
                                                         page=b"/AA 5 0 R "), "scripts"),
    ("launch action in a link", lambda: with_objects(
        {5: b"<< /Type /Annot /Subtype /Link /Rect [0 0 10 10] /A << /S /Launch /F (calc.exe) >> >>"},
        page=b"/Annots [5 0 R] "), "scripts"),
    ("embedded file (pypdf attachment)", embedded_file, "embedded"),
    ("file attachment annotation", lambda: with_objects(
        {5: b"<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 10 10] /FS 6 0 R >>",
         6: b"<< /Type /Filespec /F (a.exe) >>"}, page=b"/Annots [5 0 R] "), "embedded"),
    ("hex-escaped /J#61vaScript", lambda: with_objects(
        {5: b"<< /S /J#61vaScript /J#53 (app.alert(1)) >>"}, catalog=b"/OpenAction 5 0 R "), "scripts"),
    ("javascript in a compressed object stream", lambda: with_objects(
        {5: b"<< /Foo 6 0 R >>", 6: JS}, catalog=b"/Extra 5 0 R ", compressed=frozenset({5, 6})), "scripts"),
    ("hex-escaped javascript in an object stream", lambda: with_objects(
        {5: b"<< /S /J#61va#53cript /J#53 (x) >>"}, catalog=b"/Extra 5 0 R ", compressed=frozenset({5})),
     "scripts"),
    ("openaction action in an object stream", lambda: with_objects(
        {5: b"<< /S /URI /URI (https://evil.example/) >>"}, catalog=b"/OpenAction 5 0 R ",
        compressed=frozenset({1, 5})), "scripts"),
    ("openaction go-to chained to a URI", lambda: with_objects(
        {5: b"<< /S /GoTo /D [3 0 R /Fit] /Next << /S /URI /URI (https://evil.example/) >> >>"},
        catalog=b"/OpenAction 5 0 R "), "scripts"),
    ("launch in an object stream", lambda: with_objects(
        {5: b"<< /S /Launch /F (cmd.exe) >>"}, catalog=b"/Extra 5 0 R ", compressed=frozenset({5})), "scripts"),
    ("embedded files in an object stream", lambda: with_objects(
        {5: b"<< /EmbeddedFiles << /Names [(a) 6 0 R] >> >>", 6: b"<< /Type /Filespec /F (a) >>"},
        catalog=b"/Names 5 0 R ", compressed=frozenset({5, 6})), "embedded"),
    ("/AA in an object stream", lambda: with_objects(
        {5: b"<< /O << /S /GoTo /D [3 0 R /Fit] >> >>"}, page=b"/AA 5 0 R ", compressed=frozenset({3, 5})),
     "scripts"),
    ("submit form", lambda: with_objects({5: b"<< /S /SubmitForm /F (https://evil.example/) >>"},
                                        catalog=b"/Extra 5 0 R "), "scripts"),
    ("import data", lambda: with_objects({5: b"<< /S /ImportData /F (data.fdf) >>"}, catalog=b"/Extra 5 0 R "),
     "scripts"),
    ("remote go-to", lambda: with_objects({5: b"<< /S /GoToR /F (other.pdf) /D [0 /Fit] >>"},
                                          catalog=b"/Extra 5 0 R "), "scripts"),
    ("rich media", lambda: with_objects({5: b"<< /Type /Annot /Subtype /RichMedia /Rect [0 0 1 1] >>"},
                                        page=b"/Annots [5 0 R] "), "scripts"),
    ("xfa form", lambda: with_objects({5: b"<< /Fields [] /XFA 6 0 R >>", 6: stream(b"<xdp:xdp/>")},
                                      catalog=b"/AcroForm 5 0 R "), "scripts"),
    # issue 18.9: links whose target runs script when followed
    ("javascript: link annotation (pypdf)", lambda: link_to("javascript:app.alert(1)"), "scripts"),
    ("javascript: link, literal string", lambda: uri_link(b"(javascript:alert\\(1\\))"), "scripts"),
    ("javascript: link, mixed case and white space", lambda: uri_link(b"( \tJaVa\nScRiPt:alert(1))"),
     "scripts"),
    ("javascript: link, octal-escaped", lambda: uri_link(b"(java\\163cript:alert(1))"), "scripts"),
    ("javascript: link, hex string", lambda: uri_link(b"<" + b"javascript:alert(1)".hex().encode() + b">"),
     "scripts"),
    ("javascript: link in an object stream", lambda: uri_link(b"(javascript:alert(1))", frozenset({3, 5})),
     "scripts"),
    ("vbscript: link", lambda: uri_link(b"(vbscript:msgbox)"), "scripts"),
    ("data: link", lambda: uri_link(b"(data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"), "scripts"),
    ("encrypted with a user password", lambda: encrypted("secret"), "encrypted"),
    ("encrypted, empty user password", lambda: encrypted(""), "encrypted"),
    ("page count of a billion", lambda: build(page_objects(count=1_000_000_000)), "too many pages"),
    ("page count that lies", lambda: build(page_objects(count=5)), "could not be read"),
    ("600 real pages", lambda: many_pages(600), "too many pages"),
    ("deflate bomb (100 MB of zeros)", lambda: deflate_bomb(100), "could not be read"),
    ("too many objects", lambda: many_objects(uploads.MAX_OBJECTS + 1), "could not be read"),
    ("nesting 50,000 deep", lambda: deep_nesting(50_000), "could not be read"),
    ("cyclic page tree", cyclic_page_tree, "could not be read"),
    ("truncated", lambda: simple_pdf()[:60], "could not be read"),
    ("garbage after a pdf header", lambda: b"%PDF-1.7\n" + bytes(range(256)) * 20 + b"\n%%EOF\n", "could not be read"),
]


def sized_pdf(total: int) -> bytes:
    """A valid one-page PDF of exactly `total` bytes (the page text pads it)."""
    length = total - len(simple_pdf())
    for _ in range(5):
        raw = build(page_objects(text=b"x" * length))
        if len(raw) == total:
            return raw
        length += total - len(raw)
    raise AssertionError("could not size the PDF")


def hostile_ids() -> list[str]:
    return [name for name, _, _ in HOSTILE]


# -- the app -------------------------------------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = FixedClock(CLOCK_START)
    store = InMemoryEventStore(clock)
    identity = make_identity(clock)
    data = tmp_path / "data"
    settings = Settings(data_dir=data, upload_dir=data / "uploads", wakeup="none", max_upload_bytes=MAX_BYTES,
                        ratelimit_storage="memory://", ratelimit_post="10000 per minute")
    app = create_app(settings, store=store, clock=clock, identity=identity)
    client = authed_client(app, bearer(identity))
    response = client.post("/api/v1/students", json=STUDENT)
    assert response.status_code == 201, response.json
    return client, store, data, response.json["student_id"]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_there_are_at_least_30_hostile_files() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize(("name", "make", "words"), HOSTILE, ids=hostile_ids())
def test_hostile_upload_is_refused_and_stores_nothing(world, name, make, words) -> None:  # type: ignore[no-untyped-def]
    client, store, data, sid = world
    before_events, before_files = store.count(), files_under(data)
    content = make()
    response = client.post(f"/api/v1/students/{sid}/attachments", data=content, content_type="application/pdf",
                           headers={"X-Filename": "report.pdf"})
    assert response.status_code == 422, (name, response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/problem+json"
    message = " ".join(response.json["errors"]["attachment"]).lower()
    assert words in message or (words == "embedded" and "embedded files" in message), (name, message)
    assert store.count() == before_events
    assert files_under(data) == before_files


def test_limit_plus_one_byte_is_refused_and_the_limit_itself_accepted(world) -> None:  # type: ignore[no-untyped-def]
    client, _store, _data, sid = world
    exact, over = sized_pdf(MAX_BYTES), sized_pdf(MAX_BYTES + 1)
    refused = client.post(f"/api/v1/students/{sid}/attachments", data=over, content_type="application/pdf")
    assert refused.status_code == 422
    assert "at most" in " ".join(refused.json["errors"]["attachment"])
    accepted = client.post(f"/api/v1/students/{sid}/attachments", data=exact, content_type="application/pdf")
    assert accepted.status_code == 201, accepted.json


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../x.pdf", "x.pdf"),
        ("..\\..\\windows\\x.pdf", "x.pdf"),
        ("/etc/passwd", "passwd.pdf"),
        ("a\r\nX-Injected: 1.pdf", "aX-Injected_ 1.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe.pdf"),
        ("\u200breport\u2066.pdf", "report.pdf"),
        ("nul\x00byte.pdf", "nulbyte.pdf"),
        ("", "report.pdf"),
        ("..", "report.pdf"),
        ("<script>.pdf", "_script_.pdf"),
    ],
)
def test_file_names_are_neutralised(given: str, expected: str) -> None:
    assert safe_filename(given) == expected


def test_long_names_are_cut() -> None:
    name = safe_filename("x" * 1000 + ".pdf")
    assert len(name) <= 120
    assert name.endswith(".pdf")


@pytest.mark.parametrize("name", ["../../x.pdf", "..\\..\\x.pdf", "/tmp/evil.pdf", "\u202eevil.pdf",
                                  "a\tb.pdf"])
def test_hostile_names_upload_under_a_generated_name_inside_the_root(world, name) -> None:  # type: ignore[no-untyped-def]
    client, _store, data, sid = world
    content = simple_pdf()
    response = client.post(f"/api/v1/students/{sid}/attachments",
                           data={"file": (io.BytesIO(content), name)}, content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    attachment_id = response.json["attachment_id"]
    root = (data / "uploads").resolve()
    # The app's own database files (the status view's table is made at start-up) aside.
    stored = {p for p in files_under(data) if not p.name.startswith("intake.db")}
    assert stored == {root / f"{attachment_id}.pdf"}
    assert (root / f"{attachment_id}.pdf").read_bytes() == content
    events = client.get(f"/api/v1/students/{sid}/events").json["events"]
    filename = events[-1]["data"]["filename"]
    assert "/" not in filename
    assert "\\" not in filename
    assert ".." not in filename.replace("..pdf", "")
    assert all(ord(ch) >= 32 and ch not in "\u202e\u202d\u2066\u2067\u2068\u2069" for ch in filename)
    assert filename.endswith(".pdf")


def test_plain_pdfs_and_latex_style_open_actions_are_accepted() -> None:
    writer = _blank_writer()
    checked = check_pdf(_written(writer), "ok.pdf", MAX_BYTES)
    assert checked.pages == 1
    latex = build(page_objects(catalog_extra=b"/OpenAction [3 0 R /Fit] "))
    assert check_pdf(latex, "latex.pdf", MAX_BYTES).pages == 1
    # pdfTeX + hyperref (e.g. /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf):
    hyperref = build(page_objects(catalog_extra=b"/OpenAction << /S /GoTo /D [3 0 R /Fit] >> "))
    assert check_pdf(hyperref, "hyperref.pdf", MAX_BYTES).pages == 1
    compressed = build(page_objects(), compressed=frozenset({1, 2, 3}))
    assert check_pdf(compressed, "objstm.pdf", MAX_BYTES).pages == 1
    # ordinary links stay (a report cites its sources); only script-running targets are refused
    assert check_pdf(link_to("https://example.org/report"), "links.pdf", MAX_BYTES).pages == 1
    assert check_pdf(uri_link(b"(mailto:someone@example.org)"), "mailto.pdf", MAX_BYTES).pages == 1


def test_the_byte_scan_sees_escaped_names_but_not_stream_bodies() -> None:
    raw = build({**page_objects(), 5: b"<< /S /J#61vaScript >>", 6: stream(b"/JS in a stream body")})
    names = pdf_names(raw)
    assert "JavaScript" in names
    assert "JS" not in names  # inside a stream body: random compressed bytes must not refuse a PDF


def test_the_object_stream_case_really_hides_from_a_byte_grep() -> None:
    """The point of walking parsed objects: the compressed JavaScript is invisible in the bytes."""
    raw = with_objects({5: b"<< /Foo 6 0 R >>", 6: JS}, catalog=b"/Extra 5 0 R ", compressed=frozenset({5, 6}))
    assert b"JavaScript" not in raw
    assert b"/JS" not in raw
    assert "JavaScript" not in pdf_names(raw)
    with pytest.raises(ValidationFailed):
        check_pdf(raw, "x.pdf", MAX_BYTES)


def test_a_parse_that_takes_too_long_is_killed_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "PROBE_TIMEOUT_SECONDS", 0.01)
    with pytest.raises(ValidationFailed) as refused:
        check_pdf(simple_pdf(), "slow.pdf", MAX_BYTES)
    assert "could not be read" in str(refused.value.fields)


def test_a_parse_that_needs_too_much_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child's address space is capped: a 70 MB inflate in a 120 MB budget dies, refused,
    while a plain PDF still passes under the same cap (the cap, not something else, refused it)."""
    monkeypatch.setattr(uploads, "PROBE_MEMORY_BYTES", 120 * 1024 * 1024)
    assert check_pdf(simple_pdf(), "plain.pdf", MAX_BYTES).pages == 1
    bomb = deflate_bomb(70)
    with pytest.raises(ValidationFailed) as refused:
        check_pdf(bomb, "big.pdf", 10 * 1024 * 1024)
    assert "could not be read" in str(refused.value.fields)


def test_many_streams_over_the_decompressed_budget_are_a_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "MAX_DECOMPRESSED_BYTES", 5 * 1024 * 1024)
    packer = zlib.compressobj(9)
    data = packer.compress(b"\0" * 2 * 1024 * 1024) + packer.flush()
    body = b"<< /Length " + str(len(data)).encode() + b" /Filter /FlateDecode >>\nstream\n" + data + b"\nendstream"
    raw = with_objects({5: body, 6: body, 7: body}, catalog=b"/Extra [5 0 R 6 0 R 7 0 R] ")
    assert uploads.probe_pdf(raw)["verdict"] == "bomb"


# -- the store -----------------------------------------------------------------------------------
@pytest.mark.parametrize("attachment_id", ["../../etc/passwd", "/tmp/x", "..", "", "a" * 36,
                                           "00000000-0000-0000-0000-000000000000/../../x",
                                           "00000000-0000-0000-0000-00000000000G", "-" * 36])
def test_the_store_refuses_ids_that_are_not_generated_uuids(tmp_path: Path, attachment_id: str) -> None:
    store = UploadStore(tmp_path / "uploads")
    with pytest.raises(ValueError, match="attachment"):
        store.save(attachment_id, b"%PDF-")
    with pytest.raises(ValueError, match="attachment"):
        store.read(attachment_id)
    assert files_under(tmp_path) == set()


def test_the_store_writes_only_under_its_root(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    attachment_id = "3f2b8c1e-5a4d-4e6f-8a7b-9c0d1e2f3a4b"
    path = store.save(attachment_id, b"%PDF-1.7 body")
    assert path.resolve().parent == (tmp_path / "uploads").resolve()
    assert files_under(tmp_path) == {tmp_path / "uploads" / f"{attachment_id}.pdf"}
    assert store.read(attachment_id) == b"%PDF-1.7 body"
    assert (path.stat().st_mode & 0o077) == 0  # not readable by other users
    store.delete(attachment_id)
    assert files_under(tmp_path) == set()


REAL_PDFS = sorted(Path("/usr/share/doc").rglob("*.pdf"))[:10] if Path("/usr/share/doc").exists() else []


@pytest.mark.skipif(not REAL_PDFS, reason="no PDFs under /usr/share/doc on this machine")
@pytest.mark.parametrize("path", REAL_PDFS, ids=[p.name for p in REAL_PDFS])
def test_real_world_pdfs_on_this_machine_are_accepted(path: Path) -> None:
    """False positives matter too: documents made by ordinary tools (pdfTeX here) pass."""
    content = path.read_bytes()
    if len(content) > 10 * 1024 * 1024:
        pytest.skip("larger than the upload limit")
    assert check_pdf(content, path.name, 10 * 1024 * 1024).pages >= 1
