"""Form fields shared by the blueprints' forms."""

from __future__ import annotations

import wtforms

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
