"""The tavern's demo data: the 92 games of the Gamedrop reference catalogue."""

from __future__ import annotations

from webapp import PROJECT_ROOT
from webapp.extensions import db
from webapp.tavern.imports import apply_catalogue, parse_catalogue

#: A byte-for-byte copy of the reference repository's ``gamedrop/priv/repo/gameplays.csv``.
DEMO_GAMES = PROJECT_ROOT / "webapp" / "demo" / "data" / "gamedrop_gameplays.csv"


def load_demo_games() -> int:
    """Import the reference catalogue with the tavern's importer; returns the games added.

    Safe to run again: only games missing by name are added, so a second run adds nothing
    and never undoes what staff changed in the catalogue since.
    """
    outcome = apply_catalogue(parse_catalogue(DEMO_GAMES.read_bytes()), add_only=True)
    db.session.commit()
    return outcome.added
