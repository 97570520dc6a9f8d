"""The intake service: records what students state, as events in its own store."""

from __future__ import annotations

from typing import Any

from flask import Flask

from shared.config import ROOT, Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the intake app. Nothing connects at import; `overrides` swap in fakes for tests
    (store=, clock=, wakeup=, catalogue=)."""
    from intake_service.bootstrap import build_services
    from intake_service.cli import register_cli
    from intake_service.web import api, pages
    from intake_service.web.errors import register_error_handlers
    from intake_service.web.setup import configure_web

    settings = settings or Settings.from_env()
    settings.check_production_safety()
    # One stylesheet for both services' pages, kept in shared/static.
    app = Flask(__name__, static_folder=str(ROOT / "shared" / "static"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        CIM_MAX_UPLOAD_BYTES=settings.max_upload_bytes,
        CIM_SETTINGS=settings,
    )
    app.extensions["cim.intake"] = build_services(settings, **overrides)
    configure_web(app, settings)
    register_error_handlers(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    register_cli(app)
    return app
