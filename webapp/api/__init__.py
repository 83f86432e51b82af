"""JSON API, version 1 (``api`` blueprint at ``/api/v1``), authenticated by bearer tokens.

The API is stateless: every request carries ``Authorization: Bearer <token>`` (see
``flask users token``), the session cookie never authenticates and is never set, and every
error is JSON.
"""

from flask import Blueprint

from webapp.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# CSRF rides on credentials a browser attaches by itself (cookies). A bearer token is only ever
# sent by code that holds it, and this API ignores the session cookie, so a forged cross-site
# request carries no credentials here and there is nothing for a CSRF token to protect.
csrf.exempt(bp)

# Hooks, error handlers and routes attach themselves to bp.
from webapp.api import auth, errors, gifts, openapi, views  # noqa: E402,F401
