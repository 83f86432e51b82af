"""Pizzeria forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FloatField,
    SelectField,
    SelectMultipleField,
    StringField,
    widgets,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from webapp.fields import IntegerField

MAX_RESERVATIONS = 10_000


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes (WTForms' documented recipe)."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class PredictForm(FlaskForm):
    """Tonight's reservations (read from the query string, so no CSRF token is needed)."""

    class Meta:
        csrf = False

    reservations = IntegerField(
        "Tonight's reservations",
        validators=[InputRequired(message="Type how many reservations there are tonight."),
                    NumberRange(0, MAX_RESERVATIONS)],
    )
    date = DateField("Date (optional)", validators=[Optional()])


class NightForm(FlaskForm):
    """One night; used for adding, inline editing and undoing a delete."""

    date = DateField("Date", validators=[InputRequired(message="Give the night's date.")])
    reservations = IntegerField("Reservations", validators=[Optional(), NumberRange(0, 10_000)])
    doughs = IntegerField("Doughs used", validators=[Optional(), NumberRange(0, 100_000)])
    temperature = FloatField("Temperature °C", validators=[Optional(), NumberRange(-50, 60)])
    holiday = BooleanField("Holiday")
    event_note = StringField("Event", validators=[Optional(), Length(max=200)],
                             filters=[lambda value: value.strip() if value else None])
    excluded = BooleanField("Leave out of training")


class NightFilterForm(FlaskForm):
    """Filter the nights table (GET, so no CSRF token)."""

    class Meta:
        csrf = False

    month = SelectField("Month", choices=[], validate_choice=False)
    weekday = SelectField("Weekday", choices=[], validate_choice=False)


class ExcludedWeekdaysForm(FlaskForm):
    """Which weekdays never train the model (a night's demand is not represented)."""

    weekdays = MultiCheckboxField("Leave out of training", coerce=int)
