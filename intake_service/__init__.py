"""The intake service: records what students state, as events in its own store."""

from __future__ import annotations

from typing import Any

from flask import Flask

from shared.config import ROOT, Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the intake app. Nothing connects at import; `overrides` swap in fakes for tests
    (store=, clock=, wakeup=, catalogue=, identity=)."""
    from intake_service.bootstrap import build_services, department_finder
    from intake_service.cli import register_cli
    from intake_service.web import api, pages, privacy
    from shared.clock import SystemClock
    from shared.web.auth import identity_from_settings
    from shared.web.setup import configure_web

    settings = settings or Settings.from_env()
    settings.check_production_safety()
    # One stylesheet for both services' pages, kept in shared/static.
    app = Flask(__name__, static_folder=str(ROOT / "shared" / "static"))
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        CIM_MAX_UPLOAD_BYTES=settings.max_upload_bytes,
    )
    services = build_services(settings, **overrides)
    app.extensions["cim.intake"] = services
    app.extensions["cim.department_of"] = department_finder(services)
    identity = overrides.get("identity") or identity_from_settings(settings, overrides.get("clock") or SystemClock())
    configure_web(app, settings, identity, name="intake", api_blueprints=(api.bp,))
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(privacy.bp)
    register_cli(app)
    return app
