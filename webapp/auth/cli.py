"""``flask users ...``: manage accounts from the command line."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from webapp.auth import tokens
from webapp.auth.models import User
from webapp.auth.roles import ROLES
from webapp.auth.service import (
    AccountError,
    create_user,
    find_user,
    reset_password,
    set_role,
)
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


def _user_or_fail(name: str) -> User:
    user = find_user(name)
    if user is None:
        raise click.ClickException(f"No user called {name!r}.")
    return user


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@users_cli.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
def set_role_command(name: str, role: str) -> None:
    """Give the account NAME the role ROLE (its API tokens can then do at most that)."""
    user = _user_or_fail(name)
    try:
        changed = set_role(user, role)
    except AccountError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{user.username} is {'now' if changed else 'already'} {role}.")


@users_cli.command("reset-password")
@click.argument("name")
def reset_password_command(name: str) -> None:
    """Give the account NAME a new generated password and print it (it is shown once)."""
    user = _user_or_fail(name)
    password = reset_password(user)
    click.echo(f"New password for {user.username} (shown once): {password}")


@users_cli.command("token")
@click.argument("name")
@click.option("--label", default="api", show_default=True,
              help="What the token is for, to tell it apart in `flask users tokens`.")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="The most the token may do (default: the account's role; never above it).")
def token_command(name: str, label: str, role: str | None) -> None:
    """Create an API token for the account NAME and print it (it is shown once)."""
    user = _user_or_fail(name)
    if not user.active:
        # Its tokens would be refused: say so now rather than at the first API call.
        raise click.ClickException(f"{user.username} is inactive; activate the account first.")
    try:
        tokens.check_token_role(user, role)
    except tokens.TokenError as error:
        raise click.BadParameter(str(error), param_hint="--role") from error
    try:
        raw = tokens.create_token(user, label, role)
    except tokens.TokenError as error:
        raise click.BadParameter(str(error), param_hint="--label") from error
    click.echo(f"Created a {role or user.role} token for {user.username} ({user.role}), "
               f"labelled {label.strip()!r}.")
    click.echo(f"Token (shown once): {raw}")
    click.echo("Send it as the header:  Authorization: Bearer <token>")


@users_cli.command("tokens")
@click.argument("name")
def tokens_command(name: str) -> None:
    """List the API tokens of the account NAME (times in UTC)."""
    user = _user_or_fail(name)
    rows = tokens.tokens_for(user)
    if not rows:
        click.echo(f"{user.username} has no API tokens.")
        return
    click.echo("id\tlabel\tprefix\trole\tcreated\tlast used\trevoked")
    for token in rows:
        click.echo(f"{token.id}\t{token.label}\t{token.prefix}\t{_role(token)}\t"
                   f"{_when(token.created_at)}\t{_when(token.last_used_at)}\t"
                   f"{_when(token.revoked_at)}")


def _role(token) -> str:
    """The token's role, and what it acts as when its user now has fewer rights."""
    effective = token.effective_role
    return token.role if effective == token.role else f"{token.role} (acts as {effective})"


@users_cli.command("revoke-token")
@click.argument("token_id", type=int)
def revoke_token_command(token_id: int) -> None:
    """Revoke the API token TOKEN_ID (see `flask users tokens NAME`); it stops working at once."""
    token = tokens.revoke(token_id)
    if token is None:
        raise click.ClickException(f"No API token with id {token_id}.")
    # Revoking twice is harmless; the first revocation time is kept and shown.
    click.echo(f"Token {token.id} ({token.label}, {token.prefix}…) of {token.user.username} "
               f"is revoked since {_when(token.revoked_at)} UTC.")
