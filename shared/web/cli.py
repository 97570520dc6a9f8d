"""Identity commands on both apps (`flask --app intake_service ...` or `--app assessment_service`):

    create-admin --email E --name N          the first administrator (password + TOTP)
    tokens create --name N --scope S [...]   an API token, printed once (--quiet: only the token)
    tokens list | tokens revoke ID | tokens revoke --name N
    accounts grant EMAIL ROLE [DEPT] | accounts revoke EMAIL ROLE [DEPT] | accounts disable EMAIL
    accounts send-setup-link EMAIL           mail a member of staff a one-time link to choose a
                                             password and enrol an authenticator (new, or lost phone)

Secrets (the TOTP secret, a token) are printed once and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import Flask, current_app

from shared.errors import CimError
from shared.identity.accounts import create_first_administrator
from shared.identity.models import Account, Role, validate_scope
from shared.identity.wiring import Identity

ADMIN_PASSWORD_ENV = "CIM_ADMIN_PASSWORD"



F = TypeVar("F", bound=Callable[..., Any])


def _role_arguments(command: F) -> F:
    """EMAIL ROLE [DEPARTMENT]: the arguments of granting and revoking a role."""
    for argument in (
        click.argument("department", required=False), click.argument("role"), click.argument("email")
    ):
        command = argument(command)
    return command


def _identity() -> Identity:
    return current_app.extensions["cim.identity"]


def _account(email: str) -> Account:
    account = _identity().store.find_account_by_email(email)
    if account is None:
        raise click.ClickException(f"no account with the e-mail address {email}")
    return account


def _fail(exc: CimError) -> click.ClickException:
    fields = getattr(exc, "fields", None) or {}
    detail = "; ".join(f"{name}: {', '.join(map(str, msgs))}" for name, msgs in fields.items())
    return click.ClickException(f"{exc.message}{' (' + detail + ')' if detail else ''}")


def _role(value: str) -> Role:
    try:
        return Role(value.lower())
    except ValueError:
        raise click.BadParameter(f"one of {', '.join(r.value for r in Role)}", param_hint="ROLE") from None


def register_identity_cli(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.option("--email", required=True, help="The administrator's e-mail address (the sign-in name).")
    @click.option("--name", required=True, help="The administrator's display name.")
    def create_admin(email: str, name: str) -> None:
        """Create the first administrator: password (prompted twice, or $CIM_ADMIN_PASSWORD) and a
        TOTP secret, printed once for the authenticator app."""
        password = os.environ.get(ADMIN_PASSWORD_ENV) or click.prompt(
            "Password", hide_input=True, confirmation_prompt=True
        )
        ident = _identity()
        try:
            made = create_first_administrator(
                ident.accounts, ident.store, ident.staff, display_name=name, email=email, password=password
            )
        except CimError as exc:
            raise _fail(exc) from exc
        click.echo(f"administrator created: {made.account.id}")
        click.echo("Add this to an authenticator app now; it is not shown again.")
        click.echo(f"TOTP secret: {made.totp.secret}")
        click.echo(f"TOTP URI:    {made.totp.uri}")

    @app.cli.group("tokens")
    def tokens() -> None:
        """API tokens for machines (workers, integrations)."""

    @tokens.command("create")
    @click.option("--name", required=True, help="What the token is for (shown in `tokens list`).")
    @click.option("--scope", "scopes", multiple=True, required=True, help="A scope, e.g. feed:read; repeatable.")
    @click.option(
        "--account", "account_email", default=None, help="Act as this account (e-mail), not as an integration."
    )
    @click.option("--replace", is_flag=True, help="Revoke the live tokens with the same name first.")
    @click.option("--quiet", is_flag=True, help="Print only the token (for scripts).")
    def tokens_create(
        name: str, scopes: tuple[str, ...], account_email: str | None, replace: bool, quiet: bool
    ) -> None:
        """Create a token; it is printed once and only its hash is kept."""
        for scope in scopes:
            try:
                validate_scope(scope)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--scope") from None
        ident = _identity()
        account_id = _account(account_email).id if account_email else None
        if replace:
            for record in ident.api_tokens.list():
                if record.name == name and record.revoked_at is None:
                    ident.api_tokens.revoke(record.id)
        try:
            issued = ident.api_tokens.create(name, list(scopes), account_id=account_id)
        except CimError as exc:
            raise _fail(exc) from exc
        if quiet:
            click.echo(issued.token)
            return
        click.echo(f"token {issued.record.id} ({name}; {' '.join(sorted(issued.record.scopes))})")
        click.echo("Copy it now; it is not shown again:")
        click.echo(issued.token)

    @tokens.command("list")
    def tokens_list() -> None:
        """Every token: id, name, scopes, created, last used, revoked."""
        records = _identity().api_tokens.list()
        if not records:
            click.echo("no tokens")
        for r in records:
            state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "live"
            used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never"
            click.echo(
                f"{r.id}  {r.name}  [{' '.join(sorted(r.scopes))}]  created {r.created_at:%Y-%m-%d %H:%M}"
                f"  last used {used}  {state}"
            )

    @tokens.command("revoke")
    @click.argument("token_id", required=False)
    @click.option("--name", default=None, help="Revoke every live token with this name instead.")
    def tokens_revoke(token_id: str | None, name: str | None) -> None:
        """Revoke the token TOKEN_ID (from `tokens list`), or all live tokens named --name."""
        ident = _identity()
        if (token_id is None) == (name is None):
            raise click.UsageError("give either TOKEN_ID or --name")
        if name is not None:
            ids = [r.id for r in ident.api_tokens.list() if r.name == name and r.revoked_at is None]
            for live in ids:
                ident.api_tokens.revoke(live)
            click.echo(f"revoked {len(ids)} token(s) named {name}")
            return
        assert token_id is not None
        if not ident.api_tokens.revoke(token_id):
            raise click.ClickException(f"no live token {token_id}")
        click.echo(f"revoked {token_id}")

    @app.cli.group("accounts")
    def accounts() -> None:
        """Roles and access of accounts."""

    @accounts.command("grant")
    @_role_arguments
    def accounts_grant(email: str, role: str, department: str | None) -> None:
        """Give ROLE (in DEPARTMENT; none for administrator) to the account with EMAIL."""
        account = _account(email)
        ident = _identity()
        try:
            grant = ident.accounts.grant_role(account.id, _role(role), department)
        except CimError as exc:
            raise _fail(exc) from exc
        # A privilege change: sessions started before it end (the person signs in again).
        ident.sessions.revoke_all(account.id)
        where = f" in {grant.department}" if grant.department else ""
        click.echo(f"granted {grant.role.value}{where} to {email}")

    @accounts.command("revoke")
    @_role_arguments
    def accounts_revoke(email: str, role: str, department: str | None) -> None:
        """Take ROLE (in DEPARTMENT) from the account with EMAIL; it is signed out everywhere."""
        account = _account(email)
        try:
            removed = _identity().accounts.revoke_role(account.id, _role(role), department)
        except CimError as exc:
            raise _fail(exc) from exc
        if not removed:
            raise click.ClickException(f"{email} does not have that role")
        click.echo(f"revoked {role.lower()}{' in ' + department if department else ''} from {email}")

    @accounts.command("disable")
    @click.argument("email")
    def accounts_disable(email: str) -> None:
        """Disable the account with EMAIL and end all its sessions."""
        account = _account(email)
        _identity().accounts.disable_account(account.id)
        click.echo(f"disabled {email}")

    @accounts.command("send-setup-link")
    @click.argument("email")
    def accounts_send_setup_link(email: str) -> None:
        """Mail the staff account with EMAIL a one-time link (through the outbox, in the person's
        language) to choose a password and enrol an authenticator; what it has keeps working
        until the link is used. Refused for a student, disabled or address-less account."""
        from shared.web.staff_setup import send_setup_link

        account = _account(email)
        try:
            sent = send_setup_link(account)
        except CimError as exc:
            raise _fail(exc) from exc
        if not sent:
            raise click.ClickException("the set-up link mail could not be put in the outbox (see the log)")
        hours = max(1, int(_identity().setup_links.ttl.total_seconds() // 3600))
        click.echo(f"set-up link for {email} is in the outbox; it works once, for {hours} hours")
