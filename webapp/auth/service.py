"""Creating and changing accounts: one place used by the CLI, the admin pages and demo data."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from webapp.auth.models import User
from webapp.auth.roles import ROLES
from webapp.extensions import db


class AccountError(ValueError):
    """A request about an account that cannot be carried out, with a message for the user."""


def generate_password() -> str:
    """A random password that is easy to type once: 16 URL-safe characters."""
    return secrets.token_urlsafe(12)


def find_user(username: str) -> User | None:
    """Return the user called ``username`` (case-insensitive), or None."""
    return db.session.scalar(select(User).where(db.func.lower(User.username) == username.lower()))


def create_user(username: str, role: str, password: str | None = None) -> tuple[User, str]:
    """Create and commit a user; return it with its password (generated when not given).

    Raises
    ------
    AccountError
        When the role is unknown or the username is taken.
    """
    if role not in ROLES:
        raise AccountError(f"Unknown role {role!r}. Choose one of: {', '.join(ROLES)}.")
    if find_user(username) is not None:
        raise AccountError(f"A user called {username!r} already exists.")
    password = password or generate_password()
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user, password
