"""Operator commands: `flask --app intake_service students export|erase ID`."""

from __future__ import annotations

import json
import uuid

import click
from flask import Flask, current_app

from intake_service.services import IntakeServices, RequestContext, account_data, erase_student_and_account
from shared.web.auth import identity


def _services() -> IntakeServices:
    return current_app.extensions["cim.intake"]


def register_cli(app: Flask) -> None:
    @app.cli.group("students")
    def students() -> None:
        """Right of access and erasure for one student."""

    @students.command("export")
    @click.argument("student_id")
    def export(student_id: str) -> None:
        """Print everything held about STUDENT_ID (events, files, account) as JSON."""
        data = _services().export(student_id)
        data["account"] = account_data(identity(), student_id)
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))

    @students.command("erase")
    @click.argument("student_id")
    @click.option("--reason", default="erasure request", show_default=True)
    @click.option("--operator", required=True, help="Who decided the erasure (recorded as the actor).")
    def erase(student_id: str, reason: str, operator: str) -> None:
        """Erase STUDENT_ID's personal data: the key is destroyed and the files deleted (intake), and
        their account (found by student id) loses name, e-mail, credentials and SSO links and is
        signed out everywhere. The facts stay. Safe to repeat."""
        ctx = RequestContext(actor=f"operator:{operator}", correlation_id=str(uuid.uuid4()))
        done = erase_student_and_account(_services(), identity(), student_id, reason, ctx)
        account = done.account_id or "no account"
        click.echo(f"erased {student_id} (account: {account}; API tokens revoked: {done.tokens_revoked})")
