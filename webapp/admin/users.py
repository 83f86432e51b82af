"""Admin pages for accounts: list, create (password shown once), activate or deactivate."""

from __future__ import annotations

from flask import abort, current_app, request
from flask_login import current_user
from sqlalchemy import select

from webapp.admin import bp
from webapp.auth.forms import UserCreateForm
from webapp.auth.models import User
from webapp.auth.service import AccountError, create_user
from webapp.extensions import db
from webapp.htmx import render_page_or_block, trigger

TEMPLATE = "admin/users.html"


def users_page():
    """The current page of users, ordered by name."""
    page = request.args.get("page", 1, type=int)
    query = select(User).order_by(User.username)
    return db.paginate(query, page=page, per_page=current_app.config["PAGE_SIZE"], error_out=False)


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
    user = db.get_or_404(User, user_id)
    if user.id == current_user.id:
        abort(422, "You cannot deactivate your own account.")
    user.active = not user.active
    db.session.commit()
    return render_page_or_block(TEMPLATE, "user_table", form=UserCreateForm(), users=users_page())
