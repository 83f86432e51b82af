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
        self.vectorizer_ = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, 2), min_df=self.min_df,
            max_features=self.max_features, strip_accents="unicode", dtype=np.float64,
        )
        self.vectorizer_.fit([_text(item) for item in items])
        top = max((max(float(item.price), 0.0) for item in items), default=1.0)
        self.price_scale_ = math.log1p(max(top, 1.0))
        return self

    @property
    def n_features(self) -> int:
        """Number of columns :meth:`transform` returns."""
        return len(self.vectorizer_.vocabulary_) + 1 + len(ATTRIBUTES)

    def transform(self, items: Sequence[ItemData]) -> sp.csr_matrix:
        """Encode ``items`` as a sparse matrix of shape ``(len(items), n_features)``."""
        text = self.vectorizer_.transform([_text(item) for item in items])
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
        return LogisticRegression(solver="liblinear", class_weight="balanced", random_state=seed)
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
    features = LabelFeatures(min_df=2 if len(items) >= 200 else 1).fit(items)
    X = features.transform(items)
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
    rows = [{"item": example.item, "labels": sorted(example.labels)} for example in examples]
    return TrainedModel(
        model=model,
        metrics=metrics,
        params=params,
        training_rows=len(examples),
        data_hash=data_hash(rows),
        smoke_input=[dataclasses.asdict(example.item) for example in examples[:SMOKE_ITEMS]],
    )


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
