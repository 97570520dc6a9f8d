"""Hostile input to the identity core's parsers: only the declared refusals, never a crash."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import RSAKey

from shared.clock import FixedClock
from shared.identity.accounts import AccountService
from shared.identity.api_tokens import ApiTokenService
from shared.identity.crypto import derive_key
from shared.identity.email_links import EmailLinkService
from shared.identity.errors import ApiTokenInvalid, LinkInvalid, OidcError
from shared.identity.oidc import OidcClientConfig, OidcRelyingParty
from shared.identity.sessions import InMemorySessionStore
from shared.identity.store import InMemoryIdentityStore

ISSUER = "https://idp.example"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
tokenish = st.one_of(
    st.text(max_size=300),
    st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=", max_size=80),
             min_size=1, max_size=5).map(".".join),
)


class StaticProvider:
    """An HttpClient that knows one provider's discovery and keys; no sockets."""

    def get_json(self, url: str) -> dict[str, Any]:
        if url.endswith("/.well-known/openid-configuration"):
            return {
                "issuer": ISSUER,
                "authorization_endpoint": f"{ISSUER}/authorize",
                "token_endpoint": f"{ISSUER}/token",
                "jwks_uri": f"{ISSUER}/jwks",
            }
        return {"keys": [KEY.as_dict(private=False)]}

    def post_form(
        self, url: str, data: Mapping[str, str], *, basic_auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        raise AssertionError("not used")


@pytest.fixture
def rp(clock: FixedClock) -> OidcRelyingParty:
    config = OidcClientConfig(issuer=ISSUER, client_id="cim", client_secret="s" * 32, redirect_uri="https://cim/cb")
    return OidcRelyingParty(config, StaticProvider(), InMemoryIdentityStore(), clock)


@FUZZ
@given(token=tokenish)
def test_any_link_text_is_refused_cleanly(token: str, clock: FixedClock) -> None:
    links = EmailLinkService(InMemoryIdentityStore(), derive_key("k" * 40, "email-link"), clock)
    with pytest.raises(LinkInvalid):
        links.redeem(token)
    with pytest.raises(LinkInvalid):
        links.redeem("v1." + token)


@FUZZ
@given(token=tokenish)
def test_any_api_token_text_is_refused_cleanly(token: str, clock: FixedClock) -> None:
    tokens = ApiTokenService(InMemoryIdentityStore(), clock)
    for candidate in (token, "cim_" + token):
        with pytest.raises(ApiTokenInvalid):
            tokens.authenticate(candidate, "intake:write")


@FUZZ
@given(session_id=st.text(max_size=200))
def test_any_session_cookie_is_just_no_session(session_id: str, clock: FixedClock) -> None:
    sessions = InMemorySessionStore(clock)
    sessions.create("acc-1")
    assert sessions.get(session_id) is None
    assert sessions.rotate(session_id) is None
    sessions.revoke(session_id)


@FUZZ
@given(token=tokenish)
def test_any_id_token_text_is_refused_cleanly(token: str, rp: OidcRelyingParty) -> None:
    with pytest.raises(OidcError):
        rp.validate_id_token(token, nonce="n")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    overrides=st.dictionaries(
        st.sampled_from(["iss", "aud", "azp", "exp", "iat", "nbf", "nonce", "sub", "auth_time", "amr", "at_hash"]),
        json_values,
        max_size=4,
    )
)
def test_signed_tokens_with_odd_claims_are_refused_or_accepted_never_crash(
    overrides: dict[str, Any], rp: OidcRelyingParty, clock: FixedClock
) -> None:
    now = int(clock.now().timestamp())
    nonce = uuid.uuid4().hex
    claims = {"iss": ISSUER, "aud": "cim", "sub": "s-1", "iat": now, "exp": now + 300, "nonce": nonce, **overrides}
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)
    try:
        signed_in = rp.validate_id_token(token, nonce=nonce)
    except OidcError:
        return
    # accepted: then the rules that matter held
    assert claims["iss"] == ISSUER
    assert claims["nonce"] == nonce
    assert claims["aud"] == "cim" or (isinstance(claims["aud"], list) and "cim" in claims["aud"])
    assert isinstance(claims["exp"], int | float)
    assert now < claims["exp"] + 60 <= now + 86400 + 60
    assert signed_in.identity.subject == claims["sub"]


@pytest.mark.parametrize("field", ["exp", "iat"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e308, -1e308, True, "1", None, [1]])
def test_absurd_times_are_refused(field: str, value: object, rp: OidcRelyingParty, clock: FixedClock) -> None:
    now = int(clock.now().timestamp())
    nonce = uuid.uuid4().hex
    claims = {"iss": ISSUER, "aud": "cim", "sub": "s-1", "iat": now, "exp": now + 300, "nonce": nonce, field: value}
    if value is None:
        del claims[field]
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)
    if field == "iat" and value in (float("-inf"), -1e308):
        # "issued long ago, still unexpired" may pass or not; it must not crash
        with contextlib.suppress(OidcError):
            rp.validate_id_token(token, nonce=nonce)
        return
    with pytest.raises(OidcError):
        rp.validate_id_token(token, nonce=nonce)


@FUZZ
@given(body=json_values)
def test_any_link_payload_is_refused_cleanly(body: Any, clock: FixedClock) -> None:
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    links = EmailLinkService(InMemoryIdentityStore(), derive_key("k" * 40, "email-link"), clock)
    with pytest.raises(LinkInvalid):
        links.redeem(f"v1.{payload}.AAAA")


@pytest.mark.parametrize("expiry", ["Infinity", "-Infinity", "NaN", "1e999", "99999999999999999999999", '"x"'])
def test_absurd_link_expiries_are_refused(expiry: str, clock: FixedClock) -> None:
    payload = base64.urlsafe_b64encode(f'{{"a":"x","x":{expiry},"n":"y"}}'.encode()).rstrip(b"=").decode()
    links = EmailLinkService(InMemoryIdentityStore(), derive_key("k" * 40, "email-link"), clock)
    with pytest.raises(LinkInvalid):
        links.redeem(f"v1.{payload}.AAAA")


def test_link_text_for_a_real_account_but_bad_mac_is_refused(clock: FixedClock) -> None:
    store = InMemoryIdentityStore()
    account = AccountService(store, clock).create_account("Ada", "ada@lu.se", student_id=str(uuid.uuid4()))
    links = EmailLinkService(store, derive_key("k" * 40, "email-link"), clock, ttl=timedelta(minutes=15))
    token = links.issue(account).token
    with pytest.raises(LinkInvalid):
        links.redeem(token[: token.rindex(".") + 1] + "A" * 43)
