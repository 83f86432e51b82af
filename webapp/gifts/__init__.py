"""The gifting company (``gifts`` blueprint): items imported from messy sources, a keyboard
labelling queue, rules for cold start, model suggestions, and exports.

Staff only: hosts and anonymous users get 403 / the login page.
"""

from flask import Blueprint

from webapp.auth.roles import require_roles

# The blueprint's own stylesheet and the queue's hotkeys script live in its static folder.
bp = Blueprint("gifts", __name__, url_prefix="/gifts", static_folder="static")
bp.before_request(require_roles("staff"))

# Routes (and ``flask gifts`` commands) attach themselves when their modules are imported.
from webapp.gifts import (  # noqa: E402,F401
    briefs,
    clients,
    export,
    gift_views,
    import_views,
    items,
    models,
    queue,
    rules_views,
    try_labels,
    vocabulary,
)
