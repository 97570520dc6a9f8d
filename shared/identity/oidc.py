"""OpenID Connect relying party (authorization-code flow with PKCE) on Authlib and joserfc.

Validates the callback and the ID token: state, RS256 signature against the provider's JWKS,
issuer, audience/azp, expiry and issue time, nonce, and refuses a nonce seen before. The identity
is (issuer, subject), never the e-mail. Nothing is fetched until `provider()` or `complete()` runs.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeGuard

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from shared.clock import Clock
from shared.identity.crypto import token_hash
from shared.identity.errors import (
    OidcAudienceMismatch,
    OidcClaimInvalid,
    OidcDiscoveryError,
    OidcIssuerMismatch,
    OidcNonceMismatch,
    OidcNonceReplayed,
    OidcProviderError,
    OidcSignatureInvalid,
    OidcStateMismatch,
    OidcTokenExpired,
)
from shared.identity.models import ExternalIdentity
from shared.identity.store import IdentityStore

ALGORITHMS = ("RS256",)
NONCE_KIND = "oidc-nonce"
MAX_RESPONSE_BYTES = 1024 * 1024
#: ID tokens claiming to live longer are refused (providers issue minutes, not days).
MAX_ID_TOKEN_LIFETIME = timedelta(days=1)


class HttpClient(Protocol):
    """The two calls the relying party makes; tests may pass a fake."""

    def get_json(self, url: str) -> dict[str, Any]: ...

    def post_form(
        self, url: str, data: Mapping[str, str], *, basic_auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """The JSON body of the answer, for 2xx and 4xx alike (OAuth errors come as 400 + JSON)."""
        ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could carry the client's Basic credentials to another host: treat it as an error.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class UrllibHttpClient:
    """Stdlib HTTP with a timeout, a size cap and no redirects. Plain http only with allow_http
    (local tests)."""

    def __init__(self, *, timeout: float = 10.0, allow_http: bool = False) -> None:
        self._timeout = timeout
        self._allow_http = allow_http
        self._opener = urllib.request.build_opener(_NoRedirects())

    def _check(self, url: str) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme != "https" and not (self._allow_http and scheme == "http"):
            raise OidcDiscoveryError(f"refusing a non-https provider URL ({scheme})")

    def _send(self, request: urllib.request.Request) -> dict[str, Any]:
        try:
            with self._opener.open(request, timeout=self._timeout) as response:  # nosec B310 - scheme checked
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            body = exc.read(MAX_RESPONSE_BYTES + 1)
            if exc.code >= 500 or not body:
                raise OidcProviderError(f"provider answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise OidcProviderError("provider unreachable") from exc
        if len(body) > MAX_RESPONSE_BYTES:
            raise OidcProviderError("provider answer too large")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise OidcProviderError("provider answer is not JSON") from exc
        if not isinstance(data, dict):
            raise OidcProviderError("provider answer is not a JSON object")
        return data

    def get_json(self, url: str) -> dict[str, Any]:
        self._check(url)
        return self._send(urllib.request.Request(url, headers={"Accept": "application/json"}))

    def post_form(
        self, url: str, data: Mapping[str, str], *, basic_auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        self._check(url)
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        if basic_auth is not None:
            # RFC 6749 2.3.1: form-encode id and secret before joining them.
            user, password = (urllib.parse.quote(v, safe="") for v in basic_auth)
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        encoded = urllib.parse.urlencode(dict(data)).encode()
        return self._send(urllib.request.Request(url, data=encoded, headers=headers, method="POST"))


@dataclass(frozen=True)
class OidcClientConfig:
    """This application as a client of one provider."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    leeway: timedelta = timedelta(seconds=60)
    request_max_age: timedelta = timedelta(minutes=10)
    jwks_refresh_interval: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str

    @classmethod
    def from_discovery(cls, document: Mapping[str, Any], expected_issuer: str) -> ProviderMetadata:
        """OidcDiscoveryError unless the document names the configured issuer exactly."""
        try:
            metadata = cls(
                issuer=str(document["issuer"]),
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
            )
        except KeyError as exc:
            raise OidcDiscoveryError(f"discovery document lacks {exc.args[0]}") from exc
        if metadata.issuer != expected_issuer:
            raise OidcDiscoveryError("discovery document is for another issuer")
        return metadata


@dataclass(frozen=True)
class AuthorizationRequest:
    """What the app keeps (server-side or in a signed pre-auth cookie) between redirect and callback."""

    url: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    created_at: datetime

    def to_dict(self) -> dict[str, str]:
        return {
            "url": self.url,
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> AuthorizationRequest:
        return cls(
            url=data["url"],
            state=data["state"],
            nonce=data["nonce"],
            code_verifier=data["code_verifier"],
            created_at=datetime.fromisoformat(data["created_at"]),
        )


@dataclass(frozen=True)
class OidcSignIn:
    """A successful sign-in: the identity, plus what the provider said (personal data, not logged)."""

    identity: ExternalIdentity
    email: str | None = field(default=None, repr=False)
    email_verified: bool = False
    name: str | None = field(default=None, repr=False)


def _safe_code(value: object) -> str:
    """An OAuth error code as it may appear in a log line: the provider (or an attacker) chose it."""
    text = str(value)[:64]
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c in "_-.")) or "unknown"


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class OidcRelyingParty:
    def __init__(self, config: OidcClientConfig, http: HttpClient, store: IdentityStore, clock: Clock) -> None:
        self._config = config
        self._http = http
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._keys_fetched_at: datetime | None = None

    # provider metadata and keys (fetched lazily, cached)
    def provider(self) -> ProviderMetadata:
        with self._lock:
            if self._metadata is None:
                url = self._config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                self._metadata = ProviderMetadata.from_discovery(self._http.get_json(url), self._config.issuer)
            return self._metadata

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        metadata = self.provider()
        with self._lock:
            now = self._clock.now()
            stale = refresh and (
                self._keys_fetched_at is None or now - self._keys_fetched_at >= self._config.jwks_refresh_interval
            )
            if self._keys is None or stale:
                document = self._http.get_json(metadata.jwks_uri)
                try:
                    self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (JoseError, ValueError, KeyError, TypeError) as exc:
                    raise OidcDiscoveryError("the provider's JWKS is not usable") from exc
                self._keys_fetched_at = now
            return self._keys

    # the flow
    def begin(self, *, extra_params: Mapping[str, str] | None = None) -> AuthorizationRequest:
        """A fresh state, nonce and PKCE verifier, and the URL to redirect the browser to."""
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        params = {
            "response_type": "code",
            "client_id": self._config.client_id,
            "redirect_uri": self._config.redirect_uri,
            "scope": " ".join(self._config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            **(extra_params or {}),
        }
        url = add_params_to_uri(self.provider().authorization_endpoint, list(params.items()))
        return AuthorizationRequest(url, state, nonce, verifier, self._clock.now())

    def complete(self, callback: Mapping[str, str], request: AuthorizationRequest) -> OidcSignIn:
        """Check the callback against the request it answers, redeem the code, validate the ID token."""
        state = callback.get("state") or ""
        if not state or not _same(state, request.state):
            raise OidcStateMismatch("state does not match the sign-in request")
        if self._clock.now() - request.created_at > self._config.request_max_age:
            raise OidcStateMismatch("sign-in request too old")
        if callback.get("error"):
            raise OidcProviderError(f"provider refused: {_safe_code(callback['error'])}")
        code = callback.get("code") or ""
        if not code:
            raise OidcProviderError("callback without a code")
        answer = self._http.post_form(
            self.provider().token_endpoint,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self._config.redirect_uri,
                "code_verifier": request.code_verifier,
            },
            basic_auth=(self._config.client_id, self._config.client_secret),
        )
        if "error" in answer or not isinstance(answer.get("id_token"), str):
            raise OidcProviderError(f"token endpoint refused: {_safe_code(answer.get('error', 'no_id_token'))}")
        access_token = answer.get("access_token")
        if not isinstance(access_token, str):
            access_token = None
        return self.validate_id_token(answer["id_token"], nonce=request.nonce, access_token=access_token)

    def validate_id_token(self, id_token: str, *, nonce: str, access_token: str | None = None) -> OidcSignIn:
        """Every check on an ID token, then the nonce is recorded so the same token cannot sign in twice."""
        token = self._decode(id_token)
        claims = dict(token.claims)
        now = self._clock.now()
        leeway = int(self._config.leeway.total_seconds())
        if not isinstance(claims.get("iss"), str) or not _same(claims["iss"], self.provider().issuer):
            raise OidcIssuerMismatch("ID token from another issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        azp = claims.get("azp")
        if self._config.client_id not in audiences or (
            (len(audiences) > 1 or azp is not None) and azp != self._config.client_id
        ):
            raise OidcAudienceMismatch("ID token issued to another client")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_number(exp) or not _is_number(iat):
            raise OidcClaimInvalid("ID token lacks a numeric exp or iat")
        now_ts = now.timestamp()
        # Written as "must hold" comparisons so that NaN and infinities fail them.
        if not now_ts < exp + leeway:
            raise OidcTokenExpired("ID token expired")
        if not iat <= now_ts + leeway:
            raise OidcTokenExpired("ID token issued in the future")
        if not exp <= now_ts + MAX_ID_TOKEN_LIFETIME.total_seconds():
            raise OidcClaimInvalid("ID token lifetime too long")
        given_nonce = claims.get("nonce")
        if not isinstance(given_nonce, str) or not _same(given_nonce, nonce):
            raise OidcNonceMismatch("ID token nonce does not match the sign-in request")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise OidcClaimInvalid("ID token lacks a usable sub")
        # Authlib's ID-token rules as a second net (at_hash, amr, auth_time types, azp).
        try:
            CodeIDToken(
                claims,
                token.header,
                options={"iss": {"essential": True, "value": self.provider().issuer}},
                params={"nonce": nonce, "client_id": self._config.client_id, "access_token": access_token},
            ).validate(now=int(now.timestamp()), leeway=leeway)
        except JoseError as exc:
            raise OidcClaimInvalid(f"ID token claim refused: {exc.error}") from exc
        # Remember the nonce as long as a token carrying it could still be accepted.
        expires_at = now + MAX_ID_TOKEN_LIFETIME + self._config.leeway
        if not self._store.mark_used(token_hash(f"{claims['iss']}\n{nonce}"), NONCE_KIND, expires_at, now):
            raise OidcNonceReplayed("ID token nonce already used")
        email = claims.get("email")
        name = claims.get("name")
        return OidcSignIn(
            identity=ExternalIdentity(claims["iss"], subject),
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
            name=name if isinstance(name, str) else None,
        )

    def _decode(self, id_token: str) -> jwt.Token:
        if len(id_token) > 16384:
            raise OidcSignatureInvalid("ID token too large")
        for refresh in (False, True):
            try:
                return jwt.decode(id_token, self._key_set(refresh=refresh), algorithms=list(ALGORITHMS))
            except JoseError as exc:
                # An unknown kid may mean the provider rotated keys: fetch the JWKS again once.
                if refresh or exc.error not in {"missing_key", "invalid_key_id"}:
                    raise OidcSignatureInvalid(f"ID token signature refused: {exc.error}") from exc
            except (ValueError, TypeError) as exc:
                raise OidcSignatureInvalid("ID token malformed") from exc
        raise OidcSignatureInvalid("ID token signature refused")  # pragma: no cover
