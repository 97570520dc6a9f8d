"""Staff passwords: argon2id via argon2-cffi, rehashed when the hasher's parameters change."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.identity.errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 1024  # bounds the hashing work one request can ask for


def check_password_policy(password: str) -> None:
    """Raise WeakPassword (a ValidationFailed on field "password") unless the password is usable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    if password.strip() != password or not password.strip():
        problems.append("no leading or trailing spaces")
    if problems:
        raise WeakPassword("password too weak", {"password": problems})


class PasswordService:
    """Hash and verify. Tests pass a cheap PasswordHasher; production uses argon2-cffi's defaults."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when the account has no password, so unknown e-mails cost the same time.
        self._dummy_hash = self._hasher.hash("not-a-real-password-only-for-timing")

    def hash(self, password: str) -> str:
        check_password_policy(password)
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        """(matches, new_hash): new_hash is set when the hash should be replaced (parameters changed)."""
        if len(password) > MAX_LENGTH:
            return False, None
        try:
            self._hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False, None
        if stored_hash is None:
            return False, None
        if self._hasher.check_needs_rehash(stored_hash):
            return True, self._hasher.hash(password)
        return True, None
