"""A tiny local OpenID Connect provider for tests (http.server on 127.0.0.1), with knobs to make it
misbehave: forged signatures, wrong audience or issuer, expired tokens, reused codes.

Other tests import `LocalOidcProvider` and the `oidc_provider` fixture from here; the tests at the
bottom check that the provider itself speaks the protocol."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import RSAKey

from shared.clock import Clock, FixedClock

CLIENT_ID = "cim-test-client"
CLIENT_SECRET = "test-only-client-secret-0123456789"
REDIRECT_URI = "http://127.0.0.1:9/auth/oidc/callback"  # never fetched: the tests read the redirect


def new_rsa_key(kid: str = "key-1") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    subject: str


@dataclass
class LocalOidcProvider:
    """Auto-consent provider: /authorize redirects straight back with a code for `subject`."""

    clock: Clock
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    redirect_uri: str = REDIRECT_URI
    subject: str = "student-0001"
    email: str = "ada@student.lu.se"
    #: what /jwks publishes
    published_keys: list[RSAKey] = field(default_factory=lambda: [new_rsa_key()])
    #: what ID tokens are signed with; None = the first published key
    signing_key: RSAKey | None = None
    #: claims to set (or remove, with value None) in the next ID tokens
    claim_overrides: dict[str, Any] = field(default_factory=dict)
    header_overrides: dict[str, Any] = field(default_factory=dict)
    #: a last say over the encoded ID token (e.g. to tamper with it)
    token_filter: Callable[[str], str] | None = None
    allow_code_reuse: bool = False
    #: answer /token with a 302 to this URL (a client must not follow it with its credentials)
    token_redirect: str | None = None
    #: set by start()
    issuer: str = ""
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: int = 0
    #: every path asked for, in order
    requests_seen: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> LocalOidcProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                provider._get(self)

            def do_POST(self) -> None:
                provider._post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="local-oidc", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # protocol
    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def id_token(self, grant: Grant, access_token: str) -> str:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.subject,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "email": self.email,
            "email_verified": True,
            "name": "Alva Provnamn",
            "at_hash": create_half_hash(access_token, "RS256").decode(),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        for name, value in self.claim_overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self.signing_key or self.published_keys[0]
        header = {"alg": "RS256", "kid": key.kid, **self.header_overrides}
        token = jwt.encode(header, claims, key)
        return self.token_filter(token) if self.token_filter else token

    # HTTP
    def _json(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        handler.wfile.write(data)

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests_seen.append(f"GET {handler.path}")
        url = urllib.parse.urlsplit(handler.path)
        if url.path == "/.well-known/openid-configuration":
            return self._json(handler, 200, self.discovery())
        if url.path == "/jwks":
            return self._json(handler, 200, {"keys": [k.as_dict(private=False) for k in self.published_keys]})
        if url.path == "/authorize":
            query = dict(urllib.parse.parse_qsl(url.query))
            if query.get("client_id") != self.client_id or query.get("redirect_uri") != self.redirect_uri:
                return self._json(handler, 400, {"error": "invalid_request"})  # never redirect to a stranger
            params: dict[str, str] = {}
            if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
                params["error"] = "unsupported_response_type"
            else:
                code = secrets.token_urlsafe(24)
                self.grants[code] = Grant(
                    self.client_id, self.redirect_uri, query.get("nonce"), query.get("code_challenge"), self.subject
                )
                params["code"] = code
            if "state" in query:
                params["state"] = query["state"]
            handler.send_response(302)
            handler.send_header("Location", f"{self.redirect_uri}?{urllib.parse.urlencode(params)}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        return self._json(handler, 404, {"error": "not_found"})

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests_seen.append(f"POST {handler.path}")
        if urllib.parse.urlsplit(handler.path).path != "/token":
            return self._json(handler, 404, {"error": "not_found"})
        self.token_requests += 1
        if self.token_redirect is not None:
            handler.send_response(302)
            handler.send_header("Location", self.token_redirect)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        length = int(handler.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(handler.rfile.read(length).decode()))
        auth = handler.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if auth != f"Basic {expected}":
            return self._json(handler, 401, {"error": "invalid_client"})
        code = form.get("code", "")
        grant = self.grants.get(code) if self.allow_code_reuse else self.grants.pop(code, None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            return self._json(handler, 400, {"error": "invalid_grant"})
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._json(handler, 400, {"error": "invalid_grant"})
        verifier = form.get("code_verifier", "")
        if grant.code_challenge and not compare_s256_code_challenge(verifier, grant.code_challenge):
            return self._json(handler, 400, {"error": "invalid_grant"})
        access_token = secrets.token_urlsafe(24)
        return self._json(
            handler,
            200,
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(grant, access_token),
            },
        )


@pytest.fixture
def oidc_provider(clock: FixedClock) -> Iterator[LocalOidcProvider]:
    provider = LocalOidcProvider(clock).start()
    yield provider
    provider.stop()


def test_provider_serves_discovery_and_keys(oidc_provider: LocalOidcProvider) -> None:
    with requests.Session() as http:
        discovery = http.get(f"{oidc_provider.issuer}/.well-known/openid-configuration", timeout=5).json()
        assert discovery["issuer"] == oidc_provider.issuer
        keys = http.get(discovery["jwks_uri"], timeout=5).json()["keys"]
    assert [k["kid"] for k in keys] == ["key-1"]
    assert "d" not in keys[0]  # public half only


def test_provider_refuses_an_unknown_redirect_uri(oidc_provider: LocalOidcProvider) -> None:
    with requests.Session() as http:
        answer = http.get(
            f"{oidc_provider.issuer}/authorize",
            params={"client_id": CLIENT_ID, "redirect_uri": "https://evil.example/cb", "response_type": "code"},
            allow_redirects=False,
            timeout=5,
        )
    assert answer.status_code == 400
