"""The assessment service: serves the read side (review queue, student overviews) projected from
the intake feed, and will record what staff decide in its own store. Never imports intake_service."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from shared.config import ROOT, Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the assessment app. Nothing connects at import; `overrides` swap in fakes for tests
    (feed=, batch_size=, context=)."""
    from flask_babel import Babel

    from assessment_service.bootstrap import build_context
    from assessment_service.cli import projections_cli
    from assessment_service.logs import configure_logging, correlation_id_var
    from assessment_service.web import api, pages
    from assessment_service.web.errors import correlation_id, register_error_handlers

    settings = settings or Settings.from_env()
    settings.check_production_safety()
    configure_logging(settings.log_level)
    # One stylesheet for both services' pages, kept in shared/static.
    app = Flask(__name__, static_folder=str(ROOT / "shared" / "static"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        CIM_SETTINGS=settings,
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
    )
    Babel(app, locale_selector=pages.select_locale)
    app.extensions["cim.assessment"] = overrides.get("context") or build_context(settings, **overrides)
    register_error_handlers(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.cli.add_command(projections_cli)

    @app.before_request
    def _bind_correlation_id() -> None:
        correlation_id_var.set(correlation_id())

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Correlation-ID"] = correlation_id()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        return response

    return app
