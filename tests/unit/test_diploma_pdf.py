"""The diploma PDF: what it shows, that it is the same file every time, and what it refuses to load."""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader
from weasyprint import CSS, HTML
from weasyprint.urls import FatalURLFetchingError

from assessment_service import diploma_pdf
from assessment_service.diploma_document import Merit, Text, sample_document
from assessment_service.diploma_pdf import (
    ASSETS,
    AssetFetcher,
    AssetRefused,
    RenderTimeout,
    diploma_html,
    pdf_identifier,
    render_diploma,
)

ROOT = Path(__file__).resolve().parents[2]
A4_POINTS = (595.28, 841.89)


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text)


def _id(value: object) -> bytes:
    return value.original_bytes if hasattr(value, "original_bytes") else bytes(value)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def sample_pdf() -> bytes:
    return render_diploma(sample_document())


def test_the_same_document_renders_to_the_same_bytes(sample_pdf: bytes) -> None:
    assert render_diploma(sample_document()) == sample_pdf


def test_a_fresh_process_renders_the_same_bytes(sample_pdf: bytes, tmp_path: Path) -> None:
    out = tmp_path / "again.pdf"
    code = ("import sys; from assessment_service.diploma_pdf import render_diploma; "
            "from assessment_service.diploma_document import sample_document; "
            "open(sys.argv[1], 'wb').write(render_diploma(sample_document()))")
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, check=True, timeout=120)
    assert out.read_bytes() == sample_pdf


def test_dates_and_identifier_come_from_the_document_not_the_clock(sample_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(sample_pdf))
    info = reader.metadata
    assert info is not None
    assert info["/CreationDate"].startswith("D:20270614120000")
    assert info["/ModDate"].startswith("D:20270614120000")
    ids = reader.trailer["/ID"]
    assert _id(ids[0]) == pdf_identifier("CIM-SOCSW-2027-0025")
    other = render_diploma(dataclasses.replace(sample_document(), number="CIM-SOCSW-2027-0026",
                                               issued_on=date(2027, 6, 15)))
    other_reader = PdfReader(io.BytesIO(other))
    assert _id(other_reader.trailer["/ID"][0]) == pdf_identifier("CIM-SOCSW-2027-0026")
    assert other_reader.metadata is not None
    assert other_reader.metadata["/CreationDate"].startswith("D:20270615")


def test_the_sample_is_one_a4_page(sample_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(sample_pdf))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width), 2), round(float(box.height), 2)) == A4_POINTS


def test_it_is_pdf_a_3u_with_an_output_intent(sample_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(sample_pdf))
    root = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert 'pdfaid:part="3"' in xmp or "<pdfaid:part>3</pdfaid:part>" in xmp
    assert 'pdfaid:conformance="U"' in xmp or "<pdfaid:conformance>U</pdfaid:conformance>" in xmp
    assert root["/OutputIntents"][0].get_object()["/S"] == "/GTS_PDFA1"


def test_it_shows_everything_in_english_and_swedish(sample_pdf: bytes) -> None:
    text = _text(sample_pdf).casefold()  # headings are set in capitals
    doc = sample_document()
    for expected in (
        doc.holder_name, doc.number, doc.verify_url, doc.verification_code, doc.rule_set,
        "Lund University", "Lunds universitet",
        "Faculty of Social Sciences", "Samhällsvetenskapliga fakulteten",
        "School of Social Work", "Socialhögskolan",
        "Certificate of International Merits", "Intyg om internationella meriter",
        "This is to certify that", "Härmed intygas att",
        "Abroad", "Utomlands", "At home", "På hemmaplan", "Digital", "Digitalt",
        "Exchange term at a partner university", "Exchange studies", "Utbytesstudier",
        "Freie Universität Berlin", "Germany", "Tyskland", "Netherlands", "Nederländerna",
        "2026-02-01 – 2026-06-30", "2025-03-03 – 2025-03-31",
        "International Café", "Internationellt café", "Allhelgona kyrkogata 8, Lund", "2027-05-20",
        "Issued on 14 June 2027", "Utfärdat den 14 juni 2027",
        "Karin Provnamn", "Head of Department", "Prefekt", "Erik Testberg", "CIM Coordinator", "CIM-samordnare",
    ):
        assert expected.casefold() in text, expected


def test_merits_are_grouped_abroad_at_home_digital_in_date_order(sample_pdf: bytes) -> None:
    text = _text(sample_pdf).casefold()
    positions = [text.index(s) for s in ("exchange term", "summer school on migration", "buddy for incoming",
                                         "webinar series", "international café")]
    assert positions == sorted(positions)
    assert text.index("utomlands") < text.index("exchange term") < text.index("på hemmaplan") < \
        text.index("buddy for incoming") < text.index("digitalt") < text.index("webinar series")


def test_empty_groups_and_a_missing_presentation_are_left_out() -> None:
    doc = dataclasses.replace(sample_document(), presentation=None,
                              merits=tuple(m for m in sample_document().merits if m.setting == "abroad"))
    text = _text(render_diploma(doc))
    assert "Utomlands" in text
    assert "På hemmaplan" not in text
    assert "Digitalt" not in text
    assert "International Café" not in text
    assert "Allhelgona" not in text


def test_an_unknown_country_code_is_shown_as_it_is() -> None:
    merit = Merit("Field trip", Text("Study visit", "Studiebesök"), "abroad", "XK", None,
                  date(2026, 3, 1), date(2026, 3, 1))
    html = diploma_html(dataclasses.replace(sample_document(), merits=(merit,)))
    assert "Kosovo" in html  # Babel knows XK
    merit = dataclasses.replace(merit, country_code="QZ")
    html = diploma_html(dataclasses.replace(sample_document(), merits=(merit,)))
    assert ">QZ<" in html
    assert "2026-03-01" in html
    assert "2026-03-01 –" not in html


def test_names_in_any_latin_script_use_the_shipped_font() -> None:
    name = "Łucja Żółć-Ştefănescu Ðorđević"
    pdf = render_diploma(dataclasses.replace(sample_document(), holder_name=name))
    assert name in _text(pdf)
    reader = PdfReader(io.BytesIO(pdf))
    fonts = {str(f.get_object()["/BaseFont"]) for f in reader.pages[0]["/Resources"]["/Font"].values()}
    assert fonts
    assert all("Garamond" in f for f in fonts), fonts


def test_a_crafted_value_is_text_not_markup_and_loads_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CANARY-7731")
    title = f'<img src="file://{secret}"><link rel="stylesheet" href="file://{secret}">'
    holder = f'<style>@import url("file://{secret}"); body {{ background: url(file://{secret}) }}</style>'
    merit = dataclasses.replace(sample_document().merits[0], title=title, organiser='"><svg onload=x>')
    doc = dataclasses.replace(sample_document(), holder_name=holder, merits=(merit,))
    html = diploma_html(doc)
    assert "&lt;img src=" in html
    assert "<img" not in html
    assert "&lt;style&gt;" in html
    assert "<style" not in html
    fetcher = diploma_pdf._warm_renderer().fetcher
    refused_before = len(fetcher.refused)
    pdf = render_diploma(doc)
    assert len(fetcher.refused) == refused_before  # nothing was even asked for
    assert b"TOP-SECRET-CANARY" not in pdf
    text = _text(pdf)
    assert "TOP-SECRET-CANARY" not in text
    assert '<img src="file://' in text  # shown literally, as the student typed it


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "FILE:///etc/passwd",
    "http://127.0.0.1:8001/verify/x",
    "https://example.org/font.woff2",
    "data:text/css,body{}",
    "ftp://127.0.0.1/x",
    "cim-asset:../diploma_pdf.py",
    "cim-asset:fonts/../../diploma_pdf.py",
    "cim-asset:/etc/passwd",
    "cim-asset:diploma.html",
    "cim-asset:diploma.css",
    "cim-asset:fonts/OFL.txt",
    "cim-asset:fonts/missing.woff2",
    "cim-asset:fonts/%2e%2e/%2e%2e/diploma_pdf.py",
    "cim-asset:",
])
def test_the_fetcher_serves_nothing_but_packaged_fonts_and_images(url: str) -> None:
    fetcher = AssetFetcher()
    with pytest.raises(AssetRefused):
        fetcher(url)
    assert fetcher.refused == [url]


def test_the_fetcher_serves_a_packaged_font() -> None:
    response = AssetFetcher()("cim-asset:fonts/eb-garamond-latin-400-normal.woff2")
    assert response.read() == (ASSETS / "fonts" / "eb-garamond-latin-400-normal.woff2").read_bytes()
    assert response.content_type == "font/woff2"


def test_markup_that_asks_for_a_server_file_is_not_rendered_at_all(tmp_path: Path) -> None:
    """Defence in depth: even raw markup past the template cannot pull a file in; the render fails."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CANARY-7731")
    for markup in (f'<img src="file://{secret}">',
                   f'<div style="background: url(file://{secret})">x</div>',
                   f'<object data="file://{secret}"></object>'):
        with pytest.raises(FatalURLFetchingError):
            HTML(string=markup, url_fetcher=AssetFetcher()).write_pdf()
    with pytest.raises(FatalURLFetchingError):
        CSS(string=f'@import url("file://{secret}");', url_fetcher=AssetFetcher())


def test_a_render_past_its_deadline_is_stopped() -> None:
    many = tuple(dataclasses.replace(sample_document().merits[0], title=f"Merit {i}") for i in range(400))
    with pytest.raises(RenderTimeout):
        render_diploma(dataclasses.replace(sample_document(), merits=many), deadline_s=0.05)
    assert _text(render_diploma(sample_document())).count("Ingrid Exempelsson") == 1  # still works after


@pytest.mark.skipif(not (shutil.which("pdftoppm") and shutil.which("zbarimg")),
                    reason="needs poppler-utils and zbar-tools (scripts/services.sh ensure_pdf_libs)")
def test_the_qr_code_opens_the_verification_page(sample_pdf: bytes, tmp_path: Path) -> None:
    (tmp_path / "d.pdf").write_bytes(sample_pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", "d.pdf", "d"], cwd=tmp_path, check=True,
                   timeout=60)
    decoded = subprocess.run(["zbarimg", "-q", "--raw", "d.png"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    assert decoded == sample_document().verify_url



def test_a_long_list_runs_onto_a_numbered_page_that_names_the_holder() -> None:
    doc = sample_document()
    many = tuple(dataclasses.replace(doc.merits[i % 4], title=f"Activity number {i}") for i in range(14))
    reader = PdfReader(io.BytesIO(render_diploma(dataclasses.replace(doc, merits=many))))
    assert len(reader.pages) == 2
    second = re.sub(r"\s+", " ", reader.pages[1].extract_text())
    assert f"{doc.holder_name} · {doc.number}" in second  # the running header
    assert "2 / 2" in second
    assert "Karin Provnamn" in second  # the signatures close the last page
    first = re.sub(r"\s+", " ", reader.pages[0].extract_text())
    assert "1 / 2" not in first
