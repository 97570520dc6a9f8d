"""Builds the identity services from explicit parts; the apps call this from create_app()."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher

from shared.clock import Clock
from shared.identity.accounts import AccountService, StaffCredentials
from shared.identity.api_tokens import ApiTokenService
from shared.identity.crypto import SecretBox, derive_key
from shared.identity.email_links import EmailLinkService
from shared.identity.oidc import HttpClient, OidcClientConfig, OidcRelyingParty, UrllibHttpClient
from shared.identity.passwords import PasswordService
from shared.identity.sessions import InMemorySessionStore, RedisSessionStore, SessionPolicy, SessionStore
from shared.identity.setup_links import DEFAULT_TTL as SETUP_LINK_TTL
from shared.identity.setup_links import StaffSetupLinks
from shared.identity.sql_store import SqlIdentityStore
from shared.identity.store import IdentityStore, InMemoryIdentityStore
from shared.identity.throttle import SignInThrottle
from shared.identity.totp import TotpService


@dataclass(frozen=True)
class Identity:
    """Everything an app needs for sign-in and authorization."""

    store: IdentityStore
    accounts: AccountService
    staff: StaffCredentials
    links: EmailLinkService
    sessions: SessionStore
    api_tokens: ApiTokenService
    oidc: OidcRelyingParty | None
    setup_links: StaffSetupLinks


def build_identity(
    *,
    clock: Clock,
    identity_key: str,
    db_url: str | None = None,
    redis: Any | None = None,
    session_policy: SessionPolicy | None = None,
    link_ttl: timedelta = timedelta(minutes=15),
    setup_link_ttl: timedelta = SETUP_LINK_TTL,
    oidc: OidcClientConfig | None = None,
    oidc_http: HttpClient | None = None,
    password_hasher: PasswordHasher | None = None,
    totp_issuer: str = "CIM",
    throttle: SignInThrottle | None = None,
) -> Identity:
    """`db_url` None = in-memory store; `redis` None = in-memory sessions (tests, one process).
    Keys for links and TOTP secrets are derived from `identity_key` (CIM_IDENTITY_KEY), one per
    purpose. Staff sign-ins are limited per account (`throttle`; default: counters in `redis`,
    or in this process without it). Connects to nothing: the engine and the Redis client
    connect on first use."""
    store: IdentityStore
    if db_url is None:
        store = InMemoryIdentityStore()
    else:
        store = SqlIdentityStore(db_url)
    policy = session_policy or SessionPolicy()
    # The account check needs `accounts`, which needs `sessions`: close the loop through a name.
    holder: dict[str, AccountService] = {}

    def account_active(account_id: str) -> bool:
        return holder["accounts"].is_active(account_id)

    sessions: SessionStore
    if redis is None:
        sessions = InMemorySessionStore(clock, policy, account_active=account_active)
    else:
        sessions = RedisSessionStore(redis, clock, policy, account_active=account_active)
    accounts = AccountService(store, clock, sessions=sessions)
    holder["accounts"] = accounts
    totp = TotpService(SecretBox(derive_key(identity_key, "totp-secrets")), clock, issuer_name=totp_issuer)
    return Identity(
        store=store,
        accounts=accounts,
        staff=StaffCredentials(
            store, PasswordService(password_hasher), totp, clock, throttle=throttle or SignInThrottle(clock, redis)
        ),
        links=EmailLinkService(store, derive_key(identity_key, "email-link"), clock, ttl=link_ttl),
        sessions=sessions,
        api_tokens=ApiTokenService(store, clock),
        oidc=OidcRelyingParty(oidc, oidc_http or UrllibHttpClient(), store, clock) if oidc else None,
        setup_links=StaffSetupLinks(store, derive_key(identity_key, "staff-setup-link"), clock, ttl=setup_link_ttl),
    )
