"""Web plumbing shared by pages and API: CSRF, locale, security headers, correlation ids."""

from __future__ import annotations

from flask import Flask, Response, request
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from intake_service.web.errors import correlation_id
from shared.config import ROOT, Settings

LOCALES = ("en", "sv")


def select_locale() -> str:
    chosen = request.args.get("lang") or request.cookies.get("lang")
    if chosen in LOCALES:
        return chosen
    return request.accept_languages.best_match(LOCALES) or "en"


def configure_web(app: Flask, settings: Settings) -> None:
    app.config.update(
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
    )
    Babel(app, locale_selector=select_locale)
    csrf = CSRFProtect(app)
    # The JSON API is not cookie-authenticated (it cannot be driven by a forged form: it needs
    # application/json, which a cross-site form cannot send); issue 4 adds API tokens.
    from intake_service.web import api

    csrf.exempt(api.bp)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Correlation-ID"] = correlation_id()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        return response
