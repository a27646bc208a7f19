"""The ``alliance staff create-user`` command: a person of the console, with a one-time password and a TOTP
enrolment URI printed once (added to the ``staff`` group of ``app.cli``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth.scopes import StaffRole
from app.core.config import get_settings
from app.people.service import create_person

InTransaction = Callable[[Callable[[AsyncSession], Awaitable[Any]]], Any]


def add_people_commands(staff_cli: typer.Typer, in_transaction: InTransaction) -> None:
    @staff_cli.command("create-user")
    def staff_create_user(
        role: Annotated[str, typer.Option(help="alliance_manager | finance | admin | auditor")],
        username: Annotated[
            str, typer.Option(help="The name to sign in with: lowercase letters, digits, '.', '_', '-'.")
        ],
        display_name: Annotated[str | None, typer.Option(help="The person's name as the console shows it.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Create a person who signs in to the console; prints the one-time password and the TOTP enrolment URI once."""
        try:
            staff_role = StaffRole(role)
        except ValueError:
            raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from None
        settings = get_settings()
        created = in_transaction(
            lambda session: create_person(
                session, Actor.system(), settings, username=username, role=staff_role, display_name=display_name
            )
        )
        if as_json:
            shown = {"username": created.username, "role": created.role.value, "password": created.password}
            typer.echo(json.dumps({**shown, "totp_uri": created.enrolment_uri}))
            return
        typer.echo(f"username:       {created.username} ({created.display_name}, {created.role.value})")
        typer.echo(f"password:       {created.password}")
        typer.echo(f"TOTP enrolment: {created.enrolment_uri}")
        typer.echo("Shown once: hand the password over in person; add the URI to an authenticator app (or a QR code).")
