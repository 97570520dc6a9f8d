"""Security headers on every response of both apps (S4)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

from shared.config import Settings
from shared.web.errors import correlation_id

#: The pages use one stylesheet from 'self', no inline script or style, no frames, forms to self.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


#: The endpoints whose answers browsers may keep: the stylesheet, and the visual identity's
#: stylesheets and logos (shared/web/branding.py: public, versioned URLs, no personal data).
CACHEABLE = frozenset({"static", "branding.theme", "branding.logo"})


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def content_security_policy(settings: Settings) -> str:
    """CONTENT_SECURITY_POLICY with the two apps' own origins added to `form-action`: browsers
    apply it to a form's redirects too, and a sign-in on the intake ends on the assessment
    service's queue (shared/web/workspace.py) — with 'self' alone Chromium drops that navigation."""
    origins = sorted({o for o in (_origin(settings.intake_url), _origin(settings.assessment_url)) if o})
    if not origins:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace("form-action 'self'", "form-action 'self' " + " ".join(origins))


def install_security_headers(app: Flask, settings: Settings) -> None:
    hsts = settings.is_production
    policy = content_security_policy(settings)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers["X-Correlation-ID"] = correlation_id()
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        if hsts or request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if request.endpoint not in CACHEABLE:
            # Pages and API answers carry personal data or per-user state: never cache them.
            headers["Cache-Control"] = "no-store"
            headers.setdefault("Pragma", "no-cache")
        return response
