"""Typed errors of the identity core. Every sign-in failure is a SignInFailed, so an app can
answer them all alike (no account enumeration) while tests and logs can still tell them apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import CimError, RuleViolated, ValidationFailed

if TYPE_CHECKING:
    from shared.identity.models import Account


class IdentityError(CimError):
    """Base of the identity errors."""

    status = 401
    code = "unauthenticated"


class SignInFailed(IdentityError):
    """A sign-in attempt was refused. Show the user one message whatever the subclass."""

    code = "sign_in_failed"

    def __init__(self, message: str = "sign-in failed") -> None:
        super().__init__(message)


class AccountDisabled(SignInFailed):
    """The account exists but is disabled."""


class TotpCodeReplayed(SignInFailed):
    """A TOTP code (or an earlier one) was already used in its time step."""


class SignInThrottled(SignInFailed):
    """Too many failed staff sign-ins for this address: refused unchecked for `retry_after`
    seconds. `notify` is the account to tell by e-mail when this refusal started the lock."""

    status = 429
    code = "sign_in_throttled"

    def __init__(self, retry_after: int, notify: Account | None = None) -> None:
        super().__init__("too many failed sign-ins for this account")
        self.retry_after = retry_after
        self.notify = notify


class LinkInvalid(SignInFailed):
    """An e-mail sign-in link is malformed, forged or bound to no usable account."""


class LinkExpired(LinkInvalid):
    """An e-mail sign-in link is past its expiry."""


class LinkAlreadyUsed(LinkInvalid):
    """An e-mail sign-in link was already redeemed once."""


class LinkSuperseded(LinkInvalid):
    """An e-mail sign-in link is older than (or as old as) a link of the same account already used."""


class OidcError(SignInFailed):
    """An OpenID Connect sign-in was refused."""


class OidcStateMismatch(OidcError):
    """The callback's state is missing or differs from the one the request carried."""


class OidcProviderError(OidcError):
    """The provider answered with an error, or not as OpenID Connect requires."""


class OidcDiscoveryError(OidcProviderError):
    """The discovery document or the JWKS could not be read or is inconsistent."""


class OidcSignatureInvalid(OidcError):
    """The ID token's signature does not verify against the provider's keys (or is not RS256)."""


class OidcIssuerMismatch(OidcError):
    """The ID token's `iss` is not the configured issuer."""


class OidcAudienceMismatch(OidcError):
    """The ID token was not issued to this client (`aud` / `azp`)."""


class OidcTokenExpired(OidcError):
    """The ID token is expired (or issued in the future)."""


class OidcNonceMismatch(OidcError):
    """The ID token's nonce is missing or differs from the one the request carried."""


class OidcNonceReplayed(OidcError):
    """The ID token's nonce was already accepted once."""


class OidcClaimInvalid(OidcError):
    """Another ID-token claim is missing or malformed."""


class ApiTokenInvalid(IdentityError):
    """An API token is unknown, malformed or revoked."""

    code = "invalid_token"


class ScopeMissing(IdentityError):
    """A valid API token lacks the scope the operation needs."""

    status = 403
    code = "insufficient_scope"


class WeakPassword(ValidationFailed):
    """A new password breaks the password policy."""


class AlreadyBootstrapped(RuleViolated):
    """The first administrator exists already; the bootstrap command refuses to run twice."""


class IdentityConflict(RuleViolated):
    """An e-mail, student id or external identity already belongs to another account."""
