"""Operator commands: `flask --app intake_service students export|erase ID`."""

from __future__ import annotations

import json
import uuid

import click
from flask import Flask, current_app

from intake_service.services import IntakeServices, RequestContext


def _services() -> IntakeServices:
    return current_app.extensions["cim.intake"]


def register_cli(app: Flask) -> None:
    @app.cli.group("students")
    def students() -> None:
        """Right of access and erasure for one student."""

    @students.command("export")
    @click.argument("student_id")
    def export(student_id: str) -> None:
        """Print everything held about STUDENT_ID as JSON."""
        click.echo(json.dumps(_services().export(student_id), ensure_ascii=False, indent=2, default=str))

    @students.command("erase")
    @click.argument("student_id")
    @click.option("--reason", default="erasure request", show_default=True)
    @click.option("--operator", required=True, help="Who decided the erasure (recorded as the actor).")
    def erase(student_id: str, reason: str, operator: str) -> None:
        """Erase STUDENT_ID's personal data: the key is destroyed, the facts stay."""
        ctx = RequestContext(actor=f"operator:{operator}", correlation_id=str(uuid.uuid4()))
        _services().erase_student(student_id, reason, ctx)
        click.echo(f"erased {student_id}")
