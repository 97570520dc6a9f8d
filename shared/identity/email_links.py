"""One-time e-mail sign-in links for students: HMAC-signed, expiring, single use, bound to the
account and to its current e-mail address. Only the link's sha256 is ever stored (once used).

A link never signs in staff (an account holding any role but student, or a password or TOTP
credential): they sign in with password + code or SSO, so a leaked or forged link key cannot
reach them. Using a link kills every older unused link of the account (each link carries its
issue stamp; the store keeps the newest stamp used per account)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.clock import Clock
from shared.identity.crypto import token_hash
from shared.identity.errors import AccountDisabled, LinkAlreadyUsed, LinkExpired, LinkInvalid, LinkSuperseded
from shared.identity.models import Account, Role
from shared.identity.store import IdentityStore

_VERSION = "v1"
_CANONICAL = re.compile(r"v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")
USED_KIND = "email-link"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _stamp(moment: datetime) -> int:
    """Microseconds since the epoch: the issue stamp links are ordered by."""
    return int(moment.timestamp() * 1_000_000)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class IssuedLink:
    """The token goes into the e-mailed URL and nowhere else (not in logs, not in a Celery message)."""

    account: Account
    token: str = field(repr=False)
    expires_at: datetime


class EmailLinkService:
    """Issue and redeem links. `key` is 32+ random bytes (derive_key(secret, "email-link"))."""

    def __init__(
        self, store: IdentityStore, key: bytes, clock: Clock, *, ttl: timedelta = timedelta(minutes=15)
    ) -> None:
        if len(key) < 32:
            raise ValueError("the link key needs at least 32 bytes")
        self._store = store
        self._key = key
        self._clock = clock
        self._ttl = ttl

    def _mac(self, payload: str, email: str | None) -> bytes:
        # The e-mail is signed but not carried: a link stops working if the address changes.
        message = f"{_VERSION}.{payload}.{email or ''}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def is_staff(self, account: Account) -> bool:
        """True if the account holds a role other than student, or a password or TOTP credential:
        such an account signs in with password + code (or SSO), never by link."""
        if any(g.role is not Role.STUDENT for g in self._store.grants_of(account.id)):
            return True
        return self._store.password_hash(account.id) is not None or self._store.totp_state(account.id) is not None

    def issue(self, account: Account) -> IssuedLink:
        return self.sign(account, account.email)

    def sign(self, account: Account, binding: str | None) -> IssuedLink:
        """A link for `account` whose MAC also covers `binding` (not carried in the link): the
        link stops working once the binding changes. E-mail links bind the address; staff set-up
        links (setup_links.py, another key) the address and the credentials they replace."""
        now = self._clock.now()
        expires_at = now + self._ttl
        body = {
            "a": account.id,
            "x": int(expires_at.timestamp()),
            "n": _b64(secrets.token_bytes(16)),
            "i": _stamp(now),
        }
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        token = f"{_VERSION}.{payload}.{_b64(self._mac(payload, binding))}"
        return IssuedLink(account, token, expires_at)

    def open(self, token: str, binding_of: Callable[[Account], str | None]) -> tuple[Account, datetime, int]:
        """(account, expires_at, issue stamp) of a well-formed, authentic, unexpired link, checking
        nothing else (not whether it was used); LinkInvalid or LinkExpired otherwise."""
        if len(token) > 1000 or not _CANONICAL.fullmatch(token):
            raise LinkInvalid("malformed link")
        _, payload, mac = token.split(".")
        try:
            body = json.loads(_unb64(payload))
            account_id, expires = str(body["a"]), int(body["x"])
            # Links mailed before the stamp existed: issued one lifetime before their expiry.
            issued = int(body.get("i", (expires - int(self._ttl.total_seconds())) * 1_000_000))
        except (ValueError, KeyError, TypeError, OverflowError, binascii.Error) as exc:
            raise LinkInvalid("malformed link") from exc
        account = self._store.get_account(account_id)
        # Compare the encoded text, not decoded bytes: base64 decoding forgives stray characters
        # and spare low bits, and each such variant would hash differently in the used-token table.
        if account is None or not hmac.compare_digest(_b64(self._mac(payload, binding_of(account))), mac):
            raise LinkInvalid("link not valid")
        try:
            expires_at = datetime.fromtimestamp(expires, UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise LinkInvalid("malformed link") from exc
        if self._clock.now() >= expires_at:
            raise LinkExpired("link expired")
        return account, expires_at, issued

    def request_link(self, email: str) -> IssuedLink | None:
        """A link for the student account with this e-mail, or None (unknown, disabled, not a
        student, staff). The caller answers both cases alike, so nobody learns who has an account."""
        account = self._store.find_account_by_email(email)
        if account is None or account.disabled or self.is_staff(account):
            return None
        is_student = account.student_id is not None or any(
            g.role is Role.STUDENT for g in self._store.grants_of(account.id)
        )
        return self.issue(account) if is_student else None

    def redeem(self, token: str) -> Account:
        """The account the link signs in, marking the link used and every older link of the
        account dead; LinkInvalid (also for staff accounts), LinkExpired, LinkAlreadyUsed,
        LinkSuperseded or AccountDisabled otherwise (all SignInFailed)."""
        account, expires_at, issued = self.open(token, lambda found: found.email)
        now = self._clock.now()
        if self.is_staff(account):
            raise LinkInvalid("staff accounts do not sign in by link")
        if not self._store.mark_used(token_hash(token), USED_KIND, expires_at, now):
            raise LinkAlreadyUsed("link already used")
        if not self._store.advance_link_floor(account.id, issued):
            raise LinkSuperseded("a newer link of this account was used")
        if account.disabled:
            raise AccountDisabled("account disabled")
        return account
