"""API tokens for integrations and workers: shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.clock import FixedClock
from shared.errors import ValidationFailed
from shared.identity.api_tokens import ApiTokenService
from shared.identity.crypto import token_hash
from shared.identity.errors import ApiTokenInvalid, ScopeMissing
from shared.identity.store import InMemoryIdentityStore


@pytest.fixture
def store() -> InMemoryIdentityStore:
    return InMemoryIdentityStore()


@pytest.fixture
def tokens(store: InMemoryIdentityStore, clock: FixedClock) -> ApiTokenService:
    return ApiTokenService(store, clock, touch_every=timedelta(minutes=1))


def test_a_token_is_shown_once_and_stored_as_its_hash(tokens: ApiTokenService, store: InMemoryIdentityStore) -> None:
    issued = tokens.create("assessment feed", ["intake:feed:read"])
    assert issued.token.startswith("cim_")
    assert len(issued.token) > 40
    assert issued.token not in repr(issued)
    stored = store.get_api_token(issued.record.id)
    assert stored is not None
    assert stored.token_hash == token_hash(issued.token)
    assert issued.token not in repr(stored)
    assert stored.actor == f"token:{stored.id}"


def test_a_token_works_only_within_its_scopes(tokens: ApiTokenService) -> None:
    issued = tokens.create("worker", ["intake:feed:read", "intake:write"])
    assert tokens.authenticate(issued.token, "intake:feed:read").id == issued.record.id
    assert tokens.authenticate(issued.token).id == issued.record.id
    with pytest.raises(ScopeMissing) as missing:
        tokens.authenticate(issued.token, "assessment:write")
    assert missing.value.status == 403


@pytest.mark.parametrize("token", ["", "cim_", "cim_unknown", "Bearer x", "x" * 500])
def test_an_unknown_token_is_refused(tokens: ApiTokenService, token: str) -> None:
    tokens.create("worker", ["intake:write"])
    with pytest.raises(ApiTokenInvalid) as refused:
        tokens.authenticate(token, "intake:write")
    assert refused.value.status == 401


def test_a_revoked_token_is_refused(tokens: ApiTokenService) -> None:
    issued = tokens.create("worker", ["intake:write"])
    assert tokens.revoke(issued.record.id)
    with pytest.raises(ApiTokenInvalid):
        tokens.authenticate(issued.token, "intake:write")
    assert not tokens.revoke(issued.record.id)


def test_last_used_time_is_kept_without_a_write_per_request(
    tokens: ApiTokenService, store: InMemoryIdentityStore, clock: FixedClock
) -> None:
    issued = tokens.create("worker", ["intake:write"])
    first_use = clock.now()
    tokens.authenticate(issued.token)
    clock.advance(timedelta(seconds=30))
    tokens.authenticate(issued.token)
    stored = store.get_api_token(issued.record.id)
    assert stored is not None
    assert stored.last_used_at == first_use
    clock.advance(timedelta(seconds=30))
    tokens.authenticate(issued.token)
    stored = store.get_api_token(issued.record.id)
    assert stored is not None
    assert stored.last_used_at == clock.now()


@pytest.mark.parametrize(("name", "scopes"), [("w", []), ("w", ["Intake:Write"]), ("w", ["intake"]), ("", ["a:b"])])
def test_malformed_token_requests_are_refused(tokens: ApiTokenService, name: str, scopes: list[str]) -> None:
    with pytest.raises(ValidationFailed):
        tokens.create(name, scopes)


def test_tokens_are_listed_without_their_secret(tokens: ApiTokenService) -> None:
    issued = tokens.create("worker", ["intake:write"])
    assert [t.id for t in tokens.list()] == [issued.record.id]
    assert issued.token not in repr(tokens.list())
