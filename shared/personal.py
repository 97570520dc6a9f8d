"""Personal data sealed with a per-subject key, so erasure can destroy the key, not the log.

Fields whose marshmallow schema field carries metadata {"personal": True} are stored sealed in
event data. Reading opens them with the subject's key; once the key is destroyed (erasure), they
read as None and the facts around them stay readable.

Two token formats, both opened for good (the log is immutable):
- "pd2:<urlsafe base64 of nonce ‖ ciphertext ‖ tag>" — AES-256-GCM with a key derived from the
  subject's key (HKDF-SHA256), the field's name as associated data (a token moved to another
  field does not open). What `seal` writes since 2026-11-28: one C call per field to open,
  where Fernet cost ~30 µs of Python per field and was most of the intake feed's CPU.
- "pd1:<Fernet token>" — AES-128-CBC + HMAC-SHA256 (Fernet), what earlier events hold.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.events import JSON, EventRegistry

PREFIX = "pd2:"  # what `seal` writes
FERNET_PREFIX = "pd1:"  # the earlier format, still opened
_PREFIX_LENGTH = 4
_NONCE_BYTES = 12
_HKDF_INFO = b"cim personal data pd2 aes-256-gcm"


class KeyVault(Protocol):
    def key_for(self, subject_id: str) -> bytes:
        """The subject's key, created on first use. Raises KeyErased if it was destroyed."""
        ...

    def keys_for(self, subject_ids: Iterable[str]) -> dict[str, bytes]:
        """Existing keys of these subjects (erased or unknown ones are absent)."""
        ...

    def destroy(self, subject_id: str) -> bool:
        """Destroy the subject's key for good. True if there was one."""
        ...


class KeyErased(Exception):
    """The subject's key was destroyed: nothing personal can be written for them again."""


class InMemoryKeyVault:
    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._erased: set[str] = set()

    def key_for(self, subject_id: str) -> bytes:
        if subject_id in self._erased:
            raise KeyErased(subject_id)
        return self._keys.setdefault(subject_id, Fernet.generate_key())

    def keys_for(self, subject_ids: Iterable[str]) -> dict[str, bytes]:
        return {s: self._keys[s] for s in set(subject_ids) if s in self._keys}

    def destroy(self, subject_id: str) -> bool:
        self._erased.add(subject_id)
        return self._keys.pop(subject_id, None) is not None


def aead_seal(aead: AESGCM, prefix: str, plain: bytes, associated: bytes) -> str:
    """`prefix` + urlsafe base64 of (a fresh nonce ‖ ciphertext ‖ tag): the pd2 and kw2 tokens."""
    nonce = os.urandom(_NONCE_BYTES)
    return prefix + base64.urlsafe_b64encode(nonce + aead.encrypt(nonce, plain, associated)).decode("ascii")


def aead_open(aead: AESGCM, body: str, associated: bytes) -> bytes:
    """The plain bytes of a token made by `aead_seal` (`body`: the token without its prefix).
    Raises InvalidTag, ValueError or binascii.Error when it does not open."""
    blob = base64.urlsafe_b64decode(body)
    return aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated)


class SubjectCipher:
    """One subject's key: seals fields as pd2 tokens and opens pd2 and pd1 ones."""

    __slots__ = ("_aead", "_fernet", "_key")

    def __init__(self, key: bytes) -> None:
        """`key`: the subject's key as the vault holds it (a Fernet key: urlsafe base64 of 32 bytes)."""
        self._key = key
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            base64.urlsafe_b64decode(key)
        )
        self._aead = AESGCM(derived)
        self._fernet: Fernet | None = None

    def seal(self, name: str, value: Any) -> str:
        return aead_seal(self._aead, PREFIX, orjson.dumps(value), name.encode())

    def open(self, name: str, token: str) -> Any:
        """The value sealed in `token` (either format) for field `name`; None if it does not open."""
        try:
            if token.startswith(PREFIX):
                plain = aead_open(self._aead, token[_PREFIX_LENGTH:], name.encode())
            else:
                if self._fernet is None:
                    self._fernet = Fernet(self._key)
                plain = self._fernet.decrypt(token[_PREFIX_LENGTH:].encode("ascii"))
            return orjson.loads(plain)
        except (InvalidTag, InvalidToken, ValueError, binascii.Error, orjson.JSONDecodeError):
            return None


def is_sealed(value: Any) -> bool:
    """A sealed personal field, in either format."""
    return isinstance(value, str) and (value.startswith(PREFIX) or value.startswith(FERNET_PREFIX))


class PersonalDataCodec:
    """Seals and opens the personal fields of event data, by the registry's schemas."""

    def __init__(self, registry: EventRegistry, vault: KeyVault) -> None:
        self.registry = registry
        self.vault = vault
        self._fields: dict[str, tuple[str, ...]] = {}

    def personal_fields(self, type_name: str) -> tuple[str, ...]:
        if type_name not in self._fields:
            try:
                schema = self.registry.schema(type_name)
            except Exception:
                return ()
            self._fields[type_name] = tuple(
                name for name, field in schema.fields.items() if field.metadata.get("personal")
            )
        return self._fields[type_name]

    def seal(self, type_name: str, data: JSON, subject_id: str) -> JSON:
        names = [n for n in self.personal_fields(type_name) if data.get(n) is not None]
        if not names:
            return data
        cipher = SubjectCipher(self.vault.key_for(subject_id))
        sealed = dict(data)
        for name in names:
            sealed[name] = cipher.seal(name, data[name])
        return sealed

    def open(self, data: JSON, key: bytes | None) -> JSON:
        """Open every sealed top-level field with `key` (whatever schema version sealed it);
        without a key (erased) they become None."""
        return self.open_with(data, lambda: SubjectCipher(key) if key else None)

    def open_with(self, data: JSON, cipher: Callable[[], SubjectCipher | None]) -> JSON:
        """`open`, with the subject's cipher (None when erased) from `cipher()`, which is only
        called when `data` has a sealed field: a caller opening many events of one subject
        builds it once (see `CipherCache`). Data without sealed fields is returned as is."""
        opened: dict[str, Any] | None = None
        subject: SubjectCipher | None = None
        for name, value in data.items():
            if is_sealed(value):
                if opened is None:
                    opened = dict(data)
                    subject = cipher()
                opened[name] = None if subject is None else subject.open(name, value)
        return data if opened is None else opened


class CipherCache:
    """One SubjectCipher per subject for a batch of events (e.g. one feed page), built on first
    use from `keys` (subject -> key; an absent subject has no key: erased or unknown)."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = keys
        self._ciphers: dict[str, SubjectCipher | None] = {}

    def get(self, subject_id: str | None) -> SubjectCipher | None:
        subject = subject_id or ""
        try:
            return self._ciphers[subject]
        except KeyError:
            key = self._keys.get(subject)
            cipher = self._ciphers[subject] = SubjectCipher(key) if key else None
            return cipher
