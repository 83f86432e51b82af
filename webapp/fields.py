"""Form fields shared by the blueprints' forms."""

from __future__ import annotations

from decimal import Decimal

import wtforms
from flask import request
from wtforms.validators import StopValidation

#: The largest integer any column holds (64 bits).
LARGEST = 2**63 - 1


class IntegerField(wtforms.IntegerField):
    """WTForms' IntegerField, refusing a number beyond 64 bits as not a valid integer.

    WTForms' ``NumberRange`` converts the value to float to check for NaN, which raises
    OverflowError past 1e308: 400 typed digits were a 500. No column stores such a number
    anyway, so it is refused where the field parses its input, before any validator runs.
    """

    def process_formdata(self, valuelist) -> None:
        """Parse as WTForms does, then refuse a number no 64-bit column holds."""
        super().process_formdata(valuelist)
        if self.data is not None and not -LARGEST - 1 <= self.data <= LARGEST:
            self.data = None
            raise ValueError(self.gettext("Not a valid integer value."))


def finite(example: str):
    """A validator refusing NaN and infinity, which ``Decimal`` parses but cannot compare with a
    limit or store (a range check raised ``InvalidOperation``: a 500 for ``?budget_min=NaN``).

    Its message asks for a number ``such as {example}``, an amount that suits the field.
    """
    message = f"Give a number, such as {example}."

    def check(form, field) -> None:
        if isinstance(field.data, Decimal) and not field.data.is_finite():
            raise StopValidation(message)

    return check


def posted_version() -> int | None:
    """The version (optimistic lock) the posted form was loaded with, or None when it is
    missing or not a number: the save compares it with the row's before writing."""
    return request.form.get("version", type=int)
