"""Home page, navigation and the health check (``main`` blueprint, no URL prefix)."""

from flask import Blueprint

bp = Blueprint("main", __name__)

from webapp.main import views  # noqa: E402,F401  (routes attach themselves to bp)
