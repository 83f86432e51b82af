"""Forms for logging in and for managing accounts."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp

from webapp.auth.models import USERNAME_MAX
from webapp.auth.roles import ROLE_DESCRIPTIONS, ROLES

PASSWORD_MAX = 256


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
    role = SelectField(
        "Role",
        choices=[SelectChoice(role, f"{role}: {ROLE_DESCRIPTIONS[role]}") for role in ROLES],
    )
    password = PasswordField(
        "Password",
        description="Leave empty to generate one; it is shown once.",
        validators=[Optional(), Length(min=8, max=PASSWORD_MAX)],
    )
