"""The web set-up both apps share: JSON logs with the correlation id, locale, CSRF,
authentication and access rules, security headers, rate limits, error handlers and the sign-in
pages."""

from __future__ import annotations

from flask import Blueprint, Flask, request
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from shared.config import ROOT, Settings
from shared.identity.wiring import Identity
from shared.logs import configure_logging, correlation_id_var
from shared.web.auth import init_auth
from shared.web.errors import correlation_id, register_error_handlers
from shared.web.headers import install_security_headers
from shared.web.json_body import install_json_decoder
from shared.web.times import install_time_filters

LOCALES = ("en", "sv")


def select_locale() -> str:
    """The page's language: asked for (`?lang=`), this browser's choice (the `lang` cookie), the
    signed-in person's saved language (so staff who chose Swedish read Swedish on both services
    and every browser), else the browser's Accept-Language."""
    chosen = request.args.get("lang") or request.cookies.get("lang")
    if chosen in LOCALES:
        return chosen
    saved = _saved_language()
    if saved in LOCALES:
        return saved
    return request.accept_languages.best_match(LOCALES) or "en"


def _saved_language() -> str | None:
    from sqlalchemy.exc import SQLAlchemyError

    from shared.errors import CimError
    from shared.web.access import current_caller
    from shared.web.auth import identity

    principal = current_caller().principal
    if principal is None:
        return None
    try:
        return identity().accounts.locale_of(principal.account_id)
    except (CimError, SQLAlchemyError):  # a page's language never fails the page
        return None


def configure_web(
    app: Flask, settings: Settings, identity: Identity, *, name: str, api_blueprints: tuple[Blueprint, ...],
    sign_in: bool = True,
) -> None:
    """`name` tells the apps' form-session cookies apart (they share a host, and cookies ignore
    ports); the sign-in session cookie is deliberately the same for both: one sign-in serves
    both apps, from one session store. `sign_in=False` leaves out the /auth pages (the intake's
    feed server answers API tokens only)."""
    if settings.debug and settings.is_production:
        raise RuntimeError("unsafe production settings: DEBUG must be off")
    # JSON log lines, each with the request's correlation id (X-Correlation-ID or a new one): the
    # same id the events and the wake-up carry, so one id follows a POST through the worker.
    configure_logging(settings.log_level)

    @app.before_request
    def _bind_correlation_id() -> None:
        correlation_id_var.set(correlation_id())

    app.config.update(
        SECRET_KEY=settings.secret_key,
        CIM_SETTINGS=settings,
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=True,
        SESSION_COOKIE_NAME=("__Host-" if settings.cookie_secure else "") + f"cim_{name}_form",
    )
    # Request bodies: orjson with a bound on nesting, for request.get_json() too (issue 18.5).
    install_json_decoder(app)
    Babel(app, locale_selector=select_locale)
    install_time_filters(app)
    csrf = CSRFProtect(app)
    # The JSON APIs are not cookie-authenticated: a bearer token and application/json, which a
    # cross-site form can send neither of.
    for blueprint in api_blueprints:
        csrf.exempt(blueprint)
    app.config["CIM_APP_NAME"] = name
    init_auth(app, identity, settings)
    install_security_headers(app, settings)
    register_error_handlers(app)
    from shared.web.limits import init_rate_limits

    init_rate_limits(app, settings)
    if sign_in:
        install_sign_in(app, settings)


def install_sign_in(app: Flask, settings: Settings) -> None:
    """The /auth pages, the outgoing mailer (tests swap `app.extensions["cim.mailer"]`), the
    identity commands, and `caller` in every template (the headers show who is signed in)."""
    from shared.mail import Mailer
    from shared.web.access import current_caller
    from shared.web.auth_pages import bp as auth_bp
    from shared.web.auth_pages import remember_language_choice
    from shared.web.cli import register_identity_cli

    app.extensions.setdefault("cim.mailer", Mailer.from_settings(settings))
    app.register_blueprint(auth_bp)
    # A signed-in person who switches the pages' language chooses their e-mail's language too.
    app.after_request(remember_language_choice)
    register_identity_cli(app)
    # The university's and departments' names, logos and colours: checked here, at start-up.
    from shared.web.branding import install_branding

    install_branding(app, settings)

    from shared.web.workspace import landing_path, staff_menu

    @app.context_processor
    def _caller() -> dict[str, object]:
        caller = current_caller()
        # On the assessment service the staff pages are its own paths; elsewhere its URLs.
        here = "pages.review_queue" in app.view_functions
        assessment = "" if here else settings.assessment_url.rstrip("/")
        work = landing_path(caller.principal)
        return {
            "caller": caller,
            # One header on both services (shared/web/workspace.py): the staff menu for the
            # person's roles, and where the site name leads them.
            "staff_links": staff_menu(caller.principal, assessment),
            "staff_home": assessment + work if work else None,
            "intake_home": settings.intake_url.rstrip("/") + "/",
        }
