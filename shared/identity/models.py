"""Identity values: accounts, roles per department, external identities, API-token records."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    STUDENT = "student"
    ASSESSOR = "assessor"
    COORDINATOR = "coordinator"
    ADMINISTRATOR = "administrator"


_DEPARTMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SCOPE = re.compile(r"^[a-z][a-z0-9_-]*(:[a-z][a-z0-9_-]*)+$")


@dataclass(frozen=True, order=True)
class RoleGrant:
    """One role in one department; the administrator role alone has no department."""

    role: Role
    department: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        if self.role is Role.ADMINISTRATOR:
            if self.department is not None:
                raise ValueError("the administrator role is not per department")
        elif self.department is None or not _DEPARTMENT.match(self.department):
            raise ValueError(f"the {self.role} role needs a department code")


@dataclass(frozen=True)
class ExternalIdentity:
    """Who an identity provider says someone is: (issuer, subject), never the e-mail."""

    issuer: str
    subject: str

    def __post_init__(self) -> None:
        if not self.issuer or not self.subject:
            raise ValueError("issuer and subject are both required")


#: The languages a person can choose for the interface and their e-mail (English is the fallback).
LANGUAGES = ("en", "sv")


@dataclass(frozen=True)
class Account:
    """A person. Display name and e-mail are personal data: kept out of repr (and so out of logs)."""

    id: str
    display_name: str = field(repr=False)
    email: str | None = field(repr=False)
    created_at: datetime
    disabled: bool = False
    student_id: str | None = None


@dataclass(frozen=True)
class Principal:
    """A signed-in account with its grants: what authorization rules are evaluated against."""

    account: Account
    grants: frozenset[RoleGrant]

    @property
    def account_id(self) -> str:
        return self.account.id

    @property
    def is_administrator(self) -> bool:
        return RoleGrant(Role.ADMINISTRATOR, None) in self.grants

    def has_role(self, role: Role, department: str | None = None) -> bool:
        """True if the grant exists; with department=None, in any department."""
        return any(g.role is role and (department is None or g.department == department) for g in self.grants)

    def departments(self, role: Role) -> frozenset[str]:
        return frozenset(g.department for g in self.grants if g.role is role and g.department is not None)


@dataclass(frozen=True)
class TotpState:
    """A staff member's TOTP secret (encrypted) and the last time step a code was accepted for."""

    secret_encrypted: str = field(repr=False)
    last_used_step: int | None


def validate_scope(scope: str) -> str:
    """Scopes look like `intake:feed:read`: lower-case words joined by colons."""
    if not _SCOPE.match(scope):
        raise ValueError(f"malformed scope {scope!r}")
    return scope


@dataclass(frozen=True)
class ApiTokenRecord:
    """A stored API token: only the sha256 of the token is kept."""

    id: str
    name: str
    token_hash: str = field(repr=False)
    scopes: frozenset[str]
    account_id: str | None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def actor(self) -> str:
        """What events record as the actor when this token acts."""
        return f"token:{self.id}"
