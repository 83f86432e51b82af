"""The navigation: which sections each role sees.

A section appears once its blueprint is registered, so the menu grows with the app and never
links to a page that does not exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from flask import current_app, request, url_for
from flask_login import current_user

from webapp.auth.roles import role_allows


@dataclass(frozen=True)
class NavItem:
    """One entry of the navigation bar."""

    endpoint: str
    label: str
    roles: tuple[str, ...]
    description: str


NAV = (
    NavItem("main.home", "Home", ("staff", "host"), "Your start page."),
    NavItem("pizzeria.index", "Pizzeria", ("host", "staff"), "Nights, doughs and predictions."),
    NavItem("tavern.index", "Tavern", ("host", "staff"), "Game catalogue and suggestions."),
    NavItem("gifts.index", "Gifts", ("staff",), "Items, labels and gift recommendations."),
    NavItem("admin.models", "Models", (), "Retrain, compare and roll back models."),
    NavItem("admin.users", "Users", (), "Accounts, roles and API tokens."),
    NavItem("admin.audit_log", "Audit", (), "Who changed labels, rules, models and users."),
)


def nav_items_for(role: str | None) -> list[NavItem]:
    """The sections ``role`` may open, among those registered in this app."""
    registered = current_app.view_functions
    return [item for item in NAV if item.endpoint in registered and role_allows(role, item.roles)]


def current_section(items: list[NavItem]) -> str | None:
    """The endpoint of the section the current page belongs to: the longest URL prefix match.

    Blueprints are not enough: Models and Users are both in ``admin``.
    """
    best, best_length = None, 0
    for item in items:
        url = url_for(item.endpoint)
        matches = request.path == url or (url != "/" and request.path.startswith(url))
        if matches and len(url) > best_length:
            best, best_length = item.endpoint, len(url)
    return best


def inject_nav() -> dict:
    """Context processor: the navigation for the current user and the active section."""
    if not current_user.is_authenticated:
        return {"nav_items": [], "current_section": None}
    items = nav_items_for(current_user.role)
    return {"nav_items": items, "current_section": current_section(items)}


def inject_model_badge() -> dict:
    """Context processor: the model versions this worker process serves, for the header."""
    if not current_user.is_authenticated:
        return {"served_models": {}, "worker_pid": None}
    from webapp.ml_bridge import served_versions  # local: keeps nav importable without ml

    return {"served_models": served_versions(), "worker_pid": os.getpid()}
