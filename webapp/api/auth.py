"""Bearer-token authentication and role checks for the API.

A request acts with its token's *effective* role: the lower of the token's own role and its
user's role now (``ApiToken.effective_role``). Role checks read that, never the user's role.
"""

from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from webapp.api import bp
from webapp.auth import tokens
from webapp.auth.models import User
from webapp.auth.roles import role_allows


def public(view):
    """Mark an API view as open without a token (only for views that reveal no data)."""
    view.api_public = True
    return view


@bp.before_request
def authenticate_bearer_token() -> None:
    """Every API request needs a live token; otherwise 401.

    The token's user becomes ``g.api_user`` and its effective role ``g.api_role``.

    The session is deliberately not consulted (see ``webapp.api``): a logged-in browser without
    a token gets 401 too, which keeps the API free of CSRF. Views marked :func:`public` skip it.
    """
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "api_public", False):
        return
    credentials = request.authorization
    raw = credentials.token if credentials is not None and credentials.type == "bearer" else None
    token = tokens.authenticate(raw) if raw else None
    if token is None:
        raise Unauthorized(www_authenticate=WWWAuthenticate("bearer"))
    g.api_user, g.api_role = token.user, token.effective_role


def api_user() -> User:
    """The user whose token authenticated this API request."""
    return g.api_user


def api_role() -> str:
    """The role this API request acts with (the lower of its token's and its user's)."""
    return g.api_role


def roles_required(*roles: str):
    """Decorate an API view so that only ``roles`` (and admin) may use it; others get 403.

    It checks the token's effective role, so a host-scoped token of an admin is a host here.
    """

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not role_allows(api_role(), roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate
