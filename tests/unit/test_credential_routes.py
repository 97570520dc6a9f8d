"""The diploma's Open Badges 3.0 credential as served (issue 14, "Verifying"): downloaded by
anyone with the verification code, verified against the published keys and status list, failing
when tampered, signed by a wrong key or revoked; old credentials still verify after a rotation."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from assessment_service import credentials, diploma_services
from assessment_service.credential_keys import KeyStore
from shared.clock import FixedClock
from tests.unit.test_diplomas import the_diploma
from tests.unit.test_diplomas import world as diplomas_world

world = diplomas_world  # the diplomas world fixture: a student who presented, eligible

SCHEMA = Path(__file__).parents[1] / "fixtures" / "ob3" / "ob_v3p0_achievementcredential_schema.json"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def issued(world: Any, tmp_path: Path) -> dict[str, Any]:
    _use_keys(world, tmp_path / "keys")
    KeyStore(world.ctx.settings.credential_keys_dir).create("SOCSW", now=NOW)
    assert diploma_services.issue_due(world.ctx) == 1
    return the_diploma(world)


def _use_keys(world: Any, directory: Path) -> None:
    """Point the service at a test key directory (the default is the installation's var/)."""
    world.ctx.settings = replace(world.ctx.settings, credential_keys_dir=directory)


def _download(world: Any, code: str) -> Any:
    return world.app.test_client().get(f"/verify/{code}/credential.json")


def _published_keys(world: Any) -> dict[str, Any]:
    document = world.app.test_client().get("/credentials/issuers/SOCSW").json
    return credentials.public_keys_from_document(document)


def _status_list(world: Any) -> dict[str, Any]:
    return world.app.test_client().get("/credentials/status/SOCSW").json


def test_anyone_downloads_the_credential_and_it_verifies_against_what_is_published(
    world: Any, issued: dict[str, Any],
) -> None:
    answer = _download(world, issued["verification_code"])
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert "attachment" in answer.headers["Content-Disposition"]
    signed = answer.json
    assert signed["credentialSubject"]["identifier"][0]["identityHash"] == "StudentA Exempel"
    assert json.dumps(signed) == json.dumps(_download(world, issued["verification_code"]).json)  # same each time
    result = credentials.verify(signed, _published_keys(world), status_list=_status_list(world))
    assert result.valid, result.reason
    schema = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    assert schema.is_valid(signed)
    page = world.app.test_client().get(f"/verify/{issued['verification_code']}").get_data(as_text=True)
    assert f'href="/verify/{issued["verification_code"]}/credential.json"' in page


def test_a_tampered_credential_and_a_wrong_key_fail(world: Any, issued: dict[str, Any], tmp_path: Path) -> None:
    signed = _download(world, issued["verification_code"]).json
    tampered = copy.deepcopy(signed)
    tampered["credentialSubject"]["identifier"][0]["identityHash"] = "Someone Else"
    assert credentials.verify(tampered, _published_keys(world)).status == credentials.TAMPERED
    other = KeyStore(tmp_path / "other-keys")
    other.create("SOCSW", now=NOW)
    wrong = {kid: key for kid, key in other.public_keys_by_id(base_url="http://127.0.0.1:8001").items()}
    assert not credentials.verify(signed, wrong).valid


def test_revoking_the_diploma_revokes_the_credential(world: Any, issued: dict[str, Any]) -> None:
    signed = _download(world, issued["verification_code"]).json
    revoked = world.token("coordinator", "assessment:diplomas").post(
        f"/api/v1/diplomas/{issued['diploma_id']}/revocation", json={"reason": "issued in error"})
    assert revoked.status_code == 201, revoked.json
    world.ctx.own_runner.catch_up()
    result = credentials.verify(signed, _published_keys(world), status_list=_status_list(world))
    assert result.status == credentials.REVOKED


def test_old_credentials_verify_after_a_key_rotation(world: Any, issued: dict[str, Any]) -> None:
    before = _download(world, issued["verification_code"]).json
    KeyStore(world.ctx.settings.credential_keys_dir).rotate("SOCSW", now=NOW)
    after = _download(world, issued["verification_code"]).json
    assert before["proof"]["verificationMethod"] != after["proof"]["verificationMethod"]
    keys = _published_keys(world)
    assert credentials.verify(before, keys).valid
    assert credentials.verify(after, keys).valid


def test_unknown_codes_departments_and_missing_keys_answer_clearly(
    world: Any, clock: FixedClock, tmp_path: Path,
) -> None:
    client = world.app.test_client()
    assert client.get("/verify/AAAA-BBBB-CCCC-DDDD/credential.json").status_code == 404
    assert client.get("/verify/not-a-code/credential.json").status_code == 404
    assert client.get("/credentials/issuers/NOPE").status_code == 404
    _use_keys(world, tmp_path / "no-keys")
    assert client.get("/credentials/status/SOCSW").status_code == 503  # not set up: said, not a crash


def test_after_erasure_there_is_no_credential(world: Any, issued: dict[str, Any]) -> None:
    from shared.application import RequestContext

    intake = world.intake.application.extensions["cim.intake"]
    intake.erase_student(world.students["A"], "erasure request", RequestContext("operator:test", "erase"))
    world.catch_up()
    assert _download(world, issued["verification_code"]).status_code == 404
