"""The visual identity on both services' pages (shared/branding.py holds the rules): the header's
university and department name and logo, and a theme stylesheet of CSS custom properties.

The pages' CSP allows no inline style, so the colours travel as a stylesheet of their own
(`/look/theme.css`, `/look/<code>/theme.css`) and the logo as an image (`/look/logo`,
`/look/<code>/logo`), both from memory (read and checked at start-up) with a version in the URL,
cached by browsers. A view showing a department's page calls `show_department_look(code)`;
every other page shows the global identity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Blueprint, Flask, Response, abort, current_app, g, request, url_for
from flask.cli import AppGroup
from flask_babel import gettext as _

from shared.branding import Branding, BrandingError, Look
from shared.catalogue import Catalogue
from shared.config import Settings
from shared.web.access import PUBLIC, access

bp = Blueprint("branding", __name__)

#: A year: every URL carries the content's hash (`?v=`), so a change is a new URL.
_CACHE = "public, max-age=31536000, immutable"


def load_branding(settings: Settings, catalogue: Catalogue | None = None) -> Branding:
    """The branding file's looks, checked against the catalogue's departments; BrandingError
    (naming the table and the field) stops the service from starting."""
    if not settings.branding_file.exists():
        return Branding()  # nothing configured: the neutral defaults
    if catalogue is None:
        catalogue = Catalogue.load(settings.departments_file)
    names = {code: dept.name for code, dept in catalogue.departments.items()}
    return Branding.load(settings.branding_file, names)


def install_branding(app: Flask, settings: Settings, catalogue: Catalogue | None = None) -> None:
    """Load and check the branding (at start-up), serve its stylesheets and logos, and give every
    template `look` (see `page_look`)."""
    app.extensions["cim.branding"] = load_branding(settings, catalogue)
    app.register_blueprint(bp)
    app.cli.add_command(branding_cli)

    @app.context_processor
    def _look() -> dict[str, object]:
        return {"look": page_look()}


def branding() -> Branding:
    found: Branding = current_app.extensions["cim.branding"]
    return found


def show_department_look(code: str | None) -> None:
    """This request's page belongs to department `code`: its header and colours show its look."""
    g.cim_look_department = code


def page_look() -> dict[str, Any]:
    """What `_layout.html` shows for this request: names in the page's language, the logo's URL
    and text alternative, and the theme stylesheet's URL (None when the colours are the defaults)."""
    from flask_babel import get_locale

    code = g.get("cim_look_department")
    look = branding().look_for(code)
    owner = code if code in branding().departments else None
    lang = str(get_locale() or "en")
    university = look.university.get(lang) if look.university else ""
    department = look.department.get(lang) if look.department else ""
    logo_url = None
    if look.logo is not None:
        logo_url = _url("branding.logo", owner, look.logo.version)
    return {
        "university": university,
        "department": department,
        "logo_url": logo_url,
        "logo_alt": look.logo_alt.get(lang) if look.logo_alt else _("Logo"),
        "stylesheet_url": _url("branding.theme", owner, look.version) if look.themed else None,
    }


def _url(endpoint: str, code: str | None, version: str) -> str:
    if code is None:
        return url_for(endpoint, v=version)
    return url_for(endpoint, code=code, v=version)


def _look_of(code: str | None) -> Look:
    if code is not None and code not in branding().departments:
        abort(404)
    return branding().look_for(code)


def _cached(body: bytes | str, mimetype: str, version: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.set_etag(version)
    response.headers["Cache-Control"] = _CACHE
    response.make_conditional(request)  # 304 for a browser that has this version
    return response


@bp.get("/look/theme.css", defaults={"code": None})
@bp.get("/look/<code>/theme.css")
@access(PUBLIC)
def theme(code: str | None) -> Response:
    """The colours of the global look or department `code`'s, as CSS custom properties."""
    look = _look_of(code)
    return _cached(look.stylesheet(), "text/css", look.version)


@bp.get("/look/logo", defaults={"code": None})
@bp.get("/look/<code>/logo")
@access(PUBLIC)
def logo(code: str | None) -> Response:
    """The logo of the global look or department `code`'s (404 when none is configured)."""
    look = _look_of(code)
    if look.logo is None:
        abort(404)
    return _cached(look.logo.content, look.logo.mimetype, look.logo.version)


branding_cli = AppGroup("branding", help="Check the visual identity (config/branding.toml).")


@branding_cli.command("check", with_appcontext=False)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def check_branding(file: Path | None) -> None:
    """Check FILE (default: the file the services load, CIM_BRANDING_FILE) against the departments
    file and list every problem with its place; exit status 1 if there is any."""
    settings = Settings.from_env()
    path = file or settings.branding_file
    try:
        catalogue = Catalogue.load(settings.departments_file)
        found = Branding.load(path, {code: d.name for code, d in catalogue.departments.items()})
    except (BrandingError, ValueError, OSError) as err:
        problems = str(err).removeprefix(f"{path}: ").split("; ")
        for problem in problems:
            click.echo(problem, err=True)
        click.echo(f"{len(problems)} problem(s) in {path}: the services would refuse to start.", err=True)
        raise SystemExit(1) from None
    themed = sorted(code for code, look in found.departments.items())
    click.echo(f"{path}: OK, the global look and {len(themed)} department(s) of their own"
               + (f": {', '.join(themed)}." if themed else "."))
