"""Administration: users and their API tokens, models, and the audit log. Admin role only."""

from flask import Blueprint

from webapp.auth.roles import require_roles

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(require_roles("admin"))

from webapp.admin import audit, models, tokens, users  # noqa: E402,F401  (routes attach themselves to bp)
