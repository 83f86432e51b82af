"""The learned half of gift proposals: which items past gifts with a similar brief used.

A brief becomes a handful of features, in the spirit of the tavern's model: one-hot occasion,
one-hot budget band, multi-hot themes and one-hot industry (:func:`brief_features`). Every past
gift gives one training example per item it held (the brief's features, labelled with the
item), and Complement Naive Bayes learns which items go with which briefs. Its probabilities
over hundreds of items are all tiny, so the score handed to the proposer is the joint
log-likelihood rescaled to [0, 1] across items (best item 1, worst 0): a rank signal, not a
probability.

Evaluation holds out the latest past gifts and reports hit-rate@10 (a held-out gift has at least
one of its items in the top 10) and recall@10 (the share of its items in the top 10) for the
model, for a popularity baseline (items used most often) and for the cold-start scorer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from sklearn.naive_bayes import ComplementNB

from ml.evaluation import chronological_split
from ml.gifts import Brief, ItemScores, popularity
from ml.training import TrainedModel, data_hash

#: Upper bounds of the budget bands (per recipient, on the brief's max).
BUDGET_BANDS = (25.0, 60.0, 120.0)
K = 10
DEFAULT_MIN_GIFTS = 20


@dataclass(frozen=True)
class PastGift:
    """A gift that was sent (or proposed and saved), with the brief it answered."""

    brief: Brief
    items: tuple[int, ...]
    when: date | None = None


def budget_band(budget_max: float) -> str:
    """The band of a brief's budget: ``under-25``, ``25-60``, ``60-120`` or ``120-plus``."""
    low = 0.0
    for high in BUDGET_BANDS:
        if budget_max < high:
            return "under-25" if low == 0.0 else f"{low:g}-{high:g}"
        low = high
    return f"{BUDGET_BANDS[-1]:g}-plus"


def brief_features(brief: Brief) -> list[str]:
    """The brief as feature names (``occasion=onboarding``, ``band=25-60``, ``theme=coffee``…)."""
    features = [f"band={budget_band(brief.budget_max)}"]
    if brief.occasion:
        features.append(f"occasion={brief.occasion}")
    if brief.industry:
        features.append(f"industry={brief.industry}")
    features.extend(f"theme={theme}" for theme in sorted(set(brief.themes)))
    return features


class GiftModel:
    """A fitted ComplementNB over brief features; scores every known item for a brief.

    :meth:`scores` runs at every keystroke of a brief, so it does what
    ``nb.predict_joint_log_proba`` does (the same matrix product, so the same floats) without
    its input validation, which cost several times the product itself: the feature vector is
    built here, from names, and cannot be malformed.
    """

    def __init__(self, vocabulary: Sequence[str], items: Sequence[int], nb: ComplementNB) -> None:
        self.vocabulary = {name: i for i, name in enumerate(vocabulary)}
        self.items = [int(item) for item in items]
        self.nb = nb

    def _vector(self, brief: Brief) -> np.ndarray:
        vector = np.zeros((1, len(self.vocabulary)))
        for name in brief_features(brief):
            column = self.vocabulary.get(name)
            if column is not None:  # a theme or industry never seen in training adds nothing
                vector[0, column] = 1.0
        return vector

    def _classes(self) -> np.ndarray:
        """The item ids as one int64 array, made once (older pickles lack it: made on use)."""
        classes = self.__dict__.get("_classes_int64")
        if classes is None:
            classes = np.asarray(self.nb.classes_, dtype=np.int64)
            self._classes_int64 = classes
        return classes

    def joint_log_likelihood(self, brief: Brief) -> np.ndarray:
        """``nb.predict_joint_log_proba`` of the brief's features, one value per item.

        ComplementNB's joint log-likelihood, as scikit-learn computes it: the same product on
        the same arrays (so bit for bit the same), plus the prior only for a single class.
        """
        nb = self.nb
        joint = self._vector(brief) @ nb.feature_log_prob_.T
        if len(nb.classes_) == 1:
            joint += nb.class_log_prior_
        return joint[0]

    def scores(self, brief: Brief) -> ItemScores:
        """Every known item's score for ``brief`` in [0, 1] (see the module docstring)."""
        joint = self.joint_log_likelihood(brief)
        low, high = float(joint.min()), float(joint.max())
        span = high - low
        values = (joint - low) / span if span > 0 else np.zeros(len(joint))
        # classes_ come sorted from fit (np.unique): no sort, and one ids array per model.
        return ItemScores.sorted_by_id(self._classes(), values)

    def top(self, brief: Brief, k: int = K) -> list[int]:
        """The ``k`` best items for ``brief``; ties by lower id."""
        return self.scores(brief).best(k)

    def predict(self, briefs: list[dict]) -> list[list[int]]:
        """The top 10 for each brief given as a dict (the store's smoke test uses this)."""
        return [self.top(brief_from_dict(brief)) for brief in briefs]


def brief_from_dict(data: dict) -> Brief:
    """A Brief from plain JSON data (occasion, budget_min, budget_max, themes, industry)."""
    return Brief(occasion=data.get("occasion"), budget_min=float(data.get("budget_min", 0)),
                 budget_max=float(data["budget_max"]), themes=tuple(data.get("themes", ())),
                 industry=data.get("industry"))


def brief_to_dict(brief: Brief) -> dict:
    """The JSON form of the features a model reads from ``brief``."""
    return {"occasion": brief.occasion, "budget_min": brief.budget_min,
            "budget_max": brief.budget_max, "themes": list(brief.themes),
            "industry": brief.industry}


def fit(gifts: Sequence[PastGift], alpha: float = 1.0) -> GiftModel:
    """Fit the model on ``gifts`` (one example per item of each gift)."""
    rows, labels = [], []
    for gift in gifts:
        features = brief_features(gift.brief)
        for item in set(gift.items):
            rows.append(features)
            labels.append(int(item))
    if len(set(labels)) < 2:
        raise ValueError("need past gifts with at least two different items to learn from")
    vocabulary = sorted({name for row in rows for name in row})
    index = {name: i for i, name in enumerate(vocabulary)}
    matrix = np.zeros((len(rows), len(vocabulary)))
    for r, row in enumerate(rows):
        for name in row:
            matrix[r, index[name]] = 1.0
    nb = ComplementNB(alpha=alpha).fit(matrix, np.array(labels))
    return GiftModel(vocabulary, nb.classes_, nb)


def ranking_metrics(rankings: Sequence[Sequence[int]], gifts: Sequence[PastGift],
                    k: int = K) -> dict[str, float]:
    """hit-rate@k and recall@k of ``rankings`` against the held-out gifts' items."""
    hits, recalls = [], []
    for ranking, gift in zip(rankings, gifts, strict=True):
        top, truth = set(ranking[:k]), set(gift.items)
        found = len(top & truth)
        hits.append(1.0 if found else 0.0)
        recalls.append(found / len(truth) if truth else 0.0)
    return {f"hit_rate_at_{k}": float(np.mean(hits)) if hits else 0.0,
            f"recall_at_{k}": float(np.mean(recalls)) if recalls else 0.0}


def train_gift_model(gifts: Sequence[PastGift],
                     cold_ranker: Callable[[Brief], list[int]] | None = None,
                     holdout: float = 0.2, min_gifts: int = DEFAULT_MIN_GIFTS) -> TrainedModel:
    """Measure on the latest ``holdout`` share of ``gifts``, then refit on all of them.

    ``gifts`` are in time order. ``cold_ranker`` ranks item ids for a brief without the model
    (the cold-start scorer); its figures are reported beside the model's and the popularity
    baseline's. Raises ValueError with fewer than ``min_gifts`` gifts.
    """
    gifts = list(gifts)
    if len(gifts) < min_gifts:
        raise ValueError(f"need at least {min_gifts} past gifts to learn from, got {len(gifts)}")
    train_rows, test_rows = chronological_split(len(gifts), holdout)
    train = [gifts[i] for i in train_rows]
    test = [gifts[i] for i in test_rows]
    model = fit(train)
    metrics = ranking_metrics([model.top(g.brief) for g in test], test)
    popular = popularity(g.items for g in train)
    metrics.update({f"popular_{name}": value for name, value in
                    ranking_metrics([popular] * len(test), test).items()})
    if cold_ranker is not None:
        metrics.update({f"cold_{name}": value for name, value in
                        ranking_metrics([cold_ranker(g.brief) for g in test], test).items()})
    metrics["holdout_gifts"] = len(test)
    final = fit(gifts)
    smoke = [brief_to_dict(gifts[-1].brief)]
    return TrainedModel(
        model=final, metrics=metrics,
        params={"algorithm": "complement_nb", "alpha": 1.0, "holdout": holdout, "k": K,
                "items": len(final.items)},
        training_rows=len(gifts),
        data_hash=data_hash([(brief_to_dict(g.brief), sorted(g.items)) for g in gifts]),
        smoke_input=smoke)
