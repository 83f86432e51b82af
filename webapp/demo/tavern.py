"""Demo tavern: the reference's 92 games and a year of synthetic picks (fixed seed)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from ml.games import GameExample
from ml.synthetic import generate_picks
from webapp.extensions import db

PICKS_SEED = 2023
PICKS = 1000


def load_demo_picks() -> int:
    """Add a year of synthetic picks, labelled synthetic, unless some already exist."""
    from webapp.tavern.models import Game, GamePick
    from webapp.tavern.service import active_games_plain, budget_thresholds

    if db.session.scalar(select(func.count()).select_from(GamePick)
                         .where(GamePick.synthetic.is_(True))):
        return 0
    games = [GameExample(name, price, styles) for name, price, styles in active_games_plain()]
    if len(games) < 2:
        return 0
    ids = {name: game_id for name, game_id in db.session.execute(select(Game.name, Game.id))}
    picks = generate_picks(games, seed=PICKS_SEED, n=PICKS, thresholds=budget_thresholds())
    db.session.add_all(GamePick(
        created_at=dt.datetime.combine(pick.when, dt.time(19)), created_by="demo",
        budget=pick.budget, gameplay=list(pick.gameplay), suggested=[], game_id=ids[pick.game],
        game_name=pick.game, synthetic=True) for pick in picks)
    db.session.commit()
    return len(picks)
