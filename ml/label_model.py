"""The gift-item label model: suggests ``group:label`` names for items, learnt from human labels.

The rules engine (:mod:`ml.labels`) labels items from day one; once staff have labelled enough
items, this classifier takes over a group's suggestions. It is a plain multi-label model:

- **Features** (:class:`LabelFeatures`): TF-IDF (sublinear, word unigrams and bigrams) over the
  item's name, description, vendor and category, then ``log1p(price)`` scaled by the largest
  training price, then the four boolean attributes (:data:`ml.items.ATTRIBUTES`). Every column
  is non-negative, so Complement Naive Bayes can use them too.
- **Classifier**: one binary classifier per label (one-vs-rest) — logistic regression with
  balanced class weights (``"logreg"``, the default) or Complement Naive Bayes
  (``"complement_nb"``). A label that every training item has, or none has, gets a constant
  probability instead of a classifier.
- **Decisions**: in a single-label group the label with the highest probability is suggested
  (argmax; its confidence is its share of the group's probabilities); in a multi-label group
  every label whose probability reaches its threshold (:data:`THRESHOLD`, stored per label) is.
- **Compiled form**: both algorithms' binary probabilities are ``sigmoid(X @ w + b)`` (for
  Complement NB ``w`` is the difference of the two classes' feature log-probabilities), so the
  fitted estimators are reduced to one weight matrix and the whole batch is scored with one
  sparse-dense product. The estimators are kept so tests can check the compiled form against
  ``predict_proba``.

:func:`train_labels` measures the model on a seeded hold-out against the rules engine's labels
for the same items, then refits on every example. :func:`order_by_uncertainty` orders a
labelling queue least-certain-first with a random share mixed in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_fscore_support
from sklearn.naive_bayes import ComplementNB
from sklearn.preprocessing import MultiLabelBinarizer

from ml.evaluation import check_holdout
from ml.items import ATTRIBUTES, ItemData, qualified
from ml.training import TrainedModel, data_hash

__all__ = [
    "ALGORITHMS",
    "Assessment",
    "DEFAULT_ALGORITHM",
    "MIN_EXAMPLES",
    "THRESHOLD",
    "LabelExample",
    "LabelFeatures",
    "LabelModel",
    "order_by_uncertainty",
    "train_labels",
]

ALGORITHMS = ("logreg", "complement_nb")
"""Algorithm names :func:`train_labels` accepts."""

DEFAULT_ALGORITHM = "logreg"
"""One-vs-rest logistic regression with balanced class weights."""

MIN_EXAMPLES = 10
"""Fewest human-labelled items :func:`train_labels` accepts: fewer leave nothing to learn from
and no meaningful hold-out."""

THRESHOLD = 0.5
"""Probability at which a multi-label group's label is suggested. Balanced class weights centre
logistic regression's probabilities on 0.5 for rare labels, so no tuning is needed to start
with; the model stores one threshold per label so a tuned value can replace it."""

SMOKE_ITEMS = 3
"""Training items recorded as the store's smoke-test input."""


@dataclasses.dataclass(frozen=True)
class LabelExample:
    """An item and the labels a person gave it.

    Parameters
    ----------
    item : ItemData
        The item.
    labels : frozenset of str
        Its human labels as ``group:label`` names; empty means "none of the labels applies".
    """

    item: ItemData
    labels: frozenset[str]


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


def _as_item(value: ItemData | Mapping[str, Any]) -> ItemData:
    """Accept an ItemData or its dict form (the smoke input is stored as JSON)."""
    if isinstance(value, ItemData):
        return value
    if isinstance(value, Mapping):
        return ItemData(**value)
    raise TypeError(f"expected an ItemData or a dict of its fields, got {type(value).__name__}")


def _text(item: ItemData) -> str:
    return " ".join(part for part in (item.name, item.description, item.vendor, item.category)
                    if part)


class LabelFeatures:
    """The feature space: TF-IDF text columns, one scaled log-price column, four attributes.

    Parameters
    ----------
    min_df : int, default 1
        Fewest training items a term must appear in. :func:`train_labels` uses 2 once there
        are 200 or more examples (typos and one-off words only add noise), 1 below that.
    max_features : int, default 50000
        Cap on the text vocabulary, so the weight matrix stays small at any data size.

    Attributes
    ----------
    vectorizer_ : TfidfVectorizer
    price_scale_ : float
        ``log1p`` of the largest training price (at least ``log1p(1)``); prices are divided by
        it so the column sits between 0 and about 1 like the TF-IDF values.
    """

    def __init__(self, min_df: int = 1, max_features: int = 50_000) -> None:
        self.min_df = min_df
        self.max_features = max_features

    def fit(self, items: Sequence[ItemData]) -> LabelFeatures:
        """Learn the vocabulary, IDF weights and price scale from ``items``; returns self."""
        self._fit_text(items)
        return self

    def fit_transform(self, items: Sequence[ItemData]) -> sp.csr_matrix:
        """:meth:`fit` then :meth:`transform` of the same ``items``, tokenising them once.

        Tokenising is most of the cost of both steps, and training encodes the very items it
        fits on. The result equals ``fit(items).transform(items)`` up to the order in which
        each row's squares are summed when it is normalised (the last bit or so).
        """
        text = self._fit_text(items)
        return self._with_numeric(text, items)

    def _fit_text(self, items: Sequence[ItemData]) -> sp.csr_matrix:
        """Fit the vectorizer and the price scale; the items' TF-IDF rows come for free."""
        self.vectorizer_ = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, 2), min_df=self.min_df,
            max_features=self.max_features, strip_accents="unicode", dtype=np.float64,
        )
        text = self.vectorizer_.fit_transform([_text(item) for item in items])
        top = max((max(float(item.price), 0.0) for item in items), default=1.0)
        self.price_scale_ = math.log1p(max(top, 1.0))
        return text

    @property
    def n_features(self) -> int:
        """Number of columns :meth:`transform` returns."""
        return len(self.vectorizer_.vocabulary_) + 1 + len(ATTRIBUTES)

    def transform(self, items: Sequence[ItemData]) -> sp.csr_matrix:
        """Encode ``items`` as a sparse matrix of shape ``(len(items), n_features)``."""
        text = self.vectorizer_.transform([_text(item) for item in items])
        return self._with_numeric(text, items)

    def _with_numeric(self, text: sp.csr_matrix, items: Sequence[ItemData]) -> sp.csr_matrix:
        """Append the price and attribute columns to the items' TF-IDF rows."""
        prices = np.array([max(float(item.price), 0.0) for item in items], dtype=float)
        # A price far above anything seen in training must not dominate the row.
        price = np.clip(np.log1p(prices) / self.price_scale_, 0.0, 3.0)
        flags = np.fromiter((bool(getattr(item, name)) for item in items for name in ATTRIBUTES),
                            dtype=float, count=len(items) * len(ATTRIBUTES))
        flags = flags.reshape(len(items), len(ATTRIBUTES))
        dense = sp.csr_matrix(np.column_stack([price, flags]))
        return sp.hstack([text, dense], format="csr")


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


def _build_estimator(algorithm: str, seed: int) -> Any:
    if algorithm == "logreg":
        # The dual solver (coordinate descent) minimises the same regularised loss as
        # liblinear's default primal Newton method, to the same tolerance. On these features
        # the primal method's inner steps grow with the item count (a few dense columns, the
        # price and the attributes, beside thousands of sparse text columns make it badly
        # conditioned): with 100,000 items the dual one took 40% less time, with
        # probabilities within 0.001 of the primal ones. It needs more, cheaper passes than
        # the primal's 100 allowed (up to ~55 at 100,000 items), hence the higher cap.
        return LogisticRegression(solver="liblinear", dual=True, max_iter=1000,
                                  class_weight="balanced", random_state=seed)
    return ComplementNB(alpha=1.0)


def _linear_form(estimator: Any) -> tuple[np.ndarray, float]:
    """Weights and bias with ``P(label) = sigmoid(X @ w + b)`` for a fitted binary estimator."""
    if isinstance(estimator, LogisticRegression):
        return np.asarray(estimator.coef_[0], dtype=float), float(estimator.intercept_[0])
    # ComplementNB ignores the class prior with two classes: the joint log-likelihood of each
    # class is X @ feature_log_prob_[c], and predict_proba is their softmax.
    log_prob = estimator.feature_log_prob_
    return np.asarray(log_prob[1] - log_prob[0], dtype=float), 0.0


@dataclasses.dataclass(frozen=True)
class Assessment:
    """What :meth:`LabelModel.assess` found for a batch of items.

    Parameters
    ----------
    suggestions : list of list of (str, float)
        Per item, the suggested labels and confidences (see :meth:`LabelModel.suggest`).
    groups : tuple of str
        The groups assessed, in model order: the columns of ``margins``.
    margins : numpy.ndarray of shape (n_items, n_groups)
        Each group's margin, 0 (a coin toss) to 1 (decided); see :meth:`LabelModel.uncertainty`.
    """

    suggestions: list[list[tuple[str, float]]]
    groups: tuple[str, ...]
    margins: np.ndarray

    def uncertainty(self) -> list[float]:
        """``1 - mean margin`` per item; 1.0 when no group was assessed."""
        if not self.groups:
            return [1.0] * len(self.suggestions)
        return [float(u) for u in 1.0 - self.margins.mean(axis=1)]


class LabelModel:
    """A fitted multi-label model over label groups, compiled to one weight matrix.

    Parameters
    ----------
    features : LabelFeatures
        Fitted feature space.
    labels : sequence of str
        Every ``group:label`` name, in column order (grouped by label group).
    groups : mapping of str to tuple of str
        Each group's labels (qualified names), in column order.
    single_label_groups : frozenset of str
        Groups where an item takes one label.
    estimators : list
        One fitted binary estimator per label, or None where the label is constant.
    constants : list of float or None
        The probability of each constant label (0 or 1), None where an estimator exists.
    algorithm : str

    Attributes
    ----------
    labels_ : tuple of str
    groups_ : dict of str to tuple of int
        Column indices of each group's labels.
    thresholds_ : numpy.ndarray
        Per-label probability threshold for multi-label groups.
    coef_ : numpy.ndarray of shape (n_features, n_labels)
    intercept_ : numpy.ndarray of shape (n_labels,)
    """

    def __init__(
        self,
        features: LabelFeatures,
        labels: Sequence[str],
        groups: Mapping[str, tuple[str, ...]],
        single_label_groups: frozenset[str],
        estimators: list[Any],
        constants: list[float | None],
        algorithm: str,
    ) -> None:
        self.features = features
        self.labels_ = tuple(labels)
        column = {label: i for i, label in enumerate(self.labels_)}
        self.groups_ = {group: tuple(column[name] for name in names)
                        for group, names in groups.items()}
        self.single_label_groups = frozenset(single_label_groups)
        self.estimators_ = list(estimators)
        self.constants_ = list(constants)
        self.algorithm = algorithm
        self.thresholds_ = np.full(len(self.labels_), THRESHOLD)
        self._compile()

    def _compile(self) -> None:
        n_features, n_labels = self.features.n_features, len(self.labels_)
        self.coef_ = np.zeros((n_features, n_labels))
        self.intercept_ = np.zeros(n_labels)
        self._constant_mask = np.array([c is not None for c in self.constants_], dtype=bool)
        self._constant_values = np.array([c if c is not None else 0.0 for c in self.constants_])
        for j, estimator in enumerate(self.estimators_):
            if estimator is not None:
                self.coef_[:, j], self.intercept_[j] = _linear_form(estimator)

    @property
    def groups(self) -> tuple[str, ...]:
        """The label groups, in column order."""
        return tuple(self.groups_)

    def predict_proba(self, items: Sequence[ItemData | Mapping[str, Any]]) -> np.ndarray:
        """Each label's probability for each item.

        Parameters
        ----------
        items : sequence of ItemData (or dicts of its fields)

        Returns
        -------
        numpy.ndarray of shape (len(items), n_labels)
            Independent one-vs-rest probabilities, columns in :attr:`labels_` order.
        """
        rows = [_as_item(item) for item in items]
        if not rows:
            return np.zeros((0, len(self.labels_)))
        X = self.features.transform(rows)
        proba = expit(np.asarray(X @ self.coef_) + self.intercept_)
        proba[:, self._constant_mask] = self._constant_values[self._constant_mask]
        return proba

    def _group_shares(self, proba: np.ndarray, columns: tuple[int, ...]) -> np.ndarray:
        """A single-label group's probabilities rescaled to sum to 1 per item."""
        block = proba[:, columns]
        total = block.sum(axis=1, keepdims=True)
        # All-zero rows only happen when every label is constant 0; share evenly then.
        return np.divide(block, total, out=np.full_like(block, 1.0 / len(columns)),
                         where=total > 0)

    def _decide(self, proba: np.ndarray) -> np.ndarray:
        """The 0/1 decision matrix: argmax in single-label groups, thresholds elsewhere."""
        chosen = np.zeros(proba.shape, dtype=bool)
        for group, columns in self.groups_.items():
            if not columns:
                continue
            cols = np.array(columns)
            if group in self.single_label_groups:
                best = cols[np.argmax(proba[:, cols], axis=1)]
                chosen[np.arange(len(proba)), best] = True
            else:
                chosen[:, cols] = proba[:, cols] >= self.thresholds_[cols]
        return chosen

    def predict(self, items: Sequence[ItemData | Mapping[str, Any]]) -> list[list[str]]:
        """The suggested label names of each item (no confidences).

        Parameters
        ----------
        items : sequence of ItemData (or dicts of its fields)

        Returns
        -------
        list of list of str
            In :attr:`labels_` order; plain strings, so the store can record them as JSON.
        """
        chosen = self._decide(self.predict_proba(items))
        return [[self.labels_[j] for j in np.flatnonzero(row)] for row in chosen]

    def suggest(
        self, items: Sequence[ItemData | Mapping[str, Any]], groups: Iterable[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """Suggested labels with their confidence, for each item.

        Parameters
        ----------
        items : sequence of ItemData (or dicts of its fields)
        groups : iterable of str, optional
            Only these groups (unknown names are ignored); all by default.

        Returns
        -------
        list of list of (str, float)
            Per item, groups in model order, each group's labels by falling confidence. In a
            single-label group exactly one label, its confidence being its share of the group's
            probabilities; in a multi-label group every label at or above its threshold, with
            its probability (possibly none).
        """
        return self.assess(items, groups).suggestions

    def uncertainty(
        self, items: Sequence[ItemData | Mapping[str, Any]], groups: Iterable[str] | None = None
    ) -> list[float]:
        """How unsure the model is about each item, from 0 (sure) to 1 (no idea).

        ``uncertainty = 1 - mean(margins over the groups)``, each group's *margin* (0 to 1)
        being:

        - single-label group: the top label's share of the group's probabilities minus the
          second's (1 when one label takes everything, 0 for a tie);
        - multi-label group: ``2 * min over the group's labels of |p - threshold|``, i.e. how
          far the *least decided* label is from flipping. The top label alone would call an
          item certain when one theme is obvious and another is a coin toss; the closest call
          is what a person's answer would teach the model most.

        Parameters
        ----------
        items : sequence of ItemData (or dicts of its fields)
        groups : iterable of str, optional
            Only these groups; all by default. With no groups left every item scores 1.0.

        Returns
        -------
        list of float
        """
        return self.assess(items, groups).uncertainty()

    def assess(
        self, items: Sequence[ItemData | Mapping[str, Any]], groups: Iterable[str] | None = None
    ) -> Assessment:
        """Suggestions and per-group margins together, encoding the items once.

        Parameters
        ----------
        items : sequence of ItemData (or dicts of its fields)
        groups : iterable of str, optional
            Only these groups; all by default.

        Returns
        -------
        Assessment
            See :meth:`suggest` and :meth:`uncertainty` for what the parts mean.
        """
        proba = self.predict_proba(items)
        wanted = self._selected(groups)
        n = len(proba)
        suggestions: list[list[tuple[str, float]]] = [[] for _ in range(n)]
        margins = np.zeros((n, len(wanted)))
        for g, group in enumerate(wanted):
            cols = np.array(self.groups_[group])
            if group in self.single_label_groups:
                shares = self._group_shares(proba, self.groups_[group])
                order = np.argsort(-shares, axis=1, kind="stable")
                top = shares[np.arange(n), order[:, 0]]
                second = shares[np.arange(n), order[:, 1]] if len(cols) > 1 else 1.0 - top
                margins[:, g] = top - second
                for i, (best, confidence) in enumerate(zip(order[:, 0].tolist(), top.tolist(),
                                                           strict=True)):
                    suggestions[i].append((self.labels_[cols[best]], confidence))
            else:
                block, limits = proba[:, cols], self.thresholds_[cols]
                margins[:, g] = 2.0 * np.min(np.abs(block - limits), axis=1)
                names = [self.labels_[c] for c in cols]
                for i, row in enumerate(block.tolist()):
                    picked = sorted(((p, k) for k, p in enumerate(row) if p >= limits[k]),
                                    key=lambda pair: (-pair[0], pair[1]))
                    suggestions[i].extend((names[k], p) for p, k in picked)
        return Assessment(suggestions, tuple(wanted), np.clip(margins, 0.0, 1.0))

    def _selected(self, groups: Iterable[str] | None) -> list[str]:
        if groups is None:
            return [g for g, cols in self.groups_.items() if cols]
        asked = set(groups)
        return [g for g, cols in self.groups_.items() if cols and g in asked]

    # -----------------------------------------------------------------------------------------
    # One item at a time (live previews)
    # -----------------------------------------------------------------------------------------

    def predict_proba_one(self, item: ItemData | Mapping[str, Any]) -> np.ndarray:
        """``predict_proba([item])[0]`` without scikit-learn's per-call cost.

        For a live preview that scores one item per keystroke. ``predict_proba`` spends about a
        millisecond in ``TfidfVectorizer.transform`` (input validation, sparse matrices) on a
        single row; this finds the item's terms as the vectorizer does, looks each term's
        column up in one dict, and multiplies the few non-zero features by their rows of the
        compiled weights (:attr:`coef_`). Same probabilities, to rounding.

        Parameters
        ----------
        item : ItemData (or a dict of its fields)

        Returns
        -------
        numpy.ndarray of shape (n_labels,)
            Each label's probability, in :attr:`labels_` order.
        """
        form = self.__dict__.get("_one_item") or self._one_item_form()
        if form.encode is None:  # a feature space the fast encoder does not reproduce
            return self.predict_proba([item])[0]
        columns, values = form.encode(item if isinstance(item, ItemData) else _as_item(item))
        # Each numpy call costs about half a microsecond here, whatever its size: few of them.
        proba = np.dot(values, self.coef_.take(columns, axis=0))
        proba += self.intercept_
        expit(proba, out=proba)
        if form.constant_columns is not None:
            proba[form.constant_columns] = form.constant_values
        return proba

    def suggest_one(
        self, item: ItemData | Mapping[str, Any], groups: Iterable[str] | None = None
    ) -> list[tuple[str, float]]:
        """``suggest([item], groups)[0]`` at a live preview's cost (see :meth:`suggest`).

        Parameters
        ----------
        item : ItemData (or a dict of its fields)
        groups : iterable of str, optional
            Only these groups (unknown names are ignored); all by default.

        Returns
        -------
        list of (str, float)
            Groups in model order: a single-label group's one label with its share of the
            group's probabilities, a multi-label group's labels at or above their thresholds
            by falling probability.
        """
        proba = self.predict_proba_one(item).tolist()
        limits = self.thresholds_.tolist()
        asked = None if groups is None else set(groups)
        suggestions = []
        for group, single, columns, names, places in self._one_item.plan:  # built just above
            if asked is not None and group not in asked:
                continue
            if single:
                block = [proba[c] for c in columns]
                total = sum(block)
                if total > 0:
                    shares = [p / total for p in block]
                else:  # every label of the group is a constant 0: even shares, as in assess
                    shares = [1.0 / len(block)] * len(block)
                top = max(shares)
                # index() finds the first of equal shares, as assess's stable argsort does.
                suggestions.append((names[shares.index(top)], top))
            else:
                picked = [(-proba[c], k) for k, c in places if proba[c] >= limits[c]]
                if picked:
                    picked.sort()  # by falling probability, then in group order
                    suggestions += [(names[k], -negative) for negative, k in picked]
        return suggestions

    def _one_item_form(self) -> Any:
        """What the single-item path needs, built on first use: ``encode`` (None when the
        features are not the :class:`LabelFeatures` layout of text, price and attributes that
        it reproduces), the constant labels, and ``plan``: each group's name, whether it is
        single-label, its columns, its label names and its (place, column) pairs."""
        form = self.__dict__.get("_one_item")
        if form is None:
            from types import SimpleNamespace  # here: this part only adds to the class

            constants = np.flatnonzero(self._constant_mask)
            plan = tuple((group, group in self.single_label_groups, columns,
                          tuple(self.labels_[c] for c in columns), tuple(enumerate(columns)))
                         for group, columns in self.groups_.items() if columns)
            form = SimpleNamespace(
                encode=self._one_item_encoder(), plan=plan,
                constant_columns=constants if len(constants) else None,
                constant_values=self._constant_values[constants])
            self._one_item = form
        return form

    def _one_item_encoder(self) -> Any:
        """``encode(item) -> (columns, values)``: the item's non-zero features as
        :meth:`LabelFeatures.transform` computes them (two lists: numpy would cost more for a
        few dozen values); None for another feature layout."""
        from collections import Counter  # here: this part only adds to the class

        features = self.features
        vectorizer = getattr(features, "vectorizer_", None)
        if type(features) is not LabelFeatures or vectorizer is None:
            return None
        vocabulary = vectorizer.vocabulary_
        n_text = len(vocabulary)
        if (features.n_features != n_text + 1 + len(ATTRIBUTES)
                or vectorizer.norm not in ("l2", "l1", None) or vectorizer.input != "content"):
            return None
        column_of = vocabulary.get
        idf = vectorizer.idf_.tolist() if vectorizer.use_idf else [1.0] * n_text
        analyze = self._one_item_analyzer(vectorizer)
        binary, sublinear, norm = vectorizer.binary, vectorizer.sublinear_tf, vectorizer.norm
        price_column, scale = n_text, features.price_scale_
        flags = tuple((name, n_text + 1 + k) for k, name in enumerate(ATTRIBUTES))

        def term_weight(count: int) -> float:
            # TfidfTransformer's weight of a term seen ``count`` times, before the IDF.
            if binary:
                return 1.0
            return math.log(count) + 1.0 if sublinear else float(count)

        # A table for the usual counts (index 0 is never read: a found term counts 1 or more).
        repeated = [0.0] + [term_weight(count) for count in range(1, 33)]

        def encode(item: ItemData) -> tuple[list[int], list[float]]:
            # _text's parts and order; filter() joins them without a Python-level generator.
            text = " ".join(filter(None, (item.name, item.description, item.vendor,
                                          item.category)))
            columns = [c for c in map(column_of, analyze(text)) if c is not None]
            if len(set(columns)) == len(columns):
                # Each term once: its weight is its IDF in every set-up (1, log(1) + 1).
                weights = list(map(idf.__getitem__, columns))
            else:
                counts = Counter(columns)
                columns = list(counts)
                weights = [idf[c] * (repeated[n] if n < 33 else term_weight(n))
                           for c, n in counts.items()]
            if norm is not None and weights:
                size = math.hypot(*weights) if norm == "l2" else sum(map(abs, weights))
                weights = [w / size for w in weights]
            # Price and attributes are not normalised with the text.
            columns.append(price_column)
            weights.append(min(max(math.log1p(max(float(item.price), 0.0)) / scale, 0.0), 3.0))
            for name, column in flags:
                if getattr(item, name):
                    columns.append(column)
                    weights.append(1.0)
            return columns, weights

        return encode

    @staticmethod
    def _one_item_analyzer(vectorizer: Any) -> Any:
        """``vectorizer.build_analyzer()``, faster for the set-up :class:`LabelFeatures` uses.

        Word unigrams (and bigrams) with the default token pattern and lower-casing: ASCII
        text is lower-cased and split by one ``str.translate`` (the pattern's regex costs
        five times more) and bigrams are joined by ``map``, not scikit-learn's Python loop.
        Other text, and any other set-up, goes through the vectorizer's own steps.
        """
        import re  # here: this part only adds to the class
        from itertools import pairwise

        if (vectorizer.analyzer != "word" or vectorizer.get_stop_words() is not None
                or vectorizer.ngram_range not in ((1, 1), (1, 2))):
            return vectorizer.build_analyzer()
        preprocess, tokenize = vectorizer.build_preprocessor(), vectorizer.build_tokenizer()
        bigrams = vectorizer.ngram_range == (1, 2)
        # For ASCII text the default steps are: lower-case, strip accents (there are none),
        # then take runs of two or more word characters. Any other ASCII character separates.
        plain = (vectorizer.token_pattern == r"(?u)\b\w\w+\b" and vectorizer.tokenizer is None
                 and vectorizer.preprocessor is None and vectorizer.lowercase
                 and vectorizer.strip_accents in (None, "ascii", "unicode"))
        word = re.compile(r"\w")
        table = str.maketrans({chr(i): chr(i).lower() if word.match(chr(i)) else " "
                               for i in range(128)})

        def analyze(text: str) -> list[str]:
            if plain and text.isascii():
                tokens = text.translate(table).split()
                if tokens and min(map(len, tokens)) < 2:  # one-character words are dropped
                    tokens = [token for token in tokens if len(token) > 1]
            else:
                tokens = tokenize(preprocess(text))
            return [*tokens, *map(" ".join, pairwise(tokens))] if bigrams else tokens

        return analyze

    def __getstate__(self) -> dict[str, Any]:
        """Pickle everything but the single-item form, which is rebuilt on first use."""
        state = self.__dict__.copy()
        state.pop("_one_item", None)
        return state


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _vocabulary(groups: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Qualify each group's label names (names already qualified with their group are kept)."""
    vocabulary = {}
    for group, names in groups.items():
        prefix = f"{group}:"
        vocabulary[group] = tuple(dict.fromkeys(
            name if name.startswith(prefix) else qualified(group, name) for name in names))
    return vocabulary


def _fit(
    examples: Sequence[LabelExample],
    Y: np.ndarray,
    vocabulary: dict[str, tuple[str, ...]],
    labels: tuple[str, ...],
    single_label_groups: frozenset[str],
    algorithm: str,
    seed: int,
) -> LabelModel:
    items = [example.item for example in examples]
    features = LabelFeatures(min_df=2 if len(items) >= 200 else 1)
    X = features.fit_transform(items)
    estimators: list[Any] = []
    constants: list[float | None] = []
    for j in range(len(labels)):
        y = Y[:, j]
        if y.min() == y.max():  # every item has it, or none: nothing to separate
            estimators.append(None)
            constants.append(float(y[0]))
            continue
        estimators.append(_build_estimator(algorithm, seed).fit(X, y))
        constants.append(None)
    return LabelModel(features, labels, vocabulary, single_label_groups, estimators, constants,
                      algorithm)


def _scores(Y: np.ndarray, P: np.ndarray, labels: tuple[str, ...], prefix: str) -> dict:
    """Micro and macro precision/recall/F1, and per-label figures, of decisions ``P``."""
    precision, recall, f1, support = precision_recall_fscore_support(
        Y, P, average=None, zero_division=0)
    micro = precision_recall_fscore_support(Y, P, average="micro", zero_division=0)
    present = support > 0
    # Macro over the labels the hold-out actually has: a label with no hold-out items has no
    # recall to speak of, and counting it as 0 (or 1) would say more about the split.
    macro = float(np.mean(f1[present])) if present.any() else None
    per_label = {
        label: {f"{prefix}precision": float(precision[j]), f"{prefix}recall": float(recall[j]),
                f"{prefix}f1": float(f1[j]), "support": int(support[j])}
        for j, label in enumerate(labels)
    }
    return {
        f"{prefix}micro_precision": float(micro[0]),
        f"{prefix}micro_recall": float(micro[1]),
        f"{prefix}micro_f1": float(micro[2]),
        f"{prefix}macro_f1": macro,
        "per_label": per_label,
    }


def _split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split: labelled items have no meaningful time order to respect."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(n * holdout)), n - 1)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _check(
    examples: list[LabelExample],
    vocabulary: dict[str, tuple[str, ...]],
    single_label_groups: frozenset[str],
    algorithm: str,
    holdout: float,
) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of "
                         f"{', '.join(ALGORITHMS)}")
    check_holdout(holdout)
    if not any(vocabulary.values()):
        raise ValueError("there are no labels to learn: every label group is empty")
    unknown = sorted(single_label_groups - vocabulary.keys())
    if unknown:
        raise ValueError(f"single-label groups {unknown} are not among the label groups")
    if len(examples) < MIN_EXAMPLES:
        raise ValueError(f"need at least {MIN_EXAMPLES} human-labelled items to train the label "
                         f"model, got {len(examples)}")


def train_labels(
    examples: Iterable[LabelExample],
    groups: Mapping[str, Sequence[str]],
    single_label_groups: Iterable[str] = frozenset(),
    baseline: Mapping[int, frozenset[str]] | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
    holdout: float = 0.2,
    seed: int = 0,
) -> TrainedModel:
    """Train, measure against the rules, and refit a label model.

    A seeded random ``holdout`` share of the examples is held back; a model fitted on the rest
    labels them, and so do the rules (``baseline``). Both are scored against the human labels,
    then the published model is refitted on every example.

    Parameters
    ----------
    examples : iterable of LabelExample
        Human-labelled items only (rule and model suggestions must not teach the model). Labels
        outside ``groups`` are ignored and counted in ``params["labels_ignored"]``.
    groups : mapping of str to sequence of str
        Each label group's labels, by plain name (``"coffee"``) or qualified (``"theme:coffee"``).
    single_label_groups : iterable of str, default empty
        Groups where an item takes exactly one label (argmax); the others are multi-label.
    baseline : mapping of int to frozenset of str, optional
        Item id -> the labels the rules engine gives that item. Without it the ``baseline_*``
        metrics are None.
    algorithm : {"logreg", "complement_nb"}, default "logreg"
    holdout : float, default 0.2
        Share of examples held back for measuring.
    seed : int, default 0
        Seeds the split and the solver, so a retrain on the same data gives the same model.

    Returns
    -------
    TrainedModel
        ``model`` is a :class:`LabelModel`. ``metrics``: ``micro_f1`` (the primary metric,
        higher is better), ``micro_precision``, ``micro_recall``, ``macro_f1`` (over labels
        present in the hold-out), the same with a ``baseline_`` prefix for the rules,
        ``holdout_items``, ``train_items`` and ``per_label``: label -> ``precision``,
        ``recall``, ``f1``, ``support`` and the ``baseline_`` figures. ``params``:
        ``algorithm``, ``groups`` (groups whose every label has at least one positive example,
        i.e. the groups the model can take over), ``labels``, ``single_label_groups``,
        ``holdout``, ``seed``, ``examples`` and ``labels_ignored``.

    Raises
    ------
    ValueError
        For fewer than :data:`MIN_EXAMPLES` examples, no labels, an unknown algorithm or
        single-label group, a bad hold-out share, or when no example has any known label.
    """
    examples = list(examples)
    vocabulary = _vocabulary(groups)
    single = frozenset(single_label_groups)
    _check(examples, vocabulary, single, algorithm, holdout)
    labels = tuple(label for names in vocabulary.values() for label in names)
    known = frozenset(labels)
    ignored = sum(len(example.labels - known) for example in examples)
    binarizer = MultiLabelBinarizer(classes=labels)
    Y = binarizer.fit_transform([example.labels & known for example in examples]).astype(int)
    if not Y.any():
        raise ValueError("none of the examples has a label from the label groups; "
                         "label some items first")

    train_idx, test_idx = _split(len(examples), holdout, seed)
    measured = _fit([examples[i] for i in train_idx], Y[train_idx], vocabulary, labels, single,
                    algorithm, seed)
    held_out = [examples[i] for i in test_idx]
    Y_test = Y[test_idx]
    model_scores = _scores(Y_test, measured._decide(measured.predict_proba(
        [example.item for example in held_out])).astype(int), labels, "")
    metrics: dict[str, Any] = {k: v for k, v in model_scores.items() if k != "per_label"}
    per_label = model_scores["per_label"]
    if baseline is not None:
        rules = binarizer.transform([frozenset(baseline.get(example.item.id, ())) & known
                                     for example in held_out]).astype(int)
        rule_scores = _scores(Y_test, rules, labels, "baseline_")
        metrics.update({k: v for k, v in rule_scores.items() if k != "per_label"})
        for label, figures in rule_scores["per_label"].items():
            per_label[label].update(figures)
    else:
        metrics.update({f"baseline_{name}": None for name in
                        ("micro_precision", "micro_recall", "micro_f1", "macro_f1")})
    metrics.update({"holdout_items": len(test_idx), "train_items": len(train_idx),
                    "per_label": per_label})

    model = _fit(examples, Y, vocabulary, labels, single, algorithm, seed)
    positives = Y.sum(axis=0)
    column = {label: j for j, label in enumerate(labels)}
    covered = [group for group, names in vocabulary.items()
               if names and all(positives[column[name]] > 0 for name in names)]
    params = {
        "algorithm": algorithm,
        "groups": covered,
        "labels": list(labels),
        "single_label_groups": sorted(single),
        "holdout": holdout,
        "seed": seed,
        "examples": len(examples),
        "labels_ignored": ignored,
    }
    return TrainedModel(
        model=model,
        metrics=metrics,
        params=params,
        training_rows=len(examples),
        data_hash=_examples_hash(examples),
        smoke_input=[dataclasses.asdict(example.item) for example in examples[:SMOKE_ITEMS]],
    )


_HASH_CHUNK = 10_000
"""Examples serialised at a time by :func:`_examples_hash`, so it never holds all their JSON."""

_ITEM_FIELDS = tuple(sorted(field.name for field in dataclasses.fields(ItemData)))


def _examples_hash(examples: Sequence[LabelExample]) -> str:
    """``data_hash`` of ``{"item": item, "labels": sorted labels}`` per example, made faster.

    :func:`ml.training.data_hash` inspects every value of every row to find its canonical
    form, which took seconds at 100,000 items. An :class:`~ml.items.ItemData` has a known
    canonical form, the dict of its fields, so this builds the rows directly (keys in sorted
    order, as ``data_hash``'s ``sort_keys`` writes them) and feeds the same JSON to SHA-256 a
    chunk at a time. Anything else (a subclass, a value ``json`` cannot write) sends every
    row through ``data_hash``.
    """
    def row(example: LabelExample) -> dict[str, Any]:
        item = example.item
        if type(item) is not ItemData:
            raise TypeError(f"no shortcut for a {type(item).__name__}")  # more fields?
        fields = {name: getattr(item, name) for name in _ITEM_FIELDS}
        return {"item": fields, "labels": sorted(example.labels)}

    digest = hashlib.sha256(b"[")
    try:
        for start in range(0, len(examples), _HASH_CHUNK):
            chunk = [row(example) for example in examples[start : start + _HASH_CHUNK]]
            text = json.dumps(chunk, separators=(",", ":"))[1:-1]  # [1:-1]: the brackets
            digest.update(b"," + text.encode("utf-8") if start else text.encode("utf-8"))
    except TypeError:
        return data_hash([{"item": example.item, "labels": sorted(example.labels)}
                          for example in examples])
    digest.update(b"]")
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Active learning
# ---------------------------------------------------------------------------------------------


def order_by_uncertainty(
    ids: Sequence[int],
    uncertainties: Sequence[float],
    random_share: float,
    rng: np.random.Generator | int | None,
) -> list[int]:
    """Order items least certain first, with a random share mixed in.

    ``round(len(ids) * random_share)`` positions, chosen at random, are each filled with an
    item drawn uniformly from those not yet placed; every other position takes the most
    uncertain item not yet placed (ties by the order given). The random picks keep a queue from
    looping on a cluster of near-duplicate items that are all equally uncertain.

    Parameters
    ----------
    ids : sequence of int
        Item ids.
    uncertainties : sequence of float
        Each item's uncertainty (higher = less certain), aligned with ``ids``.
    random_share : float
        Between 0 and 1.
    rng : numpy.random.Generator, int or None
        The randomness; a seed gives the same order every time.

    Returns
    -------
    list of int
        Every id exactly once.

    Raises
    ------
    ValueError
        If the lengths differ or ``random_share`` is outside [0, 1].
    """
    if len(ids) != len(uncertainties):
        raise ValueError(f"got {len(ids)} ids but {len(uncertainties)} uncertainties")
    if not 0.0 <= random_share <= 1.0:
        raise ValueError(f"random_share must be between 0 and 1, got {random_share!r}")
    generator = np.random.default_rng(rng)
    n = len(ids)
    # Stable sort of the negated values: least certain first, ties keep the given order.
    ranked = np.argsort(-np.asarray(uncertainties, dtype=float), kind="stable").tolist()
    random_positions = set(generator.choice(n, size=round(n * random_share),
                                            replace=False).tolist()) if n else set()
    placed = np.zeros(n, dtype=bool)
    head = 0  # ranked[:head] are all placed
    order: list[int] = []
    for position in range(n):
        while placed[ranked[head]]:
            head += 1
        if position in random_positions:
            pick = _random_unplaced(ranked, head, placed, generator)
        else:
            pick = ranked[head]
        placed[pick] = True
        order.append(ids[pick])
    return order


def _random_unplaced(ranked: list[int], head: int, placed: np.ndarray,
                     generator: np.random.Generator) -> int:
    """A uniform pick among the unplaced items (all of which sit at ``ranked[head:]``)."""
    # Rejection sampling is O(1) while random picks are a small share of what is placed.
    for _ in range(16):
        candidate = ranked[int(generator.integers(head, len(ranked)))]
        if not placed[candidate]:
            return candidate
    left = [index for index in ranked[head:] if not placed[index]]
    return left[int(generator.integers(len(left)))]
