"""What the live top 5 shows of each game (console, price, cover, id), cached per worker.

The live list runs at every tick of a checkbox, and the five games it shows change far less often
than that. Looking them up in the database was the largest cost of the request after the
template, so each worker keeps the cards it has shown, for as long as a worker may serve an old
model (``MODEL_CHECK_SECONDS``): an edit to the catalogue reaches the front desk within the same
delay as a retrained model does. Only the games actually shown are cached, so a large catalogue
costs no more than a small one.

Only active games have a card. The served model keeps suggesting a game deactivated (or deleted)
since its training until the next retrain, so "has a card" is what decides whether a suggestion
is shown (``webapp.ml_bridge.games.recommend``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app, url_for
from sqlalchemy import select

from webapp.extensions import db
from webapp.tavern.models import Game


@dataclass(frozen=True)
class Card:
    """One game as the suggestion list shows it."""

    id: int
    console: str
    price_text: str
    cover_url: str | None


class CardCache:
    """Cards by game name, all dropped together once they are ``max_age`` seconds old.

    A name without an active game is remembered too (as None): the live list asks the model for
    more games than it shows and drops the inactive ones, and that must not cost a query per
    tick once a game is deactivated.
    """

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cards: dict[str, Card | None] = {}
        self._born = time.monotonic()

    def cards(self, names: Iterable[str]) -> dict[str, Card]:
        """The cards of ``names``; games inactive or missing from the catalogue are left out."""
        names = list(names)
        with self._lock:
            if time.monotonic() - self._born >= self.max_age:
                self._cards, self._born = {}, time.monotonic()
            found = {name: self._cards[name] for name in names if name in self._cards}
        missing = [name for name in names if name not in found]
        if missing:
            loaded = load_cards(missing)
            fetched = {name: loaded.get(name) for name in missing}
            with self._lock:
                self._cards.update(fetched)
            found.update(fetched)
        return {name: card for name, card in found.items() if card is not None}


def load_cards(names: list[str]) -> dict[str, Card]:
    """The cards of the active games among ``names``, from the database (one query)."""
    query = (select(Game.id, Game.name, Game.console, Game.price_per_hour, Game.cover_filename)
             .where(Game.name.in_(names), Game.active))
    return {row.name: Card(row.id, row.console, f"{row.price_per_hour:.2f}",
                           url_for("tavern.cover", name=row.cover_filename)
                           if row.cover_filename else None)
            for row in db.session.execute(query)}


def cards(names: Iterable[str]) -> dict[str, Card]:
    """The cards of the active games among ``names``, from this worker's cache when they are
    fresh enough."""
    cache = current_app.extensions.get("tavern_cards")
    if cache is None:
        cache = current_app.extensions.setdefault(
            "tavern_cards", CardCache(current_app.config["MODEL_CHECK_SECONDS"]))
    return cache.cards(names)
