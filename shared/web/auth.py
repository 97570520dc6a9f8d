"""Authentication for both apps: the server-side session behind the `__Host-` cookie, API tokens
for machines, and the sign-in/sign-out moves that rotate and revoke sessions.

`init_auth(app, identity, settings)` installs it; views read `current_caller()` (shared.web.access).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, g, request, session

from shared.config import Settings
from shared.identity.errors import ApiTokenInvalid
from shared.identity.models import Account
from shared.identity.oidc import OidcClientConfig
from shared.identity.sessions import SessionPolicy
from shared.identity.wiring import Identity, build_identity
from shared.web.access import ANONYMOUS, Caller, current_caller, enforce_access


def identity_from_settings(settings: Settings, clock: Any, *, redis: Any | None = None) -> Identity:
    """The identity services for an app: SQL store at CIM_IDENTITY_DB_URL, sessions in Redis."""
    if redis is None:
        from redis import Redis

        redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    oidc = None
    if settings.oidc_issuer:
        oidc = OidcClientConfig(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            redirect_uri=settings.oidc_redirect_uri or f"{settings.intake_url}/auth/oidc/callback",
            scopes=tuple(settings.oidc_scopes.split()),
        )
    identity = build_identity(
        clock=clock,
        identity_key=settings.identity_secret,
        db_url=settings.identity_db_url,
        redis=redis,
        session_policy=SessionPolicy(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_absolute_hours),
        ),
        link_ttl=timedelta(minutes=settings.email_link_minutes),
        setup_link_ttl=timedelta(hours=settings.setup_link_hours),
        oidc=oidc,
    )
    identity.store.create_schema()  # at start-up (the app factory), never in a request
    return identity


def identity() -> Identity:
    return current_app.extensions["cim.identity"]


def _settings() -> Settings:
    return current_app.config["CIM_SETTINGS"]


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate() -> None:
    """before_request: API paths authenticate by bearer token only (no cookies, so no CSRF);
    everything else by the session cookie."""
    ident = identity()
    caller = ANONYMOUS
    if request.path.startswith("/api/"):
        token = _bearer_token()
        if token is None and "Authorization" in request.headers:
            raise ApiTokenInvalid("Send the API token as `Authorization: Bearer <token>`.")
        if token is not None:
            record = ident.api_tokens.authenticate(token)  # ApiTokenInvalid -> 401
            principal = None
            if record.account_id is not None:
                principal = ident.accounts.principal(record.account_id)
                if principal is None:  # the account behind the token is disabled or gone
                    raise ApiTokenInvalid("This API token is no longer valid.")
            caller = Caller(principal=principal, token=record, auth_method="token")
    else:
        session_id = request.cookies.get(_settings().session_cookie_name)
        if session_id and len(session_id) <= 128:
            live = ident.sessions.get(session_id)
            if live is not None:
                principal = ident.accounts.principal(live.account_id)
                if principal is not None:
                    caller = Caller(principal=principal, session_id=session_id, auth_method=live.auth_method)
            if caller.anonymous:
                g.cim_clear_session_cookie = True
    g.cim_caller = caller


def sign_in(account: Account, method: str) -> None:
    """Start a new session for `account` (never reuse the one the browser had: rotation at
    sign-in), and start a fresh form session too (new CSRF token)."""
    ident = identity()
    old = current_caller().session_id
    if old:
        ident.sessions.revoke(old)
    session.clear()
    g.cim_new_session_id = ident.sessions.create(account.id, auth_method=method)
    principal = ident.accounts.principal(account.id)
    g.cim_caller = Caller(principal=principal, session_id=g.cim_new_session_id, auth_method=method)


def rotate_session() -> None:
    """New session id, same sign-in time (after a role change or a sensitive step)."""
    old = current_caller().session_id
    if old:
        new = identity().sessions.rotate(old)
        if new:
            g.cim_new_session_id = new


def sign_out(*, everywhere: bool = False) -> None:
    caller = current_caller()
    ident = identity()
    if everywhere and caller.account_id:
        ident.sessions.revoke_all(caller.account_id)
    elif caller.session_id:
        ident.sessions.revoke(caller.session_id)
    session.clear()
    g.cim_caller = ANONYMOUS
    g.cim_clear_session_cookie = True


def _write_cookie(response: Response) -> Response:
    settings = _settings()
    name = settings.session_cookie_name
    new_id = g.get("cim_new_session_id")
    if new_id:
        response.set_cookie(
            name, new_id, path="/", secure=settings.cookie_secure, httponly=True, samesite="Lax"
        )
    elif g.get("cim_clear_session_cookie"):
        response.delete_cookie(name, path="/", secure=settings.cookie_secure, httponly=True, samesite="Lax")
    return response


def init_auth(app: Flask, ident: Identity, settings: Settings) -> None:
    """Install authentication and access enforcement (in that order) on `app`."""
    app.extensions["cim.identity"] = ident
    app.config.update(
        # Flask's own signed cookie only carries the CSRF token and one-time form tokens.
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
    )
    app.before_request(authenticate)
    app.before_request(enforce_access)
    app.after_request(_write_cookie)
