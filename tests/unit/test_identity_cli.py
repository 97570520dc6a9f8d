"""The identity commands of both apps: create-admin, tokens, accounts (click's CliRunner)."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
from flask import Flask

from assessment_service import create_app as create_assessment_app
from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.errors import ApiTokenInvalid
from shared.identity.models import Role, RoleGrant
from shared.identity.wiring import Identity
from tests.authkit import make_account, make_identity
from tests.authkit import sign_in as authkit_sign_in

PASSWORD = "a long enough admin passphrase 7"


@pytest.fixture
def identity(clock: FixedClock) -> Identity:
    return make_identity(clock)


@pytest.fixture
def app(tmp_path: Path, clock: FixedClock, identity: Identity) -> Flask:
    settings = Settings(
        data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none", ratelimit_storage="memory://"
    )
    return create_app(settings, store=InMemoryEventStore(), clock=clock, identity=identity)


def invoke(app: Flask, *args: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args), **kwargs)


def test_create_admin_prompts_twice_and_prints_the_totp_secret_once(
    app: Flask, identity: Identity, clock: FixedClock
) -> None:
    result = invoke(app, "create-admin", "--email", "Admin@Example.org", "--name", "Ada Admin",
                    input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    secret = re.search(r"TOTP secret: ([A-Z2-7]+)", result.output).group(1)  # type: ignore[union-attr]
    assert re.search(r"TOTP URI: +otpauth://totp/", result.output)
    assert PASSWORD not in result.output
    account = identity.staff.sign_in("admin@example.org", PASSWORD, pyotp.TOTP(secret).at(clock.now()))
    assert identity.store.grants_of(account.id) == {RoleGrant(Role.ADMINISTRATOR, None)}
    again = invoke(app, "create-admin", "--email", "other@example.org", "--name", "Other",
                   input=f"{PASSWORD}\n{PASSWORD}\n")
    assert again.exit_code != 0
    assert "already exists" in again.output


def test_create_admin_reads_the_password_from_the_environment(
    app: Flask, identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIM_ADMIN_PASSWORD", PASSWORD)
    result = invoke(app, "create-admin", "--email", "admin@example.org", "--name", "Ada Admin")
    assert result.exit_code == 0, result.output
    assert identity.store.any_administrator()


def test_create_admin_refuses_a_weak_or_mistyped_password(app: Flask, identity: Identity) -> None:
    weak = invoke(app, "create-admin", "--email", "a@example.org", "--name", "A", input="short\nshort\n")
    assert weak.exit_code != 0
    assert "password" in weak.output.lower()
    mistyped = invoke(app, "create-admin", "--email", "a@example.org", "--name", "A",
                      input=f"{PASSWORD}\n{PASSWORD}x\n{PASSWORD}\n{PASSWORD}\n")
    assert "do not match" in mistyped.output.lower() or "don't match" in mistyped.output.lower()
    assert mistyped.exit_code == 0  # the second pair matched
    assert identity.store.find_account_by_email("a@example.org") is not None


def test_tokens_create_list_revoke(app: Flask, identity: Identity) -> None:
    quiet = invoke(app, "tokens", "create", "--name", "worker", "--scope", "feed:read", "--quiet")
    assert quiet.exit_code == 0, quiet.output
    token = quiet.output.strip()
    assert "\n" not in token
    assert len(token) > 30
    record = identity.api_tokens.authenticate(token, "feed:read")
    assert record.name == "worker"

    loud = invoke(app, "tokens", "create", "--name", "integration", "--scope", "intake:register",
                  "--scope", "intake:write")
    assert loud.exit_code == 0
    assert "not shown again" in loud.output
    listing = invoke(app, "tokens", "list").output
    assert record.id in listing
    assert "worker" in listing
    assert "[intake:register intake:write]" in listing
    assert token not in listing

    assert invoke(app, "tokens", "revoke", record.id).exit_code == 0
    with pytest.raises(ApiTokenInvalid):
        identity.api_tokens.authenticate(token)
    assert "revoked" in invoke(app, "tokens", "list").output
    assert invoke(app, "tokens", "revoke", record.id).exit_code != 0
    assert invoke(app, "tokens", "revoke", "no-such-id").exit_code != 0


def test_tokens_revoke_by_name(app: Flask, identity: Identity) -> None:
    tokens = [invoke(app, "tokens", "create", "--name", "seed", "--scope", "intake:register", "--quiet").output.strip()
              for _ in range(2)]
    keep = invoke(app, "tokens", "create", "--name", "other", "--scope", "intake:register", "--quiet").output.strip()
    result = invoke(app, "tokens", "revoke", "--name", "seed")
    assert result.exit_code == 0
    assert "revoked 2" in result.output
    for token in tokens:
        with pytest.raises(ApiTokenInvalid):
            identity.api_tokens.authenticate(token)
    assert identity.api_tokens.authenticate(keep).name == "other"
    assert invoke(app, "tokens", "revoke").exit_code == 2


def test_tokens_create_replace_and_bad_scope(app: Flask, identity: Identity) -> None:
    first = invoke(app, "tokens", "create", "--name", "worker", "--scope", "feed:read", "--quiet").output.strip()
    second = invoke(app, "tokens", "create", "--name", "worker", "--scope", "feed:read", "--quiet",
                    "--replace").output.strip()
    with pytest.raises(ApiTokenInvalid):
        identity.api_tokens.authenticate(first)
    assert identity.api_tokens.authenticate(second).name == "worker"
    bad = invoke(app, "tokens", "create", "--name", "x", "--scope", "Not A Scope")
    assert bad.exit_code == 2
    assert "scope" in bad.output.lower()


def test_accounts_grant_revoke_disable(app: Flask, identity: Identity) -> None:
    account = make_account(identity, "Cora Samordnare", "cora@example.org")
    client = app.test_client()
    session_id = authkit_sign_in(client, identity, account)

    granted = invoke(app, "accounts", "grant", "cora@example.org", "coordinator", "SOCSW")
    assert granted.exit_code == 0, granted.output
    assert identity.accounts.principal(account.id).has_role(Role.COORDINATOR, "SOCSW")  # type: ignore[union-attr]
    assert identity.sessions.get(session_id) is None  # a privilege change ends the old sessions

    assert invoke(app, "accounts", "grant", "cora@example.org", "wizard", "SOCSW").exit_code == 2
    assert invoke(app, "accounts", "grant", "cora@example.org", "coordinator").exit_code != 0  # needs a dept
    assert invoke(app, "accounts", "grant", "nobody@example.org", "assessor", "SOCSW").exit_code != 0

    session_id = authkit_sign_in(client, identity, account)
    revoked = invoke(app, "accounts", "revoke", "cora@example.org", "coordinator", "SOCSW")
    assert revoked.exit_code == 0
    assert not identity.accounts.principal(account.id).has_role(Role.COORDINATOR)  # type: ignore[union-attr]
    assert identity.sessions.get(session_id) is None
    assert invoke(app, "accounts", "revoke", "cora@example.org", "coordinator", "SOCSW").exit_code != 0

    session_id = authkit_sign_in(client, identity, account)
    assert invoke(app, "accounts", "disable", "cora@example.org").exit_code == 0
    assert identity.accounts.principal(account.id) is None
    assert identity.sessions.get(session_id) is None
    assert client.get("/auth/account").status_code == 303


def test_the_assessment_app_has_the_same_commands(tmp_path: Path, clock: FixedClock, identity: Identity) -> None:
    from shared.adapters.feed import FunctionFeed

    settings = Settings(
        data_dir=tmp_path, upload_dir=tmp_path / "uploads", wakeup="none", ratelimit_storage="memory://"
    )
    app = create_assessment_app(settings, feed=FunctionFeed(lambda after, limit: [], lambda: 0), clock=clock,
                                identity=identity)
    result = invoke(app, "tokens", "create", "--name", "ops", "--scope", "ops:read", "--quiet")
    assert result.exit_code == 0, result.output
    assert identity.api_tokens.authenticate(result.output.strip(), "ops:read").name == "ops"
