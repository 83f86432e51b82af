"""The pizzeria (``pizzeria`` blueprint): nights, reservations, doughs and live predictions."""

from flask import Blueprint

from webapp.auth.roles import require_roles

bp = Blueprint("pizzeria", __name__, url_prefix="/pizzeria")
bp.before_request(require_roles("host", "staff"))

# Routes attach themselves to bp.
from webapp.pizzeria import evaluation, import_views, nights, views  # noqa: E402,F401
