"""The diploma as an Open Badges 3.0 credential: build the `AchievementCredential`, sign and verify
it with the department's Ed25519 key, and publish revocations as a signed Bitstring Status List.

Pure: no I/O, no clock (times come in as arguments), no network; the keys come from
`assessment_service/credential_keys.py`. The proof is a W3C Data Integrity proof with the
`eddsa-jcs-2022` cryptosuite (Data Integrity EdDSA Cryptosuites v1.0, the suite family Open
Badges 3.0 names for linked-data proofs): the document is canonicalized with the JSON
Canonicalization Scheme (RFC 8785), which needs no JSON-LD processing and no remote contexts, so a
verifier needs only the issuer's public key. `tests/unit/test_credentials.py` reproduces the W3C
test vector of that suite byte for byte. Why this and not VC-JWT or eddsa-rdfc-2022:
docs/diplomas.md, "The credential".
"""

from __future__ import annotations

import base64
import binascii
import copy
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from assessment_service.diploma_document import SETTINGS, DiplomaDocument, Text

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CID_CONTEXT = "https://www.w3.org/ns/cid/v1"
OB_SCHEMA = "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
CRYPTOSUITE = "eddsa-jcs-2022"
ACHIEVEMENT_NAME = "Certificate of International Merits"
#: Bits in a status list: the W3C minimum (16 KiB), so one list hides which diploma is which.
STATUS_LIST_BITS = 131_072
#: The largest status list `is_revoked` inflates (a hostile list must not exhaust memory).
MAX_STATUS_LIST_BYTES = 16 * 1024 * 1024
LOCAL = ZoneInfo("Europe/Stockholm")

_ED25519_PUB = b"\xed\x01"  # multicodec ed25519-pub
_ED25519_PRIV = b"\x80\x26"  # multicodec ed25519-priv
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_SETTING_NAMES = {
    "abroad": Text("Abroad", "Utomlands"),
    "at_home": Text("Internationalisation at home", "Internationalisering på hemmaplan"),
    "digital": Text("Digital", "Digitalt"),
}

# The outcome of `verify`.
VALID = "valid"
TAMPERED = "tampered"  # the signature does not match the content
UNKNOWN_KEY = "unknown_key"  # signed by a key the verifier does not hold for this issuer
REVOKED = "revoked"
MALFORMED = "malformed"  # not a credential with an eddsa-jcs-2022 proof
STATUS_UNVERIFIED = "status_unverified"  # the status list given is not this issuer's, or forged


class CanonicalizationError(ValueError):
    """A value JCS cannot represent exactly (a float, a huge integer, a lone surrogate)."""


@dataclass(frozen=True)
class Issuer:
    """The issuing department's profile (an OB 3.0 `Profile`); `id` is where its public keys are
    published (`public_keys_document`)."""

    id: str
    name: Text
    url: str | None = None
    description: Text | None = None


@dataclass(frozen=True)
class SigningKey:
    """A department's current private key; `kid` names it within the issuer's document."""

    department: str
    kid: str
    private_key: Ed25519PrivateKey

    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class Result:
    """What `verify` found: `status` is one of VALID, TAMPERED, UNKNOWN_KEY, REVOKED, MALFORMED,
    STATUS_UNVERIFIED; `reason` says why in a sentence (English, for logs and the JSON answer)."""

    status: str
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.status == VALID


# --- identifiers -----------------------------------------------------------------------------------


def issuer_id(base_url: str, department_code: str) -> str:
    """The issuer's URL: its profile and public keys (`public_keys_document`) are served there."""
    return f"{base_url.rstrip('/')}/credentials/issuers/{department_code}"


def status_list_url(base_url: str, department_code: str) -> str:
    """Where the department's revocation list (`build_status_list`) is served."""
    return f"{base_url.rstrip('/')}/credentials/status/{department_code}"


def verification_method_id(issuer: str, kid: str) -> str:
    return f"{issuer}#{kid}"


def issuer_for(doc: DiplomaDocument, base_url: str) -> Issuer:
    """The department of `doc` as an issuer profile, named as on the diploma."""
    return Issuer(
        id=issuer_id(base_url, doc.department_code),
        name=doc.department,
        description=Text(f"{doc.department.en}, {doc.faculty.en}, {doc.university.en}",
                         f"{doc.department.sv}, {doc.faculty.sv}, {doc.university.sv}"),
    )


def local_midnight(day: date) -> str:
    """`day` as the date-time an OB 3.0 date field needs: 00:00 in Lund, with its UTC offset."""
    return datetime.combine(day, time(0), tzinfo=LOCAL).isoformat()


# --- the credential --------------------------------------------------------------------------------


def build_credential(doc: DiplomaDocument, *, issuer: Issuer, status_index: int, status_list_url: str,
                     base_url: str) -> dict[str, Any]:
    """The unsigned `AchievementCredential` of `doc`; the same input always gives the same dict.

    `status_index` is the diploma's bit in the department's status list at `status_list_url`
    (unique per list; the issuing workflow allocates it). The holder is named by an
    `IdentityObject` of type `name` (OB 3.0 has no e-mail or DID for them here). Names stay
    English strings (the formal OB 3.0 schema allows only strings), the descriptions and the
    criteria carry English and Swedish."""
    _check_index(status_index)
    base = base_url.rstrip("/")
    valid_from = local_midnight(doc.issued_on)
    achievement = {
        "id": f"{base}/credentials/achievements/{doc.department_code}",
        "type": ["Achievement"],
        "achievementType": "Certificate",
        "name": ACHIEVEMENT_NAME,
        "humanCode": "CIM",
        "description": (
            f"A diploma beside the degree from {doc.university.en} that makes visible the international "
            "experiences and activities the holder took part in during their studies. It carries no credits."
            f"\n\nEtt diplom vid sidan av examen från {doc.university.sv} som synliggör de internationella "
            "erfarenheter och aktiviteter som innehavaren deltagit i under sina studier. Det ger inga poäng."
        ),
        "criteria": {
            "narrative": (
                f"Awarded by {doc.department.en} under its rules {doc.rule_set} to a student who logged "
                "international activities, had a report reflecting on them approved by the department's "
                "assessors and presented their experiences to fellow students or another approved forum."
                f"\n\nUtfärdat av {doc.department.sv} enligt dess regler {doc.rule_set} till en student som "
                "har registrerat internationella aktiviteter, fått en rapport med reflektioner över dem "
                "godkänd av institutionens bedömare och presenterat sina erfarenheter för andra studenter "
                "eller i ett annat godkänt forum."
            ),
        },
        "inLanguage": "en",
        "version": doc.rule_set,
    }
    return {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": doc.verify_url,
        "type": ["VerifiableCredential", "AchievementCredential"],
        "name": ACHIEVEMENT_NAME,
        "description": (f"Diploma {doc.number}, {doc.department.en}, {doc.university.en}. "
                        f"Diplom {doc.number}, {doc.department.sv}, {doc.university.sv}."),
        "issuer": _profile(issuer),
        "validFrom": valid_from,
        "awardedDate": valid_from,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [{"type": "IdentityObject", "identityType": "name", "hashed": False,
                            "identityHash": doc.holder_name}],
            "achievement": achievement,
        },
        "evidence": _evidence(doc),
        "credentialStatus": {
            "id": f"{status_list_url}#{status_index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(status_index),
            "statusListCredential": status_list_url,
        },
        "credentialSchema": [{"id": OB_SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}],
    }


def _profile(issuer: Issuer) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": issuer.id, "type": ["Profile"], "name": issuer.name.en}
    if issuer.url:
        profile["url"] = issuer.url
    if issuer.description:
        profile["description"] = f"{issuer.description.en} / {issuer.description.sv}"
    return profile


def _evidence(doc: DiplomaDocument) -> list[dict[str, Any]]:
    """The merits and the presentation, in the diploma's order (setting, then date)."""
    items = []
    for setting in SETTINGS:
        where = _SETTING_NAMES[setting]
        for merit in doc.merits_in(setting):
            details = [f"{merit.kind.en} / {merit.kind.sv}", f"{where.en} / {where.sv}"]
            details += [part for part in (merit.country_code, merit.organiser) if part]
            details.append(f"{merit.start_date.isoformat()} – {merit.end_date.isoformat()}")
            items.append({"type": ["Evidence"], "name": merit.title, "genre": merit.kind.en,
                          "description": " · ".join(details)})
    if doc.presentation is not None:
        p = doc.presentation
        items.append({"type": ["Evidence"], "name": f"Presentation: {p.kind.en} / Presentation: {p.kind.sv}",
                      "genre": "Presentation", "description": f"{p.held_on.isoformat()} · {p.place}"})
    return items


# --- canonical JSON (RFC 8785) and multibase ------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) for the JSON a credential holds: objects with keys sorted by UTF-16 code
    units, no whitespace, strings escaped as ECMAScript does, integers within ±2**53. Floats are
    refused rather than risk a second formatting of the same number."""
    return _jcs(value).encode("utf-8")


def _jcs(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise CanonicalizationError(f"integer {value} is beyond what JSON numbers hold exactly")
        return str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise CanonicalizationError("a string holds a lone surrogate") from err
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise CanonicalizationError("object keys must be strings")
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(f"{_jcs(k)}:{_jcs(value[k])}" for k in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_jcs(item) for item in value) + "]"
    raise CanonicalizationError(f"{type(value).__name__} is not a JSON value JCS can sign here")


def base58btc(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = _B58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def from_base58btc(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _B58.find(char)
        if digit < 0:
            raise ValueError(f"{char!r} is not a base58btc digit")
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def public_key_multibase(key: Ed25519PublicKey) -> str:
    """The key as a Multikey `publicKeyMultibase` (`z6Mk…`)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + base58btc(_ED25519_PUB + raw)


def public_key_from_multibase(text: str) -> Ed25519PublicKey:
    raw = _multibase_body(text, _ED25519_PUB)
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_multibase(key: Ed25519PrivateKey) -> str:
    """The key as a Multikey `secretKeyMultibase` (`z3u2…`): how the key store keeps it."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return "z" + base58btc(_ED25519_PRIV + raw)


def private_key_from_multibase(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_multibase_body(text, _ED25519_PRIV))


def _multibase_body(text: str, prefix: bytes) -> bytes:
    if not text.startswith("z"):
        raise ValueError("not a base58btc multibase value")
    data = from_base58btc(text[1:])
    if not data.startswith(prefix) or len(data) != len(prefix) + 32:
        raise ValueError("not an Ed25519 Multikey")
    return data[len(prefix):]


# --- signing and verifying -------------------------------------------------------------------------


def _hash_data(document: Mapping[str, Any], proof_config: Mapping[str, Any]) -> bytes:
    """eddsa-jcs-2022's hashing: SHA-256 of the canonical proof options, then of the document."""
    return hashlib.sha256(canonical_json(proof_config)).digest() + hashlib.sha256(canonical_json(document)).digest()


def _issuer_of(document: Mapping[str, Any]) -> str:
    issuer = document.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    if not isinstance(issuer, str) or not issuer:
        raise ValueError("the document names no issuer")
    return issuer


def sign(credential: Mapping[str, Any], key: SigningKey, *, created: datetime | None = None) -> dict[str, Any]:
    """`credential` with a Data Integrity proof (eddsa-jcs-2022) by `key`, whose verification
    method is `<issuer id>#<kid>`. Ed25519 is deterministic: the same credential, key and
    `created` give the same bytes."""
    if "proof" in credential:
        raise ValueError("the credential already has a proof")
    document = json.loads(canonical_json(credential))  # a deep copy that JCS can represent
    proof: dict[str, Any] = {
        "type": "DataIntegrityProof",
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": verification_method_id(_issuer_of(document), key.kid),
        "proofPurpose": "assertionMethod",
    }
    if created is not None:
        if created.tzinfo is None:
            raise ValueError("created must be timezone-aware")
        proof["created"] = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if "@context" in document:
        proof["@context"] = copy.deepcopy(document["@context"])
    signature = key.private_key.sign(_hash_data(document, proof))
    return {**document, "proof": {**proof, "proofValue": "z" + base58btc(signature)}}


def verify(signed: Mapping[str, Any], public_keys_by_id: Mapping[str, Ed25519PublicKey], *,
           status_list: Mapping[str, Any] | None = None) -> Result:
    """Check the proof of `signed` against the keys the verifier trusts (verification method id →
    public key, e.g. from `public_keys_from_document`), that the key belongs to the credential's
    issuer and, given the issuer's signed `status_list`, that the credential is not revoked.
    Never raises on hostile input: a broken document is MALFORMED."""
    found = _check_proof(signed, public_keys_by_id)
    if not found.valid or status_list is None:
        return found
    return _check_status(signed, status_list, public_keys_by_id)


def _check_proof(signed: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> Result:
    if not isinstance(signed, Mapping):
        return Result(MALFORMED, "not a JSON object")
    proof = signed.get("proof")
    if not isinstance(proof, Mapping):
        return Result(MALFORMED, "no proof, or more than one")
    if proof.get("type") != "DataIntegrityProof" or proof.get("cryptosuite") != CRYPTOSUITE:
        return Result(MALFORMED, f"the proof is not a DataIntegrityProof with cryptosuite {CRYPTOSUITE}")
    if proof.get("proofPurpose") != "assertionMethod":
        return Result(MALFORMED, "the proof's purpose is not assertionMethod")
    method, value = proof.get("verificationMethod"), proof.get("proofValue")
    if not isinstance(method, str) or not isinstance(value, str) or not value.startswith("z"):
        return Result(MALFORMED, "the proof has no verification method or no base58btc proof value")
    try:
        issuer = _issuer_of(signed)
    except ValueError as err:
        return Result(MALFORMED, str(err))
    if method.split("#", 1)[0] != issuer:
        return Result(UNKNOWN_KEY, f"the signing key {method} is not one of the issuer's ({issuer})")
    key = keys.get(method)
    if key is None:
        return Result(UNKNOWN_KEY, f"no public key is known for {method}")
    document = {name: item for name, item in signed.items() if name != "proof"}
    options = {name: item for name, item in proof.items() if name != "proofValue"}
    if "@context" in options and options["@context"] != document.get("@context"):
        # eddsa-jcs-2022 lets a document's @context extend the proof's; an added context changes
        # what the terms mean without touching the signature, so this verifier wants them equal.
        return Result(TAMPERED, "the document's @context is not the one that was signed")
    try:
        signature = from_base58btc(value[1:])
        hashed = _hash_data(document, options)
    except (ValueError, RecursionError) as err:
        return Result(MALFORMED, f"cannot canonicalize or decode: {err}")
    try:
        key.verify(signature, hashed)
    except InvalidSignature:
        return Result(TAMPERED, "the signature does not match the content")
    return Result(VALID, f"signed by {method}")


def _check_status(signed: Mapping[str, Any], status_list: Mapping[str, Any],
                  keys: Mapping[str, Ed25519PublicKey]) -> Result:
    entry = signed.get("credentialStatus")
    if not isinstance(status_list, Mapping):
        return Result(STATUS_UNVERIFIED, "the status list is not a JSON object")
    if not isinstance(entry, Mapping) or entry.get("statusPurpose") != "revocation":
        return Result(MALFORMED, "the credential has no revocation status entry")
    if entry.get("statusListCredential") != status_list.get("id"):
        return Result(STATUS_UNVERIFIED, "the status list given is not the one the credential names")
    own = _check_proof(status_list, keys)
    if not own.valid:
        return Result(STATUS_UNVERIFIED, f"the status list does not verify: {own.reason}")
    if _issuer_of(status_list) != _issuer_of(signed):
        return Result(STATUS_UNVERIFIED, "the status list is another issuer's")
    try:
        revoked = is_revoked(status_list, int(entry.get("statusListIndex", "")))
    except ValueError as err:
        return Result(MALFORMED, f"bad status entry or list: {err}")
    if revoked:
        return Result(REVOKED, "the issuer has revoked this credential")
    return Result(VALID, "signed by the issuer and not revoked")


# --- revocation: the Bitstring Status List ---------------------------------------------------------


def _check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < STATUS_LIST_BITS:
        raise ValueError(f"a status index is an integer from 0 to {STATUS_LIST_BITS - 1}, not {index!r}")


def encode_status_bits(revoked_indices: Iterable[int]) -> str:
    """W3C Bitstring Status List `encodedList`: bit i (from the left) set when i is revoked,
    GZIP (fixed header time, so the output is stable), multibase base64url without padding."""
    bits = bytearray(STATUS_LIST_BITS // 8)
    for index in revoked_indices:
        _check_index(index)
        bits[index // 8] |= 0x80 >> (index % 8)
    packed = gzip.compress(bytes(bits), compresslevel=9, mtime=0)
    return "u" + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def build_status_list(dept: str, revoked_indices: Iterable[int], *, key: SigningKey, url: str,
                      issuer: Issuer, valid_from: datetime | None = None) -> dict[str, Any]:
    """The department's signed `BitstringStatusListCredential` (purpose: revocation) served at
    `url`; a verifier fetches it to learn whether a diploma was revoked."""
    if key.department != dept:
        raise ValueError(f"the key is {key.department}'s, not {dept}'s")
    credential: dict[str, Any] = {
        "@context": [VC_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer.id,
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encode_status_bits(revoked_indices),
        },
    }
    if valid_from is not None:
        credential["validFrom"] = valid_from.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return sign(credential, key, created=valid_from)


def is_revoked(status_list: Mapping[str, Any], index: int) -> bool:
    """Whether bit `index` of the status list is set. Raises ValueError for an index outside the
    list or a list that is not a (bounded) GZIP'd multibase bitstring."""
    subject = status_list.get("credentialSubject")
    encoded = subject.get("encodedList") if isinstance(subject, Mapping) else None
    if not isinstance(encoded, str) or not encoded.startswith("u"):
        raise ValueError("no multibase base64url encodedList")
    try:
        packed = base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4))
        inflater = zlib.decompressobj(wbits=31)
        bits = inflater.decompress(packed, MAX_STATUS_LIST_BYTES)
    except (binascii.Error, zlib.error) as err:
        raise ValueError(f"the encodedList does not decode: {err}") from err
    if inflater.unconsumed_tail:
        raise ValueError("the status list is larger than this verifier accepts")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(bits) * 8:
        raise ValueError(f"index {index!r} is outside the list of {len(bits) * 8} entries")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


# --- the published keys ----------------------------------------------------------------------------


def public_keys_document(issuer: str, public_keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Any]:
    """The issuer's controller document (W3C Controlled Identifiers, Multikey), served at `issuer`
    (its id): every key it ever signed with, current and retired, keyed by kid, so old
    credentials keep verifying after a rotation."""
    methods = [{"id": verification_method_id(issuer, kid), "type": "Multikey", "controller": issuer,
                "publicKeyMultibase": public_key_multibase(key)} for kid, key in public_keys.items()]
    return {
        "@context": [CID_CONTEXT],
        "id": issuer,
        "verificationMethod": methods,
        "assertionMethod": [method["id"] for method in methods],
    }


def public_keys_from_document(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """A verifier's side of `public_keys_document`: verification method id → key, for the methods
    the document lists for assertions and controls itself."""
    controller = document.get("id")
    allowed = set(document.get("assertionMethod") or [])
    keys = {}
    for method in document.get("verificationMethod") or []:
        if (isinstance(method, Mapping) and method.get("type") == "Multikey"
                and method.get("controller") == controller and method.get("id") in allowed):
            keys[method["id"]] = public_key_from_multibase(method["publicKeyMultibase"])
    return keys


def public_jwks(issuer: str, public_keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Any]:
    """The same keys as a JWK Set (RFC 7517, OKP/Ed25519), for verifiers that read JWKs."""
    keys = []
    for kid, key in public_keys.items():
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys.append({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                     "kid": verification_method_id(issuer, kid),
                     "x": base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")})
    return {"keys": keys}
