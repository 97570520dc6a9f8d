"""OpenID Connect sign-in against a local provider: the positive path and every refusal
(bar S9; the key is in tests/README.md).

Each negative case must be refused with its typed error (all are SignInFailed, HTTP 401), and the
identity must be (issuer, subject), never the e-mail."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import OctKey

from shared.clock import FixedClock
from shared.identity.errors import (
    OidcAudienceMismatch,
    OidcClaimInvalid,
    OidcDiscoveryError,
    OidcError,
    OidcIssuerMismatch,
    OidcNonceMismatch,
    OidcNonceReplayed,
    OidcProviderError,
    OidcSignatureInvalid,
    OidcStateMismatch,
    OidcTokenExpired,
    SignInFailed,
)
from shared.identity.models import ExternalIdentity
from shared.identity.oidc import (
    AuthorizationRequest,
    OidcClientConfig,
    OidcRelyingParty,
    OidcSignIn,
    UrllibHttpClient,
)
from shared.identity.sql_store import SqlIdentityStore
from tests.integration.test_oidc_provider import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, LocalOidcProvider, new_rsa_key


@pytest.fixture
def provider(clock: FixedClock) -> Iterator[LocalOidcProvider]:
    running = LocalOidcProvider(clock).start()
    yield running
    running.stop()


@pytest.fixture
def identity_store(tmp_path: Path) -> Iterator[SqlIdentityStore]:
    store = SqlIdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    store.create_schema()
    yield store
    store.dispose()


def _config(provider: LocalOidcProvider, **changes: object) -> OidcClientConfig:
    values: dict[str, object] = {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT_URI,
    }
    values.update(changes)
    return OidcClientConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def rp(provider: LocalOidcProvider, identity_store: SqlIdentityStore, clock: FixedClock) -> OidcRelyingParty:
    return OidcRelyingParty(_config(provider), UrllibHttpClient(timeout=5, allow_http=True), identity_store, clock)


def browse(request: AuthorizationRequest) -> dict[str, str]:
    """What the browser brings back to the callback: follow /authorize to its redirect."""
    answer = requests.get(request.url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def sign_in(rp: OidcRelyingParty) -> OidcSignIn:
    request = rp.begin()
    return rp.complete(browse(request), request)


def refused(rp: OidcRelyingParty, error: type[OidcError]) -> OidcError:
    with pytest.raises(error) as caught:
        sign_in(rp)
    assert isinstance(caught.value, SignInFailed)
    assert caught.value.status == 401
    return caught.value


# the positive path


def test_sign_in_yields_issuer_and_subject(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    result = sign_in(rp)
    assert result.identity == ExternalIdentity(provider.issuer, "student-0001")
    assert result.email == "ada@student.lu.se"
    assert result.email_verified
    assert "ada@" not in repr(result)


def test_the_request_carries_state_nonce_and_pkce(rp: OidcRelyingParty) -> None:
    request = rp.begin()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
    assert query["state"] == request.state
    assert query["nonce"] == request.nonce
    assert query["code_challenge_method"] == "S256"
    assert request.code_verifier not in request.url
    assert query["scope"].split()[0] == "openid"
    assert AuthorizationRequest.from_dict(request.to_dict()) == request
    assert rp.begin().state != request.state


def test_same_subject_with_a_new_email_is_the_same_identity(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    first = sign_in(rp)
    provider.email = "alva.provnamn@new.lu.se"
    assert sign_in(rp).identity == first.identity
    provider.subject = "student-0002"
    provider.email = "ada@student.lu.se"
    assert sign_in(rp).identity != first.identity


def test_rotated_provider_keys_are_fetched_again(
    rp: OidcRelyingParty, provider: LocalOidcProvider, clock: FixedClock
) -> None:
    sign_in(rp)
    provider.published_keys = [new_rsa_key("key-2"), *provider.published_keys]
    clock.advance(timedelta(minutes=6))
    assert sign_in(rp).identity.subject == "student-0001"


# signature


def test_a_token_signed_with_another_key_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    provider.signing_key = new_rsa_key("key-1")  # same kid, different key
    refused(rp, OidcSignatureInvalid)


def test_a_tampered_payload_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    def swap_payload(token: str) -> str:
        header, _, signature = token.split(".")
        forged = jwt.encode({"alg": "RS256"}, {"sub": "admin"}, new_rsa_key()).split(".")[1]
        return f"{header}.{forged}.{signature}"

    provider.token_filter = swap_payload
    refused(rp, OidcSignatureInvalid)


def test_an_unsigned_token_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    def strip_signature(token: str) -> str:
        import base64

        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        return f"{header}.{token.split('.')[1]}."

    provider.token_filter = strip_signature
    refused(rp, OidcSignatureInvalid)


def test_a_token_hmac_signed_with_the_client_secret_is_refused(
    rp: OidcRelyingParty, provider: LocalOidcProvider
) -> None:
    def resign_hs256(token: str) -> str:
        claims = jwt.decode(token, provider.published_keys[0]).claims
        return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(CLIENT_SECRET.encode()))

    provider.token_filter = resign_hs256
    refused(rp, OidcSignatureInvalid)


def test_a_token_with_an_unknown_key_id_is_refused(
    rp: OidcRelyingParty, provider: LocalOidcProvider, clock: FixedClock
) -> None:
    sign_in(rp)  # keys cached
    provider.signing_key = new_rsa_key("key-unknown")
    clock.advance(timedelta(minutes=6))
    refused(rp, OidcSignatureInvalid)


# issuer, audience, time


def test_a_token_from_another_issuer_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    provider.claim_overrides["iss"] = "http://127.0.0.1:1"
    refused(rp, OidcIssuerMismatch)


@pytest.mark.parametrize("aud", ["some-other-client", ["some-other-client"], [CLIENT_ID, "some-other-client"]])
def test_a_token_for_another_audience_is_refused(
    rp: OidcRelyingParty, provider: LocalOidcProvider, aud: object
) -> None:
    provider.claim_overrides["aud"] = aud
    refused(rp, OidcAudienceMismatch)


def test_a_token_authorized_for_another_party_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    provider.claim_overrides["azp"] = "some-other-client"
    refused(rp, OidcAudienceMismatch)


def test_an_expired_token_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider, clock: FixedClock) -> None:
    now = int(clock.now().timestamp())
    provider.claim_overrides.update({"iat": now - 7200, "exp": now - 3600})
    refused(rp, OidcTokenExpired)


def test_a_token_just_past_expiry_plus_leeway_is_refused(
    rp: OidcRelyingParty, provider: LocalOidcProvider, clock: FixedClock
) -> None:
    now = int(clock.now().timestamp())
    provider.claim_overrides.update({"iat": now - 400, "exp": now - 60})
    refused(rp, OidcTokenExpired)
    provider.claim_overrides.update({"exp": now - 59})
    sign_in(rp)


def test_a_token_issued_in_the_future_is_refused(
    rp: OidcRelyingParty, provider: LocalOidcProvider, clock: FixedClock
) -> None:
    provider.claim_overrides["iat"] = int(clock.now().timestamp()) + 3600
    refused(rp, OidcTokenExpired)


def test_a_token_without_a_subject_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    provider.claim_overrides["sub"] = None
    refused(rp, OidcClaimInvalid)


def test_an_access_token_hash_mismatch_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    provider.claim_overrides["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA"
    refused(rp, OidcClaimInvalid)


# nonce and state


def test_a_replayed_nonce_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    provider.allow_code_reuse = True
    request = rp.begin()
    callback = browse(request)
    rp.complete(callback, request)
    with pytest.raises(OidcNonceReplayed):
        rp.complete(callback, request)


def test_a_replayed_id_token_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    captured: list[str] = []

    def capture(token: str) -> str:
        captured.append(token)
        return token

    provider.token_filter = capture
    request = rp.begin()
    rp.complete(browse(request), request)
    with pytest.raises(OidcNonceReplayed):
        rp.validate_id_token(captured[0], nonce=request.nonce)


def test_a_nonce_from_another_request_is_refused(rp: OidcRelyingParty, provider: LocalOidcProvider) -> None:
    provider.claim_overrides["nonce"] = "somebody-elses-nonce"
    refused(rp, OidcNonceMismatch)
    provider.claim_overrides["nonce"] = None
    refused(rp, OidcNonceMismatch)


def test_state_mismatch_is_refused_before_the_code_is_redeemed(
    rp: OidcRelyingParty, provider: LocalOidcProvider
) -> None:
    request = rp.begin()
    callback = browse(request)
    without_state = {k: v for k, v in callback.items() if k != "state"}
    for bad_state in [{**callback, "state": callback["state"] + "x"}, without_state]:
        with pytest.raises(OidcStateMismatch):
            rp.complete(bad_state, request)
    assert provider.token_requests == 0
    rp.complete(callback, request)  # the genuine callback still works


def test_callbacks_of_two_sign_ins_cannot_be_crossed(rp: OidcRelyingParty) -> None:
    first, second = rp.begin(), rp.begin()
    first_callback, _ = browse(first), browse(second)
    with pytest.raises(OidcStateMismatch):
        rp.complete(first_callback, second)


def test_a_stale_sign_in_request_is_refused(rp: OidcRelyingParty, clock: FixedClock) -> None:
    request = rp.begin()
    callback = browse(request)
    clock.advance(timedelta(minutes=11))
    with pytest.raises(OidcStateMismatch):
        rp.complete(callback, request)


# the provider saying no, or being wrong


def test_a_provider_error_is_refused(rp: OidcRelyingParty) -> None:
    request = rp.begin()
    with pytest.raises(OidcProviderError):
        rp.complete({"state": request.state, "error": "access_denied"}, request)


def test_a_reused_code_is_refused_by_the_provider(rp: OidcRelyingParty) -> None:
    request = rp.begin()
    callback = browse(request)
    rp.complete(callback, request)
    with pytest.raises(OidcProviderError):
        rp.complete(callback, request)


def test_a_wrong_pkce_verifier_is_refused(rp: OidcRelyingParty) -> None:
    request = rp.begin()
    callback = browse(request)
    forged = AuthorizationRequest(request.url, request.state, request.nonce, "x" * 64, request.created_at)
    with pytest.raises(OidcProviderError):
        rp.complete(callback, forged)


def test_a_redirecting_token_endpoint_gets_no_credentials(
    rp: OidcRelyingParty, provider: LocalOidcProvider, clock: FixedClock
) -> None:
    elsewhere = LocalOidcProvider(clock).start()
    try:
        provider.token_redirect = f"{elsewhere.issuer}/token"
        refused(rp, OidcProviderError)
        assert elsewhere.requests_seen == []
    finally:
        elsewhere.stop()


def test_a_wrong_client_secret_is_refused(
    provider: LocalOidcProvider, identity_store: SqlIdentityStore, clock: FixedClock
) -> None:
    rp = OidcRelyingParty(
        _config(provider, client_secret="wrong"), UrllibHttpClient(allow_http=True), identity_store, clock
    )
    refused(rp, OidcProviderError)


def test_a_discovery_document_for_another_issuer_is_refused(
    provider: LocalOidcProvider, identity_store: SqlIdentityStore, clock: FixedClock
) -> None:
    config = _config(provider, issuer=provider.issuer + "/")
    rp = OidcRelyingParty(config, UrllibHttpClient(allow_http=True), identity_store, clock)
    with pytest.raises(OidcDiscoveryError):
        rp.begin()


def test_plain_http_is_refused_outside_tests(
    provider: LocalOidcProvider, identity_store: SqlIdentityStore, clock: FixedClock
) -> None:
    rp = OidcRelyingParty(_config(provider), UrllibHttpClient(), identity_store, clock)
    with pytest.raises(OidcDiscoveryError):
        rp.begin()


def test_an_unreachable_provider_is_a_clear_error(identity_store: SqlIdentityStore, clock: FixedClock) -> None:
    config = OidcClientConfig(
        issuer="http://127.0.0.1:9", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI
    )
    rp = OidcRelyingParty(config, UrllibHttpClient(timeout=2, allow_http=True), identity_store, clock)
    with pytest.raises(OidcProviderError):
        rp.begin()


def test_nothing_is_fetched_until_needed(identity_store: SqlIdentityStore, clock: FixedClock) -> None:
    class NoNetwork:
        def get_json(self, url: str) -> dict[str, object]:
            raise AssertionError("fetched at construction")

        def post_form(self, url: str, data: object, *, basic_auth: object = None) -> dict[str, object]:
            raise AssertionError("fetched at construction")

    config = OidcClientConfig(
        issuer="https://idp.example", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI
    )
    OidcRelyingParty(config, NoNetwork(), identity_store, clock)  # type: ignore[arg-type]
    assert CLIENT_SECRET not in repr(config)
