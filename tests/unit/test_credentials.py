"""The diploma as an Open Badges 3.0 credential (assessment_service/credentials.py): valid against
1EdTech's published schema, signed so that any eddsa-jcs-2022 verifier agrees (the W3C test
vector), and refused when tampered with, signed by a key the verifier does not hold, or revoked;
the key store and its CLI (credential_keys.py, `credential-keys create|rotate|list`)."""

from __future__ import annotations

import copy
import json
import stat
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from assessment_service import credentials as cr
from assessment_service.cli import credential_keys_cli
from assessment_service.credential_keys import KeyStore, KeyStoreError
from assessment_service.diploma_document import sample_document

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ob3"
ROOT = Path(__file__).resolve().parents[2]
BASE = "https://cim.example.org"
NOW = datetime(2027, 6, 14, 8, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def schema_validator() -> Any:
    schema = json.loads((FIXTURES / "ob_v3p0_achievementcredential_schema.json").read_text(encoding="utf-8"))
    return jsonschema_rs.Draft201909Validator(schema, validate_formats=True)


@pytest.fixture
def key() -> cr.SigningKey:
    return cr.SigningKey("SOCSW", "key-1", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def _credential(index: int = 25) -> dict[str, Any]:
    doc = sample_document()
    return cr.build_credential(doc, issuer=cr.issuer_for(doc, BASE), status_index=index,
                               status_list_url=cr.status_list_url(BASE, "SOCSW"), base_url=BASE)


def _keys(*keys: cr.SigningKey) -> dict[str, Any]:
    issuer = cr.issuer_id(BASE, "SOCSW")
    return {cr.verification_method_id(issuer, k.kid): k.public_key() for k in keys}


# --- the credential ------------------------------------------------------------------------------


def test_built_and_signed_credential_is_valid_against_the_ob3_schema(schema_validator: Any, key: cr.SigningKey) -> None:
    unsigned = _credential()
    signed = cr.sign(unsigned, key, created=NOW)
    for document in (unsigned, signed):
        errors = [str(e) for e in schema_validator.iter_errors(document)]
        assert errors == []
    # The formal schema's stricter rules, which the JSON-LD adaptation served at the URL relaxes.
    assert signed["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert signed["@context"][1].startswith("https://purl.imsglobal.org/spec/ob/v3p0/context-3.")
    assert {"VerifiableCredential", "AchievementCredential"} <= set(signed["type"])
    assert "AchievementSubject" in signed["credentialSubject"]["type"]


def test_schema_check_is_not_vacuous(schema_validator: Any) -> None:
    broken = _credential()
    del broken["validFrom"]
    broken["credentialSubject"]["achievement"].pop("criteria")
    assert len(list(schema_validator.iter_errors(broken))) >= 2


def test_credential_says_who_what_when_and_by_whom_in_english_and_swedish() -> None:
    doc = sample_document()
    credential = _credential()
    assert credential["id"] == doc.verify_url
    assert credential["validFrom"] == "2027-06-14T00:00:00+02:00"  # midnight in Lund, summer time
    assert credential["issuer"] == {
        "id": "https://cim.example.org/credentials/issuers/SOCSW", "type": ["Profile"],
        "name": "School of Social Work",
        "description": "School of Social Work, Faculty of Social Sciences, Lund University / "
                       "Socialhögskolan, Samhällsvetenskapliga fakulteten, Lunds universitet"}
    subject = credential["credentialSubject"]
    assert subject["identifier"] == [{"type": "IdentityObject", "identityType": "name", "hashed": False,
                                      "identityHash": "Ingrid Exempelsson"}]
    achievement = subject["achievement"]
    assert achievement["name"] == "Certificate of International Merits"
    assert "Socialhögskolan" in achievement["criteria"]["narrative"]
    assert "School of Social Work" in achievement["criteria"]["narrative"]
    assert "Lunds universitet" in achievement["description"]
    assert [e["name"] for e in credential["evidence"]] == [
        "Exchange term at a partner university", "Summer school on migration and welfare",
        "Buddy for incoming exchange students", "Webinar series on social work in Europe",
        "Presentation: International Café / Presentation: Internationellt café"]
    assert credential["credentialStatus"] == {
        "id": "https://cim.example.org/credentials/status/SOCSW#25", "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation", "statusListIndex": "25",
        "statusListCredential": "https://cim.example.org/credentials/status/SOCSW"}


def test_winter_issue_date_has_the_winter_offset() -> None:
    doc = replace(sample_document(), issued_on=date(2027, 1, 15))
    credential = cr.build_credential(doc, issuer=cr.issuer_for(doc, BASE), status_index=0,
                                     status_list_url="https://x.example/s", base_url=BASE)
    assert credential["validFrom"] == "2027-01-15T00:00:00+01:00"


def test_same_input_gives_byte_identical_signed_credential(key: cr.SigningKey) -> None:
    first = cr.canonical_json(cr.sign(_credential(), key, created=NOW))
    second = cr.canonical_json(cr.sign(_credential(), key, created=NOW))
    assert first == second


@pytest.mark.parametrize("index", [-1, cr.STATUS_LIST_BITS, True])
def test_status_index_outside_the_list_is_refused(index: int) -> None:
    with pytest.raises(ValueError, match="status index"):
        _credential(index)


# --- signing and verifying -----------------------------------------------------------------------


def test_signed_credential_verifies(key: cr.SigningKey) -> None:
    signed = cr.sign(_credential(), key, created=NOW)
    assert signed["proof"]["verificationMethod"] == "https://cim.example.org/credentials/issuers/SOCSW#key-1"
    assert signed["proof"]["created"] == "2027-06-14T08:30:00Z"
    result = cr.verify(signed, _keys(key))
    assert result.valid, result.reason


def test_credential_survives_a_json_round_trip(key: cr.SigningKey) -> None:
    """What the holder downloads, pretty-printed and parsed again, still verifies."""
    text = json.dumps(cr.sign(_credential(), key), indent=4, ensure_ascii=True)
    assert cr.verify(json.loads(text), _keys(key)).valid


@pytest.mark.parametrize("change", [
    lambda c: c["credentialSubject"]["identifier"][0].update(identityHash="Mallory Exempel"),
    lambda c: c.update(validFrom="2020-01-01T00:00:00+01:00"),
    lambda c: c["evidence"].pop(),
    lambda c: c["credentialStatus"].update(statusListIndex="26"),
    lambda c: c["proof"].update(created="2030-01-01T00:00:00Z"),
    lambda c: c["@context"].append("https://example.org/extra"),
    lambda c: c["proof"]["@context"].pop(),
])
def test_tampered_credential_fails(key: cr.SigningKey, change: Any) -> None:
    signed = cr.sign(_credential(), key, created=NOW)
    tampered = copy.deepcopy(signed)
    change(tampered)
    assert cr.verify(tampered, _keys(key)).status == cr.TAMPERED


def test_a_flipped_signature_fails(key: cr.SigningKey) -> None:
    signed = cr.sign(_credential(), key)
    other = cr.sign({**_credential(), "name": "Something else"}, key)
    signed["proof"]["proofValue"] = other["proof"]["proofValue"]
    assert cr.verify(signed, _keys(key)).status == cr.TAMPERED


def test_wrong_key_fails(key: cr.SigningKey) -> None:
    signed = cr.sign(_credential(), key)
    impostor = cr.SigningKey("SOCSW", "key-1", Ed25519PrivateKey.generate())
    assert cr.verify(signed, _keys(impostor)).status == cr.TAMPERED  # same id, other key
    assert cr.verify(signed, {}).status == cr.UNKNOWN_KEY
    forged = cr.sign(_credential(), replace(impostor, kid="key-9"))
    assert cr.verify(forged, _keys(key)).status == cr.UNKNOWN_KEY


def test_another_departments_key_cannot_sign_for_this_issuer(key: cr.SigningKey) -> None:
    med = cr.SigningKey("MED", "key-1", Ed25519PrivateKey.generate())
    signed = cr.sign(_credential(), med)
    med_id = cr.verification_method_id(cr.issuer_id(BASE, "MED"), "key-1")
    signed["proof"]["verificationMethod"] = med_id
    result = cr.verify(signed, {med_id: med.public_key(), **_keys(key)})
    assert result.status == cr.UNKNOWN_KEY
    assert "not one of the issuer's" in result.reason


@pytest.mark.parametrize("document", [
    {}, {"proof": []}, {"issuer": "x", "proof": {"type": "Ed25519Signature2020"}},
    {"issuer": "x", "proof": {"type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022"}},
    {"issuer": {"id": "https://cim.example.org/credentials/issuers/SOCSW"}, "n": 1.5, "proof": {
        "type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022", "proofPurpose": "assertionMethod",
        "verificationMethod": "https://cim.example.org/credentials/issuers/SOCSW#key-1", "proofValue": "z0OIl"}},
])
def test_malformed_documents_are_reported_not_raised(key: cr.SigningKey, document: dict[str, Any]) -> None:
    assert cr.verify(document, _keys(key)).status == cr.MALFORMED


def test_signing_refuses_a_credential_that_has_a_proof(key: cr.SigningKey) -> None:
    with pytest.raises(ValueError, match="already has a proof"):
        cr.sign(cr.sign(_credential(), key), key)


# --- interoperability: the W3C eddsa-jcs-2022 test vector and RFC 8785 ---------------------------


def test_w3c_test_vector_is_reproduced_and_verifies() -> None:
    vector = json.loads((FIXTURES / "eddsa-jcs-2022-signed.json").read_text(encoding="utf-8"))
    private = cr.private_key_from_multibase("z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq")
    public = cr.public_key_from_multibase("z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2")
    assert cr.public_key_multibase(private.public_key()) == "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
    method = vector["proof"]["verificationMethod"]
    assert cr.verify(vector, {method: public}).valid
    unsigned = {k: v for k, v in vector.items() if k != "proof"}
    signing_key = cr.SigningKey("X", method.split("#")[1], private)
    resigned = cr.sign(unsigned, signing_key, created=datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC))
    assert resigned["proof"]["proofValue"] == vector["proof"]["proofValue"]


def test_canonical_json_sorts_keys_by_utf16_code_units_as_rfc8785_does() -> None:
    # RFC 8785, 3.2.3: the sorting example (an emoji sorts before U+FB33 in UTF-16).
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    text = cr.canonical_json({k: 0 for k in keys}).decode("utf-8")
    expected = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert text == "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":0" for k in expected) + "}"
    assert cr.canonical_json({"b": [True, None, "\u2028\n\u0001"], "a": -7}) == (
        '{"a":-7,"b":[true,null,"\u2028\\n\\u0001"]}'.encode())


@pytest.mark.parametrize("value", [1.5, 2**53 + 1, "\ud800", {1: "x"}, {"d": date(2027, 1, 1)}])
def test_canonical_json_refuses_what_it_cannot_represent_exactly(value: Any) -> None:
    with pytest.raises(cr.CanonicalizationError):
        cr.canonical_json(value)


# --- revocation ----------------------------------------------------------------------------------


def test_status_list_marks_exactly_the_revoked_indices(key: cr.SigningKey) -> None:
    status = cr.build_status_list("SOCSW", [0, 25, cr.STATUS_LIST_BITS - 1], key=key,
                                  url=cr.status_list_url(BASE, "SOCSW"), issuer=cr.issuer_for(sample_document(), BASE),
                                  valid_from=NOW)
    assert status["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert status["credentialSubject"]["encodedList"].startswith("uH4sI")  # base64url of a GZIP header
    assert [i for i in (0, 1, 24, 25, 26, 131_070, 131_071) if cr.is_revoked(status, i)] == [0, 25, 131_071]
    assert cr.verify(status, _keys(key)).valid
    with pytest.raises(ValueError, match="outside"):
        cr.is_revoked(status, cr.STATUS_LIST_BITS)


def _status(key: cr.SigningKey, revoked: list[int]) -> dict[str, Any]:
    return cr.build_status_list("SOCSW", revoked, key=key, url=cr.status_list_url(BASE, "SOCSW"),
                                issuer=cr.issuer_for(sample_document(), BASE), valid_from=NOW)


def test_revoked_credential_fails_and_an_unrevoked_one_passes(key: cr.SigningKey) -> None:
    signed = cr.sign(_credential(25), key)
    assert cr.verify(signed, _keys(key), status_list=_status(key, [24, 26])).status == cr.VALID
    result = cr.verify(signed, _keys(key), status_list=_status(key, [25]))
    assert result.status == cr.REVOKED
    assert not result.valid


def test_forged_status_list_is_not_believed(key: cr.SigningKey) -> None:
    signed = cr.sign(_credential(25), key)
    forged = _status(key, [])
    forged["credentialSubject"]["encodedList"] = _status(key, [25])["credentialSubject"]["encodedList"][:-1] + "A"
    assert cr.verify(signed, _keys(key), status_list=forged).status == cr.STATUS_UNVERIFIED
    elsewhere = {**_status(key, [25]), "id": "https://other.example/status"}
    assert cr.verify(signed, _keys(key), status_list=elsewhere).status == cr.STATUS_UNVERIFIED


def test_status_list_bomb_is_refused() -> None:
    import base64
    import gzip

    huge = gzip.compress(bytes(cr.MAX_STATUS_LIST_BYTES + 1), mtime=0)
    encoded = "u" + base64.urlsafe_b64encode(huge).decode().rstrip("=")
    with pytest.raises(ValueError, match="larger"):
        cr.is_revoked({"credentialSubject": {"encodedList": encoded}}, 0)


def test_status_list_is_deterministic(key: cr.SigningKey) -> None:
    assert cr.canonical_json(_status(key, [3, 1])) == cr.canonical_json(_status(key, [1, 3]))


# --- keys: store, rotation, published document, CLI ----------------------------------------------


def test_rotated_keys_still_verify_old_credentials_through_the_published_document(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.create("SOCSW", now=NOW)
    old = cr.sign(_credential(1), store.signing_key("SOCSW"))
    rotated = store.rotate("SOCSW", now=NOW)
    assert rotated.kid == "key-2"
    new = cr.sign(_credential(2), store.signing_key("SOCSW"))
    assert new["proof"]["verificationMethod"].endswith("#key-2")

    document = json.loads(json.dumps(store.public_keys_document("SOCSW", base_url=BASE)))
    assert document["id"] == cr.issuer_id(BASE, "SOCSW") == old["issuer"]["id"]
    assert [m["id"].rsplit("#")[1] for m in document["verificationMethod"]] == ["key-1", "key-2"]
    assert all(m["publicKeyMultibase"].startswith("z6Mk") for m in document["verificationMethod"])
    published = cr.public_keys_from_document(document)
    assert cr.verify(old, published).valid
    assert cr.verify(new, published).valid
    assert cr.verify(old, store.public_keys_by_id(base_url=BASE)).valid
    jwks = cr.public_jwks(document["id"], store.public_keys("SOCSW"))
    assert [k["kid"] for k in jwks["keys"]] == [m["id"] for m in document["verificationMethod"]]
    assert all("d" not in k for k in jwks["keys"])


def test_rotation_destroys_the_old_private_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    first = store.create("SOCSW", now=NOW)
    store.rotate("SOCSW", now=NOW)
    record = json.loads((tmp_path / "SOCSW.json").read_text())
    assert [k["private_key_multibase"] is None for k in record["keys"]] == [True, False]
    assert record["keys"][0]["public_key_multibase"] == first.public_key_multibase
    assert [(k.kid, k.current, k.retired) for k in store.keys("SOCSW")] == [
        ("key-1", False, "2027-06-14T08:30:00Z"), ("key-2", True, None)]


def test_key_store_refuses_what_it_must(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    with pytest.raises(KeyStoreError, match="create them first"):
        store.rotate("SOCSW", now=NOW)
    store.create("SOCSW", now=NOW)
    with pytest.raises(KeyStoreError, match="use rotate"):
        store.create("SOCSW", now=NOW)
    with pytest.raises(KeyStoreError, match="not a department code"):
        store.create("../etc", now=NOW)
    (tmp_path / "SOCSW.json").chmod(0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        store.signing_key("SOCSW")


def _run(tmp_path: Path, *args: str) -> Any:
    env = {"CIM_CREDENTIAL_KEYS_DIR": str(tmp_path / "keys"), "CIM_DATA_DIR": str(tmp_path / "data"),
           "CIM_DEPARTMENTS_FILE": str(ROOT / "config" / "departments.toml")}
    return CliRunner().invoke(credential_keys_cli, list(args), env=env, catch_exceptions=False)


def test_cli_create_rotate_list_and_files_are_0600(tmp_path: Path) -> None:
    made = _run(tmp_path, "create", "SOCSW")
    assert made.exit_code == 0, made.output
    assert "SOCSW: made key-1 (z6Mk" in made.output
    assert _run(tmp_path, "create", "MED").exit_code == 0
    rotated = _run(tmp_path, "rotate", "SOCSW")
    assert rotated.exit_code == 0, rotated.output
    assert "key-2" in rotated.output
    listed = _run(tmp_path, "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert [line.split()[:2] for line in lines] == [["MED", "key-1"], ["SOCSW", "key-1"], ["SOCSW", "key-2"]]
    assert "retired" in lines[1]
    assert "current" in lines[2]
    assert "z3u2" not in listed.output  # never a private key
    keys_dir = tmp_path / "keys"
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert sorted(p.name for p in keys_dir.iterdir()) == ["MED.json", "SOCSW.json"]  # no leftovers
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys_dir.iterdir())


def test_cli_refuses_unknown_department_and_double_create(tmp_path: Path) -> None:
    unknown = _run(tmp_path, "create", "NOPE")
    assert unknown.exit_code == 2
    assert "unknown department NOPE" in unknown.output
    assert not (tmp_path / "keys").exists()
    assert _run(tmp_path, "create", "SOCSW").exit_code == 0
    again = _run(tmp_path, "create", "SOCSW")
    assert again.exit_code == 1
    assert "use rotate" in again.output
    assert _run(tmp_path, "rotate", "HT").exit_code == 1
    assert "No credential keys" in _run(tmp_path / "empty", "list").output


def test_credential_keys_dir_is_a_setting_and_ignored_by_git(tmp_path: Path) -> None:
    from shared.config import Settings

    settings = Settings.from_env({"CIM_CREDENTIAL_KEYS_DIR": "/srv/cim-keys", "CIM_DATA_DIR": str(tmp_path)})
    assert settings.credential_keys_dir == Path("/srv/cim-keys")
    assert "var/credential-keys/" in (ROOT / ".gitignore").read_text().splitlines()


def test_published_document_yields_only_the_issuers_assertion_keys(key: cr.SigningKey) -> None:
    issuer = cr.issuer_id(BASE, "SOCSW")
    document = cr.public_keys_document(issuer, {"key-1": key.public_key(), "key-2": key.public_key()})
    document["assertionMethod"].remove(f"{issuer}#key-2")
    document["verificationMethod"].append({**document["verificationMethod"][0], "id": f"{issuer}#key-3",
                                           "controller": "https://evil.example/issuer"})
    document["assertionMethod"].append(f"{issuer}#key-3")
    assert list(cr.public_keys_from_document(document)) == [f"{issuer}#key-1"]
