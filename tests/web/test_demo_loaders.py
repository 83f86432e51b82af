"""The demo loaders behind ``flask demo load``: what they add, marked synthetic, and that a
second run adds nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from webapp.demo.gift_history import load_demo_clients_and_gifts
from webapp.demo.gifts import load_demo_gifts
from webapp.demo.tavern import load_demo_picks
from webapp.extensions import db
from webapp.gifts.models import Client, Gift
from webapp.tavern.demo import load_demo_games
from webapp.tavern.models import Game, GamePick


def count(model, *where) -> int:
    """Rows of ``model`` matching ``where``."""
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_tavern_demo_adds_a_year_of_synthetic_picks_once(app):
    with app.app_context():
        assert load_demo_games() == 92
        assert load_demo_picks() == 1000
        assert count(GamePick) == count(GamePick, GamePick.synthetic.is_(True)) == 1000
        first, last = db.session.execute(select(func.min(GamePick.created_at),
                                                func.max(GamePick.created_at))).one()
        assert first.year == last.year == 2023  # one calendar year
        # Every pick names a game of the catalogue, linked by id.
        assert count(GamePick, GamePick.game_id.is_(None)) == 0
        linked = select(func.count()).select_from(GamePick).join(Game).where(
            Game.name == GamePick.game_name)
        assert db.session.scalar(linked) == 1000

        assert (load_demo_games(), load_demo_picks()) == (0, 0)
        assert count(GamePick) == 1000 and count(Game) == 92


def test_the_gifts_demo_adds_clients_and_a_year_of_sent_gifts_once(app):
    with app.app_context():
        load_demo_gifts()
        assert load_demo_clients_and_gifts() == (36, 400)
        assert count(Gift) == 400
        assert count(Gift, Gift.status == "sent", Gift.synthetic.is_(True)) == 400
        assert count(Client) == count(Client, Client.synthetic.is_(True)) == 36
        assert count(Gift, ~Gift.lines.any()) == 0  # every gift holds items

        assert load_demo_clients_and_gifts() == (0, 0)
        assert (count(Gift), count(Client)) == (400, 36)
