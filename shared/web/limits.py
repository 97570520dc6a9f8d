"""Rate limits for both apps (S5), with Flask-Limiter.

Two limits, both per client address and shared across every route of both apps (the counters
live under one key prefix in Redis, so alternating between the apps or between routes gains
nothing):

* `settings.ratelimit_post` (CIM_RATELIMIT_POST, "120 per minute"): every state-changing request
  (POST, PUT, PATCH, DELETE), pages and JSON API alike.
* `settings.ratelimit_signin` (CIM_RATELIMIT_SIGNIN, "10 per minute;50 per hour"): every
  request (any method) to a view marked `@signin_limited` (sign-in, link requests and redemptions,
  the OIDC start and callback).

Other GETs are not limited: they change nothing (S3) and the pages are cheap.

Past a limit the answer is 429 with `Retry-After` (seconds): an RFC 9457 problem document under
/api/, a page otherwise. The check runs before CSRF and authentication, so a flood of forged or
unauthenticated posts is throttled too.

Storage: `settings.ratelimit_storage_uri` (Redis for `make run` and production, so every
gunicorn worker and both apps count together; "memory://" for unit tests). If Redis is down the
limiter logs a warning ("Rate limit storage unreachable - falling back to in-memory storage") and
keeps limiting per process from memory; it checks Redis again with a backoff and goes back to it
when it answers. A Redis outage never turns a request into a 500.

Client address: `request.remote_addr`, i.e. the TCP peer. X-Forwarded-For is NOT trusted by
default, since any client can send one. Behind a reverse proxy every request comes from the proxy's
address and would share one budget, so the deployment must wrap the app in Werkzeug's ProxyFix
with the number of proxies it trusts, e.g. `app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)`. An IPv6
client is counted per /64 network (one host usually holds a whole /64).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from flask import Flask, Response, current_app, render_template_string, request
from flask_babel import gettext as _
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many
from markupsafe import escape

from shared.config import Settings

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

#: Methods that change state and so count against the limits.
LIMITED_METHODS = ("POST", "PUT", "PATCH", "DELETE")
#: One prefix for both apps: a client's budget is shared by intake and assessment.
KEY_PREFIX = "cim"
#: Redis must answer quickly or be treated as down (then the in-memory fallback takes over).
REDIS_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}

_MARK = "cim_signin_limited"

_PAGE = """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block content %}<h1>{{ title }}</h1><p>{{ detail }}</p>{% endblock %}
{% block main %}<h1>{{ title }}</h1><p>{{ detail }}</p>{% endblock %}
"""


@overload
def signin_limited(view: F, *, methods: tuple[str, ...] | None = None) -> F: ...


@overload
def signin_limited(view: None = None, *, methods: tuple[str, ...] | None = None) -> Callable[[F], F]: ...


def signin_limited(view: F | None = None, *, methods: tuple[str, ...] | None = None) -> F | Callable[[F], F]:
    """Marks a sign-in or link-request view for the stricter sign-in limit: every request to it
    (or, with `methods`, every request with one of these methods: `/register` counts its POSTs,
    which mail links, not its GETs) counts against `settings.ratelimit_signin` (its POSTs also
    against the general POST limit). Order among the other decorators does not matter."""

    def mark(target: F) -> F:
        setattr(target, _MARK, tuple(m.upper() for m in methods) if methods else True)
        return target

    return mark(view) if view is not None else mark


def signin_limited_methods(view: Callable[..., Any] | None) -> tuple[str, ...] | bool:
    """The methods `view` (or a function it wraps) counts against the sign-in limit: True for
    every method, a tuple for some, False if it was not marked."""
    seen = 0
    while view is not None and seen < 10:
        marked = getattr(view, _MARK, False)
        if marked:
            return marked
        view = getattr(view, "__wrapped__", None)
        seen += 1
    return False


def is_signin_limited(view: Callable[..., Any] | None, method: str | None = None) -> bool:
    """True if `view` (or a function it wraps) was marked with `signin_limited` (for `method`,
    when the mark names methods)."""
    marked = signin_limited_methods(view)
    if isinstance(marked, tuple):
        return method is None or method.upper() in marked
    return bool(marked)


def client_address() -> str:
    """The key of the caller: its IP address (IPv6: its /64). See the module text on proxies."""
    raw = request.remote_addr or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _not_signin_view() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return not is_signin_limited(view, request.method)


def _retry_after(limiter: Limiter, exc: RateLimitExceeded) -> int:
    """Seconds until the breached window lets the client in again (at least 1)."""
    try:
        current = limiter.current_limit
        if current is not None:
            return max(1, int(current.reset_at - time.time()))
    except Exception:  # storage gone between the check and here: estimate
        log.warning("rate limit storage unreachable while computing Retry-After")
    return max(1, int(exc.limit.limit.get_expiry()))


def too_many_requests(limiter: Limiter, exc: RateLimitExceeded) -> Response:
    """The 429: problem+json under /api/, a page otherwise; always with Retry-After."""
    from shared.web.errors import problem, wants_json

    retry = _retry_after(limiter, exc)
    title = _("Too many requests")
    detail = _("You have sent too many requests. Please wait %(seconds)s seconds and try again.",
               seconds=retry)
    if wants_json():
        response = problem(429, "Too Many Requests", detail, code="rate_limited")
    else:
        try:
            body = render_template_string(_PAGE, title=title, detail=detail, status=429)
        except Exception:  # a 429 must not become a 500 because of a template
            log.exception("could not render the 429 page")
            body = f"<!doctype html><title>429</title><h1>{escape(title)}</h1><p>{escape(detail)}</p>"
        response = Response(body, status=429, mimetype="text/html")
    response.headers["Retry-After"] = str(retry)
    return response


def mail_allowed(kind: str, recipient: str) -> bool:
    """Count one mail of `kind` to `recipient` against the sign-in limit (CIM_RATELIMIT_SIGNIN),
    per recipient, in the limiter's storage (shared by every process of both apps): False once the
    recipient has had their share, so no address can be flooded with sign-in links however many
    clients ask (issue 18: 25 link mails reached one address in a minute). Only a hash of the
    address is stored. If the storage fails, the mail is allowed (and logged)."""
    limiter: Limiter | None = current_app.extensions.get("cim.limiter")
    settings: Settings = current_app.config["CIM_SETTINGS"]
    if limiter is None:
        return True
    who = hashlib.sha256(recipient.strip().lower().encode()).hexdigest()
    try:
        strategy = limiter.limiter
        items = parse_many(settings.ratelimit_signin)
        # Test first, then count: a refused mail uses no share of a longer window.
        if not all(strategy.test(item, KEY_PREFIX, "mail", kind, who) for item in items):
            return False
        return all([strategy.hit(item, KEY_PREFIX, "mail", kind, who) for item in items])
    except Exception:  # storage gone: never a 500, and the answer must not differ
        log.warning("rate limit storage unreachable while counting a mail")
        return True


def init_rate_limits(app: Flask, settings: Settings) -> Limiter:
    """Install the limits on `app` (see the module text). Returns the Limiter, also kept in
    `app.extensions["cim.limiter"]` (tests reset it or read its storage)."""
    storage_uri = settings.ratelimit_storage_uri
    options = dict(REDIS_OPTIONS) if storage_uri.startswith(("redis://", "rediss://", "redis+")) else {}
    limiter = Limiter(
        client_address,
        application_limits=[
            ApplicationLimit(settings.ratelimit_post, scope="post", methods=LIMITED_METHODS),
            ApplicationLimit(settings.ratelimit_signin, scope="signin", exempt_when=_not_signin_view),
        ],
        storage_uri=storage_uri,
        storage_options=options,
        strategy="moving-window",
        key_prefix=KEY_PREFIX,
        # Redis down: count in this process instead, logged; never a 500 (and, should even that
        # fail, swallow the error and let the request through).
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        headers_enabled=False,
    )
    @limiter.request_filter
    def _nothing_to_count() -> bool:
        # A read of a view without the sign-in limit counts against no limit: skip the
        # evaluation altogether (it is most of a feed request's limiter cost).
        return request.method not in LIMITED_METHODS and _not_signin_view()

    limiter.init_app(app)
    # Check the limits first, before CSRF and authentication: floods of forged posts count too.
    funcs = app.before_request_funcs.setdefault(None, [])
    check = next((f for f in funcs if getattr(f, "__self__", None) is limiter), None)
    if check is not None:
        funcs.remove(check)
        funcs.insert(0, check)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Response:
        # No address in the log: it is personal data (G3); the endpoint says enough.
        log.warning("rate limit %s exceeded on %s %s", exc.limit.limit, request.method, request.endpoint)
        return too_many_requests(limiter, exc)

    app.extensions["cim.limiter"] = limiter
    return limiter
