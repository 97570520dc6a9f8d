"""Personal data sealed with a per-subject key, so erasure can destroy the key, not the log.

Fields whose marshmallow schema field carries metadata {"personal": True} are stored as
"pd1:<Fernet token>" in event data. Reading opens them with the subject's key; once the key is
destroyed (erasure), they read as None and the facts around them stay readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
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
        sealed = [n for n, v in data.items() if isinstance(v, str) and v.startswith(PREFIX)]
        if not sealed:
            return data
        opened = dict(data)
        fernet = Fernet(key) if key else None
        for name in sealed:
            opened[name] = _open_one(fernet, data[name][len(PREFIX):])
        return opened


def _open_one(fernet: Fernet | None, token: str) -> Any:
    if fernet is None:
        return None
    try:
        return json.loads(fernet.decrypt(token.encode("ascii")))
    except (InvalidToken, ValueError):
        return None
