"""Forms of a client's brief and of saving a proposal as a gift."""

from __future__ import annotations

from decimal import Decimal

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    DecimalField,
    HiddenField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from ml import gifts as gifts_ml
from webapp.extensions import MAX_ID, db
from webapp.fields import IntegerField, finite
from webapp.gifts.models import ATTRIBUTES, Client, LabelGroup
from webapp.pizzeria.forms import MultiCheckboxField

BUDGET_LIMIT = Decimal("100000")
#: The label groups a brief reads its occasions and themes from.
OCCASION_GROUP, THEME_GROUP = "occasion", "theme"


def labels_of(group_name: str) -> list[str]:
    """The label names of a group (empty when the group does not exist)."""
    group = db.session.scalar(select(LabelGroup).where(LabelGroup.name == group_name))
    return [label.name for label in group.labels] if group else []


def exclusion_choices() -> list[SelectChoice]:
    """What a brief may exclude: the item attributes, then every non-occasion label."""
    choices = [SelectChoice(name, name) for name in ATTRIBUTES]
    groups = db.session.scalars(select(LabelGroup).where(LabelGroup.name != OCCASION_GROUP)
                                .order_by(LabelGroup.position, LabelGroup.name_key))
    for group in groups:
        choices.extend(SelectChoice(f"{group.name}:{label.name}", f"{label.name} ({group.name})")
                       for label in group.labels)
    return choices


def int_list(values) -> list[int]:
    """The integers among ``values`` (hidden fields the browser sends back), duplicates gone."""
    seen: list[int] = []
    for value in values or ():
        try:
            number = int(value)
        except (TypeError, ValueError):
            continue
        if number not in seen:
            seen.append(number)
    return seen


class BriefForm(FlaskForm):
    """What the client asks for (read from the query string: it changes nothing)."""

    class Meta:
        csrf = False

    client_id = SelectField("Client", coerce=str, validate_choice=False)
    occasion = SelectField("Occasion", validate_choice=False)
    budget_min = DecimalField("Budget per recipient, from", places=2, default=Decimal("30"),
                              validators=[InputRequired("Give the lowest budget."), finite("40"),
                                          NumberRange(min=0, max=BUDGET_LIMIT)])
    budget_max = DecimalField("to", places=2, default=Decimal("60"),
                              validators=[InputRequired("Give the highest budget."), finite("40"),
                                          NumberRange(min=Decimal("0.01"), max=BUDGET_LIMIT)])
    recipients = IntegerField("Recipients", default=10,
                              validators=[InputRequired("How many people receive it?"),
                                          NumberRange(min=1, max=100000)])
    themes = MultiCheckboxField("Themes", validate_choice=False)
    exclude = MultiCheckboxField("Exclude", validate_choice=False)
    avoid_repeats = BooleanField("Avoid items this client received before")
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)])

    def __init__(self, formdata=None, **kwargs):
        super().__init__(formdata, **kwargs)
        # Items staff locked into the first bundle, and items they swapped out: repeated
        # hidden inputs (``lock=3&lock=9``), read as lists of ids.
        self.lock_ids = int_list(formdata.getlist("lock")) if formdata else []
        self.avoid_ids = int_list(formdata.getlist("avoid")) if formdata else []

    def load_choices(self) -> None:
        """Fill the selects and ticks from the clients and the label vocabulary."""
        clients = db.session.execute(select(Client.id, Client.name).order_by(Client.name_key))
        self.client_id.choices = [SelectChoice("", "— no client —")] + [
            SelectChoice(str(client_id), name) for client_id, name in clients]
        self.occasion.choices = [SelectChoice("", "— any —")] + [
            SelectChoice(name, name) for name in labels_of(OCCASION_GROUP)]
        self.themes.choices = [SelectChoice(name, name) for name in labels_of(THEME_GROUP)]
        self.exclude.choices = exclusion_choices()

    def validate_budget_max(self, field) -> None:
        """The budget's max must not be below its min (NaN is refused by ``finite``; compared
        here, it raised ``InvalidOperation``)."""
        low = self.budget_min.data
        if (isinstance(field.data, Decimal) and isinstance(low, Decimal) and low.is_finite()
                and field.data.is_finite() and field.data < low):
            raise ValidationError("The highest budget must be at least the lowest.")

    def client(self) -> Client | None:
        """The chosen client, if any (none for garbage, or an id no row can have: the
        database cannot even look that up)."""
        try:
            client_id = int(self.client_id.data) if self.client_id.data else None
        except (TypeError, ValueError):
            return None
        return db.session.get(Client, client_id) if client_id and 0 < client_id <= MAX_ID \
            else None

    def brief(self, received: frozenset[int] = frozenset()) -> gifts_ml.Brief:
        """The brief as ``ml.gifts`` reads it (call after validation)."""
        client = self.client()
        avoid = set(self.avoid_ids)
        if self.avoid_repeats.data:
            avoid |= received
        return gifts_ml.Brief(
            occasion=self.occasion.data or None, budget_min=float(self.budget_min.data),
            budget_max=float(self.budget_max.data), recipients=self.recipients.data,
            themes=tuple(self.themes.data or ()), exclude=tuple(self.exclude.data or ()),
            industry=(client.industry or None) if client else None,
            avoid=frozenset(avoid), locked=tuple(self.lock_ids))


class SaveGiftForm(FlaskForm):
    """Save one proposed bundle as a gift for a client."""

    client_id = SelectField("Client", coerce=int, validators=[InputRequired(
        "Choose the client this gift is for.")])
    name = StringField("Gift name", validators=[InputRequired("Name the gift."),
                                                Length(max=200)])
    #: "item_id:quantity|item_id:quantity", as the proposal showed it.
    lines = HiddenField(validators=[InputRequired("The bundle is missing."), Length(max=5000)])

    def parsed_lines(self) -> list[tuple[int, int]]:
        """(item id, quantity) pairs; ValueError when the field was tampered with (an id no
        row can have included: the database cannot even look it up)."""
        pairs = []
        for part in (self.lines.data or "").split("|"):
            item_id, _, quantity = part.partition(":")
            if not 0 < int(item_id) <= MAX_ID:
                raise ValueError(f"Not an item id: {item_id[:20]}")
            pairs.append((int(item_id), max(1, min(int(quantity or 1), 999))))
        return pairs


class RecommenderSettingsForm(FlaskForm):
    """How much the learned gift model counts, and when it starts."""

    learned_weight = DecimalField(
        "Gift model weight", places=1, validators=[
            InputRequired("Give a weight (0 turns the model off)."), finite("40"),
            NumberRange(min=0, max=20)],
        description="Added to an item's score times the model's 0–1 score; a matching theme "
                    "counts 3, the occasion 1.5.")
    min_gifts = IntegerField(
        "Past gifts before the model trains", validators=[
            InputRequired("How many past gifts?"), NumberRange(min=5, max=100000)])
