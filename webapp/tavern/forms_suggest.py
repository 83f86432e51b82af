"""Forms of the tavern's front desk."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, InputRequired, Length, NumberRange

from ml.games import BUDGETS
from webapp.extensions import MAX_ID
from webapp.fields import IntegerField
from webapp.pizzeria.forms import MultiCheckboxField

BUDGET_LABELS = {"cheap": "Cheap (under the cheap limit)", "standard": "Standard",
                 "premium": "Premium"}


class SuggestForm(FlaskForm):
    """What the party wants (read from the query string, so no CSRF token)."""

    class Meta:
        csrf = False

    budget = RadioField("Budget", default="standard",
                        choices=[SelectChoice(b, b.capitalize()) for b in BUDGETS])
    gameplay = MultiCheckboxField("Gameplay styles", validate_choice=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.budget.data not in BUDGETS:
            self.budget.data = "standard"

    def offer_styles(self) -> None:
        """Load the checkboxes' choices: only the whole page shows them, so the live list
        (one request per tick) skips the query."""
        from webapp.tavern.service import style_vocabulary

        self.gameplay.choices = [SelectChoice(name) for name in style_vocabulary()]


class PickForm(FlaskForm):
    """'They picked this': the game, and the query and suggestions it came from."""

    game_id = IntegerField("Game", validators=[
        InputRequired(message="Choose the game."),
        # An id no row can have was a 500 (the database cannot compare it with an id).
        NumberRange(min=1, max=MAX_ID, message="Choose a game of the catalogue.")])
    budget = HiddenField(validators=[AnyOf(BUDGETS)])
    gameplay = HiddenField(validators=[Length(max=2000)])
    suggested = HiddenField(validators=[Length(max=5000)])
    model_version = HiddenField(validators=[Length(max=64)])
