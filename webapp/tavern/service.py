"""Tavern queries and changes: the catalogue, budget buckets, the style vocabulary.

Also the plain-data accessors the ML bridge reads (``active_games_plain``, ``style_vocabulary``,
``budget_thresholds``): tuples of names and floats, never ORM rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.tavern import covers
from webapp.tavern.models import (
    UNKNOWN_CONSOLE,
    Game,
    GamePick,
    GameplayStyle,
    TavernSettings,
    game_gameplay,
    name_key,
    tavern_settings,
)

#: The budget buckets, cheapest first, with how the page names them.
BUCKETS = ("cheap", "standard", "premium")
BUCKET_LABELS = {"cheap": "Cheap", "standard": "Standard", "premium": "Premium"}
CENT = Decimal("0.01")
#: What a game's editable fields are (what an undo needs to bring a deleted game back).
GAME_FIELDS = ("name", "console", "price_per_hour", "active", "cover_filename")


class DuplicateName(ValueError):
    """Another game (or style) already has this name, whatever its case."""


class StyleInUse(ValueError):
    """A style that games still use cannot be deleted."""


def to_cents(value: Decimal | float | int | str) -> Decimal:
    """A price rounded to the cent, half up (4.995 -> 5.00), as the column stores it."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def clean_name(value: str | None) -> str | None:
    """A name as stored: trimmed, with runs of spaces collapsed to one."""
    return " ".join(value.split()) if value is not None else None


# --- Budget buckets -------------------------------------------------------------------------


def bucket_of(price: Decimal, settings: TavernSettings) -> str:
    """The budget bucket of ``price``: cheap < cheap_below <= standard < premium_from <= premium."""
    if price < settings.cheap_below:
        return "cheap"
    return "standard" if price < settings.premium_from else "premium"


def _bucket_condition(bucket: str, settings: TavernSettings):
    price = Game.price_per_hour
    if bucket == "cheap":
        return price < settings.cheap_below
    if bucket == "premium":
        return price >= settings.premium_from
    return (price >= settings.cheap_below) & (price < settings.premium_from)


def bucket_counts(settings: TavernSettings) -> dict[str, int]:
    """How many active games fall in each bucket (one query)."""
    columns = [func.count(case((_bucket_condition(bucket, settings), 1))) for bucket in BUCKETS]
    counts = db.session.execute(select(*columns).where(Game.active)).one()
    return dict(zip(BUCKETS, counts, strict=True))


def update_thresholds(settings: TavernSettings, cheap_below: Decimal,
                      premium_from: Decimal) -> None:
    """Store new bucket thresholds (the form has checked 0 < cheap_below < premium_from)."""
    settings.cheap_below, settings.premium_from = to_cents(cheap_below), to_cents(premium_from)
    db.session.commit()


# --- The catalogue --------------------------------------------------------------------------


def style_by_name(name: str) -> GameplayStyle | None:
    """The style called ``name`` (any case), or None."""
    return db.session.scalar(select(GameplayStyle).where(GameplayStyle.name_key == name_key(name)))


def games_query(search: str | None = None, style: GameplayStyle | None = None,
                budget: str | None = None, status: str | None = None,
                settings: TavernSettings | None = None):
    """Games by name, filtered by a name search, a style, a budget bucket and active status."""
    query = select(Game).order_by(Game.name_key, Game.id)
    if search and search.strip():
        query = query.where(Game.name_key.contains(name_key(search), autoescape=True))
    if style is not None:
        query = query.where(Game.styles.any(GameplayStyle.id == style.id))
    if budget in BUCKETS:
        query = query.where(_bucket_condition(budget, settings or tavern_settings()))
    if status in ("active", "inactive"):
        query = query.where(Game.active == (status == "active"))
    return query


def styles_by_ids(ids: Iterable[int]) -> list[GameplayStyle]:
    """The styles with these ids (unknown ids are left out)."""
    ids = list(ids)
    if not ids:
        return []
    return list(db.session.scalars(select(GameplayStyle).where(GameplayStyle.id.in_(ids))))


def _name_taken(model, key: str, own_id: int | None) -> bool:
    clash = db.session.scalar(select(model.id).where(model.name_key == key))
    return clash is not None and clash != own_id


def save_game(game: Game, name: str, console: str | None, price: Decimal,
              style_ids: Iterable[int]) -> Game:
    """Apply the editable values to ``game`` (new or existing) and commit.

    An empty console becomes "TBD". Raises DuplicateName when another game has the name in any
    case, also when a concurrent request took it first (the unique index decides).
    """
    name = clean_name(name)
    # Both queries run before any change, so autoflush never writes a half-edited game.
    if _name_taken(Game, name_key(name), game.id):
        raise DuplicateName(f"There is already a game called “{name}”.")
    styles = sorted(styles_by_ids(style_ids), key=lambda style: style.name_key)
    game.name, game.name_key = name, name_key(name)
    game.console = clean_name(console) or UNKNOWN_CONSOLE
    game.price_per_hour = to_cents(price)
    game.styles = styles
    db.session.add(game)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise DuplicateName(f"There is already a game called “{name}”.") from None
    return game


def set_active(game: Game, active: bool) -> None:
    """Offer the game (active) or stop suggesting it (inactive), keeping its history."""
    game.active = active
    db.session.commit()


def game_values(game: Game) -> dict:
    """The fields of ``game`` that an undo needs, with its style ids."""
    values = {name: getattr(game, name) for name in GAME_FIELDS}
    values["style_ids"] = [style.id for style in game.styles]
    return values


def delete_game(game: Game) -> dict:
    """Delete ``game`` and return its values for an undo.

    Its picks keep the game's name (their ``game_id`` becomes NULL); its cover goes to the
    trash for the grace period, so an undo can bring it back.
    """
    values = game_values(game)
    db.session.delete(game)
    db.session.commit()
    covers.discard(values["cover_filename"])
    covers.prune_trash()
    return values


def restore_game(name: str, console: str | None, price: Decimal, style_ids: Iterable[int],
                 active: bool, cover_filename: str | None) -> Game:
    """Bring a deleted game back (Undo), with its cover if still in the trash, re-linking the
    picks that still name it.

    Raises DuplicateName when a game with that name was added meanwhile.
    """
    game = Game(active=active)
    save_game(game, name, console, price, style_ids)
    if cover_filename and covers.recover(cover_filename):
        game.cover_filename = cover_filename
    db.session.execute(update(GamePick).where(GamePick.game_id.is_(None),
                                              GamePick.game_name == game.name)
                       .values(game_id=game.id))
    db.session.commit()
    return game


def set_cover(game: Game, filename: str | None) -> None:
    """Point ``game`` at a new cover file (or none); the previous one goes to the trash."""
    previous, game.cover_filename = game.cover_filename, filename
    db.session.commit()
    covers.discard(previous)
    covers.prune_trash()


def cover_in_use(name: str) -> bool:
    """True when a game shows the cover ``name`` (only those are served)."""
    return db.session.scalar(select(Game.id).where(Game.cover_filename == name).limit(1)) \
        is not None


# --- The gameplay-style vocabulary ----------------------------------------------------------


def style_usage() -> list[tuple[GameplayStyle, int]]:
    """Every style with the number of games that use it, by name."""
    count = func.count(game_gameplay.c.game_id)
    query = (select(GameplayStyle, count)
             .outerjoin(game_gameplay, game_gameplay.c.style_id == GameplayStyle.id)
             .group_by(GameplayStyle.id).order_by(GameplayStyle.name_key))
    return [(style, used) for style, used in db.session.execute(query)]


def style_use_count(style: GameplayStyle) -> int:
    """How many games use ``style``."""
    return db.session.scalar(select(func.count()).select_from(game_gameplay)
                             .where(game_gameplay.c.style_id == style.id))


def save_style(style: GameplayStyle, name: str) -> GameplayStyle:
    """Add or rename a style; raises DuplicateName when another style has the name (any case).

    Renaming a style to another case of its own name is fine ("rpg" -> "RPG").
    """
    name = clean_name(name)
    if _name_taken(GameplayStyle, name_key(name), style.id):
        raise DuplicateName(f"There is already a style called “{name}”.")
    style.name, style.name_key = name, name_key(name)
    db.session.add(style)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise DuplicateName(f"There is already a style called “{name}”.") from None
    return style


def delete_style(style: GameplayStyle) -> None:
    """Delete an unused style; raises StyleInUse (with the count) when games still use it."""
    used = style_use_count(style)
    if used:
        games = "1 game uses" if used == 1 else f"{used} games use"
        raise StyleInUse(f"“{style.name}” cannot be deleted: {games} it. Detach it from "
                         f"{'that game' if used == 1 else 'them'} first, or keep it.")
    db.session.delete(style)
    db.session.commit()


def detach_style(style: GameplayStyle) -> int:
    """Remove ``style`` from every game that has it; returns how many games lost it."""
    result = db.session.execute(delete(game_gameplay).where(game_gameplay.c.style_id == style.id))
    db.session.commit()
    db.session.expire_all()  # games loaded in this session still list the style
    return result.rowcount


# --- Plain data for the ML bridge -------------------------------------------------------------


def active_games_plain() -> list[tuple[str, float, tuple[str, ...]]]:
    """Every active game as ``(name, price per hour, styles sorted)``, sorted by name.

    Sorted in Python, not by the database's collation, so every database gives the same order
    (the reference model's class order).
    """
    query = (select(Game.name, Game.price_per_hour, GameplayStyle.name)
             .outerjoin(game_gameplay, game_gameplay.c.game_id == Game.id)
             .outerjoin(GameplayStyle, GameplayStyle.id == game_gameplay.c.style_id)
             .where(Game.active))
    games: dict[str, tuple[float, list[str]]] = {}
    for name, price, style in db.session.execute(query):
        entry = games.setdefault(name, (float(price), []))
        if style is not None:
            entry[1].append(style)
    return [(name, price, tuple(sorted(styles)))
            for name, (price, styles) in sorted(games.items())]


def style_vocabulary() -> tuple[str, ...]:
    """Every gameplay style's name, sorted (in Python, for the same reason as above)."""
    return tuple(sorted(db.session.scalars(select(GameplayStyle.name))))


def budget_thresholds() -> tuple[float, float]:
    """``(cheap_below, premium_from)`` as floats."""
    settings = tavern_settings()
    return float(settings.cheap_below), float(settings.premium_from)
