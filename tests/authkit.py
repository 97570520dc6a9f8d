"""Test helpers for accounts, sign-in and API tokens (the identity of issue 4).

Apps under test get an in-memory identity (`make_identity`) through `create_app(identity=...)`;
these helpers make accounts with roles, sign a Flask test client in (a real server-side session
behind the real cookie), and mint API tokens for the JSON APIs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from argon2 import PasswordHasher
from flask.testing import FlaskClient

from shared.clock import Clock
from shared.identity.models import Account, Role, RoleGrant
from shared.identity.wiring import Identity, build_identity

IDENTITY_KEY = "test-identity-key-0123456789abcdef-0123456789"
SESSION_COOKIE = "__Host-cim_session"
#: Cheap argon2 parameters: tests sign in often; the algorithm and code paths stay the real ones.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

ALL_INTAKE_SCOPES = ("intake:register", "intake:write", "intake:read", "feed:read")


def make_identity(clock: Clock) -> Identity:
    """An in-memory identity (accounts, sessions, tokens) on the test's clock."""
    return build_identity(clock=clock, identity_key=IDENTITY_KEY, password_hasher=FAST_HASHER)


def bearer(identity: Identity, *scopes: str, account_id: str | None = None, name: str = "test") -> dict[str, str]:
    """Headers carrying a fresh API token with `scopes` (an integration's, unless `account_id`)."""
    issued = identity.api_tokens.create(name, scopes or ALL_INTAKE_SCOPES, account_id=account_id)
    return {"Authorization": f"Bearer {issued.token}"}


def make_account(
    identity: Identity,
    name: str = "Test Person",
    email: str | None = None,
    *,
    student_id: str | None = None,
    grants: Iterable[tuple[Role | str, str | None]] = (),
) -> Account:
    return identity.accounts.create_account(
        name, email, student_id=student_id, grants=[RoleGrant(Role(r), d) for r, d in grants]
    )


def student_account(identity: Identity, student_id: str, department: str = "SOCSW",
                    email: str | None = None) -> Account:
    return make_account(identity, "Student", email, student_id=student_id, grants=[(Role.STUDENT, department)])


def sign_in(client: FlaskClient, identity: Identity, account: Account, method: str = "test") -> str:
    """Give `client` a live session for `account`, as a real sign-in would; returns the session id."""
    session_id = identity.sessions.create(account.id, auth_method=method)
    client.set_cookie(SESSION_COOKIE, session_id, path="/", secure=True, httponly=True, samesite="Lax")
    return session_id


def sign_out(client: FlaskClient) -> None:
    client.delete_cookie(SESSION_COOKIE, path="/")


class AuthedClient(FlaskClient):
    """A test client that sends `default_headers` (e.g. a bearer token) with every request,
    unless the request names the header itself."""

    default_headers: ClassVar[dict[str, str]] = {}

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        headers = dict(self.default_headers)
        given = kwargs.pop("headers", None) or {}
        headers.update(dict(given))
        kwargs["headers"] = headers
        return super().open(*args, **kwargs)


def authed_client(app, headers: dict[str, str]) -> AuthedClient:  # type: ignore[no-untyped-def]
    app.test_client_class = AuthedClient
    client = app.test_client()
    client.default_headers = dict(headers)
    return client


# -- added for the tests adapted to authentication (H1) ------------------------------------------
from shared.identity.api_tokens import IssuedApiToken  # noqa: E402 (helpers are appended here)


def integration_token(
    identity: Identity, *scopes: str, name: str = "test"
) -> tuple[IssuedApiToken, dict[str, str]]:
    """An integration's token (no account behind it; default: every intake scope) and the headers
    that carry it, for tests that also check what the token's actor recorded."""
    issued = identity.api_tokens.create(name, scopes or ALL_INTAKE_SCOPES)
    return issued, {"Authorization": f"Bearer {issued.token}"}


def sql_identity(db_url: str, identity_key: str = IDENTITY_KEY) -> Identity:
    """The identity of the SQL database `db_url` (made if need be), with the real clock: for tokens
    that served apps and worker processes started by a test read from that same database."""
    from shared.clock import SystemClock

    identity = build_identity(clock=SystemClock(), identity_key=identity_key, db_url=db_url)
    identity.store.create_schema()
    return identity


def sign_in_student(client: FlaskClient, identity: Identity, student_id: str, department: str = "SOCSW") -> Account:
    """Make the student's account (account.student_id == `student_id`) and sign `client` in as it."""
    account = student_account(identity, student_id, department)
    sign_in(client, identity, account)
    return account
