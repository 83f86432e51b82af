"""Home and health check."""

from __future__ import annotations

from flask import jsonify, render_template
from flask_login import current_user
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from webapp.auth.roles import ROLE_DESCRIPTIONS
from webapp.extensions import db
from webapp.main import bp
from webapp.main.nav import nav_items_for


@bp.route("/")
def home():
    """The start page: what this role can do here."""
    sections = [item for item in nav_items_for(current_user.role) if item.endpoint != "main.home"]
    return render_template(
        "main/home.html", sections=sections, role_description=ROLE_DESCRIPTIONS[current_user.role]
    )


@bp.route("/healthz")
def healthz():
    """Liveness and database check for load balancers: 200 when the database answers."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        db.session.rollback()
        return jsonify(status="error", database=type(error).__name__), 503
    return jsonify(status="ok", database="ok")
