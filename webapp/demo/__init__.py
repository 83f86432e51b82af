"""``flask demo load``: demo accounts and data, safe to run again (idempotent).

The demo data ships inside the project (``webapp/demo/data/``); see its README for its origin.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from webapp.auth.service import create_user, find_user

demo_cli = AppGroup("demo", help="Demo accounts and data.")

DEMO_ACCOUNTS = (("admin", "admin"), ("staff", "staff"), ("host", "host"))


def ensure_demo_accounts() -> list[tuple[str, str, str | None]]:
    """Create the demo accounts that are missing.

    Returns (username, role, password) for each; password is None for accounts that already
    existed, because their password is never shown again.
    """
    results = []
    for username, role in DEMO_ACCOUNTS:
        if find_user(username) is not None:
            results.append((username, role, None))
            continue
        user, password = create_user(username, role)
        results.append((user.username, role, password))
    return results


def train_if_untrained(kind: str) -> str:
    """Train ``kind`` right here (not as a background job) unless a version is active."""
    from webapp import registry
    from webapp.ml_bridge import retrain_task

    active = registry.active_version(kind)
    if active is not None:
        return f"version {active.version} already active"
    result = retrain_task(lambda percent, message: None, kind=kind, trained_by="demo")
    outcome = "activated" if result["activated"] else "kept as candidate"
    return f"version {result['version']} trained and {outcome}"


@demo_cli.command("load")
def load_command() -> None:
    """Create demo accounts (passwords printed once) and load the demo data."""
    from webapp.demo.pizzeria import load_demo_nights

    for username, role, password in ensure_demo_accounts():
        if password:
            click.echo(f"  {role:<6} login: {username:<8} password: {password}  (shown once)")
        else:
            click.echo(f"  {role:<6} login: {username:<8} already exists; password unchanged")
    added = load_demo_nights()
    click.echo(f"Pizzeria: {added} nights added (the reference week and a generated 2023).")
    click.echo(f"Dough model: {train_if_untrained('dough')}")
    from webapp.demo.tavern import load_demo_picks
    from webapp.tavern.demo import load_demo_games

    click.echo(f"Tavern: {load_demo_games()} games added (the reference catalogue), "
               f"{load_demo_picks()} synthetic picks added.")
    click.echo(f"Games model: {train_if_untrained('games')}")
    from webapp.demo.gifts import load_demo_gifts

    for line in load_demo_gifts().lines():
        click.echo(line)
    from webapp.demo.gift_history import load_demo_clients_and_gifts

    clients, gifts = load_demo_clients_and_gifts()
    click.echo(f"Gifts: {clients} synthetic clients and {gifts} synthetic past gifts added.")
    click.echo(f"Gift model: {train_if_untrained('gifts')}")
