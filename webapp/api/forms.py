"""Request bodies, validated with WTForms fed from a parsed JSON object.

WTForms is made for HTML forms, where every value is a string to coerce. JSON values arrive
typed, so the integer field here accepts a JSON integer only (``int()`` would quietly turn
``1.5``, ``true`` and ``"15"`` into numbers).
"""

from __future__ import annotations

from werkzeug.datastructures import MultiDict
from wtforms import DateField, Field, Form, IntegerField, StringField
from wtforms.validators import AnyOf, NumberRange, Optional, StopValidation

from ml.games import BUDGETS
from webapp.pizzeria.forms import MAX_RESERVATIONS

#: Most games one recommendation call may ask for.
MAX_LIMIT = 50


class Present:
    """Fail when the key is missing. Unlike ``InputRequired``, a falsy value such as 0 counts."""

    field_flags = {"required": True}

    def __init__(self, message: str = "This field is required.") -> None:
        self.message = message

    def __call__(self, form, field) -> None:
        """Stop the chain with the message when the body has no value for ``field``."""
        if not field.raw_data:
            raise StopValidation(self.message)


class JsonIntegerField(IntegerField):
    """An integer that must be a JSON integer: not a float, a string or a boolean."""

    def process_formdata(self, valuelist) -> None:
        """Refuse anything but an ``int`` (``bool`` is an int subclass in Python, so check it)."""
        if valuelist and (isinstance(valuelist[0], bool) or not isinstance(valuelist[0], int)):
            self.data = None
            raise ValueError(self.invalid_value_message
                             or self.gettext("Not a valid integer value."))
        super().process_formdata(valuelist)

    def pre_validate(self, form) -> None:
        """After a type error, skip the validators: a range check on no number only adds noise."""
        if self.process_errors:
            raise StopValidation()


class JsonStringField(StringField):
    """Text that must be a JSON string (WTForms would choke on, or stringify, anything else)."""

    def process_formdata(self, valuelist) -> None:
        """Refuse numbers, booleans, arrays and objects with a clear message."""
        if valuelist and not isinstance(valuelist[0], str):
            self.data = None
            raise ValueError("Must be a string.")
        super().process_formdata(valuelist)

    def pre_validate(self, form) -> None:
        """After a type error, skip the validators (a length check on no text is noise)."""
        if self.process_errors:
            raise StopValidation()


class JsonDateField(DateField):
    """An ISO date that must arrive as a JSON string."""

    def process_formdata(self, valuelist) -> None:
        """Refuse anything but a string before parsing it as a date."""
        if valuelist and not isinstance(valuelist[0], str):
            self.data = None
            raise ValueError(self.invalid_value_message or "Must be an ISO date, like 2023-05-29.")
        super().process_formdata(valuelist)


class JsonForm(Form):
    """A form filled from a JSON object."""

    @classmethod
    def from_json(cls, payload: dict) -> JsonForm:
        """Build the form from ``payload``; a key whose value is null counts as not sent."""
        # Pairs, not the dict: MultiDict would spread a list value into several values, and
        # {"reservations": [15]} would then pass as 15.
        return cls(MultiDict([(key, value) for key, value in payload.items()
                              if value is not None]))


class PredictionRequest(JsonForm):
    """``{"reservations": 15, "date": "2023-05-29"}``: the night to predict doughs for."""

    reservations = JsonIntegerField(
        validators=[Present("Send the number of reservations, like 15."),
                    NumberRange(0, MAX_RESERVATIONS)],
        invalid_value_message="Must be a whole number, like 15.",
    )
    date = JsonDateField(invalid_value_message="Must be an ISO date, like 2023-05-29.")


class JsonStringListField(Field):
    """A JSON array of strings (an empty array is fine)."""

    def process_formdata(self, valuelist) -> None:
        """Keep the list when every item is a string; refuse anything else."""
        if not valuelist:
            self.data = []
            return
        value = valuelist[0]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.data = []
            raise ValueError("Must be a list of gameplay style names, like [\"Adventure\"].")
        self.data = [item.strip() for item in value]


class RecommendationRequest(JsonForm):
    """``{"budget": "premium", "gameplay": ["Adventure"], "limit": 5}``: a party's wishes."""

    budget = JsonStringField(validators=[
        Present("Send the budget: cheap, standard or premium."),
        AnyOf(BUDGETS, message="Must be one of cheap, standard, premium.")])
    gameplay = JsonStringListField()
    limit = JsonIntegerField(validators=[Optional(), NumberRange(1, MAX_LIMIT)],
                             invalid_value_message="Must be a whole number from 1 to 50.")
