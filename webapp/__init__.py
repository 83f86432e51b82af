"""Curate: the Flask application factory.

Nothing runs at import time: ``create_app`` builds the configuration, binds the extensions,
registers blueprints, error handlers and CLI commands, and returns the app.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from webapp import config as config_module
from webapp.extensions import MAX_ID, IdConverter
from webapp.security import trust_proxy_headers

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Build a Curate app: defaults, then environment variables, then ``test_config``."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
    )
    configure(app, test_config or {})
    # Before any route is added: every <int:id> is bounded to what an id column holds.
    app.url_map.converters["int"] = IdConverter
    init_extensions(app)
    register_blueprints(app)
    register_hooks(app)
    register_cli(app)
    trust_proxy_headers(app)  # last: the outermost WSGI layer, so all within see the client
    return app


def configure(app: Flask, test_config: dict) -> None:
    """Layer the configuration and make sure the instance folder exists."""
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(config_module.defaults(app.instance_path))
    app.config.update(config_module.from_environment())
    app.config.update(test_config)
    app.config["SECRET_KEY"] = config_module.ensure_secret_key(app.config, app.instance_path)
    config_module.validate(app.config)
    if app.config["ENV"] == "production":
        # Cookies only over HTTPS in production (Flask's own default is False).
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def init_extensions(app: Flask) -> None:
    """Bind the unbound extensions to ``app``."""
    from webapp.auth import tokens  # noqa: F401  (the api_token table)
    from webapp.auth.models import User
    from webapp.extensions import csrf, db, htmx, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    with app.app_context():
        tune_sqlite(db.engine)

    @login_manager.user_loader
    def load_user(session_id: str):
        # "id:stamp" (User.get_id): a session from before a password reset finds no user.
        user_id, _, stamp = session_id.partition(":")
        if not (user_id.isascii() and user_id.isdigit() and 0 < int(user_id) <= MAX_ID):
            return None
        user = db.session.get(User, int(user_id))
        if user is None or not user.active or not user.holds_session(stamp):
            return None
        return user


def tune_sqlite(engine) -> None:
    """WAL and a busy timeout let web workers read while a job thread writes (SQLite only)."""
    from sqlalchemy import event

    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the app
        # loses nothing, a power cut may lose the last commits, and the database stays sound.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def register_blueprints(app: Flask) -> None:
    """Register one blueprint per feature; local imports keep import time free of cycles."""
    from webapp.admin import bp as admin_bp
    from webapp.api import bp as api_bp
    from webapp.auth import bp as auth_bp
    from webapp.gifts import bp as gifts_bp
    from webapp.main import bp as main_bp
    from webapp.pizzeria import bp as pizzeria_bp
    from webapp.tavern import bp as tavern_bp

    for blueprint in (main_bp, auth_bp, admin_bp, pizzeria_bp, tavern_bp, gifts_bp, api_bp):
        app.register_blueprint(blueprint)


def register_hooks(app: Flask) -> None:
    """Login enforcement, navigation, the Vary and security headers, and error pages."""
    from webapp.auth.roles import require_login
    from webapp.errors import register_error_handlers
    from webapp.htmx import add_vary_header
    from webapp.main.nav import inject_model_badge, inject_nav
    from webapp.security import add_security_headers, refuse_nul_and_nameless_fields
    from webapp.templating import register_template_globals

    app.before_request(require_login)
    app.before_request(refuse_nul_and_nameless_fields)
    app.after_request(add_vary_header)
    app.after_request(add_security_headers)
    app.context_processor(inject_nav)
    app.context_processor(inject_model_badge)
    register_error_handlers(app)
    register_template_globals(app)


def register_cli(app: Flask) -> None:
    """``flask users``, ``flask demo``, ``flask models``, ``flask jobs``; model kinds and tasks."""
    from webapp.auth.cli import users_cli
    from webapp.backup import backup_command, restore_command
    from webapp.demo import demo_cli
    from webapp.gifts.cli import gifts_cli
    from webapp.gifts.tasks import register_gifts_tasks
    from webapp.jobs.runner import register_task
    from webapp.jobs.worker import jobs_cli
    from webapp.ml_bridge import register_kinds, retrain_task
    from webapp.ml_bridge.cli import models_cli
    from webapp.pizzeria.cli import pizzeria_cli
    from webapp.pizzeria.imports import import_task
    from webapp.tavern.cli import tavern_cli

    register_kinds()
    register_task("retrain", retrain_task)
    register_task("pizzeria-import", import_task)
    register_gifts_tasks()
    for group in (users_cli, demo_cli, models_cli, jobs_cli, pizzeria_cli, tavern_cli,
                  gifts_cli, backup_command, restore_command):
        app.cli.add_command(group)
