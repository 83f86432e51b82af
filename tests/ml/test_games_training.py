"""train_games: the training set, the chronological hold-out, the baseline; synthetic picks."""

from __future__ import annotations

import collections
import dataclasses
import datetime

import numpy as np
import pytest

from ml.evaluation import hit_rate_at_k, popularity_ranking
from ml.games import (
    ALGORITHMS,
    BUDGETS,
    REGISTRY,
    GameExample,
    GameFeatures,
    Pick,
    budget_of,
    examples_hash,
    train_games,
)
from ml.synthetic import generate_picks
from ml.training import data_hash
from tests.ml.test_games_reference import GAMES

DAY = datetime.date(2023, 3, 1)
SMALL = [
    GameExample("Chess", 2.0, ("Strategy",)),
    GameExample("Go", 2.0, ("Strategy",)),
    GameExample("Kart", 9.0, ("Racing",)),
    GameExample("Quest", 25.0, ("RPG", "Adventure")),
]
METRIC_KEYS = {
    "hit_rate_at_5",
    "precision_at_5",
    "baseline_hit_rate_at_5",
    "baseline_precision_at_5",
    "holdout_picks",
    "train_picks",
}


def test_without_picks_there_is_nothing_to_measure():
    trained = train_games(SMALL)
    assert set(trained.metrics) == METRIC_KEYS
    assert trained.metrics["hit_rate_at_5"] is None
    assert trained.metrics["baseline_precision_at_5"] is None
    assert trained.metrics["holdout_picks"] == 0
    assert trained.training_rows == 4
    assert trained.params == {
        "algorithm": "complement_nb",
        "thresholds": [5.0, 20.0],
        "vocabulary": ["Adventure", "RPG", "Racing", "Strategy"],
        "games": 4,
        "picks": 0,
        "holdout": 0.2,
        "k": 5,
        "pick_styles_dropped": 0,
    }
    assert trained.smoke_input[0] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert trained.model.predict(trained.smoke_input) == ["Chess", "Kart", "Quest"]


def test_three_picks_are_too_few_to_hold_any_back():
    picks = [Pick("cheap", ("Strategy",), "Go", DAY)] * 3
    metrics = train_games(SMALL, picks).metrics
    assert metrics["hit_rate_at_5"] is None and metrics["train_picks"] == 3


def test_the_latest_picks_are_held_out_and_scored_against_the_popularity_baseline():
    # Ten picks: Go is the favourite early on; the two latest are a Strategy query that
    # picked Chess and a premium query that picked Quest.
    early = [Pick("cheap", ("Strategy",), "Go", DAY + datetime.timedelta(days=i)) for i in range(8)]
    late = [
        Pick("cheap", ("Strategy",), "Chess", DAY + datetime.timedelta(days=20)),
        Pick("premium", ("RPG",), "Quest", DAY + datetime.timedelta(days=21)),
    ]
    # Given shuffled: the hold-out must follow the dates, not the input order.
    picks = [late[1], *early[:4], late[0], *early[4:]]
    trained = train_games(SMALL, picks, k=1)
    metrics = trained.metrics
    assert metrics["holdout_picks"] == 2 and metrics["train_picks"] == 8
    # Popularity says "Go" for both: wrong twice.
    assert metrics["baseline_hit_rate_at_1"] == 0.0
    # The model, trained on the early picks, says Go for Strategy (wrong) and Quest (right).
    assert metrics["hit_rate_at_1"] == 0.5
    assert metrics["precision_at_1"] == 0.5
    # The published model is refitted on all ten picks plus the four games.
    assert trained.training_rows == 14
    assert trained.params["picks"] == 10 and trained.params["k"] == 1


def test_without_dates_picks_stay_in_the_order_given():
    picks = [Pick("cheap", ("Strategy",), "Go")] * 8 + [Pick("premium", ("RPG",), "Quest")] * 2
    first = train_games(SMALL, picks, k=1).metrics
    assert first["baseline_hit_rate_at_1"] == 0.0 and first["hit_rate_at_1"] == 1.0
    # Undated picks are not sorted, so reversing them changes what is held out.
    second = train_games(SMALL, picks[::-1], k=1).metrics
    assert second["baseline_hit_rate_at_1"] == 1.0


def test_mixed_dated_and_undated_picks_keep_the_input_order():
    picks = [Pick("cheap", (), "Go", DAY)] * 8 + [Pick("premium", (), "Quest", None)] * 2
    assert train_games(SMALL, picks, k=1).metrics["baseline_hit_rate_at_1"] == 0.0


def test_picks_teach_the_model_what_parties_choose():
    before = train_games(SMALL).model.top_n("cheap", ["Strategy"], n=1)[0].name
    picks = [Pick("cheap", ("Strategy",), "Go", DAY)] * 5
    after = train_games(SMALL, picks).model.top_n("cheap", ["Strategy"], n=1)[0].name
    assert (before, after) == ("Chess", "Go")


def test_the_data_hash_covers_games_and_picks():
    pick = Pick("cheap", ("Strategy",), "Go", DAY)
    assert train_games(SMALL).data_hash == train_games(SMALL[::-1]).data_hash
    assert train_games(SMALL, [pick]).data_hash != train_games(SMALL).data_hash
    assert train_games(SMALL, [pick]).data_hash == data_hash(sorted(SMALL, key=lambda g: g.name) + [pick])
    moved = dataclasses.replace(SMALL[0], price=3.0)
    assert train_games([moved, *SMALL[1:]]).data_hash != train_games(SMALL).data_hash


def test_examples_hash_is_the_data_hash(monkeypatch):
    picks = [
        Pick("cheap", ("Strategy",), "Go", DAY),
        Pick("premium", ("RPG", "Adventure"), "Quest"),
        Pick("standard", (), "Kart", datetime.datetime(2023, 3, 2, 18, 30)),
        Pick("cheap", ("Strategy", "Strategy"), "Chess", DAY),
    ]
    games = [*SMALL, GameExample("Solo", 0, ())]
    for some_games, some_picks in (([], []), (games, []), (games, picks)):
        expected = data_hash([*some_games, *some_picks])
        assert examples_hash(some_games, some_picks) == expected
    monkeypatch.setattr("ml.games._HASH_CHUNK", 3)  # several chunks, joined as one list
    assert examples_hash(games, picks) == data_hash([*games, *picks])


def test_examples_hash_agrees_on_numpy_prices_and_subclasses():
    class Boxed(GameExample):
        pass

    numpy_price = [GameExample("Chess", np.float64(2.5), ("Strategy",))]
    subclassed = [Boxed("Chess", 2.0, ("Strategy",))]  # may have more fields: data_hash's walk
    for games in (numpy_price, subclassed):
        assert examples_hash(games, []) == data_hash(games)


@pytest.mark.parametrize("algorithm", [name for name in ALGORITHMS if REGISTRY[name].mergeable])
def test_merged_examples_fit_the_same_naive_bayes_as_every_example(algorithm):
    games = sorted(GAMES, key=lambda game: game.name)
    picks = generate_picks(games, seed=4, n=3000)
    trained = train_games(games, picks, algorithm=algorithm, holdout=0.5).model.estimator_
    features = GameFeatures.from_games(games)
    X = np.array([features.encode_game(game) for game in games]
                 + [features.encode(pick.budget, pick.gameplay) for pick in picks])
    y = [game.name for game in games] + [pick.game for pick in picks]
    direct = REGISTRY[algorithm].build(len(y)).fit(X, y)
    for attribute in ("class_count_", "feature_count_", "feature_log_prob_", "classes_"):
        np.testing.assert_array_equal(getattr(trained, attribute), getattr(direct, attribute))


def test_pick_styles_the_catalogue_no_longer_has_are_dropped_and_counted():
    picks = [Pick("cheap", ("Strategy", "Retired"), "Go", DAY), Pick("cheap", ("Gone",), "Chess", DAY)]
    trained = train_games(SMALL, picks)
    assert trained.params["pick_styles_dropped"] == 2
    assert trained.model.vocabulary == ("Adventure", "RPG", "Racing", "Strategy")


@pytest.mark.parametrize(
    ("games", "picks", "kwargs", "message"),
    [
        (SMALL[:1], (), {}, "at least 2 games"),
        ([*SMALL, SMALL[0]], (), {}, "unique; repeated: 'Chess'"),
        (SMALL, [Pick("cheap", (), "Tetris")], {}, "the game 'Tetris'"),
        (SMALL, (), {"algorithm": "svm"}, "unknown algorithm"),
        (SMALL, (), {"thresholds": (20.0, 5.0)}, "thresholds"),
        (SMALL, (), {"holdout": 1.0}, "holdout"),
        (SMALL, (), {"k": 0}, "k must be"),
        ([GameExample("A", 1.0, ()), GameExample("B", 2.0, ())], (), {}, "no game has a gameplay style"),
    ],
)
def test_bad_training_input_is_refused(games, picks, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_games(games, picks, **kwargs)


def test_thresholds_change_the_budget_features():
    trained = train_games(SMALL, thresholds=(1.0, 3.0))
    assert trained.params["thresholds"] == [1.0, 3.0]
    assert trained.model.explain("Chess", "standard").reasons == ("within a standard budget",)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hit_rate_at_5_beats_the_popularity_baseline_on_synthetic_picks(algorithm):
    # Measured over seeds 0-29 with 1000 picks (200 held out): the baseline's hit-rate@5 was
    # 0.39-0.50; naive Bayes scored 0.61-0.81, always at least 0.185 above it; k-NN 0.565-0.84,
    # at least 0.18 above on 29 seeds and 0.08 on one. This seed gives 0.66 (Complement NB),
    # 0.685 (Multinomial NB) and 0.645 (k-NN) against 0.48. A model that ignored the query
    # would sit near the baseline, so a 0.1 margin separates the two with room for noise.
    metrics = train_games(GAMES, generate_picks(GAMES, seed=2023), algorithm=algorithm).metrics
    assert metrics["holdout_picks"] == 200
    assert metrics["hit_rate_at_5"] >= metrics["baseline_hit_rate_at_5"] + 0.1
    assert metrics["hit_rate_at_5"] >= 0.55
    assert metrics["precision_at_5"] == pytest.approx(metrics["hit_rate_at_5"] / 5)


def test_the_reference_setup_without_history_still_beats_popularity():
    # One example per game, as the reference trains: it knows nothing of popularity, yet the
    # query alone narrows the 92 games enough to beat the most-popular list.
    picks = generate_picks(GAMES, seed=2023)
    held_out = picks[800:]
    model = train_games(GAMES).model
    ranked = [[s.name for s in model.top_n(p.budget, p.gameplay)] for p in held_out]
    truths = [p.game for p in held_out]
    popular = popularity_ranking((p.game for p in picks[:800]), [g.name for g in GAMES])[:5]
    assert hit_rate_at_k(ranked, truths, 5) > hit_rate_at_k([popular] * len(held_out), truths, 5)


def test_synthetic_picks_are_repeatable_dated_and_valid():
    picks = generate_picks(GAMES, seed=7, n=500, year=2024)
    assert picks == generate_picks(GAMES, seed=7, n=500, year=2024)
    assert picks != generate_picks(GAMES, seed=8, n=500, year=2024)
    assert picks == generate_picks(list(reversed(GAMES)), seed=7, n=500, year=2024)
    assert len(picks) == 500
    dates = [p.when for p in picks]
    assert dates == sorted(dates) and all(d.year == 2024 for d in dates)
    names = {g.name for g in GAMES}
    styles = {s for g in GAMES for s in g.gameplay}
    for pick in picks:
        assert pick.game in names and pick.budget in BUDGETS
        assert 1 <= len(pick.gameplay) <= 4 and set(pick.gameplay) <= styles
        assert list(pick.gameplay) == sorted(set(pick.gameplay))
    assert generate_picks(GAMES, seed=7, n=0) == []


def test_synthetic_picks_mostly_match_their_game_with_a_popularity_skew():
    picks = generate_picks(GAMES, seed=3, n=3000)
    by_name = {g.name: g for g in GAMES}
    budget_matches = sum(p.budget == budget_of(by_name[p.game].price) for p in picks) / len(picks)
    style_overlap = sum(bool(set(p.gameplay) & set(by_name[p.game].gameplay)) for p in picks) / len(picks)
    assert 0.7 < budget_matches < 0.9
    assert style_overlap > 0.85
    counts = sorted(collections.Counter(p.game for p in picks).values(), reverse=True)
    assert counts[0] > 10 * np.median(counts)  # a few favourites, a long tail


def test_synthetic_picks_refuse_bad_input():
    with pytest.raises(ValueError, match="n must be"):
        generate_picks(GAMES, seed=1, n=-1)
    with pytest.raises(ValueError, match="no game has a gameplay style"):
        generate_picks([GameExample("A", 1.0, ())], seed=1)
