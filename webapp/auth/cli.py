"""``flask users ...``: manage accounts from the command line."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from webapp.auth.models import User
from webapp.auth.roles import ROLES
from webapp.auth.service import AccountError, create_user
from webapp.extensions import db

users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="The account's role.")
@click.option(
    "--generate-password", is_flag=True,
    help="Generate a password and print it, instead of prompting for one.",
)
def create_command(name: str, role: str, generate_password: bool) -> None:
    """Create the account NAME with a role. Prompts for the password unless told to generate."""
    password = None
    if not generate_password:
        password = click.prompt(
            "Password (empty to generate one)", hide_input=True,
            confirmation_prompt=True, default="", show_default=False,
        )
    if password and len(password) < 8:
        raise click.BadParameter("The password must have at least 8 characters.")
    try:
        user, password_used = create_user(name, role, password or None)
    except AccountError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Created {user.username} ({user.role}).")
    if not password:
        click.echo(f"Generated password (shown once): {password_used}")


@users_cli.command("list")
def list_command() -> None:
    """List accounts with their roles."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        state = "" if user.active else " (inactive)"
        click.echo(f"{user.username}\t{user.role}{state}")
