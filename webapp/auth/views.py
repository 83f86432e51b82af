"""Login and logout."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from webapp.auth import bp
from webapp.auth.forms import LoginForm
from webapp.auth.models import utcnow
from webapp.auth.service import find_user
from webapp.extensions import db, limiter


def safe_next(target: str | None) -> str:
    """Return ``target`` when it is a path on this site, else the home page (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("main.home")


def login_limit() -> str:
    """The configured throttle for failed logins, e.g. ``10 per minute``."""
    return current_app.config["LOGIN_RATE_LIMIT"]


def failed_login(response) -> bool:
    """Only failed logins (401) count towards the throttle."""
    return response.status_code == 401


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"], deduct_when=failed_login)
def login():
    """Show the login form; on success go to ``next`` or home. Failed attempts are throttled."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("auth/login.html", form=form), status
    user = find_user(form.username.data)
    if user is None or not user.active or not user.check_password(form.password.data):
        form.password.errors.append("Wrong username or password.")
        return render_template("auth/login.html", form=form), 401
    user.last_login_at = utcnow()
    db.session.commit()
    login_user(user)
    return redirect(safe_next(request.args.get("next")), code=303)


@bp.route("/logout", methods=["POST"])
def logout():
    """Log out (POST, so a stray link or image cannot do it) and return to the login page."""
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"), code=303)
