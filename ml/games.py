"""The tavern's game recommender: which games to suggest for a party's budget and styles.

A party states a budget (``"cheap"``, ``"standard"`` or ``"premium"``, bucketed from the hourly
rental price by :func:`budget_of`) and ticks any number of gameplay styles. The reference app
(Gamedrop, in aforward-oss/empex_recommend) encodes that as a budget one-hot followed by a
gameplay multi-hot (:class:`GameFeatures`), treats every game as a class with one labelled
example (its own budget and styles), fits Complement Naive Bayes (alpha 1.0), and shows the five
most probable games, ties going to the name that sorts first.

This module does the same and adds:

- a registry of algorithms (:data:`ALGORITHMS`): Complement NB (the reference), Multinomial NB
  and a cosine k-nearest-neighbours vote, all behind :func:`train_games`;
- the tavern's own history: each recorded :class:`Pick` (what a party asked for and the game it
  took) is one more labelled example of that game, and a chronological hold-out of picks
  measures hit-rate@5 against a "most popular games" baseline;
- a compiled ranking (:class:`GameModel`): scikit-learn's per-call input validation costs about
  20 times the arithmetic of one query, so the fitted estimator is reduced to plain numpy
  ranking keys. They are exact (integer sums for naive Bayes, exact similarities for k-NN), so
  mathematically tied games always tie and go by name; scikit-learn's floating-point sums can
  break such ties by rounding noise, and differently in a batch than for a single row. The
  tests check the keys against exact arithmetic and against ``predict_proba``, which they
  match up to that noise;
- honest scores and reasons (:class:`Suggestion`): with 92 one-example classes every
  Complement NB probability is close to 1/92, so showing it as a confidence would mislead.

Class order is the code-point order of the game names, which is also scikit-learn's
``classes_`` order, so "ties by name" and "ties by class index" are the same rule.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import types
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier

from ml.encoding import Vocabulary
from ml.evaluation import (
    MIN_SPLIT_ROWS,
    check_holdout,
    chronological_split,
    hit_rate_at_k,
    popularity_ranking,
    precision_at_k,
)
from ml.training import TrainedModel, data_hash

__all__ = [
    "ALGORITHMS",
    "ALPHA",
    "BUDGETS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_THRESHOLDS",
    "KNN_NEIGHBOURS",
    "REGISTRY",
    "TOP_N",
    "Algorithm",
    "GameExample",
    "GameFeatures",
    "GameModel",
    "Pick",
    "Suggestion",
    "budget_of",
    "build_estimator",
    "check_thresholds",
    "examples_hash",
    "parse_gameplay",
    "read_games_csv",
    "similarity_votes",
    "train_games",
]

BUDGETS = ("cheap", "standard", "premium")
"""Budget buckets, cheapest first; also the order of the budget columns."""

DEFAULT_THRESHOLDS = (5.0, 20.0)
"""Hourly prices where ``"standard"`` and ``"premium"`` start: below 5.00 is cheap, below 20.00
standard, anything else premium (the reference's buckets)."""

TOP_N = 5
"""How many games the tavern shows, and the ``k`` of the hold-out metrics by default."""

ALPHA = 1.0
"""Additive smoothing of both naive Bayes models (the reference's value)."""

KNN_NEIGHBOURS = 10
"""Examples the k-NN vote consults (fewer when there are fewer examples)."""

DEFAULT_ALGORITHM = "complement_nb"
"""The reference's algorithm."""

MAX_REASON_STYLES = 3
"""Styles named in one reason line before the rest are summed up as "and N more"."""


# ---------------------------------------------------------------------------------------------
# Budgets and plain data
# ---------------------------------------------------------------------------------------------


def check_thresholds(thresholds: Iterable[float]) -> tuple[float, float]:
    """Validate budget thresholds.

    Parameters
    ----------
    thresholds : iterable of two floats
        Where ``"standard"`` and ``"premium"`` start.

    Returns
    -------
    tuple of (float, float)

    Raises
    ------
    ValueError
        Unless there are exactly two finite, positive numbers in strictly ascending order.
    """
    try:
        values = tuple(float(value) for value in thresholds)
    except (TypeError, ValueError):
        raise ValueError(f"thresholds must be two numbers, got {thresholds!r}") from None
    if (
        len(values) != 2
        or not all(math.isfinite(value) and value > 0 for value in values)
        or not values[0] < values[1]
    ):
        raise ValueError(
            f"thresholds must be two positive numbers in ascending order, got {thresholds!r}"
        )
    return values  # type: ignore[return-value]


def budget_of(price: float, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> str:
    """Bucket an hourly rental price.

    Parameters
    ----------
    price : float
        Hourly price, 0 or more.
    thresholds : sequence of two floats, default :data:`DEFAULT_THRESHOLDS`
        Where ``"standard"`` and ``"premium"`` start (see :func:`check_thresholds`).

    Returns
    -------
    str
        One of :data:`BUDGETS`. A price equal to a threshold belongs to the dearer bucket.

    Raises
    ------
    ValueError
        For a negative or non-finite price, or bad thresholds.

    Examples
    --------
    >>> budget_of(4.99), budget_of(5.0), budget_of(21.99)
    ('cheap', 'standard', 'premium')
    """
    standard, premium = check_thresholds(thresholds)
    _check_price(price)
    if price < standard:
        return "cheap"
    return "standard" if price < premium else "premium"


def _check_price(price: object) -> None:
    if isinstance(price, bool) or not isinstance(price, int | float) or not (
        math.isfinite(price) and price >= 0
    ):
        raise ValueError(f"a price must be a finite number, 0 or more, got {price!r}")


def _styles(gameplay: object, what: str) -> tuple[str, ...]:
    """Check a collection of style names and return it as a tuple, in the given order."""
    if isinstance(gameplay, str | bytes):
        # "RPG" would otherwise be read as the styles R, P and G.
        raise ValueError(f"{what} gameplay must be a collection of styles, got {gameplay!r}")
    styles = tuple(gameplay)  # type: ignore[arg-type]
    wrong = [style for style in styles if not isinstance(style, str)]
    if wrong:
        raise ValueError(f"{what} gameplay styles must be strings, got {wrong[0]!r}")
    return styles


@dataclasses.dataclass(frozen=True)
class GameExample:
    """A game the tavern rents out.

    Parameters
    ----------
    name : str
        Unique, non-empty; also the class label.
    price : float
        Hourly rental price, 0 or more.
    gameplay : tuple of str
        Its gameplay styles (any iterable of strings is stored as a tuple).

    Raises
    ------
    ValueError
        For an empty name, a bad price or a style that is not a string.
    """

    name: str
    price: float
    gameplay: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a game needs a non-empty name, got {self.name!r}")
        _check_price(self.price)
        object.__setattr__(self, "gameplay", _styles(self.gameplay, f"game {self.name!r}"))


@dataclasses.dataclass(frozen=True)
class Pick:
    """What one party asked for and the game it took: an extra training example of that game.

    Parameters
    ----------
    budget : str
        The party's budget, one of :data:`BUDGETS`.
    gameplay : tuple of str
        The styles it ticked (any iterable of strings is stored as a tuple).
    game : str
        Name of the game it rented.
    when : datetime.date or None, default None
        When; orders the hold-out (see :func:`train_games`).

    Raises
    ------
    ValueError
        For an unknown budget, an empty game name, a style that is not a string, or a
        ``when`` that is not a date.
    """

    budget: str
    gameplay: tuple[str, ...]
    game: str
    when: datetime.date | None = None

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ValueError(
                f"unknown budget {self.budget!r}; expected one of {', '.join(BUDGETS)}"
            )
        if not isinstance(self.game, str) or not self.game.strip():
            raise ValueError(f"a pick needs the name of the game taken, got {self.game!r}")
        if self.when is not None and not isinstance(self.when, datetime.date):
            raise ValueError(f"a pick's date must be a datetime.date or None, got {self.when!r}")
        object.__setattr__(self, "gameplay", _styles(self.gameplay, "a pick's"))


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """One suggested game.

    Parameters
    ----------
    name : str
        The game.
    score : float
        Share of the query's features the game has, 0 to 1: the budget counts as one feature
        (matched when the game's price is in the asked-for bucket) and each ticked style as one
        more. ``1.0`` means "everything you asked for". It is *not* the model's probability,
        which is nearly uniform over many one-example classes; the model decides the order.
    reasons : tuple of str
        Short phrases such as ``"matches Adventure and RPG"`` and ``"within a premium budget"``,
        the matched styles the model weighs most for this game first.
    """

    name: str
    score: float
    reasons: tuple[str, ...]


def parse_gameplay(text: str) -> tuple[str, ...]:
    """Read a Python-style list of style names, as the reference CSV stores them.

    Parameters
    ----------
    text : str
        For example ``"['Adventure', 'RPG']"``.

    Returns
    -------
    tuple of str

    Raises
    ------
    ValueError
        If the text is not a list (or tuple) literal of strings. :func:`ast.literal_eval`
        evaluates literals only, so a crafted cell cannot run code.
    """
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"gameplay {text!r} is not a list of strings") from None
    if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"gameplay {text!r} is not a list of strings")
    return tuple(value)


def read_games_csv(source: str | os.PathLike[str] | io.TextIOBase) -> list[GameExample]:
    """Read games in the reference's ``gameplays.csv`` layout.

    Parameters
    ----------
    source : path-like or text file
        A CSV with at least the columns ``game_name``, ``rental_cost`` and ``gameplay_types``;
        other columns (``console_name``, ``genres``, ...) are ignored.

    Returns
    -------
    list of GameExample
        In file order.

    Raises
    ------
    ValueError
        For a missing column, a bad price or gameplay cell (naming the line), or a repeated
        game name.
    """
    if isinstance(source, io.TextIOBase):
        return _read_games(source)
    with open(source, newline="", encoding="utf-8") as handle:
        return _read_games(handle)


def _read_games(handle: Iterable[str]) -> list[GameExample]:
    reader = csv.DictReader(handle)
    missing = {"game_name", "rental_cost", "gameplay_types"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"games CSV lacks the columns {sorted(missing)}")
    games, seen = [], set()
    for row in reader:
        where = f"line {reader.line_num}"
        cost = row["rental_cost"]
        try:
            price = float(cost)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: rental_cost {cost!r} is not a number") from None
        try:
            game = GameExample(row["game_name"], price, parse_gameplay(row["gameplay_types"]))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if game.name in seen:
            raise ValueError(f"{where}: game {game.name!r} appears twice")
        seen.add(game.name)
        games.append(game)
    return games


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GameFeatures:
    """The feature space: a budget one-hot over :data:`BUDGETS`, then a gameplay multi-hot.

    Parameters
    ----------
    gameplay : Vocabulary or sequence of str
        The gameplay styles, in column order. A plain sequence becomes a strict
        :class:`~ml.encoding.Vocabulary`. Strict (the default for queries): an unknown style
        raises :class:`ValueError` naming it, which the web app answers with 422. Catch-all
        (``Vocabulary(..., strict=False)``): unknown styles share one extra "unknown" column,
        the first of the gameplay block.
    thresholds : tuple of (float, float), default :data:`DEFAULT_THRESHOLDS`
        Budget buckets for game prices (:func:`budget_of`).

    Notes
    -----
    :meth:`from_games` orders the styles by code point (plain :func:`sorted`), which is the
    column order of the reference's trained model: ``Adventure, Arcade, Brawler, Card & Board
    Game, Fighting, ..., RPG, Racing, ..., Turn Based Strategy``. Order of first appearance in
    the CSV would give ``Arcade, Adventure, ...`` instead, and a case-insensitive sort would put
    ``Racing`` before ``RPG``. The golden-matrix test pins this down.
    """

    gameplay: Vocabulary
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS
    _columns: dict = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        vocabulary = self.gameplay
        if not isinstance(vocabulary, Vocabulary):
            vocabulary = Vocabulary(tuple(_styles(vocabulary, "the vocabulary's")))
        object.__setattr__(self, "gameplay", vocabulary)
        object.__setattr__(self, "thresholds", check_thresholds(self.thresholds))
        # One lookup table for the whole row, so encoding a query is a handful of dict hits.
        offset = len(BUDGETS)
        columns = {style: offset + vocabulary.index(style) for style in vocabulary.values}
        object.__setattr__(self, "_columns", columns)

    @classmethod
    def from_games(
        cls,
        games: Iterable[GameExample],
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        strict: bool = True,
    ) -> GameFeatures:
        """Build the feature space of a catalogue: every style any game has, in code-point order.

        Parameters
        ----------
        games : iterable of GameExample
        thresholds : sequence of two floats, default :data:`DEFAULT_THRESHOLDS`
        strict : bool, default True
            See the class docstring.

        Returns
        -------
        GameFeatures

        Raises
        ------
        ValueError
            If no game has any gameplay style.
        """
        styles = sorted({style for game in games for style in game.gameplay})
        if not styles:
            raise ValueError("no game has a gameplay style, so there is nothing to match on")
        return cls(Vocabulary(tuple(styles), strict=strict), tuple(thresholds))

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Tuple of the known gameplay styles, in column order."""
        return self.gameplay.values

    @property
    def columns(self) -> tuple[str, ...]:
        """Tuple of column labels: ``"budget=cheap"``, ..., ``"gameplay=Adventure"``, ..."""
        return tuple(f"budget={b}" for b in BUDGETS) + tuple(
            f"gameplay={style}" for style in self.gameplay.columns
        )

    def __len__(self) -> int:
        """Return the number of columns."""
        return len(BUDGETS) + len(self.gameplay)

    def budget_column(self, budget: str) -> int:
        """Return the column of ``budget``.

        Parameters
        ----------
        budget : str

        Returns
        -------
        int

        Raises
        ------
        ValueError
            If ``budget`` is not one of :data:`BUDGETS`.
        """
        try:
            return BUDGETS.index(budget)
        except ValueError:
            raise ValueError(
                f"unknown budget {budget!r}; expected one of {', '.join(BUDGETS)}"
            ) from None

    def style_columns(self, gameplay: Iterable[str]) -> list[int]:
        """Return the columns of the given styles.

        Parameters
        ----------
        gameplay : iterable of str

        Returns
        -------
        list of int
            One per style, in the given order (repeats kept).

        Raises
        ------
        ValueError
            For a bare string, or, when strict, an unknown style (named in the message).
        """
        return self._style_columns(_styles(gameplay, "the query's"))

    def _style_columns(self, styles: tuple[str, ...]) -> list[int]:
        """:meth:`style_columns` for styles already checked by :func:`_styles`."""
        columns = self._columns
        found = []
        for style in styles:
            column = columns.get(style)
            if column is None:
                if self.gameplay.strict:
                    raise ValueError(
                        f"unknown gameplay type {style!r}; expected one of "
                        + ", ".join(self.gameplay.values)
                    )
                column = len(BUDGETS)  # the catch-all column
            found.append(column)
        return found

    def encode(self, budget: str, gameplay: Iterable[str] = ()) -> np.ndarray:
        """Encode a query (or a game, or a pick).

        Parameters
        ----------
        budget : str
            One of :data:`BUDGETS`.
        gameplay : iterable of str, default ()
            Ticked styles; none at all is a budget-only query.

        Returns
        -------
        numpy.ndarray of float, shape (len(self),)

        Raises
        ------
        ValueError
            See :meth:`budget_column` and :meth:`style_columns`.
        """
        x = np.zeros(len(self))
        x[self.budget_column(budget)] = 1.0
        # Element by element: a handful of scalar stores beat one fancy-indexed store.
        for column in self.style_columns(gameplay):
            x[column] = 1.0
        return x

    def encode_game(self, game: GameExample) -> np.ndarray:
        """Encode a game from its price bucket and its styles.

        Parameters
        ----------
        game : GameExample

        Returns
        -------
        numpy.ndarray of float, shape (len(self),)
        """
        return self.encode(budget_of(game.price, self.thresholds), game.gameplay)


# ---------------------------------------------------------------------------------------------
# Algorithms: an sklearn estimator factory and its compiled scorer, per name
# ---------------------------------------------------------------------------------------------


class _LinearScorer:
    """Naive Bayes reduced to exact integer ranking keys.

    Both naive Bayes ``predict_proba`` are ``exp(jll - logsumexp(jll))`` with the joint
    log-likelihood ``jll = X @ weights.T (+ bias)``, a strictly increasing function of ``jll``
    per row, so ranking by ``jll`` is ranking by probability. In floating point, though, the
    sum depends on the order the terms are added in: two games whose weights for the asked
    features are the same numbers in different columns tie mathematically, yet scikit-learn can
    score one an ulp higher, and differently in a batch than for a single row. The tie rule
    ("ties by name") would then depend on rounding noise.

    So each weight is scaled by ``2**scale`` and rounded to an int64 once, when compiling, with
    the largest scale that keeps every possible sum below int64's limit. Integer sums are exact
    in any order, so equal scores tie exactly. A weight converts without loss when its
    magnitude is at least ``2**(52 - scale)``, 0.25 to 0.5 for the models here (``exact`` says
    whether all did); a smaller one loses only bits below ``2**-scale``, about 1e-16, far below
    any difference between two games that is not a tie.

    Attributes
    ----------
    feature_weights : numpy.ndarray
        The estimator's ``feature_log_prob_``.
    scale : int
        The power of two.
    exact : bool
        Whether every weight and bias converted without loss, so that the keys order the
        classes exactly as the real-number joint log-likelihoods do.
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray | None) -> None:
        weights = np.asarray(weights, dtype=float)
        bias = np.zeros(weights.shape[0]) if bias is None else np.asarray(bias, dtype=float)
        self.feature_weights = weights
        # Every key is a sum of at most n_features weights plus the bias: leave it 2 bits of
        # headroom below int64's limit.
        largest = max(float(np.abs(weights).max()), float(np.abs(bias).max()), 1e-300)
        self.scale = 61 - math.ceil(math.log2(largest * (weights.shape[1] + 1)))
        self._weights_t = _fixed_point(weights.T, self.scale)
        self._bias = _fixed_point(bias, self.scale)
        self._has_bias = bool(self._bias.any())  # ComplementNB has none: skip the addition
        self.exact = bool(
            np.array_equal(np.ldexp(self._weights_t.astype(float), -self.scale), weights.T)
            and np.array_equal(np.ldexp(self._bias.astype(float), -self.scale), bias)
        )

    def keys(self, X: np.ndarray) -> np.ndarray:
        """Integer keys of every class for 0/1 rows ``X`` (int64), higher first."""
        return X @ self._weights_t + self._bias

    def keys_for(self, columns: list[int]) -> np.ndarray:
        """Keys of every class for one query given as its distinct set columns."""
        keys = self._weights_t.take(columns, axis=0).sum(axis=0)
        if self._has_bias:
            keys += self._bias
        return keys


def _fixed_point(values: np.ndarray, scale: int) -> np.ndarray:
    return np.ascontiguousarray(np.rint(np.ldexp(values, scale)).astype(np.int64))


def _compile_complement_nb(estimator: ComplementNB) -> _LinearScorer:
    # ComplementNB's _joint_log_likelihood ignores the class prior (the weights already
    # compare each class with its complement) except in the degenerate one-class case.
    prior = estimator.class_log_prior_ if len(estimator.classes_) == 1 else None
    return _LinearScorer(estimator.feature_log_prob_, prior)


def _compile_multinomial_nb(estimator: MultinomialNB) -> _LinearScorer:
    return _LinearScorer(estimator.feature_log_prob_, estimator.class_log_prior_)


def similarity_votes(distances: np.ndarray) -> np.ndarray:
    """Weigh each k-NN neighbour's vote by ``2 - cosine distance``: 1 plus its similarity.

    Every neighbour counts at least 1 and an identical one 2, so nearer neighbours matter more
    and, with one example per game, the vote still orders the games by how near they are
    (uniform votes would tie them all and fall back to name order). A vote never weighs 0,
    which scikit-learn refuses, unlike inverse-distance weights, which ignore everything but
    exact matches when there are any.

    Parameters
    ----------
    distances : numpy.ndarray
        Cosine distances, 0 to 1 for non-negative features.

    Returns
    -------
    numpy.ndarray
        Same shape.
    """
    return 2.0 - distances


class _NeighbourScorer:
    """A k-NN vote with exact distances and a fixed rule for tied neighbours.

    For 0/1 rows the squared cosine similarity of a query with ``q`` features and an example
    with ``e`` features sharing ``s`` of them is ``s*s / (q*e)``: a ratio of small integers,
    whose correctly rounded quotient is the same float whenever the ratio is the same number.
    Neighbours are the ``k`` examples with the highest similarity; among examples tied at the
    boundary, the earliest (games before picks, games in name order) are taken. Each neighbour
    votes for its game with weight ``1 + similarity`` (:func:`similarity_votes`), added most
    similar first, so equal sets of neighbours give bit-identical totals. scikit-learn computes
    the same vote from floating-point distances (equal up to rounding), except that it picks
    among boundary ties in whatever order :func:`numpy.argpartition` leaves them.
    """

    def __init__(self, estimator: KNeighborsClassifier) -> None:
        # _fit_X and _y are private, but the store refuses artefacts from another scikit-learn
        # minor version, and the agreement tests pin their meaning on this one.
        examples = np.asarray(estimator._fit_X)
        if not np.isin(examples, (0.0, 1.0)).all():
            raise ValueError("k-NN examples must be 0/1 feature rows")
        self._examples_t = np.ascontiguousarray(examples.T.astype(np.int64))
        self._example_sizes = examples.sum(axis=1).astype(np.int64)
        self._labels = np.asarray(estimator._y, dtype=np.intp)
        self._k = int(estimator.n_neighbors)
        self._n_classes = len(estimator.classes_)
        self.feature_weights = None

    def keys(self, X: np.ndarray) -> np.ndarray:
        """Votes of every class for 0/1 rows ``X``, higher first."""
        return np.array([self.keys_for(np.flatnonzero(row).tolist()) for row in X])

    def keys_for(self, columns: list[int]) -> np.ndarray:
        """Votes of every class for one query given as its distinct set columns."""
        shared = self._examples_t[columns].sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # An empty query or example is dissimilar to everything (0/0 -> 0).
            similarity = np.nan_to_num(shared * shared / (len(columns) * self._example_sizes))
        nearest = self.neighbours(similarity)
        weights = 1.0 + np.sqrt(similarity[nearest])
        return np.bincount(self._labels[nearest], weights=weights, minlength=self._n_classes)

    def neighbours(self, similarity: np.ndarray) -> np.ndarray:
        """Positions of the ``k`` most similar examples, most similar first, ties by position."""
        n = similarity.size
        boundary = np.partition(similarity, n - self._k)[n - self._k]
        above = np.flatnonzero(similarity > boundary)
        tied = np.flatnonzero(similarity == boundary)[: self._k - above.size]
        nearest = np.concatenate([above, tied])
        return nearest[np.lexsort((nearest, -similarity[nearest]))]


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One way of ranking games: how to build the estimator and how to compile it.

    Parameters
    ----------
    name : str
        Registry key.
    description : str
        One line for the admin page.
    build : callable
        ``build(n_examples) -> estimator``: an unfitted scikit-learn classifier.
    compile : callable
        ``compile(fitted) -> scorer``, the fast path. ``scorer.keys(X)`` takes int64 0/1 rows
        and returns an ``(n_rows, n_classes)`` array; ``scorer.keys_for(columns)`` does the
        same for one query given as its distinct set columns. Sorting classes by key, highest
        first and ties by class index, must give the estimator's ``predict_proba`` order up to
        floating-point noise, and equal keys must mean mathematically equal scores, whatever
        order floating point would add them in (the agreement tests check both for every
        registered algorithm). ``scorer.feature_weights`` is an ``(n_classes, n_features)``
        array of how much each feature favours each class, or None to use the games' own
        features.
    mergeable : bool, default False
        Whether the estimator sees its examples only through per-class sums of their features,
        weighted by ``fit``'s ``sample_weight``, as naive Bayes does. :func:`train_games` then
        fits it on each distinct (features, game) example once, weighted by how often it
        occurs: the same fitted model from a fraction of the rows, which matters with many
        picks of few kinds. k-NN needs every example, in order.
    """

    name: str
    description: str
    build: Callable[[int], Any]
    compile: Callable[[Any], Any]
    mergeable: bool = False


REGISTRY = types.MappingProxyType(
    {
        "complement_nb": Algorithm(
            "complement_nb",
            "Complement naive Bayes (the reference)",
            lambda n_examples: ComplementNB(alpha=ALPHA),
            _compile_complement_nb,
            mergeable=True,
        ),
        "multinomial_nb": Algorithm(
            "multinomial_nb",
            "Multinomial naive Bayes (popular games win ties)",
            lambda n_examples: MultinomialNB(alpha=ALPHA),
            _compile_multinomial_nb,
            mergeable=True,
        ),
        "knn": Algorithm(
            "knn",
            f"Votes of the {KNN_NEIGHBOURS} most similar games and picks (cosine)",
            lambda n_examples: KNeighborsClassifier(
                n_neighbors=min(KNN_NEIGHBOURS, n_examples),
                metric="cosine",
                algorithm="brute",
                weights=similarity_votes,
            ),
            _NeighbourScorer,
        ),
    }
)
"""Every algorithm by name (read-only). Complement NB: each class is scored by how unlike its
complement (all other classes) the query is; with one example per game it suits the
reference's many tiny classes. Multinomial NB: the classic model, whose class prior lets
games picked often win near-ties. k-NN: each of the :data:`KNN_NEIGHBOURS` examples (games
and picks) most similar to the query by cosine similarity votes for its game, nearer ones more
(:func:`similarity_votes`); games outside the neighbourhood all score 0 and follow in name
order, so the end of a top 5 can be arbitrary when the neighbourhood names fewer than five
games."""

ALGORITHMS = tuple(REGISTRY)
"""Names :func:`train_games` accepts."""


def build_estimator(algorithm: str = DEFAULT_ALGORITHM, n_examples: int = KNN_NEIGHBOURS) -> Any:
    """Make an unfitted scikit-learn classifier for an algorithm of :data:`REGISTRY`.

    Parameters
    ----------
    algorithm : str, default "complement_nb"
        One of :data:`ALGORITHMS`.
    n_examples : int, default :data:`KNN_NEIGHBOURS`
        Training examples it will see; caps the k-NN neighbourhood.

    Returns
    -------
    estimator

    Raises
    ------
    ValueError
        For an unknown algorithm.
    """
    return _algorithm(algorithm).build(n_examples)


def _algorithm(name: str) -> Algorithm:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown algorithm {name!r}; choose one of {ALGORITHMS}") from None


# ---------------------------------------------------------------------------------------------
# The published model
# ---------------------------------------------------------------------------------------------


class GameModel:
    """A fitted recommender, compiled to a numpy ranking.

    Parameters
    ----------
    estimator : scikit-learn classifier
        Fitted by :func:`train_games` on :meth:`GameFeatures.encode` rows, with the game names
        as labels.
    features : GameFeatures
        The feature space it was fitted in.
    games : iterable of GameExample
        Every game, one per class (any order).
    algorithm : str
        Its :data:`REGISTRY` name.

    Attributes
    ----------
    classes_ : tuple of str
        Game names in class order (code-point order), as the estimator's ``classes_``.
    games_ : tuple of GameExample
        The games, in class order.
    algorithm : str
    features : GameFeatures
    estimator_ : scikit-learn classifier
        Kept so the compiled ranking can be checked against it, and recompiled on unpickling.

    Raises
    ------
    ValueError
        If the estimator's classes are not exactly the games' names.
    """

    def __init__(
        self, estimator: Any, features: GameFeatures, games: Iterable[GameExample], algorithm: str
    ) -> None:
        games_ = tuple(sorted(games, key=lambda game: game.name))
        names = tuple(game.name for game in games_)
        if tuple(str(name) for name in estimator.classes_) != names:
            raise ValueError("the estimator's classes are not the games' names in name order")
        self.estimator_ = estimator
        self.features = features
        self.games_ = games_
        self.classes_ = names
        self.algorithm = algorithm
        self._scorer = _algorithm(algorithm).compile(estimator)
        self._compile_explanations()

    def _compile_explanations(self) -> None:
        """Precompute per game what :meth:`top_n` needs to score and explain it."""
        features = self.features
        self._game_budgets = tuple(budget_of(g.price, features.thresholds) for g in self.games_)
        self._game_styles = tuple(frozenset(g.gameplay) for g in self.games_)
        weights = self._scorer.feature_weights
        if weights is None:
            weights = np.array([features.encode_game(game) for game in self.games_])
        # How much more a style favours this game than the average game, so a reason names the
        # shared styles that set the game apart first, not the ones every game has.
        favour = weights - weights.mean(axis=0)
        columns = features._columns
        self._favoured_styles = tuple(
            tuple(
                sorted(
                    set(game.gameplay),
                    key=lambda style, c=c: (-favour[c, columns[style]], columns[style]),
                )
            )
            for c, game in enumerate(self.games_)
        )
        rank = {budget: position for position, budget in enumerate(BUDGETS)}
        self._budget_reasons = tuple(
            {asked: _budget_reason(game_budget, asked, rank) for asked in BUDGETS}
            for game_budget in self._game_budgets
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the estimator and the catalogue; the compiled form is rebuilt on loading."""
        return {
            "estimator_": self.estimator_,
            "features": self.features,
            "games_": self.games_,
            "algorithm": self.algorithm,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Recompile from the pickled estimator; see :meth:`__getstate__`."""
        self.__init__(state["estimator_"], state["features"], state["games_"], state["algorithm"])

    @property
    def thresholds(self) -> tuple[float, float]:
        """Budget thresholds the games were bucketed with."""
        return self.features.thresholds

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Tuple of the gameplay styles a query may tick, in column order."""
        return self.features.vocabulary

    def encode(self, budget: str, gameplay: Iterable[str] = ()) -> np.ndarray:
        """Encode a query; see :meth:`GameFeatures.encode`."""
        return self.features.encode(budget, gameplay)

    def smoke_input(self) -> list[list[float]]:
        """Return a few encoded queries for the store's smoke test.

        Returns
        -------
        list of list of float
            Budget only (cheap); standard with the first style; premium with the first two.
        """
        styles = self.vocabulary
        queries = [("cheap", ()), ("standard", styles[:1]), ("premium", styles[:2])]
        return [self.encode(budget, gameplay).tolist() for budget, gameplay in queries]

    def _keys(self, X: ArrayLike) -> np.ndarray:
        """Ranking keys of every class for each 0/1 encoded row (see :class:`Algorithm`)."""
        rows = np.asarray(X, dtype=float)
        if rows.ndim != 2 or rows.shape[1] != len(self.features):
            raise ValueError(
                f"expected rows of {len(self.features)} features, got shape {rows.shape}"
            )
        if not np.isin(rows, (0.0, 1.0)).all():
            raise ValueError("encoded rows hold only 0 and 1; see GameFeatures.encode")
        return self._scorer.keys(rows.astype(np.int64))

    def ranking(self, X: ArrayLike) -> np.ndarray:
        """Order every class for each encoded row, best first, ties by class index (name).

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows of :meth:`GameFeatures.encode` (0/1).

        Returns
        -------
        numpy.ndarray of int, shape (n_rows, n_classes)
            Class indices into :attr:`classes_`: the estimator's ``predict_proba`` order,
            with mathematically equal probabilities tied exactly (see :data:`REGISTRY`).

        Raises
        ------
        ValueError
            If ``X`` does not have one 0/1 column per feature.
        """
        # A stable sort of the negated keys keeps equal keys in index order; negation is exact
        # (integer keys stay far from the int64 limits), so it makes no new ties.
        return np.argsort(-self._keys(X), axis=1, kind="stable")

    def predict(self, X: ArrayLike) -> list[str]:
        """Name the best game for each encoded row.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows of :meth:`GameFeatures.encode` (0/1).

        Returns
        -------
        list of str
            Plain strings, so the store can record them as JSON.

        Raises
        ------
        ValueError
            As :meth:`ranking`.
        """
        # argmax returns the first maximum: the lowest index, as in the ranking.
        return [self.classes_[i] for i in np.argmax(self._keys(X), axis=1).tolist()]

    def top_n(self, budget: str, gameplay: Iterable[str] = (), n: int = TOP_N) -> list[Suggestion]:
        """Suggest games for a party.

        Parameters
        ----------
        budget : str
            One of :data:`BUDGETS`.
        gameplay : iterable of str, default ()
            Ticked styles; none is fine (budget only).
        n : int, default :data:`TOP_N`
            How many; all games when there are fewer.

        Returns
        -------
        list of Suggestion
            Best first, in the model's order (ties by name). Each ``score`` is the share of the
            query's features the game matches (see :class:`Suggestion`).

        Raises
        ------
        ValueError
            For an unknown budget or style (named in the message), or ``n`` below 1.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a whole number of 1 or more, got {n!r}")
        asked = _styles(gameplay, "the query's")
        features = self.features
        # The set columns alone: the keys are sums over them, so no feature row is built.
        columns = sorted({features.budget_column(budget), *features._style_columns(asked)})
        order = (-self._scorer.keys_for(columns)).argsort(kind="stable")[:n].tolist()
        wanted = frozenset(asked)
        return [self._suggestion(c, budget, wanted) for c in order]

    def explain(self, name: str, budget: str, gameplay: Iterable[str] = ()) -> Suggestion:
        """Score and explain one game for a query, wherever it ranks.

        Parameters
        ----------
        name : str
            A game of :attr:`classes_`.
        budget : str
        gameplay : iterable of str, default ()

        Returns
        -------
        Suggestion

        Raises
        ------
        ValueError
            For an unknown game, budget or style.
        """
        try:
            c = self.classes_.index(name)
        except ValueError:
            raise ValueError(f"unknown game {name!r}") from None
        asked = _styles(gameplay, "the query's")
        self.features.encode(budget, asked)  # validates, as top_n would
        return self._suggestion(c, budget, frozenset(asked))

    def _suggestion(self, c: int, budget: str, wanted: frozenset[str]) -> Suggestion:
        matched = [style for style in self._favoured_styles[c] if style in wanted]
        score = ((self._game_budgets[c] == budget) + len(matched)) / (1 + len(wanted))
        budget_reason = self._budget_reasons[c][budget]
        if matched:
            return Suggestion(self.classes_[c], score, (_styles_reason(matched), budget_reason))
        return Suggestion(self.classes_[c], score, (budget_reason,))


def _styles_reason(matched: list[str]) -> str:
    named = matched[:MAX_REASON_STYLES]
    rest = len(matched) - len(named)
    if rest:
        return f"matches {', '.join(named)} and {rest} more"
    if len(named) == 1:
        return f"matches {named[0]}"
    return f"matches {', '.join(named[:-1])} and {named[-1]}"


def _budget_reason(game_budget: str, asked: str, rank: dict[str, int]) -> str:
    if game_budget == asked:
        return f"within a {asked} budget"
    side = "below" if rank[game_budget] < rank[asked] else "above"
    return f"a {game_budget} game, {side} a {asked} budget"


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _chronological(picks: list[Pick]) -> list[Pick]:
    """Picks by date when every pick has one (stable, so same-day picks keep input order)."""
    if picks and all(pick.when is not None for pick in picks):
        return sorted(picks, key=lambda pick: pick.when)
    return picks


def _known_picks(
    picks: Iterable[Pick], names: frozenset[str], features: GameFeatures
) -> tuple[list[Pick], int]:
    """Validate picks; drop styles the catalogue no longer has, counting them."""
    kept, dropped = [], 0
    # Picks repeat a few combinations of styles, so each is checked against the catalogue once.
    known: dict[tuple[str, ...], tuple[str, ...]] = {}
    for pick in picks:
        if pick.game not in names:
            raise ValueError(f"a pick names the game {pick.game!r}, which is not in the catalogue")
        if pick.budget not in BUDGETS:
            features.budget_column(pick.budget)  # raises, naming the budget
        styles = known.get(pick.gameplay)
        if styles is None:
            styles = tuple(style for style in pick.gameplay if style in features.gameplay)
            known[pick.gameplay] = styles
        if len(styles) != len(pick.gameplay):
            dropped += len(pick.gameplay) - len(styles)
            pick = dataclasses.replace(pick, gameplay=styles)
        kept.append(pick)
    return kept, dropped


@dataclasses.dataclass(frozen=True)
class _Examples:
    """Training examples, games first and then picks, as indices into a table of feature rows.

    Picks repeat a few hundred (budget, styles) combinations, so each combination is encoded
    once (``table``) and every example refers to its row (``rows``); ``labels`` is each
    example's class index (its game's position in name order).
    """

    table: np.ndarray
    rows: np.ndarray
    labels: np.ndarray

    @classmethod
    def encode(
        cls, features: GameFeatures, games: Sequence[GameExample], picks: Sequence[Pick]
    ) -> _Examples:
        """Encode the games (sorted by name) and the picks."""
        index: dict[tuple[str, tuple[str, ...]], int] = {}
        table: list[np.ndarray] = []

        def row(budget: str, gameplay: tuple[str, ...]) -> int:
            position = index.get((budget, gameplay))
            if position is None:
                position = index[budget, gameplay] = len(table)
                table.append(features.encode(budget, gameplay))
            return position

        thresholds = features.thresholds
        rows = [row(budget_of(game.price, thresholds), game.gameplay) for game in games]
        rows.extend(row(pick.budget, pick.gameplay) for pick in picks)
        label_of = {game.name: c for c, game in enumerate(games)}
        labels = np.arange(len(games) + len(picks), dtype=np.intp)
        labels[len(games) :] = np.fromiter((label_of[pick.game] for pick in picks), np.intp)
        return cls(np.array(table), np.array(rows, dtype=np.intp), labels)

    def first(self, count: int) -> _Examples:
        """The first ``count`` examples."""
        return _Examples(self.table, self.rows[:count], self.labels[:count])


def _fit(
    algorithm: str, features: GameFeatures, games: Sequence[GameExample], examples: _Examples
) -> GameModel:
    """Fit on one example per game plus one per pick, and compile."""
    names = np.array([game.name for game in games])
    spec = _algorithm(algorithm)
    if spec.mergeable:
        # Equal (row, game) examples merge into one, weighted by their count: naive Bayes sums
        # them all the same, and exactly, since the sums are of small whole numbers.
        distinct = len(examples.table)
        merged, counts = np.unique(examples.labels * distinct + examples.rows, return_counts=True)
        X, y = examples.table[merged % distinct], names[merged // distinct]
        fit_params = {"sample_weight": counts.astype(float)}
    else:
        X, y = examples.table[examples.rows], names[examples.labels]
        fit_params = {}
    estimator = spec.build(len(examples.rows))
    with warnings.catch_warnings():
        # k-NN warns that more than half the examples are distinct classes ("y could represent
        # a regression problem"). One example per game is this recommender's design, not a
        # mistake, so only that message is silenced, and only here.
        warnings.filterwarnings(
            "ignore", "The number of unique classes is greater than 50%", UserWarning
        )
        estimator.fit(X, y, **fit_params)
    return GameModel(estimator, features, games, algorithm)


def _top_k(model: GameModel, examples: _Examples, k: int) -> list[list[str]]:
    """The first ``k`` names the model ranks for each example, ranking each distinct row once."""
    distinct, inverse = np.unique(examples.rows, return_inverse=True)
    names = model.classes_
    ranking = model.ranking(examples.table[distinct])[:, :k].tolist()
    tops = [[names[c] for c in row] for row in ranking]
    return [tops[i] for i in inverse.tolist()]


def train_games(
    games: Iterable[GameExample],
    picks: Iterable[Pick] = (),
    algorithm: str = DEFAULT_ALGORITHM,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    holdout: float = 0.2,
    k: int = TOP_N,
) -> TrainedModel:
    """Train, measure and refit a game recommender.

    The training set is one example per game (its price bucket and styles, labelled with its
    name) plus one per pick (the party's budget and styles, labelled with the game it took), so
    the tavern's history teaches the model what parties actually choose. When there are at
    least :data:`ml.evaluation.MIN_SPLIT_ROWS` picks, the latest ``holdout`` share of them is
    held back: a model fitted on the games and the earlier picks ranks every held-out query,
    and so does the "most popular" baseline (:func:`ml.evaluation.popularity_ranking` of the
    earlier picks). The published model is then refitted on everything.

    Parameters
    ----------
    games : iterable of GameExample
        The catalogue; names must be unique. At least two games.
    picks : iterable of Pick, default ()
        Recorded picks. They are in time order by ``when`` if every pick has a date, else in
        the order given. A style no game has any more is dropped from a pick (and counted in
        ``params["pick_styles_dropped"]``), so old history never blocks a retrain.
    algorithm : str, default "complement_nb"
        One of :data:`ALGORITHMS`.
    thresholds : sequence of two floats, default :data:`DEFAULT_THRESHOLDS`
    holdout : float, default 0.2
        Share of the picks, the most recent, held back for measuring.
    k : int, default :data:`TOP_N`
        Suggestions shown; the cut-off of the hold-out metrics (and part of their names).

    Returns
    -------
    TrainedModel
        ``model`` is a :class:`GameModel`. ``metrics`` has ``"hit_rate_at_5"`` and
        ``"precision_at_5"`` of the model, ``"baseline_hit_rate_at_5"`` and
        ``"baseline_precision_at_5"`` of the popularity baseline (``5`` being ``k``; None when
        unmeasured), ``"holdout_picks"`` and ``"train_picks"``. ``params`` has
        ``"algorithm"``, ``"thresholds"``, ``"vocabulary"``, ``"games"`` and ``"picks"``
        (counts), ``"holdout"``, ``"k"`` and ``"pick_styles_dropped"``. ``training_rows`` counts
        games plus picks.

    Raises
    ------
    ValueError
        For fewer than two games, a repeated game name, a pick naming an unknown game or
        budget, or bad settings.
    """
    _algorithm(algorithm)
    thresholds = check_thresholds(thresholds)
    check_holdout(holdout)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number of 1 or more, got {k!r}")
    games = sorted(games, key=lambda game: game.name)
    names = [game.name for game in games]
    if len(games) < 2:
        raise ValueError(f"need at least 2 games to recommend between, got {len(games)}")
    repeated = sorted({name for a, name in zip(names, names[1:], strict=False) if a == name})
    if repeated:
        raise ValueError(f"game names must be unique; repeated: {', '.join(map(repr, repeated))}")
    features = GameFeatures.from_games(games, thresholds)
    picks, dropped = _known_picks(picks, frozenset(names), features)
    picks = _chronological(picks)

    metrics: dict[str, Any] = {
        f"hit_rate_at_{k}": None,
        f"precision_at_{k}": None,
        f"baseline_hit_rate_at_{k}": None,
        f"baseline_precision_at_{k}": None,
        "holdout_picks": 0,
        "train_picks": len(picks),
    }
    examples = _Examples.encode(features, games, picks)
    if len(picks) >= MIN_SPLIT_ROWS:
        train_idx, _ = chronological_split(len(picks), holdout)
        split = len(games) + len(train_idx)
        train, test = picks[: len(train_idx)], picks[len(train_idx) :]
        measured = _fit(algorithm, features, games, examples.first(split))
        held_out = _Examples(examples.table, examples.rows[split:], examples.labels[split:])
        ranked = _top_k(measured, held_out, k)
        popular = popularity_ranking((pick.game for pick in train), names)[:k]
        truths = [pick.game for pick in test]
        metrics.update(
            {
                f"hit_rate_at_{k}": hit_rate_at_k(ranked, truths, k),
                f"precision_at_{k}": precision_at_k(ranked, truths, k),
                f"baseline_hit_rate_at_{k}": hit_rate_at_k([popular] * len(test), truths, k),
                f"baseline_precision_at_{k}": precision_at_k([popular] * len(test), truths, k),
                "holdout_picks": len(test),
                "train_picks": len(train),
            }
        )

    model = _fit(algorithm, features, games, examples)
    params = {
        "algorithm": algorithm,
        "thresholds": list(thresholds),
        "vocabulary": list(features.vocabulary),
        "games": len(games),
        "picks": len(picks),
        "holdout": holdout,
        "k": k,
        "pick_styles_dropped": dropped,
    }
    return TrainedModel(
        model=model,
        metrics=metrics,
        params=params,
        training_rows=len(games) + len(picks),
        data_hash=examples_hash(games, picks),
        smoke_input=model.smoke_input(),
    )


_HASH_CHUNK = 10_000
"""Examples serialised at a time by :func:`examples_hash`, so it never holds all their JSON."""


def _canonical_row(example: GameExample | Pick) -> dict[str, Any]:
    """The dict :func:`ml.training.data_hash` makes of a game or a pick, keys in sorted order."""
    if type(example) is GameExample:
        return {"gameplay": example.gameplay, "name": example.name, "price": example.price}
    if type(example) is Pick:
        when = example.when
        return {
            "budget": example.budget,
            "game": example.game,
            "gameplay": example.gameplay,
            "when": None if when is None else when.isoformat(),
        }
    raise TypeError(f"no shortcut for a {type(example).__name__}")  # a subclass: more fields?


def examples_hash(games: Sequence[GameExample], picks: Sequence[Pick]) -> str:
    """Compute :func:`ml.training.data_hash` of the games then the picks, without its generic walk.

    ``data_hash`` inspects every value of every row to find its canonical form, which took
    longer than all the rest of training with a million picks. Games and picks have a known
    canonical form (a dict of their fields, styles as a list, the date as ISO text), so this
    builds it directly and feeds the same JSON to SHA-256 a chunk at a time. Anything else (a
    subclass, a numpy value ``json`` cannot write) sends everything through ``data_hash``.

    Parameters
    ----------
    games : sequence of GameExample
    picks : sequence of Pick

    Returns
    -------
    str
        Exactly ``data_hash([*games, *picks])``.
    """
    rows = [*games, *picks]
    digest = hashlib.sha256(b"[")
    try:
        for start in range(0, len(rows), _HASH_CHUNK):
            chunk = [_canonical_row(row) for row in rows[start : start + _HASH_CHUNK]]
            # data_hash's separators; the keys are already sorted, as its sort_keys=True would
            # write them (sorting each dict again costs a third of the time); [1:-1] drops this
            # chunk's brackets.
            text = json.dumps(chunk, separators=(",", ":"))[1:-1]
            digest.update(b"," + text.encode("utf-8") if start else text.encode("utf-8"))
    except TypeError:
        return data_hash(rows)
    digest.update(b"]")
    return digest.hexdigest()
