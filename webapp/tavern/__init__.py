"""The tavern (``tavern`` blueprint): the game catalogue, its styles, covers and imports."""

from flask import Blueprint

from webapp.auth.roles import require_roles

# The blueprint's own stylesheet (static/tavern.css) keeps the tavern's look with the tavern.
bp = Blueprint("tavern", __name__, url_prefix="/tavern", static_folder="static")
bp.before_request(require_roles("host", "staff"))

# Routes attach themselves to bp.
from webapp.tavern import games, import_views, styles, views  # noqa: E402,F401
