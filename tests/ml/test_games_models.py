"""Every registered algorithm: the compiled ranking against scikit-learn, pickling, the store."""

from __future__ import annotations

import json
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_distances
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier

from ml import store
from ml.games import (
    ALGORITHMS,
    KNN_NEIGHBOURS,
    REGISTRY,
    GameModel,
    build_estimator,
    similarity_votes,
    train_games,
)
from ml.synthetic import generate_picks
from tests.ml.test_games_reference import GAMES, NOISE, assert_sorted_like, exact_nb_ranking

PICKS = generate_picks(GAMES, seed=1, n=600)
NB_ALGORITHMS = ("complement_nb", "multinomial_nb")

MODELS = {
    (algorithm, with_picks): train_games(GAMES, PICKS if with_picks else (), algorithm=algorithm).model
    for algorithm in ALGORITHMS
    for with_picks in (False, True)
}


def random_queries(model: GameModel, n: int, seed: int) -> np.ndarray:
    """``n`` encoded queries: a budget and 0-5 random styles each."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, len(model.features)))
    X[np.arange(n), rng.integers(0, 3, n)] = 1.0
    styles = len(model.vocabulary)
    for row in X:
        row[3 + rng.choice(styles, size=rng.integers(0, 6), replace=False)] = 1.0
    return X


def query_of(model: GameModel, x: np.ndarray) -> tuple[str, list[str]]:
    budget = ("cheap", "standard", "premium")[int(np.argmax(x[:3]))]
    return budget, [model.vocabulary[j] for j in np.flatnonzero(x[3:])]


def plain_knn_ranking(model: GameModel, x: np.ndarray) -> list[int]:
    """The k-NN vote written out plainly, for one 0/1 row: exact similarities, Python floats."""
    estimator = model.estimator_
    examples, labels = estimator._fit_X, estimator._y
    asked = set(np.flatnonzero(x))
    similarity = [
        Fraction(len(asked & set(np.flatnonzero(e))) ** 2, len(asked) * int(e.sum())) for e in examples
    ]
    nearest = sorted(range(len(examples)), key=lambda i: (-similarity[i], i))[: estimator.n_neighbors]
    votes = [0.0] * len(model.classes_)
    for i in nearest:
        votes[labels[i]] += 1.0 + math.sqrt(similarity[i])
    return sorted(range(len(votes)), key=lambda c: (-votes[c], c))


def test_the_registry_names_every_algorithm_and_builds_fresh_estimators():
    assert ALGORITHMS == ("complement_nb", "multinomial_nb", "knn")
    assert set(REGISTRY) == set(ALGORITHMS)
    assert isinstance(build_estimator("complement_nb"), ComplementNB)
    assert build_estimator("complement_nb").alpha == 1.0
    assert isinstance(build_estimator("multinomial_nb"), MultinomialNB)
    knn = build_estimator("knn", n_examples=500)
    assert isinstance(knn, KNeighborsClassifier)
    assert (knn.n_neighbors, knn.metric, knn.weights) == (KNN_NEIGHBOURS, "cosine", similarity_votes)
    assert similarity_votes(np.array([0.0, 0.25, 1.0])).tolist() == [2.0, 1.75, 1.0]
    assert build_estimator("knn", n_examples=3).n_neighbors == 3
    assert build_estimator("knn") is not build_estimator("knn")
    with pytest.raises(ValueError, match="unknown algorithm 'svm'"):
        build_estimator("svm")
    with pytest.raises(TypeError):
        REGISTRY["svm"] = REGISTRY["knn"]  # read-only


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("with_picks", [False, True])
def test_each_algorithm_trains_and_ranks(algorithm, with_picks):
    model = MODELS[algorithm, with_picks]
    assert model.algorithm == algorithm
    suggestions = model.top_n("premium", ["Adventure", "RPG"])
    assert len(suggestions) == 5 and len({s.name for s in suggestions}) == 5
    assert all(0.0 <= s.score <= 1.0 and s.reasons for s in suggestions)
    # Picks can put a popular near-match first, but full matches exist and must show up.
    assert max(s.score for s in suggestions) == 1.0
    ranking = model.ranking(random_queries(model, 5, seed=0))
    assert all(sorted(row.tolist()) == list(range(len(model.classes_))) for row in ranking)


@pytest.mark.parametrize("algorithm", NB_ALGORITHMS)
@pytest.mark.parametrize("with_picks", [False, True])
def test_naive_bayes_ranking_is_exact_and_sorts_sklearns_probabilities(algorithm, with_picks):
    model = MODELS[algorithm, with_picks]
    X = random_queries(model, 400, seed=3)
    ranking = model.ranking(X)
    assert model._scorer.exact
    assert np.array_equal(ranking, exact_nb_ranking(model.estimator_, X))
    for row, probabilities in zip(ranking, model.estimator_.predict_proba(X), strict=True):
        assert_sorted_like(row[:5], probabilities)
    for row, jll in zip(ranking, model.estimator_.predict_joint_log_proba(X), strict=True):
        assert_sorted_like(row, jll)


@pytest.mark.parametrize("algorithm", NB_ALGORITHMS)
def test_naive_bayes_top_5_is_sklearns_wherever_sklearns_is_unambiguous(algorithm):
    # With picks the classes rarely tie, so most queries have a clear top 6. (Without picks
    # they tie a lot; the exact oracle above and the reference tests cover ties.)
    model = MODELS[algorithm, True]
    X = random_queries(model, 400, seed=4)
    probabilities = model.estimator_.predict_proba(X)
    theirs = np.argsort(-probabilities, axis=1, kind="stable")
    clear = 0
    for x, row, p in zip(X, theirs, probabilities, strict=True):
        top6 = p[row[:6]]
        if np.all(top6[:-1] - top6[1:] > NOISE * top6[:-1]):
            clear += 1
            assert [model.classes_[c] for c in row[:5]] == [s.name for s in model.top_n(*query_of(model, x))]
    assert clear > 350


@pytest.mark.parametrize("with_picks", [False, True])
def test_knn_ranking_equals_sklearn_whenever_the_neighbourhood_is_not_tied(with_picks):
    model = MODELS["knn", with_picks]
    estimator = model.estimator_
    k = estimator.n_neighbors
    X = random_queries(model, 1000, seed=5)
    ranking = model.ranking(X)
    theirs = np.argsort(-estimator.predict_proba(X), axis=1, kind="stable")
    distances = np.sort(cosine_distances(X, estimator._fit_X), axis=1)
    untied = distances[:, k] - distances[:, k - 1] > 1e-9
    # Otherwise scikit-learn keeps whichever tied examples np.argpartition leaves first.
    assert untied.sum() >= 40
    probabilities = estimator.predict_proba(X)
    for row, their_row, p in zip(ranking[untied], theirs[untied], probabilities[untied], strict=True):
        # The same games get votes, in the same order up to rounding noise (exact ties between
        # them go by name: see the plain re-implementation below)...
        voted = int((p > 0).sum())
        assert set(row[:voted].tolist()) == set(their_row[:voted].tolist())
        assert_sorted_like(row, p)
        # ...and the rest, with no vote, follow in name order in both.
        assert row[voted:].tolist() == their_row[voted:].tolist() == sorted(row[voted:].tolist())
        gaps = np.sort(p[p > 0])[::-1]
        if np.all(gaps[:-1] - gaps[1:] > NOISE * gaps[:-1]):
            assert row.tolist() == their_row.tolist()


@pytest.mark.parametrize("with_picks", [False, True])
def test_knn_neighbourhood_is_as_near_as_sklearns_and_ties_follow_the_rule(with_picks):
    model = MODELS["knn", with_picks]
    estimator = model.estimator_
    X = random_queries(model, 150, seed=6)
    sklearn_distances, _ = estimator.kneighbors(X)
    scorer = model._scorer
    for x, theirs in zip(X, sklearn_distances, strict=True):
        columns = np.flatnonzero(x).tolist()
        shared = scorer._examples_t[columns].sum(axis=0)
        similarity = shared * shared / (len(columns) * scorer._example_sizes)
        ours = np.sort(1.0 - np.sqrt(similarity[scorer.neighbours(similarity)]))
        assert np.allclose(ours, theirs, rtol=0, atol=1e-12)
    for x in X[:40]:
        assert model.ranking(x[np.newaxis, :])[0].tolist() == plain_knn_ranking(model, x)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_single_queries_batches_and_top_n_agree(algorithm):
    model = MODELS[algorithm, True]
    X = random_queries(model, 60, seed=7)
    batch = model.ranking(X)
    for x, row in zip(X, batch, strict=True):
        assert model.ranking(x[np.newaxis, :])[0].tolist() == row.tolist()
        names = [s.name for s in model.top_n(*query_of(model, x), n=len(model.classes_))]
        assert names == [model.classes_[c] for c in row]
    assert model.predict(X) == [model.classes_[row[0]] for row in batch]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_predict_returns_plain_strings_that_survive_json(algorithm):
    model = MODELS[algorithm, False]
    smoke = model.smoke_input()
    predicted = model.predict(smoke)
    assert len(smoke) == 3 and all(len(row) == len(model.features) for row in smoke)
    assert all(type(name) is str for name in predicted)
    assert json.loads(json.dumps(predicted)) == predicted


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pickling_keeps_the_ranking_and_recompiles(algorithm):
    model = MODELS[algorithm, True]
    copy = pickle.loads(pickle.dumps(model))
    X = random_queries(model, 50, seed=8)
    assert np.array_equal(copy.ranking(X), model.ranking(X))
    assert copy.top_n("cheap", ["Arcade"]) == model.top_n("cheap", ["Arcade"])
    assert set(model.__getstate__()) == {"estimator_", "features", "games_", "algorithm"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_store_round_trip_passes_the_smoke_test(tmp_path, algorithm):
    trained = train_games(GAMES, PICKS[:100], algorithm=algorithm)
    meta = store.publish(tmp_path, "games", trained, version="v1")
    assert meta.smoke_output == trained.model.predict(trained.smoke_input)
    assert meta.params["algorithm"] == algorithm
    assert meta.training_rows == 92 + 100
    loaded = store.load(tmp_path, "games", "v1", expected_sha256=meta.sha256)
    assert isinstance(loaded.model, GameModel)
    assert loaded.model.top_n("premium", ["RPG"]) == trained.model.top_n("premium", ["RPG"])
    assert loaded.model.classes_ == trained.model.classes_


def test_the_store_smoke_test_catches_a_model_that_ranks_differently(tmp_path):
    trained = train_games(GAMES)
    meta_path = tmp_path / "games" / "v1.json"
    store.publish(tmp_path, "games", trained, version="v1")
    meta = json.loads(meta_path.read_text())
    meta["smoke_output"] = list(reversed(meta["smoke_output"]))
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(store.SmokeTestFailed):
        store.load(tmp_path, "games", "v1")


def test_a_model_refuses_an_estimator_fitted_on_other_games():
    model = MODELS["complement_nb", False]
    with pytest.raises(ValueError, match="classes are not the games"):
        GameModel(model.estimator_, model.features, model.games_[1:], "complement_nb")
