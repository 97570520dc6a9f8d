"""The configurable visual identity (issue 17): names, logos and colours from config/branding.toml,
checked at start-up (AA contrast, hex colours, safe logo files), shown in both services' headers."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from assessment_service import create_app as create_assessment_app
from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.branding import (
    MAX_LOGO_BYTES,
    Branding,
    BrandingError,
    Colours,
    Look,
    contrast_problems,
    contrast_ratio,
    read_logo,
)
from shared.catalogue import Text
from shared.clock import FixedClock
from shared.config import ROOT, Settings
from tests.authkit import make_identity
from tests.unit.test_pages import register

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NAMES = {"SOCSW": Text("School of Social Work", "Socialhögskolan"), "MED": Text("Medicine", "Medicin")}


def png(width: int = 2, height: int = 1) -> bytes:
    """A real (tiny) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x0b\x2a\x4a" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


THEMED = """
[global]
university = { en = "Exempel University", sv = "Exempeluniversitetet" }
logo = "logos/university.png"
logo_alt = { en = "Exempel University", sv = "Exempeluniversitetet" }

[departments.SOCSW]
logo = "logos/socsw.png"
logo_alt = { en = "School of Social Work, Exempel University", sv = "Socialhögskolan, Exempeluniversitetet" }

[departments.SOCSW.colours]
header_background = "#5B2C6F"
button = "#6b2c91"
"""


def write_branding(folder: Path, text: str = THEMED) -> Path:
    """A branding file with its two logos under `folder`; its path."""
    (folder / "logos").mkdir(parents=True)
    (folder / "logos" / "university.png").write_bytes(png())
    (folder / "logos" / "socsw.png").write_bytes(png(3, 1))
    (folder / "branding.toml").write_text(text, encoding="utf-8")
    return folder / "branding.toml"


@pytest.fixture
def branding_dir(tmp_path: Path) -> Path:
    return write_branding(tmp_path / "config").parent


def parse(data: dict[str, Any], base: Path) -> Branding:
    return Branding.parse(data, base, NAMES)


# -- the rules, pure -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "second", "ratio"),
    [("#000000", "#ffffff", 21.0), ("#ffffff", "#ffffff", 1.0), ("#777777", "#ffffff", 4.48),
     ("#767676", "#ffffff", 4.54)],
)
def test_contrast_is_wcag_s_ratio(first: str, second: str, ratio: float) -> None:
    assert contrast_ratio(first, second) == pytest.approx(ratio, abs=0.01)


def test_the_default_colours_meet_aa_and_set_no_theme() -> None:
    assert contrast_problems(Colours()) == []
    assert not Look().themed
    assert Branding.load(Path("/nonexistent/branding.toml")) == Branding()


def test_a_department_overrides_the_global_look_field_by_field(branding_dir: Path) -> None:
    branding = Branding.load(branding_dir / "branding.toml", NAMES)
    socsw, med = branding.look_for("SOCSW"), branding.look_for("MED")
    assert socsw.colours == Colours(header_background="#5b2c6f", button="#6b2c91")
    assert socsw.university == Text("Exempel University", "Exempeluniversitetet")  # from [global]
    assert socsw.department == Text("School of Social Work", "Socialhögskolan")  # the catalogue's name
    assert socsw.logo is not None
    assert socsw.logo.content == png(3, 1)
    assert med is branding.default
    assert med.department is None
    assert not med.themed
    assert ":root {" in socsw.stylesheet()
    assert "--cim-header-bg: #5b2c6f;" in socsw.stylesheet()


@pytest.mark.parametrize(
    ("colours", "named"),
    [
        ({"header_background": "#ffffff"}, "header_text on header_background"),  # white on white
        ({"link": "#8a8a8a"}, "link (links on the page's white background) has contrast 3.45:1"),
        ({"button": "#f0c000"}, "button_text on button"),
        ({"header_text": "#0b2a4a", "header_background": "#1d3b5a"}, "header_text on header_background"),
    ],
)
def test_a_colour_below_aa_contrast_is_refused_naming_the_field(tmp_path: Path, colours: dict, named: str) -> None:
    with pytest.raises(BrandingError) as refused:
        parse({"departments": {"SOCSW": {"colours": colours}}}, tmp_path)
    assert "departments.SOCSW.colours" in str(refused.value)
    assert named in str(refused.value)
    assert "below WCAG AA's 4.5:1" in str(refused.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"global": {"colours": {"link": "blue"}}}, "global.colours.link: write a hex colour such as #0b2a4a"),
        ({"global": {"colours": {"link": "#12345"}}}, "global.colours.link: write a hex colour"),
        ({"global": {"colours": {"background": "#ffffff"}}}, "global.colours.background: unknown colour"),
        ({"global": {"department": "X"}}, "global.department: unknown key"),
        ({"departments": {"NOPE": {}}}, "departments.NOPE: not a department of the departments file"),
        ({"identity": {}}, "identity: unknown table"),
        ({"global": {"university": 3}}, "global.university: expected a string or a table"),
    ],
)
def test_a_broken_file_is_refused_naming_the_table_and_field(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(BrandingError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse(data, tmp_path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../outside.png", "must be a path inside the branding file's folder"),
        ("logos/../../outside.png", "must be a path inside"),
        ("/etc/passwd", "must be a path inside"),
        ("C:/logo.png", "must be a path inside"),
        ("escape.png", "leads outside the branding file's folder"),  # a link out of the folder
        ("logos/missing.png", "no such file"),
        ("logos/script.svg", "is not a PNG, JPEG or WebP image"),
        ("logos/renamed.png", "is not a PNG, JPEG or WebP image"),
        ("logos/huge.png", f"at most {MAX_LOGO_BYTES} are accepted"),
        ("", "give the logo's file name"),
    ],
)
def test_a_bad_logo_path_or_file_is_refused(branding_dir: Path, name: str, message: str) -> None:
    (branding_dir.parent / "outside.png").write_bytes(png())
    (branding_dir / "escape.png").symlink_to(branding_dir.parent / "outside.png")
    (branding_dir / "logos" / "script.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>')
    (branding_dir / "logos" / "renamed.png").write_text("GIF89a not a png")
    (branding_dir / "logos" / "huge.png").write_bytes(png() + b"\x00" * MAX_LOGO_BYTES)
    with pytest.raises(BrandingError, match=message.replace(".", r"\.")):
        read_logo(name, branding_dir)
    with pytest.raises(BrandingError, match=r"global\.logo: "):
        parse({"global": {"logo": name, "logo_alt": "Logo"}}, branding_dir)


def test_a_logo_needs_its_text_alternative(branding_dir: Path) -> None:
    with pytest.raises(BrandingError, match=r"global\.logo_alt: give the logo's text alternative"):
        parse({"global": {"logo": "logos/university.png"}}, branding_dir)


# -- on the pages -----------------------------------------------------------------------------------
def intake_app(tmp_path: Path, branding_file: Path) -> Flask:
    settings = Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none",
                        ratelimit_storage="memory://", branding_file=branding_file)
    clock = FixedClock(NOW)
    app = create_app(settings, store=InMemoryEventStore(), clock=clock, identity=make_identity(clock))
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def test_a_department_s_pages_wear_its_look_and_other_pages_the_global_one(tmp_path: Path, branding_dir: Path) -> None:
    client = intake_app(tmp_path, branding_dir / "branding.toml").test_client()
    home = client.get("/?lang=en").text
    assert '<span class="brand-university">Exempel University</span>' in home
    assert 'class="brand-department"' not in home
    assert '<img class="brand-logo" src="/look/logo?v=' in home
    assert 'alt="Exempel University"' in home
    assert "/look/theme.css" not in home
    assert "/theme.css" not in home

    student_id = register(client)
    page = client.get(f"/students/{student_id}?lang=sv").text
    assert '<span class="brand-department">Socialhögskolan</span>' in page
    assert '<span class="brand-university">Exempeluniversitetet</span>' in page
    assert 'alt="Socialhögskolan, Exempeluniversitetet"' in page
    theme_url = page.split('<link rel="stylesheet" href="')[2].split('"')[0]
    assert theme_url.startswith("/look/SOCSW/theme.css?v=")

    theme = client.get(theme_url)
    assert theme.status_code == 200
    assert theme.mimetype == "text/css"
    assert "--cim-header-bg: #5b2c6f;" in theme.text
    assert "--cim-button: #6b2c91;" in theme.text
    assert theme.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get(theme_url, headers={"If-None-Match": theme.headers["ETag"]}).status_code == 304

    logo_url = page.split('<img class="brand-logo" src="')[1].split('"')[0]
    logo = client.get(logo_url)
    assert logo.status_code == 200
    assert logo.mimetype == "image/png"
    assert logo.data == png(3, 1)
    assert client.get("/look/MED/theme.css").status_code == 404  # no look of its own
    assert client.get("/look/MED/logo").status_code == 404


def test_without_a_branding_file_the_pages_look_as_before(tmp_path: Path) -> None:
    client = intake_app(tmp_path, tmp_path / "absent.toml").test_client()
    home = client.get("/").text
    assert 'class="brand' not in home
    assert "/look/" not in home
    assert client.get("/look/logo").status_code == 404


def test_the_shipped_branding_file_is_sound() -> None:
    settings = Settings()
    from shared.catalogue import Catalogue

    catalogue = Catalogue.load(settings.departments_file)
    Branding.load(ROOT / "config" / "branding.toml", {c: d.name for c, d in catalogue.departments.items()})


def test_a_service_with_a_low_contrast_colour_refuses_to_start(tmp_path: Path) -> None:
    broken = tmp_path / "branding.toml"
    broken.write_text('[departments.SOCSW.colours]\nlink = "#aaaaaa"\n', encoding="utf-8")
    with pytest.raises(BrandingError, match=r"departments\.SOCSW\.colours: link"):
        intake_app(tmp_path, broken)
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://", branding_file=broken)
    with pytest.raises(BrandingError):
        create_assessment_app(settings, clock=FixedClock(NOW), identity=make_identity(FixedClock(NOW)))


def test_the_assessment_service_shows_the_global_look(tmp_path: Path, branding_dir: Path) -> None:
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://",
                        branding_file=branding_dir / "branding.toml")
    app = create_assessment_app(settings, clock=FixedClock(NOW), identity=make_identity(FixedClock(NOW)))
    page = app.test_client().get("/auth/sign-in?lang=en").text
    assert '<span class="brand-university">Exempel University</span>' in page
    assert app.test_client().get("/look/SOCSW/theme.css").status_code == 200


def test_branding_check_lists_every_problem_before_deploying(tmp_path: Path, branding_dir: Path) -> None:
    from click.testing import CliRunner

    from shared.web.branding import check_branding

    broken = tmp_path / "broken.toml"
    broken.write_text('[departments.SOCSW.colours]\nlink = "#aaaaaa"\n[departments.NOPE]\n', encoding="utf-8")
    refused = CliRunner().invoke(check_branding, [str(broken)])
    assert refused.exit_code == 1
    assert ("departments.SOCSW.colours: link (links on the page's white background) has contrast 2.32:1"
            in refused.output)
    assert "departments.NOPE: not a department of the departments file" in refused.output
    assert "2 problem(s)" in refused.output
    accepted = CliRunner().invoke(check_branding, [str(branding_dir / "branding.toml")])
    assert accepted.exit_code == 0, accepted.output
    assert "1 department(s) of their own: SOCSW." in accepted.output
