"""The SQL key vault: subject keys wrapped with a key from CIM_SECRET_KEY (kw2: AES-256-GCM bound
to the subject id; keys wrapped before as Fernet tokens still unwrap), destroyed for good."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from shared.adapters.sql_vault import KeyWrapper, SqlKeyVault, _kek, subject_keys
from shared.personal import KeyErased

SECRET = "a-vault-secret-of-at-least-32-characters!!"


@pytest.fixture
def vault(tmp_path: Path):
    vault = SqlKeyVault(f"sqlite:///{tmp_path / 'intake.db'}", SECRET)
    vault.create_schema()
    yield vault
    vault.dispose()


def _stored(vault: SqlKeyVault, subject_id: str) -> str:
    with vault._engine.connect() as conn:
        return conn.execute(sa.select(subject_keys.c.wrapped_key).where(
            subject_keys.c.subject_id == subject_id)).scalar_one()


def test_a_new_key_is_stored_wrapped_as_kw2_and_comes_back_the_same(vault: SqlKeyVault) -> None:
    key = vault.key_for("s-1")
    stored = _stored(vault, "s-1")
    assert stored.startswith("kw2:")
    assert key.decode() not in stored
    assert vault.key_for("s-1") == key
    assert vault.keys_for(["s-1", "s-unknown"]) == {"s-1": key}


def test_a_key_wrapped_before_kw2_still_unwraps(vault: SqlKeyVault) -> None:
    old_key = Fernet.generate_key()
    with vault._engine.begin() as conn:
        conn.execute(subject_keys.insert().values(
            subject_id="s-old", wrapped_key=_kek(SECRET).encrypt(old_key).decode("ascii"),
            created_at=datetime(2026, 1, 1, tzinfo=UTC).isoformat()))
    assert vault.key_for("s-old") == old_key
    assert vault.keys_for(["s-old"]) == {"s-old": old_key}


def test_a_wrapped_key_does_not_open_for_another_subject_or_secret() -> None:
    wrapper = KeyWrapper(SECRET)
    wrapped = wrapper.wrap("s-1", Fernet.generate_key())
    with pytest.raises(RuntimeError, match="does not open"):
        wrapper.unwrap("s-2", wrapped)  # copied into another subject's row
    with pytest.raises(RuntimeError, match="does not open"):
        KeyWrapper("another-secret-of-at-least-32-characters!!").unwrap("s-1", wrapped)
    with pytest.raises(RuntimeError, match="does not open"):
        wrapper.unwrap("s-1", "kw2:broken")


def test_a_destroyed_key_is_gone_for_good(vault: SqlKeyVault) -> None:
    vault.key_for("s-1")
    assert vault.destroy("s-1") is True
    assert vault.keys_for(["s-1"]) == {}
    with pytest.raises(KeyErased):
        vault.key_for("s-1")
    assert vault.destroy("s-1") is False
