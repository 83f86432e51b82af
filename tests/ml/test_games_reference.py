"""The game recommender against the reference app's data and trained model (golden fixtures)."""

from __future__ import annotations

import csv
import hashlib
import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from sklearn.naive_bayes import ComplementNB, MultinomialNB

from ml.games import BUDGETS, GameFeatures, read_games_csv, train_games

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GAMES_CSV = FIXTURES / "gamedrop_gameplays.csv"
GOLDEN_CSV = FIXTURES / "gamedrop_model_nx_feature_count.csv"

# The fixtures are byte-for-byte copies of the seed data; a changed byte would make every
# "equals the reference" assertion below compare against something else.
SHA256 = {
    GAMES_CSV: "f9a878e045e804ad9f44ad75071b7d876d8ce3f1e8cce904cecb7360c562dec2",
    GOLDEN_CSV: "de1fc87de6a35d66bf3e020ca4567c07daf92a20543294153be305516a825482",
}


def read_golden() -> tuple[list[str], list[str], np.ndarray]:
    """Class names, column names and the reference model's exact training matrix."""
    with open(GOLDEN_CSV, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["class_index", "game_name"]
    assert [int(row[0]) for row in body] == list(range(len(body)))
    matrix = np.array([[float(value) for value in row[2:]] for row in body])
    return [row[1] for row in body], header[2:], matrix


NOISE = 1e-12
"""Relative difference below which two floating-point scores are rounding noise: a sum of
about 20 terms is off by at most a few dozen ulps (~1e-14 relative)."""


def exact_nb_ranking(estimator: ComplementNB | MultinomialNB, X: np.ndarray) -> np.ndarray:
    """Naive Bayes' order for 0/1 rows, in exact rational arithmetic: the tie rule's oracle.

    The joint log-likelihood of each class is summed as Fractions of the fitted float weights
    (plus the class prior for MultinomialNB, as scikit-learn does), so two classes tie exactly
    when their sums are equal, whatever order floating point would add them in.
    """
    weights = estimator.feature_log_prob_
    if isinstance(estimator, MultinomialNB):
        prior = estimator.class_log_prior_
    else:  # ComplementNB ignores the prior unless there is a single class
        prior = np.zeros(len(weights))
    orders = []
    for row in X:
        columns = np.flatnonzero(row)
        totals = [
            sum((Fraction(weights[c, j]) for j in columns), Fraction(prior[c]))
            for c in range(len(weights))
        ]
        orders.append(sorted(range(len(weights)), key=lambda c: (-totals[c], c)))
    return np.array(orders)


def assert_sorted_like(order: np.ndarray, values: np.ndarray) -> None:
    """Assert ``order`` sorts ``values`` (scikit-learn's) best first, up to rounding noise.

    Exact ties are checked against :func:`exact_nb_ranking`; scikit-learn's own sums are not
    a reliable oracle for them, since they depend on summation order (see
    ``test_mathematical_ties_go_to_the_name_even_where_float_sums_differ``).
    """
    ordered = values[order]
    gaps = ordered[:-1] - ordered[1:]
    tolerance = NOISE * np.maximum(np.abs(ordered[:-1]), np.abs(ordered[1:]))
    misordered = np.flatnonzero(gaps < -tolerance)
    assert misordered.size == 0, f"classes {order[misordered[0]]}, {order[misordered[0] + 1]}"


GAMES = read_games_csv(GAMES_CSV)
NAMES, COLUMNS, GOLDEN = read_golden()
REFERENCE = ComplementNB(alpha=1.0).fit(GOLDEN, NAMES)
MODEL = train_games(GAMES).model


def every_small_query() -> list[tuple[str, tuple[str, ...]]]:
    """Each budget with no style, every single style and every pair: 516 queries."""
    styles = MODEL.vocabulary
    combos = [(), *((s,) for s in styles), *itertools.combinations(styles, 2)]
    return [(budget, combo) for budget in BUDGETS for combo in combos]


@pytest.mark.parametrize("path", [GAMES_CSV, GOLDEN_CSV])
def test_fixtures_are_the_unchanged_seed_data(path):
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[path]


def test_the_csv_holds_92_games_and_18_gameplay_types():
    assert len(GAMES) == 92
    assert len({game.name for game in GAMES}) == 92
    assert len(MODEL.vocabulary) == 18
    ms_pac_man = GAMES[0]
    assert (ms_pac_man.name, ms_pac_man.price, ms_pac_man.gameplay) == ("Ms. Pac-Man", 4.99, ("Arcade",))


def test_class_order_is_the_references_all_game_names_order():
    assert list(MODEL.classes_) == NAMES
    assert NAMES == sorted(NAMES)


def test_the_vocabulary_is_in_code_point_order_as_in_the_reference_model():
    assert COLUMNS[:3] == ["budget_1", "budget_2", "budget_3"]
    assert [f"type_{style}" for style in MODEL.vocabulary] == COLUMNS[3:]
    # The two plausible alternatives both differ, so the test would catch a switch to either.
    first_seen = list(dict.fromkeys(style for game in GAMES for style in game.gameplay))
    assert first_seen != list(MODEL.vocabulary)
    assert sorted(first_seen, key=str.lower) != list(MODEL.vocabulary)  # "RPG" vs "Racing"


def test_the_encoder_reproduces_the_golden_matrix_exactly():
    features = GameFeatures.from_games(GAMES)
    by_name = {game.name: game for game in GAMES}
    encoded = np.array([features.encode_game(by_name[name]) for name in NAMES])
    assert encoded.shape == GOLDEN.shape == (92, 21)
    assert np.array_equal(encoded, GOLDEN)


def test_budget_buckets_match_the_reference_prices():
    # budget_1..3 are cheap, standard, premium at the default 5.00 / 20.00 thresholds.
    by_name = {game.name: game for game in GAMES}
    for name, row in zip(NAMES, GOLDEN, strict=True):
        price = by_name[name].price
        expected = 0 if price < 5.0 else 1 if price < 20.0 else 2
        assert row[:3].tolist() == [float(i == expected) for i in range(3)], name


def test_feature_log_probabilities_equal_sklearn_on_the_golden_matrix():
    assert np.allclose(MODEL.estimator_.feature_log_prob_, REFERENCE.feature_log_prob_, rtol=0, atol=1e-6)
    assert MODEL.estimator_.alpha == 1.0


def test_the_ranking_equals_the_reference_model_exactly_on_every_small_query():
    queries = every_small_query()
    X = np.array([MODEL.encode(budget, styles) for budget, styles in queries])
    expected = exact_nb_ranking(REFERENCE, X)
    assert np.array_equal(MODEL.ranking(X), expected)
    for (budget, styles), row in zip(queries, expected, strict=True):
        top = [suggestion.name for suggestion in MODEL.top_n(budget, styles)]
        assert top == [NAMES[c] for c in row[:5]], (budget, styles)


def test_the_ranking_sorts_sklearns_probabilities_for_single_rows_and_batches():
    queries = every_small_query()
    X = np.array([MODEL.encode(budget, styles) for budget, styles in queries])
    ranking = MODEL.ranking(X)
    for row, probabilities in zip(ranking, REFERENCE.predict_proba(X), strict=True):
        assert_sorted_like(row, probabilities)
    for (budget, styles), row in zip(queries[::7], ranking[::7], strict=True):
        single = REFERENCE.predict_proba(MODEL.encode(budget, styles)[np.newaxis, :])[0]
        assert_sorted_like(row, single)
        top = [NAMES.index(s.name) for s in MODEL.top_n(budget, styles)]
        assert_sorted_like(np.array(top), single)


def test_the_ranking_equals_the_reference_on_random_larger_queries():
    rng = np.random.default_rng(11)
    X = np.zeros((300, 21))
    X[np.arange(300), rng.integers(0, 3, 300)] = 1.0
    for row in X:
        row[3 + rng.choice(18, size=rng.integers(3, 8), replace=False)] = 1.0
    ranking = MODEL.ranking(X)
    assert np.array_equal(ranking, exact_nb_ranking(REFERENCE, X))
    for row, probabilities in zip(ranking, REFERENCE.predict_proba(X), strict=True):
        assert_sorted_like(row, probabilities)


def test_where_sklearn_is_unambiguous_its_top_5_is_ours():
    queries = every_small_query()
    X = np.array([MODEL.encode(budget, styles) for budget, styles in queries])
    probabilities = REFERENCE.predict_proba(X)
    sklearn_order = np.argsort(-probabilities, axis=1, kind="stable")
    ours = MODEL.ranking(X)
    clear = 0
    for row, theirs, p in zip(ours, sklearn_order, probabilities, strict=True):
        top6 = p[theirs[:6]]
        gaps = top6[:-1] - top6[1:]
        # Exactly equal or clearly apart: no pair within rounding noise of each other.
        if np.all((gaps == 0) | (gaps > NOISE * top6[:-1])):
            clear += 1
            assert row[:5].tolist() == theirs[:5].tolist()
    assert clear > len(queries) * 0.9


def test_mathematical_ties_go_to_the_name_even_where_float_sums_differ():
    # For a premium Fighting + Sport party, NBA Jam (Sport) and Tekken (Fighting) have the same
    # three weights in different columns: equal joint log-likelihoods. Adding them in a
    # different order can leave one an ulp ahead (scikit-learn's batch product does); the
    # integer keys tie them exactly, so the name decides.
    x = MODEL.encode("premium", ["Fighting", "Sport"])
    nba, tekken = NAMES.index("NBA Jam"), NAMES.index("Tekken")
    columns = np.flatnonzero(x)
    weights = REFERENCE.feature_log_prob_
    assert sorted(weights[nba, columns]) == sorted(weights[tekken, columns])
    assert sum(map(Fraction, weights[nba, columns])) == sum(map(Fraction, weights[tekken, columns]))
    for order in (MODEL.ranking(x[np.newaxis, :])[0].tolist(), MODEL.ranking(np.tile(x, (50, 1)))[7].tolist()):
        assert order.index(nba) < order.index(tekken)
    names = [s.name for s in MODEL.top_n("premium", ["Fighting", "Sport"], n=10)]
    assert names.index("NBA Jam") < names.index("Tekken")


def test_reference_ties_go_to_the_name_that_sorts_first():
    # A cheap budget-only query: many cheap games score exactly alike in the reference model.
    x = MODEL.encode("cheap", ())[np.newaxis, :]
    proba = REFERENCE.predict_proba(x)[0]
    top = [s.name for s in MODEL.top_n("cheap", (), n=10)]
    tied = [NAMES.index(name) for name in top if proba[NAMES.index(name)] == proba.max()]
    assert len(tied) >= 2, "the query no longer exercises a tie"
    assert tied == sorted(tied)
    assert top[: len(tied)] == [NAMES[c] for c in tied]


def test_the_fixed_point_weights_are_exact_for_the_reference_model():
    scorer = MODEL._scorer
    assert scorer.exact
    assert np.array_equal(np.ldexp(scorer._weights_t.T.astype(float), -scorer.scale), REFERENCE.feature_log_prob_)


def test_a_premium_adventure_rpg_query_suggests_premium_adventure_rpgs():
    suggestions = MODEL.top_n("premium", ["Adventure", "RPG"])
    by_name = {game.name: game for game in GAMES}
    for suggestion in suggestions:
        game = by_name[suggestion.name]
        assert {"Adventure", "RPG"} <= set(game.gameplay) and game.price >= 20.0
        assert suggestion.score == 1.0
        assert suggestion.reasons == ("matches RPG and Adventure", "within a premium budget")
