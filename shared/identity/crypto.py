"""Small crypto helpers: purpose-bound keys from one secret, token hashes, an encrypting box."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_LENGTH = 32


def derive_key(secret: str | bytes, purpose: str) -> bytes:
    """32 bytes for one purpose ("email-link", "totp-secrets", ...) from a longer-lived secret, so
    one leaked derived key opens nothing else."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < 16:
        raise ValueError("secret too short to derive keys from")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cim-identity-v1", info=purpose.encode()).derive(raw)


def token_hash(token: str) -> str:
    """sha256 hex of a high-entropy token: what is stored instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class SecretBox:
    """Authenticated encryption of small secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("SecretBox needs a 32-byte key (see derive_key)")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ValueError("sealed secret does not open with this key") from exc
