"""Personal data sealed with a per-subject key, so erasure can destroy the key, not the log.

Fields whose marshmallow schema field carries metadata {"personal": True} are stored as
"pd1:<Fernet token>" in event data. Reading opens them with the subject's key; once the key is
destroyed (erasure), they read as None and the facts around them stay readable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken

from shared.events import JSON, EventRegistry

PREFIX = "pd1:"


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
        fernet = Fernet(self.vault.key_for(subject_id))
        sealed = dict(data)
        for name in names:
            blob = json.dumps(data[name], ensure_ascii=False, separators=(",", ":")).encode()
            sealed[name] = PREFIX + fernet.encrypt(blob).decode("ascii")
        return sealed

    def open(self, data: JSON, key: bytes | None) -> JSON:
        """Open every sealed top-level field with `key` (whatever schema version sealed it);
        without a key (erased) they become None."""
        return self.open_with(data, lambda: Fernet(key) if key else None)

    def open_with(self, data: JSON, fernet: Callable[[], Fernet | None]) -> JSON:
        """`open`, with the subject's Fernet (None when erased) from `fernet()`, which is only
        called when `data` has a sealed field: a caller opening many events of one subject
        builds it once (see `FernetCache`). Data without sealed fields is returned as is."""
        opened: dict[str, Any] | None = None
        cipher: Fernet | None = None
        for name, value in data.items():
            if isinstance(value, str) and value.startswith(PREFIX):
                if opened is None:
                    opened = dict(data)
                    cipher = fernet()
                opened[name] = _open_one(cipher, value[len(PREFIX):])
        return data if opened is None else opened


class FernetCache:
    """One Fernet per subject for a batch of events (e.g. one feed page), built on first use
    from `keys` (subject -> key; an absent subject has no key: erased or unknown)."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = keys
        self._fernets: dict[str, Fernet | None] = {}

    def get(self, subject_id: str | None) -> Fernet | None:
        subject = subject_id or ""
        try:
            return self._fernets[subject]
        except KeyError:
            key = self._keys.get(subject)
            fernet = self._fernets[subject] = Fernet(key) if key else None
            return fernet


def _open_one(fernet: Fernet | None, token: str) -> Any:
    if fernet is None:
        return None
    try:
        return json.loads(fernet.decrypt(token.encode("ascii")))
    except (InvalidToken, ValueError):
        return None
