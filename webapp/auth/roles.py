"""Roles and the checks that enforce them.

``admin`` can do everything; ``staff`` curates and labels; ``host`` runs the tavern and pizzeria
front desk. Every endpoint needs a login unless it is listed in ``PUBLIC_ENDPOINTS``.
"""

from __future__ import annotations

from functools import wraps

from flask import abort, redirect, request, url_for
from flask_login import current_user

from webapp.extensions import htmx

ROLES = ("admin", "staff", "host")
ROLE_DESCRIPTIONS = {
    "admin": "everything, including users and retraining models",
    "staff": "curating and labelling",
    "host": "the tavern and pizzeria front desk",
}
#: Roles from least to most rights. Every page a host may open, staff may open too (the access
#: matrix test checks it), so the roles form a ladder and "the lower of two roles" is defined.
ROLE_LADDER = ("host", "staff", "admin")
PUBLIC_ENDPOINTS = frozenset({"auth.login", "main.healthz", "static"})
#: Blueprints that authenticate every request themselves (the JSON API checks a bearer token and
#: answers 401 in JSON), so the session login and its redirect do not apply to them.
SELF_AUTHENTICATING_BLUEPRINTS = frozenset({"api"})


def role_allows(role: str | None, allowed: tuple[str, ...]) -> bool:
    """True when ``role`` may use something open to ``allowed`` (admin may use anything)."""
    return role == "admin" or role in allowed


def role_rank(role: str) -> int:
    """The position of ``role`` on ``ROLE_LADDER`` (0 for host); -1 for an unknown role."""
    return ROLE_LADDER.index(role) if role in ROLE_LADDER else -1


def lower_role(first: str, second: str) -> str:
    """The role with fewer rights of the two (an unknown role counts lowest)."""
    return first if role_rank(first) <= role_rank(second) else second


def require_login():
    """``before_request`` hook: send anonymous users to the login page.

    Secure by default: a new endpoint needs a login unless it is added to ``PUBLIC_ENDPOINTS``
    or belongs to one of ``SELF_AUTHENTICATING_BLUEPRINTS``.
    """
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    if request.blueprint in SELF_AUTHENTICATING_BLUEPRINTS:
        # Checked before current_user, so the session never authenticates an API request.
        return None
    if current_user.is_authenticated:
        return None
    login_url = url_for("auth.login", next=request.full_path.rstrip("?"))
    if htmx:
        # A fragment must not be swapped with the login page: ask htmx to navigate instead.
        # The short text is for any other client that sends HX-Request (it is never swapped).
        return ("Log in to continue.", 401,
                {"HX-Redirect": login_url, "Content-Type": "text/plain; charset=utf-8"})
    return redirect(login_url)


def require_roles(*roles: str):
    """Return a ``before_request`` hook that limits a whole blueprint to ``roles``."""

    def check():
        if not role_allows(current_user.role, roles):
            abort(403)

    return check


def roles_required(*roles: str):
    """Decorate a view so that only ``roles`` (and admin) may use it; others get 403."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not role_allows(current_user.role, roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate
