"""The intake service: records what students state, as events in its own store."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from shared.config import ROOT, Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the intake app. Nothing connects at import; `overrides` swap in fakes for tests
    (store=, clock=, wakeup=, catalogue=, identity=)."""
    from intake_service.assessment_view import deadline_for, decisions_for, install_view
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
    # The "my CIM" status and decisions views' tables are made here, not in a request.
    install_view(app, settings, services.codec.vault)
    # What the assessors decided reaches the deciders through that view, never their database.
    services.report_steps = lambda student_id: decisions_for(app, student_id)
    # So does a deregistration past the deadline (docs/deadlines.md).
    services.deregistered = lambda student_id: bool((deadline_for(app, student_id) or {}).get("deregistered"))
    identity = overrides.get("identity") or identity_from_settings(settings, overrides.get("clock") or SystemClock())

    @app.before_request  # before CSRFProtect (configure_web) reads the form
    def _room_for_a_large_pdf() -> None:
        # The report forms take a larger body, so a PDF over the limit is refused beside its
        # field with the typed answers kept, instead of a bare 413 page (issue 17).
        if request.method == "POST" and request.endpoint in pages.REPORT_FORMS:
            request.max_content_length = settings.max_report_form_bytes

    configure_web(app, settings, identity, name="intake", api_blueprints=(api.bp,))
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(privacy.bp)
    install_readiness(app, settings, services.store, "intake")
    register_cli(app)
    return app


def create_feed_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """The intake's feed server: `GET /api/v1/events` only (tokens with `feed:read`), nothing that
    writes, no pages. `make run` serves it as a process of its own beside the intake app, and the
    workers read from it (CIM_INTAKE_FEED_URL): SQLite keeps one writing process per database,
    but readers may be several, so decoding and unsealing feed pages no longer queue behind the
    POSTs in the writer's single interpreter (what that gained: bench/RESULTS.md)."""
    from intake_service.bootstrap import build_services
    from intake_service.web import api
    from shared.clock import SystemClock
    from shared.web.auth import identity_from_settings
    from shared.web.setup import configure_web

    settings = settings or Settings.from_env()
    settings.check_production_safety()
    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, CIM_JSON_ONLY=True)
    app.extensions["cim.intake"] = build_services(settings, **overrides)
    identity = overrides.get("identity") or identity_from_settings(settings, overrides.get("clock") or SystemClock())
    configure_web(app, settings, identity, name="intake-feed", api_blueprints=(api.feed_bp,), sign_in=False)
    app.register_blueprint(api.feed_bp)
    install_readiness(app, settings, app.extensions["cim.intake"].store, "intake-feed")
    return app


def install_readiness(app: Flask, settings: Settings, store: Any, name: str) -> None:
    """/health and /ready (shared/web/health.py): the event store answers, Redis answers; and
    /metrics (shared/web/metrics.py)."""
    from shared.web.health import install_health, redis_check, storage_checks
    from shared.web.metrics import install_metrics

    install_metrics(app, name)

    def database() -> str | None:
        store.head()
        return None

    install_health(app, {"database": database, "redis": redis_check(settings.redis_url),
                         **storage_checks(settings.intake_db_url)})
