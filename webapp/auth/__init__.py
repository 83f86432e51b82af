"""Accounts, roles and login (``auth`` blueprint)."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from webapp.auth import views  # noqa: E402,F401  (routes attach themselves to bp)
