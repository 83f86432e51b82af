"""Admin pages for accounts: list, create (password shown once), change the role, reset the
password (shown once), activate or deactivate. Every change is audited by ``webapp.auth.service``.
"""

from __future__ import annotations

from flask import abort, current_app, request
from flask_login import current_user
from sqlalchemy import select

from webapp.admin import bp
from webapp.auth.forms import RoleForm, UserCreateForm
from webapp.auth.models import User
from webapp.auth.service import (
    AccountError,
    create_user,
    reset_password,
    set_active,
    set_role,
)
from webapp.extensions import db
from webapp.htmx import render_page_or_block, trigger

TEMPLATE = "admin/users.html"


def users_page():
    """The current page of users, ordered by name."""
    page = request.args.get("page", 1, type=int)
    query = select(User).order_by(User.username)
    return db.paginate(query, page=page, per_page=current_app.config["PAGE_SIZE"], error_out=False)


def render_table(status: int = 200, **extra):
    """The users table (the whole page without htmx), with an optional notice or new password."""
    return render_page_or_block(TEMPLATE, "user_table", status=status, form=UserCreateForm(),
                                users=users_page(),
                                notice_category="error" if status >= 400 else "info", **extra)


def other_user_or_refuse(user_id: int, what: str) -> User:
    """The user ``user_id`` (404 if none); 422 when it is the admin's own account, which they
    could lock themselves out of."""
    user = db.get_or_404(User, user_id)
    if user.id == current_user.id:
        abort(422, f"You cannot {what} your own account.")
    return user


@bp.route("/users")
def users():
    """List accounts, with the form to create one."""
    return render_page_or_block(TEMPLATE, "user_table", form=UserCreateForm(), users=users_page())


@bp.route("/users", methods=["POST"])
def users_create():
    """Create an account. Invalid input returns the form with 422; the password is shown once."""
    form = UserCreateForm()
    created = generated_password = None
    if form.validate_on_submit():
        chosen = form.password.data or None
        try:
            created, password = create_user(form.username.data, form.role.data, chosen)
        except AccountError as error:
            form.username.errors.append(str(error))
        else:
            generated_password = None if chosen else password
            form = UserCreateForm(formdata=None)
    status = 201 if created else 422
    response = render_page_or_block(
        TEMPLATE, "user_form", status=status, form=form, users=users_page(),
        created=created, generated_password=generated_password,
    )
    return trigger(response, "users-changed") if created else response


@bp.route("/users/<int:user_id>/active", methods=["POST"])
def users_toggle_active(user_id: int):
    """Activate or deactivate an account (not your own: you would lock yourself out)."""
    user = other_user_or_refuse(user_id, "deactivate")
    try:
        set_active(user, not user.active)
    except AccountError as error:
        return render_table(422, notice=str(error))
    return render_table()


@bp.route("/users/<int:user_id>/role", methods=["POST"])
def users_role(user_id: int):
    """Change an account's role (not your own); its API tokens follow it down."""
    user = other_user_or_refuse(user_id, "change the role of")
    form = RoleForm()
    if not form.validate_on_submit():
        return render_table(422, notice="Choose a role: admin, staff or host.")
    try:
        changed = set_role(user, form.role.data)
    except AccountError as error:
        return render_table(422, notice=str(error))
    notice = f"{user.username} is {'now' if changed else 'already'} {user.role}."
    return render_table(notice=notice)


@bp.route("/users/<int:user_id>/password", methods=["POST"])
def users_password(user_id: int):
    """Give an account a new generated password, shown once (yours: change it elsewhere)."""
    user = other_user_or_refuse(user_id, "reset the password of")
    password = reset_password(user)
    response = render_table(reset_user=user, new_password=password)
    response.headers["Cache-Control"] = "no-store"  # a password: never from a cache
    return response
