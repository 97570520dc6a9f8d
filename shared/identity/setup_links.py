"""One-time set-up links for staff: how a member of staff whose account an administrator made
(or who lost their authenticator) chooses a password and enrols an authenticator.

The links are the e-mail links' tokens (email_links.EmailLinkService: HMAC-signed, expiring,
canonical spelling) under a key of their own (derive_key(secret, "staff-setup-link")), so a
sign-in link is never a set-up link nor the other way round. Their MAC covers the account's
e-mail address and a fingerprint of its current password and TOTP credentials: once a link has
set them up, that link and every other outstanding one of the account stop working. Each used
link is also recorded (sha256 only, kind "staff-setup-link"), so a link is refused as "already
used" even before its credentials change, and two simultaneous uses cannot both win.

A student account never gets one (students sign in by e-mail link or SSO); nor does a disabled
or erased account, or one without an e-mail address."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from shared.clock import Clock
from shared.errors import RuleViolated
from shared.identity.crypto import token_hash
from shared.identity.email_links import EmailLinkService, IssuedLink
from shared.identity.errors import AccountDisabled, LinkAlreadyUsed, LinkInvalid
from shared.identity.models import Account, Role
from shared.identity.store import IdentityStore

USED_KIND = "staff-setup-link"
DEFAULT_TTL = timedelta(hours=72)
REFUSALS = {
    "student": "a student account signs in by e-mail link or SSO, never with a password",
    "no-email": "the account has no e-mail address",
    "disabled": "the account is disabled",
}


class SetupLinkRefused(RuleViolated):
    """This account cannot get a set-up link (a student, disabled, erased, no e-mail address)."""


class StaffSetupLinks:
    """Issue, check and spend staff set-up links. `key`: 32+ bytes (derive_key(secret, "staff-setup-link"))."""

    def __init__(self, store: IdentityStore, key: bytes, clock: Clock, *, ttl: timedelta = DEFAULT_TTL) -> None:
        self._store = store
        self._clock = clock
        self._links = EmailLinkService(store, key, clock, ttl=ttl)
        self.ttl = ttl

    def refusal(self, account: Account) -> str | None:
        """Why `account` cannot get a set-up link ("student", "no-email", "disabled"), or None."""
        if account.student_id is not None or any(g.role is Role.STUDENT for g in self._store.grants_of(account.id)):
            return "student"
        if not account.email:  # erased accounts have none either
            return "no-email"
        if account.disabled:
            return "disabled"
        return None

    def _binding(self, account: Account) -> str:
        """The e-mail address and a fingerprint of the credentials the link replaces."""
        state = self._store.totp_state(account.id)
        held = f"{self._store.password_hash(account.id) or ''}|{state.secret_encrypted if state else ''}"
        return f"{account.email or ''}|{hashlib.sha256(held.encode()).hexdigest()}"

    def issue(self, account: Account) -> IssuedLink:
        """A new link (its token goes into the e-mailed URL only); SetupLinkRefused otherwise."""
        why = self.refusal(account)
        if why is not None:
            raise SetupLinkRefused(REFUSALS[why])
        return self._links.sign(account, self._binding(account))

    def check(self, token: str) -> Account:
        """The account a still-usable link sets up, spending nothing: LinkAlreadyUsed, LinkExpired,
        LinkInvalid (forged, malformed, replaced by a later set-up, a student), AccountDisabled."""
        if self._store.is_used(token_hash(token)):
            raise LinkAlreadyUsed("set-up link already used")
        account, _expires_at, _issued = self._links.open(token, self._binding)
        if self.refusal(account) is not None:
            if account.disabled:
                raise AccountDisabled("account disabled")
            raise LinkInvalid("this account cannot be set up by link")
        return account

    def spend(self, token: str) -> Account:
        """As check(), then records the link as used (atomically: of two simultaneous uses, one
        gets LinkAlreadyUsed). Call it just before storing the new credentials."""
        account = self.check(token)
        _account, expires_at, _issued = self._links.open(token, self._binding)
        if not self._store.mark_used(token_hash(token), USED_KIND, expires_at, self._clock.now()):
            raise LinkAlreadyUsed("set-up link already used")
        return account
