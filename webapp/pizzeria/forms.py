"""Pizzeria forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

MAX_RESERVATIONS = 10_000


class PredictForm(FlaskForm):
    """Tonight's reservations (read from the query string, so no CSRF token is needed)."""

    class Meta:
        csrf = False

    reservations = IntegerField(
        "Tonight's reservations",
        validators=[InputRequired(message="Type how many reservations there are tonight."),
                    NumberRange(0, MAX_RESERVATIONS)],
    )
