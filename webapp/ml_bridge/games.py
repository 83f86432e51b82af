"""Game suggestions: the tavern's catalogue and recorded picks in, a top-5 out."""

from __future__ import annotations

from dataclasses import dataclass

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from ml import games as games_ml
from webapp.extensions import db
from webapp.ml_bridge import KindSpec, serve

ALGORITHM_LABELS = {
    "complement_nb": "Complement Naive Bayes (the reference's choice)",
    "multinomial_nb": "Multinomial Naive Bayes",
    "knn": "k nearest neighbours",
}


@dataclass(frozen=True)
class GamesData:
    """The catalogue and the picks, as plain ml values."""

    games: list
    picks: list

    def __len__(self) -> int:
        return len(self.games) + len(self.picks)


def load_data() -> GamesData:
    """Active games, and every pick of a game that is still in the catalogue, oldest first."""
    from webapp.tavern.models import GamePick
    from webapp.tavern.service import active_games_plain

    games = [games_ml.GameExample(name, price, styles)
             for name, price, styles in active_games_plain()]
    names = {game.name for game in games}
    query = (select(GamePick.budget, GamePick.gameplay, GamePick.game_name, GamePick.created_at)
             .where(GamePick.game_name.is_not(None)).order_by(GamePick.created_at, GamePick.id))
    picks = [games_ml.Pick(row.budget, tuple(row.gameplay or ()), row.game_name,
                           row.created_at.date())
             for row in db.session.execute(query.execution_options(yield_per=5000))
             if row.game_name in names]
    return GamesData(games, picks)


def train_context() -> dict:
    """The tavern's budget thresholds."""
    from webapp.tavern.service import budget_thresholds

    return {"thresholds": budget_thresholds()}


def train(data: GamesData, thresholds, algorithm: str = games_ml.DEFAULT_ALGORITHM):
    """Fit the recommender with the tavern's budget ``thresholds``."""
    return games_ml.train_games(data.games, data.picks, algorithm=algorithm,
                                thresholds=thresholds)


class GamesTrainForm(FlaskForm):
    """Options for a games retrain."""

    algorithm = SelectField("Algorithm", default=games_ml.DEFAULT_ALGORITHM, choices=[
        SelectChoice(name, ALGORITHM_LABELS.get(name, name)) for name in games_ml.ALGORITHMS])


def unknown_styles(gameplay) -> list[str]:
    """The styles the served model does not know (a typo, or a style added since training)."""
    known = set(serve("games").model.vocabulary)
    return [name for name in gameplay if name not in known]


def recommend(budget: str, gameplay: tuple[str, ...], n: int = games_ml.TOP_N):
    """The top ``n`` active games for a party, with the model version that ranked them.

    The served model knows the games of its training run: one deactivated or deleted since stays
    in it until the next retrain. So games without an active card (``webapp.tavern.cards``,
    cached per worker) are dropped, and while that leaves fewer than ``n`` the model is asked
    for twice as many, up to all its games. Fewer than ``n`` (or none) may come back.
    """
    from webapp.tavern.cards import cards

    served = serve("games")
    model, total, ask = served.model, len(served.model.classes_), n
    while True:
        ranked = model.top_n(budget, gameplay, min(ask, total))
        shown = cards(suggestion.name for suggestion in ranked)
        kept = [suggestion for suggestion in ranked if suggestion.name in shown]
        # The usual case, a whole catalogue active, costs one ranking of n games.
        if len(kept) >= n or len(ranked) >= total:
            return kept[:n], served.version
        ask *= 2


SPEC = KindSpec(
    kind="games",
    title="Game suggestions",
    description="Tavern: the top 5 games for a party's budget and gameplay styles, learnt from "
                "the catalogue and from what parties picked.",
    load_data=load_data,
    train=train,
    train_context=train_context,
    primary_metric="hit_rate_at_5",
    lower_is_better=False,
    param_form=GamesTrainForm,
    metric_labels={"hit_rate_at_5": "Hit rate@5", "precision_at_5": "Precision@5",
                   "baseline_hit_rate_at_5": "Popular hit@5",
                   "baseline_precision_at_5": "Popular precision@5"},
    algorithms=games_ml.ALGORITHMS,
)
