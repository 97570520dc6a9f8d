"""The identity store contract and its in-memory fake (the SQL adapter passes the same tests)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from shared.identity.errors import IdentityConflict
from shared.identity.models import Account, ApiTokenRecord, ExternalIdentity, Role, RoleGrant, TotpState


def normalize_email(email: str) -> str:
    return email.strip().lower()


class IdentityStore(Protocol):
    """Accounts, grants, external identities, credentials, used one-time tokens and API tokens."""

    # set-up and maintenance
    def create_schema(self) -> None:
        """Create the tables if they are missing (idempotent). At start-up, never in a request."""
        ...

    def compact(self, *, vacuum: bool = False) -> None:
        """Leave no page of deleted or overwritten data in a side file: on SQLite, move the WAL
        into the main file and truncate it (with `vacuum`, first rebuild the whole file, free
        pages included). A no-op where there is nothing to compact."""
        ...

    # accounts
    def add_account(self, account: Account) -> None:
        """Insert; IdentityConflict if the e-mail or student id is taken."""
        ...

    def get_account(self, account_id: str) -> Account | None: ...

    def find_account_by_email(self, email: str) -> Account | None: ...

    def list_accounts(self) -> list[Account]:
        """Every account (disabled and erased ones included), by creation time then id."""
        ...

    def find_account_by_student(self, student_id: str) -> Account | None: ...

    def attach_student(self, account_id: str, student_id: str) -> bool:
        """Set the account's student id if it has none; False if it has one (or no such
        account); IdentityConflict if the student already belongs to another account."""
        ...

    def set_disabled(self, account_id: str, disabled: bool) -> bool:
        """False if there is no such account."""
        ...

    def erase_personal_data(self, account_id: str, at: datetime) -> bool:
        """Blank the display name and e-mail, drop credentials and external identities, disable."""
        ...

    # the preferred language (of the interface and the e-mail)
    def set_locale(self, account_id: str, locale: str, at: datetime) -> bool:
        """Store the account's language (one of models.LANGUAGES); True if it changed."""
        ...

    def locale_of(self, account_id: str) -> str | None:
        """The stored language, or None (never chosen, or erased)."""
        ...

    # external identities
    def link_identity(self, account_id: str, identity: ExternalIdentity, at: datetime) -> None:
        """Idempotent for the same account; IdentityConflict if linked to another one."""
        ...

    def find_account_by_identity(self, identity: ExternalIdentity) -> Account | None: ...

    def identities_of(self, account_id: str) -> list[ExternalIdentity]: ...

    # role grants
    def grant_role(self, account_id: str, grant: RoleGrant, at: datetime) -> None:
        """Idempotent."""
        ...

    def revoke_role(self, account_id: str, grant: RoleGrant) -> bool: ...

    def grants_of(self, account_id: str) -> frozenset[RoleGrant]: ...

    def any_administrator(self) -> bool: ...

    def all_grants(self) -> dict[str, frozenset[RoleGrant]]:
        """Every account's grants, by account id (accounts without a grant are left out)."""
        ...

    def accounts_with_role(self, role: Role, department: str | None) -> list[Account]:
        """Every account holding `role` in `department` (disabled ones included), by id."""
        ...

    # staff credentials
    def set_password_hash(self, account_id: str, password_hash: str, at: datetime) -> None: ...

    def password_hash(self, account_id: str) -> str | None: ...

    def set_totp_secret(self, account_id: str, secret_encrypted: str, at: datetime) -> None:
        """Store a new secret and forget the last used step."""
        ...

    def totp_state(self, account_id: str) -> TotpState | None: ...

    def advance_totp_step(self, account_id: str, step: int) -> bool:
        """Atomically record `step` as used if no step >= it was used before; False otherwise."""
        ...

    # single-use tokens (e-mail links, OIDC nonces): only hashes
    def mark_used(self, token_hash: str, kind: str, expires_at: datetime, at: datetime) -> bool:
        """Record the token as used; False if it was already."""
        ...

    def is_used(self, token_hash: str) -> bool:
        """True if the token was recorded as used (and not purged yet)."""
        ...

    def purge_used(self, expired_before: datetime) -> int: ...

    def advance_link_floor(self, account_id: str, issued: int) -> bool:
        """Atomically record that the account's e-mail links issued at or before `issued` (a
        counter: microseconds since the epoch) are spent, unless a link issued at or after it was
        used already; False then. One used link so kills every older unused one."""
        ...

    # API tokens
    def add_api_token(self, record: ApiTokenRecord) -> None: ...

    def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None: ...

    def get_api_token(self, token_id: str) -> ApiTokenRecord | None: ...

    def api_tokens(self) -> list[ApiTokenRecord]: ...

    def touch_api_token(self, token_id: str, at: datetime) -> None: ...

    def revoke_api_token(self, token_id: str, at: datetime) -> bool: ...

    def delete_revoked_api_tokens(self, token_ids: Sequence[str]) -> list[str]:
        """Delete these tokens if they are revoked (retention); returns the ids deleted."""
        ...


class InMemoryIdentityStore:
    """A dict-backed IdentityStore for unit tests."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._identities: dict[ExternalIdentity, str] = {}
        self._grants: dict[str, set[RoleGrant]] = {}
        self._passwords: dict[str, str] = {}
        self._totp: dict[str, TotpState] = {}
        self._used: dict[str, datetime] = {}
        self._tokens: dict[str, ApiTokenRecord] = {}
        self._link_floors: dict[str, int] = {}
        self._locales: dict[str, str] = {}

    def create_schema(self) -> None:
        """Nothing to create; here so both stores are set up alike."""

    def compact(self, *, vacuum: bool = False) -> None:
        """Nothing on disk to compact."""

    def add_account(self, account: Account) -> None:
        with self._lock:
            if account.id in self._accounts:
                raise IdentityConflict("account id taken")
            email = normalize_email(account.email) if account.email else None
            for other in self._accounts.values():
                if email is not None and other.email == email:
                    raise IdentityConflict("e-mail already belongs to an account", field="email")
                if account.student_id is not None and other.student_id == account.student_id:
                    raise IdentityConflict("student already has an account", field="student_id")
            self._accounts[account.id] = replace(account, email=email)

    def get_account(self, account_id: str) -> Account | None:
        return self._accounts.get(account_id)

    def find_account_by_email(self, email: str) -> Account | None:
        wanted = normalize_email(email)
        return next((a for a in self._accounts.values() if a.email == wanted), None)

    def list_accounts(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda a: (a.created_at, a.id))

    def find_account_by_student(self, student_id: str) -> Account | None:
        return next((a for a in self._accounts.values() if a.student_id == student_id), None)

    def attach_student(self, account_id: str, student_id: str) -> bool:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None or account.student_id is not None:
                return False
            if any(a.student_id == student_id for a in self._accounts.values()):
                raise IdentityConflict("student already has an account", field="student_id")
            self._accounts[account_id] = replace(account, student_id=student_id)
            return True

    def _change(self, account_id: str, **changes: Any) -> bool:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return False
            self._accounts[account_id] = replace(account, **changes)
            return True

    def set_disabled(self, account_id: str, disabled: bool) -> bool:
        return self._change(account_id, disabled=disabled)

    def erase_personal_data(self, account_id: str, at: datetime) -> bool:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return False
            self._accounts[account_id] = replace(account, display_name="", email=None, disabled=True)
            self._passwords.pop(account_id, None)
            self._totp.pop(account_id, None)
            self._locales.pop(account_id, None)
            for identity in [i for i, a in self._identities.items() if a == account_id]:
                del self._identities[identity]
            return True

    def set_locale(self, account_id: str, locale: str, at: datetime) -> bool:
        with self._lock:
            if account_id not in self._accounts or self._locales.get(account_id) == locale:
                return False
            self._locales[account_id] = locale
            return True

    def locale_of(self, account_id: str) -> str | None:
        return self._locales.get(account_id)

    def link_identity(self, account_id: str, identity: ExternalIdentity, at: datetime) -> None:
        with self._lock:
            owner = self._identities.get(identity)
            if owner is not None and owner != account_id:
                raise IdentityConflict("identity already linked to another account")
            self._identities[identity] = account_id

    def find_account_by_identity(self, identity: ExternalIdentity) -> Account | None:
        owner = self._identities.get(identity)
        return self._accounts.get(owner) if owner else None

    def identities_of(self, account_id: str) -> list[ExternalIdentity]:
        return sorted((i for i, a in self._identities.items() if a == account_id), key=lambda i: (i.issuer, i.subject))

    def grant_role(self, account_id: str, grant: RoleGrant, at: datetime) -> None:
        with self._lock:
            self._grants.setdefault(account_id, set()).add(grant)

    def revoke_role(self, account_id: str, grant: RoleGrant) -> bool:
        with self._lock:
            grants = self._grants.get(account_id, set())
            if grant in grants:
                grants.discard(grant)
                return True
            return False

    def grants_of(self, account_id: str) -> frozenset[RoleGrant]:
        return frozenset(self._grants.get(account_id, ()))

    def any_administrator(self) -> bool:
        return any(g.role is Role.ADMINISTRATOR for gs in self._grants.values() for g in gs)

    def all_grants(self) -> dict[str, frozenset[RoleGrant]]:
        with self._lock:
            return {a: frozenset(gs) for a, gs in self._grants.items() if gs}

    def accounts_with_role(self, role: Role, department: str | None) -> list[Account]:
        wanted = RoleGrant(role, department)
        with self._lock:
            found = [self._accounts[a] for a, gs in self._grants.items() if wanted in gs and a in self._accounts]
        return sorted(found, key=lambda a: a.id)

    def set_password_hash(self, account_id: str, password_hash: str, at: datetime) -> None:
        self._passwords[account_id] = password_hash

    def password_hash(self, account_id: str) -> str | None:
        return self._passwords.get(account_id)

    def set_totp_secret(self, account_id: str, secret_encrypted: str, at: datetime) -> None:
        self._totp[account_id] = TotpState(secret_encrypted, None)

    def totp_state(self, account_id: str) -> TotpState | None:
        return self._totp.get(account_id)

    def advance_totp_step(self, account_id: str, step: int) -> bool:
        with self._lock:
            state = self._totp.get(account_id)
            if state is None or (state.last_used_step is not None and state.last_used_step >= step):
                return False
            self._totp[account_id] = replace(state, last_used_step=step)
            return True

    def mark_used(self, token_hash: str, kind: str, expires_at: datetime, at: datetime) -> bool:
        with self._lock:
            if token_hash in self._used:
                return False
            self._used[token_hash] = expires_at
            return True

    def is_used(self, token_hash: str) -> bool:
        with self._lock:
            return token_hash in self._used

    def purge_used(self, expired_before: datetime) -> int:
        with self._lock:
            gone = [h for h, exp in self._used.items() if exp < expired_before]
            for h in gone:
                del self._used[h]
            return len(gone)

    def advance_link_floor(self, account_id: str, issued: int) -> bool:
        with self._lock:
            floor = self._link_floors.get(account_id)
            if floor is not None and floor >= issued:
                return False
            self._link_floors[account_id] = issued
            return True

    def add_api_token(self, record: ApiTokenRecord) -> None:
        with self._lock:
            if record.id in self._tokens or any(t.token_hash == record.token_hash for t in self._tokens.values()):
                raise IdentityConflict("token id or hash taken")
            self._tokens[record.id] = record

    def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None:
        return next((t for t in self._tokens.values() if t.token_hash == token_hash), None)

    def get_api_token(self, token_id: str) -> ApiTokenRecord | None:
        return self._tokens.get(token_id)

    def api_tokens(self) -> list[ApiTokenRecord]:
        return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))

    def touch_api_token(self, token_id: str, at: datetime) -> None:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is not None:
                self._tokens[token_id] = replace(token, last_used_at=at)

    def revoke_api_token(self, token_id: str, at: datetime) -> bool:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or token.revoked_at is not None:
                return False
            self._tokens[token_id] = replace(token, revoked_at=at)
            return True

    def delete_revoked_api_tokens(self, token_ids: Sequence[str]) -> list[str]:
        with self._lock:
            gone = [t for t in token_ids if t in self._tokens and self._tokens[t].revoked_at is not None]
            for token_id in gone:
                del self._tokens[token_id]
            return gone
