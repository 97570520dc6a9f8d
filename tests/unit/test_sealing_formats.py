"""The two sealed-field formats: what `seal` writes now (pd2, AES-256-GCM) and what earlier events
hold (pd1, Fernet). Both open with the subject's key, neither opens without it."""

from __future__ import annotations

import pytest

from intake_service.events import REGISTRY
from shared.personal import (
    FERNET_PREFIX,
    PREFIX,
    CipherCache,
    InMemoryKeyVault,
    PersonalDataCodec,
    SubjectCipher,
    is_sealed,
)

# Written with cryptography's Fernet before pd2 existed (synthetic name); the log keeps such
# tokens for good, so they must keep opening.
PD1_KEY = b"VH5slYm0MikwhUFeXxiqQxNB3pdDs9Is4seafLbSQP8="
PD1_TOKEN = (
    "pd1:gAAAAABrC2ETByurz63lG-NLwXNAsTDLAPOGICcOY7I4X2CVaNOY6JTz5qfNM_bq_ieeHxEn0R5w1X1J2Vuf3dRtsBn2v"
    "hpsTv2L124E02ME16ztCPyn1es="
)


@pytest.fixture
def codec() -> PersonalDataCodec:
    return PersonalDataCodec(REGISTRY, InMemoryKeyVault())


def _registration(name: str = "Sealtest Person") -> dict[str, object]:
    return {"student_id": "s-1", "name": name, "email": "sealtest@example.org", "university_id": "st1234aa",
            "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028"}


def test_seal_writes_pd2_and_opens_with_the_subjects_key(codec: PersonalDataCodec) -> None:
    data = _registration()
    sealed = codec.seal("StudentRegistered", data, "s-1")
    assert sealed["name"].startswith(PREFIX)
    assert sealed["email"].startswith(PREFIX)
    assert "Sealtest" not in repr(sealed)
    assert sealed["department"] == "SOCSW"
    assert codec.open(sealed, codec.vault.key_for("s-1")) == data


def test_the_same_value_seals_differently_each_time(codec: PersonalDataCodec) -> None:
    first = codec.seal("StudentRegistered", _registration(), "s-1")["name"]
    second = codec.seal("StudentRegistered", _registration(), "s-1")["name"]
    assert first != second  # a fresh nonce per token: equal names are not linkable in the log


def test_a_stored_pd1_token_still_opens() -> None:
    cipher = SubjectCipher(PD1_KEY)
    assert PD1_TOKEN.startswith(FERNET_PREFIX)
    assert is_sealed(PD1_TOKEN)
    assert cipher.open("name", PD1_TOKEN) == "Fixturename Pdone"
    codec = PersonalDataCodec(REGISTRY, InMemoryKeyVault())
    assert codec.open({"name": PD1_TOKEN, "department": "SOCSW"}, PD1_KEY) == {
        "name": "Fixturename Pdone", "department": "SOCSW"}


def test_without_the_key_or_with_another_nothing_opens(codec: PersonalDataCodec) -> None:
    sealed = codec.seal("StudentRegistered", _registration(), "s-1")
    other = codec.vault.key_for("s-2")
    assert codec.open(sealed, other)["name"] is None
    assert codec.open(sealed, None)["name"] is None  # erased: the key is gone
    assert SubjectCipher(other).open("name", PD1_TOKEN) is None


def test_a_token_moved_to_another_field_does_not_open(codec: PersonalDataCodec) -> None:
    sealed = codec.seal("StudentRegistered", _registration(), "s-1")
    swapped = {**sealed, "email": sealed["name"]}
    opened = codec.open(swapped, codec.vault.key_for("s-1"))
    assert opened["name"] == "Sealtest Person"
    assert opened["email"] is None


@pytest.mark.parametrize("token", ["pd2:", "pd2:!!!not-base64", "pd2:" + "A" * 40, "pd1:garbage"])
def test_a_damaged_token_reads_as_none(codec: PersonalDataCodec, token: str) -> None:
    assert SubjectCipher(codec.vault.key_for("s-1")).open("name", token) is None


def test_the_cache_builds_one_cipher_per_subject_and_none_for_the_erased(codec: PersonalDataCodec) -> None:
    key = codec.vault.key_for("s-1")
    cache = CipherCache({"s-1": key})
    assert cache.get("s-1") is cache.get("s-1")
    assert cache.get("s-2") is None
    assert cache.get(None) is None
