"""API tokens for integrations and workers: shown once, stored as sha256, scoped, revocable."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from shared.clock import Clock
from shared.errors import ValidationFailed
from shared.identity.crypto import token_hash
from shared.identity.errors import ApiTokenInvalid, ScopeMissing
from shared.identity.models import ApiTokenRecord, validate_scope
from shared.identity.store import IdentityStore

PREFIX = "cim_"


@dataclass(frozen=True)
class IssuedApiToken:
    """`token` exists only here: print it once, it cannot be recovered."""

    record: ApiTokenRecord
    token: str = field(repr=False)


class ApiTokenService:
    """`touch_every` bounds the last-used writes to one per token per interval."""

    def __init__(self, store: IdentityStore, clock: Clock, *, touch_every: timedelta = timedelta(minutes=1)) -> None:
        self._store = store
        self._clock = clock
        self._touch_every = touch_every

    def create(self, name: str, scopes: Iterable[str], *, account_id: str | None = None) -> IssuedApiToken:
        name = name.strip()
        try:
            wanted = frozenset(validate_scope(s) for s in scopes)
        except ValueError as exc:
            raise ValidationFailed("invalid scope", {"scopes": [str(exc)]}) from exc
        if not name or len(name) > 200:
            raise ValidationFailed("invalid token name", {"name": ["1 to 200 characters"]})
        if not wanted:
            raise ValidationFailed("a token needs at least one scope", {"scopes": ["required"]})
        token = PREFIX + secrets.token_urlsafe(32)
        record = ApiTokenRecord(
            id=str(uuid.uuid4()),
            name=name,
            token_hash=token_hash(token),
            scopes=wanted,
            account_id=account_id,
            created_at=self._clock.now(),
        )
        self._store.add_api_token(record)
        return IssuedApiToken(record, token)

    def authenticate(self, token: str, required_scope: str | None = None) -> ApiTokenRecord:
        """The token's record (last-used time updated), or ApiTokenInvalid / ScopeMissing."""
        if not token.startswith(PREFIX) or len(token) > 200:
            raise ApiTokenInvalid("invalid token")
        record = self._store.api_token_by_hash(token_hash(token))
        if record is None or record.revoked_at is not None:
            raise ApiTokenInvalid("invalid token")
        if required_scope is not None and required_scope not in record.scopes:
            raise ScopeMissing(f"token lacks scope {required_scope}")
        now = self._clock.now()
        if record.last_used_at is None or now - record.last_used_at >= self._touch_every:
            self._store.touch_api_token(record.id, now)
        return record

    def revoke(self, token_id: str) -> bool:
        return self._store.revoke_api_token(token_id, self._clock.now())

    def list(self) -> list[ApiTokenRecord]:
        return self._store.api_tokens()
