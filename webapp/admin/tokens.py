"""Admin page for API tokens: every token with its role, issue one (shown once), revoke one.

``flask users token`` / ``tokens`` / ``revoke-token`` do the same from the command line. Issuing
and revoking are audited by ``webapp.auth.tokens``.
"""

from __future__ import annotations

from flask import abort, current_app, request
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from webapp.admin import bp
from webapp.auth import tokens
from webapp.auth.forms import TokenCreateForm
from webapp.auth.models import User
from webapp.auth.service import find_user
from webapp.extensions import db
from webapp.htmx import render_page_or_block, trigger

TEMPLATE = "admin/tokens.html"
CHANGED = "tokens-changed"


def token_form(from_request: bool = True) -> TokenCreateForm:
    """The issue form, its accounts being the active users."""
    form = TokenCreateForm() if from_request else TokenCreateForm(formdata=None)
    users = db.session.scalars(select(User).where(User.active.is_(True))
                               .order_by(User.username))
    form.username.choices = [SelectChoice(user.username, f"{user.username} ({user.role})")
                             for user in users]
    return form


def tokens_page():
    """The current page of tokens, newest first."""
    page = request.args.get("page", 1, type=int)
    return db.paginate(tokens.all_tokens_query(), page=page,
                       per_page=current_app.config["PAGE_SIZE"], error_out=False)


@bp.route("/users/tokens")
def tokens_list():
    """Every API token with its account, role, use and state; the form to issue one."""
    return render_page_or_block(TEMPLATE, "token_table", tokens=tokens_page(),
                                form=token_form(from_request=False))


@bp.route("/users/tokens", methods=["POST"])
def tokens_create():
    """Issue a token (201, shown once); 422 with the reason next to the field otherwise."""
    form = token_form()
    raw = created = None
    if form.validate_on_submit():
        user = find_user(form.username.data)
        try:
            raw = tokens.create_token(user, form.label.data, form.role.data or None)
        except tokens.TokenError as error:
            # The form's validators already passed the label, so the refusal is the role's.
            form.role.errors = [*form.role.errors, str(error)]
        else:
            created = tokens.tokens_for(user)[-1]
            form = token_form(from_request=False)
    response = render_page_or_block(TEMPLATE, "token_form", status=201 if raw else 422,
                                    form=form, tokens=tokens_page(), raw_token=raw,
                                    created=created)
    response.headers["Cache-Control"] = "no-store"  # may carry a token: never from a cache
    return trigger(response, CHANGED) if raw else response


@bp.route("/users/tokens/<int:token_id>/revoke", methods=["POST"])
def tokens_revoke(token_id: int):
    """Revoke a token: it stops working at once (revoking twice changes nothing)."""
    token = tokens.revoke(token_id)
    if token is None:
        abort(404, "There is no such API token.")
    return render_page_or_block(TEMPLATE, "token_table", tokens=tokens_page(),
                                form=token_form(from_request=False),
                                notice=f"Token {token.label} ({token.prefix}…) of "
                                       f"{token.user.username} is revoked.")
