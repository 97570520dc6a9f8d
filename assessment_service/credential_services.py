"""The diploma's Open Badges 3.0 credential, served (issue 14): built from the diploma when it is
downloaded, signed with the department's current key, and the documents a verifier fetches.

Nothing of a credential is stored: it is made from the diploma's read model on each download
(`assessment_service/credentials.py` builds and signs, `credential_keys.KeyStore` holds the keys
outside the databases), so after the holder's erasure there is no name left anywhere to erase and
the download answers 404. The proof's `created` is the diploma's issue time, so the same diploma
and key give the same credential. Served publicly (no sign-in), like the verification page:
- `/verify/<code>/credential.json`: the holder's signed `AchievementCredential`;
- `/credentials/issuers/<DEPT>`: the issuer's public keys, every key it ever signed with;
- `/credentials/status/<DEPT>`: its signed revocation list (W3C Bitstring Status List).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from assessment_service import credentials, diploma_queries, diploma_services
from assessment_service.bootstrap import AssessmentContext
from assessment_service.credential_keys import KeyStore, KeyStoreError
from assessment_service.diploma_document import Text
from shared.errors import CimError, NotFound


class CredentialsNotSetUp(CimError):
    """The department has no signing key yet (`credential-keys create DEPT`): 503, say so."""

    status = 503
    code = "credentials_not_set_up"


def keys(ctx: AssessmentContext) -> KeyStore:
    return KeyStore(ctx.settings.credential_keys_dir)


def base_url(ctx: AssessmentContext) -> str:
    return ctx.settings.assessment_url.rstrip("/")


def _signing_key(ctx: AssessmentContext, department: str) -> credentials.SigningKey:
    try:
        return keys(ctx).signing_key(department)
    except KeyStoreError as error:
        raise CredentialsNotSetUp(f"The department {department} has no credential key yet: {error}") from error


def credential(ctx: AssessmentContext, code: str) -> dict[str, Any]:
    """The signed credential of the diploma with verification `code`; NotFound for an unknown
    code and after the holder's erasure (the credential names them)."""
    with ctx.reader.connect() as conn:
        found = diploma_queries.by_code(conn, code)
    if found is None or found["erased"] or not found["holder_name"]:
        raise NotFound("No such diploma.")
    doc = diploma_services.document(ctx, found)
    base = base_url(ctx)
    built = credentials.build_credential(
        doc, issuer=credentials.issuer_for(doc, base), status_index=int(found["status_index"]),
        status_list_url=credentials.status_list_url(base, doc.department_code), base_url=base)
    return credentials.sign(built, _signing_key(ctx, doc.department_code),
                            created=datetime.fromisoformat(found["issued_at"]))


def _department(ctx: AssessmentContext, code: str) -> Any:
    department = ctx.catalogue.department(code)
    if department is None:
        raise NotFound("No such department.")
    return department


def issuer_document(ctx: AssessmentContext, department_code: str) -> dict[str, Any]:
    """The issuer's controller document: its name and every public key it ever signed with."""
    department = _department(ctx, department_code)
    try:
        public = keys(ctx).public_keys(department_code)
    except KeyStoreError as error:
        raise CredentialsNotSetUp(f"The department {department_code} has no credential key yet: {error}") from error
    issuer = credentials.issuer_id(base_url(ctx), department_code)
    document = credentials.public_keys_document(issuer, public)
    document["name"] = department.name.en
    return document


def status_list(ctx: AssessmentContext, department_code: str) -> dict[str, Any]:
    """The department's signed revocation list: the status index of each revoked diploma set."""
    department = _department(ctx, department_code)
    with ctx.reader.connect() as conn:
        revoked = diploma_queries.revoked_in(conn, department_code)
    base = base_url(ctx)
    issuer = credentials.Issuer(id=credentials.issuer_id(base, department_code),
                                name=Text(department.name.en, department.name.sv or department.name.en))
    latest = max((at for _index, at in revoked if at), default=None)
    return credentials.build_status_list(
        department_code, [index for index, _at in revoked], key=_signing_key(ctx, department_code),
        url=credentials.status_list_url(base, department_code), issuer=issuer,
        valid_from=datetime.fromisoformat(latest) if latest else None)
