"""Tavern forms: games, covers, budget thresholds, styles, imports and the catalogue filter."""

from __future__ import annotations

import sys
from decimal import Decimal

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired, FileSize
from wtforms import (
    BooleanField,
    DecimalField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from webapp.fields import finite
from webapp.tavern import covers
from webapp.tavern.models import (
    CONSOLE_MAX,
    GAME_NAME_MAX,
    PRICE_MAX,
    STYLE_NAME_MAX,
    UNKNOWN_CONSOLE,
)
from webapp.tavern.service import BUCKET_LABELS, BUCKETS, clean_name

#: Largest games file accepted; imports run within the request, so the size is capped.
MAX_IMPORT_BYTES = 5 * 1024 * 1024


def price_field(label: str, minimum: Decimal = Decimal("0")) -> DecimalField:
    """A price per hour, to the cent, between ``minimum`` and ``PRICE_MAX``."""
    return DecimalField(label, places=2, validators=[
        InputRequired(message=f"Give the {label.lower()}."), finite("4.99"),
        NumberRange(minimum, PRICE_MAX,
                    message=f"Give a price between {minimum} and {PRICE_MAX}."),
    ])


class GameForm(FlaskForm):
    """One game: used to add a game and to edit one inline."""

    name = StringField("Name", filters=[clean_name], validators=[
        DataRequired(message="Give the game's name."), Length(max=GAME_NAME_MAX)])
    console = StringField("Console", filters=[clean_name],
                          description=f"Empty means {UNKNOWN_CONSOLE}.",
                          validators=[Optional(), Length(max=CONSOLE_MAX)])
    price_per_hour = price_field("Price per hour")
    #: Choices are the vocabulary's styles, set by the view (``with_style_choices``).
    styles = SelectMultipleField("Gameplay styles", coerce=int)


class RestoreGameForm(GameForm):
    """A deleted game's values, carried by its Undo button."""

    active = BooleanField("Active")
    cover_filename = HiddenField(validators=[Optional()])

    def validate_cover_filename(self, field) -> None:
        """Only a discarded cover still in the trash can come back (never another game's)."""
        if field.data and not covers.in_trash(field.data):
            field.data = None  # pruned meanwhile: the game comes back without its cover


class ActiveForm(FlaskForm):
    """Offer a game again, or stop suggesting it."""

    active = HiddenField(validators=[AnyOf(("yes", "no"), message="Choose yes or no.")])


class CoverForm(FlaskForm):
    """A cover image: PNG, JPEG or WebP (checked by its bytes), at most 2 MB."""

    cover = FileField("Cover image", validators=[
        FileRequired("Choose an image."),
        FileSize(max_size=covers.MAX_COVER_BYTES,
                 message=f"The image is larger than {covers.MAX_COVER_BYTES // 1024 // 1024} "
                         "MB."),
    ])

    def validate_cover(self, field) -> None:
        """The first bytes must be an accepted image's, whatever the file is called."""
        head = field.data.stream.read(16)
        field.data.stream.seek(0)
        if covers.detect_image_type(head) is None:
            raise ValidationError(f"Only {covers.ACCEPTED} images can be used as covers "
                                  "(this file's content is none of them).")


class BudgetForm(FlaskForm):
    """Where the budget buckets start: 0 < cheap_below < premium_from."""

    cheap_below = price_field("Cheap below", minimum=Decimal("0.01"))
    premium_from = price_field("Premium from", minimum=Decimal("0.01"))

    def validate_premium_from(self, field) -> None:
        """Premium must start above the cheap threshold, or the standard bucket is empty."""
        cheap = self.cheap_below.data
        if (isinstance(cheap, Decimal) and cheap.is_finite() and field.data is not None
                and field.data <= cheap):
            raise ValidationError("Premium must start above the cheap threshold.")


class StyleForm(FlaskForm):
    """A gameplay style's name (added or renamed)."""

    name = StringField("Style", filters=[clean_name], validators=[
        DataRequired(message="Give the style's name."), Length(max=STYLE_NAME_MAX)])


class ImportForm(FlaskForm):
    """A games file to import: the Gamedrop reference CSV or a plain one."""

    games = FileField("Games CSV", validators=[
        FileRequired("Choose a file to upload."),
        FileAllowed(("csv", "txt"), "Only .csv and .txt files can be imported."),
        FileSize(max_size=sys.maxsize, min_size=1, message="The file is empty."),
        FileSize(max_size=MAX_IMPORT_BYTES,
                 message=f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB; "
                         "split it into smaller files."),
    ])
    dry_run = BooleanField("Check only: show what would change, change nothing")


class CatalogueFilterForm(FlaskForm):
    """Search and filters of the catalogue (GET, so no CSRF token)."""

    class Meta:
        csrf = False

    q = StringField("Search by name", validators=[Optional(), Length(max=GAME_NAME_MAX)])
    #: Choices are the vocabulary, set by the view; an unknown style is ignored.
    style = SelectField("Style", choices=[], validate_choice=False)
    budget = SelectField("Budget", validate_choice=False, choices=[
        SelectChoice("", "Any budget"),
        *(SelectChoice(bucket, BUCKET_LABELS[bucket]) for bucket in BUCKETS)])
    status = SelectField("Status", validate_choice=False, choices=[
        SelectChoice("", "Active and inactive"), SelectChoice("active", "Active only"),
        SelectChoice("inactive", "Inactive only")])
