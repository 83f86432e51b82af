"""Forms for logging in and for managing accounts."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp

from webapp.auth.models import USERNAME_MAX
from webapp.auth.roles import ROLE_DESCRIPTIONS, ROLES
from webapp.auth.tokens import LABEL_MAX as TOKEN_LABEL_MAX

PASSWORD_MAX = 256


def role_choices() -> list[SelectChoice]:
    """Every role with what it may do, most rights first."""
    return [SelectChoice(role, f"{role}: {ROLE_DESCRIPTIONS[role]}") for role in ROLES]


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("Username", validators=[DataRequired(), Length(max=USERNAME_MAX)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=PASSWORD_MAX)])


class UserCreateForm(FlaskForm):
    """A new account; leave the password empty to have one generated."""

    username = StringField(
        "Username",
        validators=[
            DataRequired(),
            Length(max=USERNAME_MAX),
            Regexp(r"^[A-Za-z0-9_.-]+$", message="Use letters, digits, dot, dash or underscore."),
        ],
    )
    role = SelectField("Role", choices=role_choices())
    password = PasswordField(
        "Password",
        description="Leave empty to generate one; it is shown once.",
        validators=[Optional(), Length(min=8, max=PASSWORD_MAX)],
    )


class RoleForm(FlaskForm):
    """Change an account's role."""

    role = SelectField("Role", choices=[SelectChoice(role) for role in ROLES])


class TokenCreateForm(FlaskForm):
    """Issue an API token: whose, what for, and the most it may do."""

    username = SelectField("Account", choices=[], validators=[DataRequired()],
                           description="Active accounts only: an inactive one's tokens fail.")
    label = StringField("Label", default="api",
                        validators=[DataRequired(), Length(max=TOKEN_LABEL_MAX)],
                        description="What the token is for, to tell it apart later.")
    role = SelectField("Role", default="",
                       choices=[SelectChoice("", "the account's role"), *role_choices()],
                       description="Never above the account's; it also follows the account "
                                   "down if the account is demoted.")
