"""Per-subject keys in a mutable SQL table beside the event store; erasure deletes the row.

Keys are wrapped with a key derived from CIM_SECRET_KEY, so a copy of the database alone opens
nothing. SQLite runs with secure_delete so a destroyed key's bytes are overwritten on disk.

Wrapping: "kw2:<urlsafe base64 of nonce ‖ ciphertext ‖ tag>", AES-256-GCM with the subject id
as associated data (a wrapped key copied to another subject's row does not open), what new keys
get since 2026-11-28; keys wrapped before are Fernet tokens (no prefix) and still unwrap. A feed
page opens one key per student on it: Fernet's ~30 µs of Python each was a fifth of the feed
server's time in a rebuild.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.adapters.sql import autocommit, is_sqlite, make_engine, write_lock_for
from shared.errors import StorageUnavailable
from shared.personal import KeyErased, aead_open, aead_seal

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _unavailable_on_database_error(message: str) -> Callable[[_Method], _Method]:
    """A database error in the method reaches the caller as StorageUnavailable(`message`)."""

    def decorate(method: _Method) -> _Method:
        @functools.wraps(method)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except sa.exc.DBAPIError as exc:
                raise StorageUnavailable(message) from exc

        return cast(_Method, guarded)

    return decorate

vault_metadata = sa.MetaData()

subject_keys = sa.Table(
    "subject_keys",
    vault_metadata,
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("wrapped_key", sa.Text, nullable=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("erased_at", sa.String(40), nullable=True),
)


_WRAP_PREFIX = "kw2:"


def _kek(secret: str) -> Fernet:
    """The key that wrapped subject keys before kw2 (Fernet); still unwraps them."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cim-vault-v1", info=b"kek").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


class KeyWrapper:
    """Wraps subject keys as kw2 tokens and unwraps kw2 and the earlier Fernet ones."""

    def __init__(self, secret: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cim-vault-v2", info=b"kek aes-256-gcm").derive(
            secret.encode()
        )
        self._aead = AESGCM(derived)
        self._legacy = _kek(secret)

    def wrap(self, subject_id: str, key: bytes) -> str:
        return aead_seal(self._aead, _WRAP_PREFIX, key, subject_id.encode())

    def unwrap(self, subject_id: str, wrapped: str) -> bytes:
        try:
            if wrapped.startswith(_WRAP_PREFIX):
                return aead_open(self._aead, wrapped[len(_WRAP_PREFIX):], subject_id.encode())
            return self._legacy.decrypt(wrapped.encode("ascii"))
        except (InvalidTag, InvalidToken, ValueError, binascii.Error):
            raise RuntimeError("a subject key does not open with this CIM_SECRET_KEY") from None


# Built once (each POST and each feed page looks keys up): a reused statement object memoises
# its construction and SQLAlchemy's cache key.
_KEY_QUERY = sa.select(subject_keys.c.wrapped_key, subject_keys.c.erased_at).where(
    subject_keys.c.subject_id == sa.bindparam("subject_id")
)
_KEYS_QUERY = sa.select(subject_keys.c.subject_id, subject_keys.c.wrapped_key).where(
    subject_keys.c.subject_id.in_(sa.bindparam("subject_ids", expanding=True)),
    subject_keys.c.wrapped_key.is_not(None),
)


class SqlKeyVault:
    def __init__(self, url: str, secret: str) -> None:
        self._sqlite = is_sqlite(url)
        self._engine = make_engine(url, immediate=True, pool_size=5)
        # SQLite: reads take no write lock (the writer engine begins IMMEDIATE). PostgreSQL:
        # reads share the pool in autocommit (no BEGIN and ROLLBACK round trips around them).
        self._reader = make_engine(url, pool_size=5) if self._sqlite else autocommit(self._engine)
        # The same lock as the event store's writers on this file (see write_lock_for).
        self._write_lock = write_lock_for(url)
        self._wrapper = KeyWrapper(secret)
        if self._sqlite:
            @sa.event.listens_for(self._engine, "connect")
            def _secure_delete(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
                dbapi_connection.execute("PRAGMA secure_delete=ON")

    def create_schema(self) -> None:
        with self._engine.begin() as conn:
            if not self._sqlite:
                # Several workers may start at once; DDL is transactional on PostgreSQL.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(1129925890)")
            vault_metadata.create_all(conn)

    @_unavailable_on_database_error("the key vault could not be written")
    def key_for(self, subject_id: str) -> bytes:
        # Almost always the key exists: read it without taking the write lock.
        with self._reader.connect() as conn:
            row = conn.execute(_KEY_QUERY, {"subject_id": subject_id}).first()
        if row is not None:
            return self._existing(subject_id, row)
        with self._write_lock, self._engine.begin() as conn:
            row = conn.execute(_KEY_QUERY, {"subject_id": subject_id}).first()
            if row is not None:  # made by a concurrent writer meanwhile
                return self._existing(subject_id, row)
            key = Fernet.generate_key()
            conn.execute(
                subject_keys.insert().values(
                    subject_id=subject_id,
                    wrapped_key=self._wrapper.wrap(subject_id, key),
                    created_at=datetime.now(UTC).isoformat(),
                )
            )
            return key

    def _existing(self, subject_id: str, row: Any) -> bytes:
        if row.erased_at is not None or row.wrapped_key is None:
            raise KeyErased(subject_id)
        return self._wrapper.unwrap(subject_id, row.wrapped_key)

    @_unavailable_on_database_error("the key vault could not be read")
    def keys_for(self, subject_ids: Iterable[str]) -> dict[str, bytes]:
        wanted = sorted(set(subject_ids))
        if not wanted:
            return {}
        out: dict[str, bytes] = {}
        with self._reader.connect() as conn:
            for start in range(0, len(wanted), 500):
                rows = conn.execute(_KEYS_QUERY, {"subject_ids": wanted[start : start + 500]})
                for subject_id, wrapped in rows:
                    out[subject_id] = self._wrapper.unwrap(subject_id, wrapped)
        return out

    @_unavailable_on_database_error("the key vault could not be written")
    def destroy(self, subject_id: str) -> bool:
        """Overwrite the key with NULL and keep a tombstone, so nothing can be sealed for the
        subject again with a fresh key by mistake. True if a key was destroyed."""
        now = datetime.now(UTC).isoformat()
        with self._write_lock, self._engine.begin() as conn:
            row = conn.execute(
                sa.select(subject_keys.c.wrapped_key).where(subject_keys.c.subject_id == subject_id)
            ).first()
            if row is None:
                conn.execute(
                    subject_keys.insert().values(
                        subject_id=subject_id, wrapped_key=None, created_at=now, erased_at=now
                    )
                )
            elif row.wrapped_key is not None:
                conn.execute(
                    sa.update(subject_keys)
                    .where(subject_keys.c.subject_id == subject_id)
                    .values(wrapped_key=None, erased_at=now)
                )
        if self._sqlite:
            # Move the change from the WAL into the main file and truncate the WAL, so no old
            # page holding the key stays in the log file (secure_delete zeroes the main file's).
            raw = self._engine.raw_connection()
            try:
                driver = raw.driver_connection
                assert driver is not None
                driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        return row is not None and row.wrapped_key is not None

    def dispose(self) -> None:
        self._engine.dispose()
        self._reader.dispose()
