"""The departments' Ed25519 credential keys, kept in files under CIM_CREDENTIAL_KEYS_DIR.

One file per department, `<DEPT>.json` (mode 0600, in a 0700 directory), holds its keys in order:
`key-1`, `key-2`, … The last is current: it signs new credentials and status lists. `rotate` makes
a new current key and keeps the earlier keys' public halves (their private halves are destroyed),
so credentials signed before a rotation keep verifying against the published document
(`credentials.public_keys_document`). The directory is deliberately not the data folder: a backup
of the databases must never hold the keys that sign diplomas (docs/operations.md, "Backups").
Written by `flask --app assessment_service credential-keys create|rotate|list` (cli.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from assessment_service import credentials
from assessment_service.credentials import SigningKey

#: A department code as the catalogue spells it; also keeps a code from naming a path elsewhere.
DEPARTMENT_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")


class KeyStoreError(Exception):
    """A key operation that cannot be done (no keys yet, keys already made, an unsafe file)."""


@dataclass(frozen=True)
class KeyInfo:
    """One key of a department, as `list` shows it (never the private half)."""

    department: str
    kid: str
    created: str
    public_key_multibase: str
    current: bool
    retired: str | None = None


class KeyStore:
    """The key files of every department under one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # --- operations ---------------------------------------------------------------------------

    def create(self, dept: str, *, now: datetime) -> KeyInfo:
        """Make the department's first key. Refuses if it has keys already (rotate instead)."""
        path = self._path(dept)
        key = Ed25519PrivateKey.generate()
        record = {"department": dept, "keys": [self._entry("key-1", key, now)]}
        self._ensure_directory()
        aside = self._write_aside(path, record)
        try:
            os.link(aside, path)  # appears whole, and only if no one made it first
        except FileExistsError as err:
            raise KeyStoreError(f"{dept} has credential keys already; use rotate to replace the current one") from err
        finally:
            aside.unlink(missing_ok=True)
        return self.keys(dept)[-1]

    def rotate(self, dept: str, *, now: datetime) -> KeyInfo:
        """Make a new current key; the old ones keep only their public halves."""
        path = self._path(dept)
        record = self._load(dept)
        for entry in record["keys"]:
            if entry.get("private_key_multibase"):
                entry["private_key_multibase"] = None
                entry["retired"] = _stamp(now)
        kid = f"key-{len(record['keys']) + 1}"
        record["keys"].append(self._entry(kid, Ed25519PrivateKey.generate(), now))
        aside = self._write_aside(path, record)
        os.replace(aside, path)
        return self.keys(dept)[-1]

    # --- reading ------------------------------------------------------------------------------

    def departments(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json") if DEPARTMENT_CODE.match(p.stem))

    def keys(self, dept: str) -> list[KeyInfo]:
        entries = self._load(dept)["keys"]
        return [KeyInfo(dept, e["kid"], e["created"], e["public_key_multibase"], i == len(entries) - 1,
                        e.get("retired")) for i, e in enumerate(entries)]

    def signing_key(self, dept: str) -> SigningKey:
        """The department's current private key. Refuses a key file others can read."""
        path = self._path(dept)
        record = self._load(dept)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyStoreError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        current = record["keys"][-1]
        if not current.get("private_key_multibase"):
            raise KeyStoreError(f"{dept}'s current key has no private half; rotate to make a new one")
        private = credentials.private_key_from_multibase(current["private_key_multibase"])
        return SigningKey(dept, current["kid"], private)

    def public_keys(self, dept: str) -> dict[str, Ed25519PublicKey]:
        """kid → public key, every key the department ever had (oldest first)."""
        return {info.kid: credentials.public_key_from_multibase(info.public_key_multibase) for info in self.keys(dept)}

    def public_keys_document(self, dept: str, *, base_url: str) -> dict[str, Any]:
        """The document to serve at the department's issuer id (credentials.issuer_id)."""
        return credentials.public_keys_document(credentials.issuer_id(base_url, dept), self.public_keys(dept))

    def public_keys_by_id(self, *, base_url: str) -> dict[str, Ed25519PublicKey]:
        """Verification method id → key, for every department: what `credentials.verify` needs."""
        found = {}
        for dept in self.departments():
            issuer = credentials.issuer_id(base_url, dept)
            for kid, key in self.public_keys(dept).items():
                found[credentials.verification_method_id(issuer, kid)] = key
        return found

    # --- files --------------------------------------------------------------------------------

    def _path(self, dept: str) -> Path:
        if not DEPARTMENT_CODE.match(dept):
            raise KeyStoreError(f"{dept!r} is not a department code (capital letters and digits)")
        return self.directory / f"{dept}.json"

    def _load(self, dept: str) -> dict[str, Any]:
        path = self._path(dept)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise KeyStoreError(f"{dept} has no credential keys yet; create them first") from err
        except (OSError, ValueError) as err:
            raise KeyStoreError(f"{path} cannot be read: {err}") from err
        if not isinstance(record, dict) or not record.get("keys") or record.get("department") != dept:
            raise KeyStoreError(f"{path} is not {dept}'s key file")
        return record

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    @staticmethod
    def _entry(kid: str, key: Ed25519PrivateKey, now: datetime) -> dict[str, Any]:
        return {"kid": kid, "created": _stamp(now),
                "public_key_multibase": credentials.public_key_multibase(key.public_key()),
                "private_key_multibase": credentials.private_key_multibase(key)}

    @staticmethod
    def _write_aside(path: Path, record: dict[str, Any]) -> Path:
        """`record` in a new 0600 file beside `path`, flushed to disk, for a link or rename."""
        aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(record, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                aside.unlink()
            raise
        return aside


def _stamp(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
