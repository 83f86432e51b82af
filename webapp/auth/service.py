"""Creating and changing accounts: one place used by the CLI, the admin pages and demo data.

Every change is audited (``webapp.audit``) in the same commit. The last active admin can be
neither demoted nor deactivated, so there is always someone who can manage accounts.
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select

from webapp import audit
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
    db.session.flush()  # the id, for the audit event
    audit.record("user.create", "user", user.id, {"username": user.username, "role": role})
    db.session.commit()
    return user, password


def _check_not_last_admin(user: User, what: str) -> None:
    """AccountError when ``user`` is the only active admin (``what`` would leave none)."""
    if user.role != "admin" or not user.active:
        return
    others = db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.active.is_(True), User.id != user.id))
    if not others:
        raise AccountError(f"{user.username} is the last active admin: {what} would leave "
                           "no one to manage accounts. Make someone else admin first.")


def set_role(user: User, role: str) -> bool:
    """Give ``user`` the role ``role`` and commit; False when it already had it.

    Their API tokens follow: a token acts with the lower of its own role and its user's.

    Raises
    ------
    AccountError
        When the role is unknown, or ``user`` is the last active admin and ``role`` is not admin.
    """
    if role not in ROLES:
        raise AccountError(f"Unknown role {role!r}. Choose one of: {', '.join(ROLES)}.")
    if role == user.role:
        return False
    _check_not_last_admin(user, f"making them {role}")
    audit.record("user.role", "user", user.id,
                 {"username": user.username, "from": user.role, "to": role})
    user.role = role
    db.session.commit()
    return True


def set_active(user: User, active: bool) -> bool:
    """Activate or deactivate ``user`` and commit; False when nothing changed.

    A deactivated user cannot log in, loses their session, and their API tokens stop working.

    Raises
    ------
    AccountError
        When deactivating the last active admin.
    """
    if user.active == active:
        return False
    if not active:
        _check_not_last_admin(user, "deactivating them")
    audit.record("user.activate" if active else "user.deactivate", "user", user.id,
                 {"username": user.username})
    user.active = active
    db.session.commit()
    return True


def reset_password(user: User, password: str | None = None) -> str:
    """Set a new password for ``user`` (generated when not given), commit, and return it.

    The audit event says that it was reset and by whom, never the password.
    """
    generated = not password
    password = password or generate_password()
    user.set_password(password)
    audit.record("user.password_reset", "user", user.id,
                 {"username": user.username, "generated": generated})
    db.session.commit()
    return password
