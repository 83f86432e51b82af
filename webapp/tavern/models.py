"""The tavern's tables: games, the gameplay-style vocabulary, budget settings, picks, imports.

Names of games and styles are unique case-insensitively: each row keeps ``name`` as written and
``name_key`` (see ``name_key()``), a folded form with a unique index. A functional index on
``lower(name)`` would do the same, but SQLite's ``lower()`` folds ASCII only and Alembic cannot
compare expression indexes, so the key is stored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Numeric,
    String,
    Table,
    Text,
    false,
    select,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.singletons import singleton_row

GAME_NAME_MAX = 200
CONSOLE_MAX = 100
STYLE_NAME_MAX = 60
#: What a game's console is when nobody knows yet (the reference data's own word).
UNKNOWN_CONSOLE = "TBD"
#: Prices are per hour, stored to the cent; NUMERIC(8, 2) holds up to 999,999.99.
PRICE_MAX = Decimal("9999.99")
DEFAULT_CHEAP_BELOW = Decimal("5.00")
DEFAULT_PREMIUM_FROM = Decimal("20.00")
#: ``str.casefold`` can make a name longer (ß -> ss); three times is the worst case.
KEY_FACTOR = 3


def name_key(name: str) -> str:
    """The form of a name that must be unique: spaces collapsed, case folded."""
    return " ".join(name.split()).casefold()


def money() -> Numeric:
    """The column type of a price: exact to the cent, returned as ``Decimal``."""
    return Numeric(8, 2)


#: Which styles each game has (many-to-many). A row goes with its game or its style.
game_gameplay = Table(
    "tavern_game_gameplay",
    db.metadata,
    Column("game_id", ForeignKey("tavern_game.id", ondelete="CASCADE"), primary_key=True),
    Column("style_id", ForeignKey("tavern_gameplay_style.id", ondelete="CASCADE"),
           primary_key=True, index=True),
)


class GameplayStyle(db.Model):
    """One word of the gameplay vocabulary (``RPG``, ``Puzzle``), edited by staff."""

    __tablename__ = "tavern_gameplay_style"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(STYLE_NAME_MAX), unique=True)
    name_key: Mapped[str] = mapped_column(String(STYLE_NAME_MAX * KEY_FACTOR), unique=True)

    def __repr__(self) -> str:
        return f"<GameplayStyle {self.name!r}>"


class Game(db.Model):
    """A game the tavern rents out by the hour."""

    __tablename__ = "tavern_game"
    __table_args__ = (CheckConstraint("price_per_hour >= 0", name="price_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(GAME_NAME_MAX), unique=True)
    name_key: Mapped[str] = mapped_column(String(GAME_NAME_MAX * KEY_FACTOR), unique=True)
    console: Mapped[str] = mapped_column(String(CONSOLE_MAX), default=UNKNOWN_CONSOLE)
    price_per_hour: Mapped[Decimal] = mapped_column(money())
    #: An inactive game stays in the catalogue (and in the history of picks) but is never
    #: suggested.
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: A name the app generated (never the uploader's), under the covers folder.
    cover_filename: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: Optimistic locking: every ORM UPDATE checks and bumps it, so two staff editing the same
    #: game cannot silently overwrite each other (the second save raises StaleDataError).
    version: Mapped[int] = mapped_column(server_default=text("1"))

    #: Loaded with the game in one extra query per page of games, never one per row.
    styles: Mapped[list[GameplayStyle]] = relationship(
        secondary=game_gameplay, lazy="selectin", order_by=GameplayStyle.name_key)

    __mapper_args__ = {"version_id_col": version}

    @property
    def style_names(self) -> tuple[str, ...]:
        """The names of the game's styles, sorted as the ML vocabulary is."""
        return tuple(sorted(style.name for style in self.styles))

    def __repr__(self) -> str:
        return f"<Game {self.name!r} {self.price_per_hour}>"


class TavernSettings(db.Model):
    """The tavern's budget buckets (one row).

    cheap: price < cheap_below <= standard < premium_from <= premium.
    """

    __tablename__ = "tavern_settings"
    __table_args__ = (
        CheckConstraint("cheap_below > 0 AND cheap_below < premium_from",
                        name="thresholds_ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cheap_below: Mapped[Decimal] = mapped_column(money(), default=DEFAULT_CHEAP_BELOW)
    premium_from: Mapped[Decimal] = mapped_column(money(), default=DEFAULT_PREMIUM_FROM)


def tavern_settings() -> TavernSettings:
    """The settings row, created with the defaults on first use (race-free)."""
    return singleton_row(TavernSettings, {"cheap_below": DEFAULT_CHEAP_BELOW,
                                          "premium_from": DEFAULT_PREMIUM_FROM})


class GamePick(db.Model):
    """What a guest asked for, what was suggested, and which game they picked.

    The game's name is kept beside its id, so the history survives the game's deletion
    (``game_id`` then becomes NULL). ``game_name`` is NULL when the guest picked none of the
    suggestions (a miss, which evaluation needs too).
    """

    __tablename__ = "tavern_game_pick"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    #: The budget bucket asked for: "cheap", "standard" or "premium".
    budget: Mapped[str] = mapped_column(String(16))
    #: The gameplay styles asked for, as a JSON list of names.
    gameplay: Mapped[list] = mapped_column(JSON, default=list)
    #: The suggested games' names, best first.
    suggested: Mapped[list] = mapped_column(JSON, default=list)
    game_id: Mapped[int | None] = mapped_column(
        ForeignKey("tavern_game.id", ondelete="SET NULL"), index=True)
    game_name: Mapped[str | None] = mapped_column(String(GAME_NAME_MAX))
    model_version: Mapped[str | None] = mapped_column(String(64))
    #: True for picks generated for training or tests, not made by a guest.
    synthetic: Mapped[bool] = mapped_column(default=False, server_default=false())


def new_import_id() -> str:
    """A random id, safe to show in URLs."""
    return uuid.uuid4().hex


class CatalogueImport(db.Model):
    """One import of a games file: what it changed, and its reject report."""

    __tablename__ = "tavern_import"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_import_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    #: "reference" (the Gamedrop export) or "plain" (name, console, price, gameplay).
    file_format: Mapped[str] = mapped_column(String(16))
    #: A check only: the counts say what importing would do, and nothing was written.
    dry_run: Mapped[bool] = mapped_column(default=False, server_default=false())
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    reject_count: Mapped[int] = mapped_column(default=0)
    #: Styles the file introduced (created unless a dry run).
    new_styles: Mapped[list] = mapped_column(JSON, default=list)
    #: The first rejects ({line, reason}) and notes about the whole file, for the page.
    preview: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The downloadable reject report (CSV text), already safe to open in a spreadsheet.
    report: Mapped[str] = mapped_column(Text, deferred=True, default="")


def recent_imports(limit: int = 10) -> list[CatalogueImport]:
    """The newest imports, newest first."""
    query = (select(CatalogueImport).order_by(CatalogueImport.created_at.desc(),
                                              CatalogueImport.id).limit(limit))
    return list(db.session.scalars(query))
