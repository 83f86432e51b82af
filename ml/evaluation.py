"""Splits, metrics, naive baselines and the promotion gate shared by every model kind.

Regression (dough) uses :func:`regression_metrics` against :func:`same_weekday_last_week`;
recommenders (games) use :func:`hit_rate_at_k` and :func:`precision_at_k` against
:func:`popularity_ranking`.
"""

from __future__ import annotations

import datetime
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

MIN_SPLIT_ROWS = 4
"""Fewest rows :func:`chronological_split` accepts: fewer leave no meaningful hold-out."""


def check_holdout(holdout: float) -> None:
    """Refuse a hold-out fraction that would leave no training or no hold-out rows.

    Parameters
    ----------
    holdout : float
        Fraction of rows to hold out.

    Raises
    ------
    ValueError
        If ``holdout`` is not strictly between 0 and 1 (NaN included).
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be between 0 and 1 (exclusive), got {holdout!r}")


def chronological_split(n_rows: int, holdout: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Split row positions into an earlier training part and a later hold-out part.

    Rows must already be in time order. Testing on the most recent rows measures what matters
    in production, predicting tomorrow from the past, and never lets the future leak into
    training the way a shuffled split would.

    Parameters
    ----------
    n_rows : int
        Number of rows, in chronological order.
    holdout : float, default 0.2
        Fraction of rows, taken from the end, to hold out. The count is rounded to the nearest
        whole row and kept between 1 and ``n_rows - 1``, so both parts are never empty.

    Returns
    -------
    train_idx, test_idx : tuple of numpy.ndarray
        Integer positions of the training rows and of the hold-out rows.

    Raises
    ------
    ValueError
        If ``n_rows`` is below :data:`MIN_SPLIT_ROWS` or ``holdout`` is not in (0, 1).
    """
    check_holdout(holdout)
    if n_rows < MIN_SPLIT_ROWS:
        raise ValueError(
            f"need at least {MIN_SPLIT_ROWS} rows to split into training and hold-out, got {n_rows}"
        )
    n_test = min(max(1, round(n_rows * holdout)), n_rows - 1)
    positions = np.arange(n_rows)
    return positions[: n_rows - n_test], positions[n_rows - n_test :]


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Score regression predictions against the truth.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Observed values.
    y_pred : array-like of shape (n,)
        Predicted values.

    Returns
    -------
    dict
        ``"mae"``, ``"rmse"`` and ``"r2"`` as plain floats. ``"r2"`` is NaN when there is only
        one row, because R² is undefined there (scikit-learn would warn and return NaN).

    Raises
    ------
    ValueError
        If the inputs are empty or differ in length.
    """
    truth = np.asarray(y_true, dtype=float).ravel()
    pred = np.asarray(y_pred, dtype=float).ravel()
    if truth.size == 0 or truth.shape != pred.shape:
        raise ValueError(
            f"need equally long, non-empty y_true and y_pred, got {truth.size} and {pred.size}"
        )
    r2 = float(r2_score(truth, pred)) if truth.size >= 2 else math.nan
    return {
        "mae": float(mean_absolute_error(truth, pred)),
        "rmse": float(root_mean_squared_error(truth, pred)),
        "r2": r2,
    }


def same_weekday_last_week(
    history: Iterable[tuple[datetime.date, float | None]],
    targets: Iterable[datetime.date],
) -> tuple[np.ndarray, np.ndarray]:
    """Predict each target day's value as the value seven days earlier.

    This is the forecast a manager makes without any model ("last Tuesday we used 72"), so a
    model is only worth running if it beats it. Seven days earlier is always the same weekday.

    Parameters
    ----------
    history : iterable of (datetime.date, float or None)
        Known values by day, in any order. ``None`` means unknown and is skipped. It may
        include the target days themselves: a target's own value is never used for it, only
        the value a week before, which was known by then.
    targets : iterable of datetime.date
        Days to predict, in any order.

    Returns
    -------
    covered : numpy.ndarray of int
        Positions in ``targets`` that have a known value seven days earlier, ascending. Targets
        without one are skipped rather than guessed, so ``len(covered)`` says how much of the
        target period the baseline could speak for.
    predictions : numpy.ndarray of float
        The value seven days before each covered target, aligned with ``covered``.

    Raises
    ------
    ValueError
        If ``history`` gives two values for one day.

    Examples
    --------
    >>> day = datetime.date(2023, 5, 22)
    >>> week = datetime.timedelta(days=7)
    >>> covered, predicted = same_weekday_last_week([(day, 36)], [day + week, day + 2 * week])
    >>> covered.tolist(), predicted.tolist()
    ([0], [36.0])
    """
    known: dict[datetime.date, float] = {}
    for day, value in history:
        if value is None:
            continue
        if day in known:
            raise ValueError(f"history has two values for {day.isoformat()}")
        known[day] = float(value)
    covered, predictions = [], []
    for position, day in enumerate(targets):
        previous = known.get(day - datetime.timedelta(days=7))
        if previous is not None:
            covered.append(position)
            predictions.append(previous)
    return np.asarray(covered, dtype=np.int64), np.asarray(predictions, dtype=float)


def passes_gate(
    candidate: float,
    champion: float | None,
    margin: float,
    lower_is_better: bool = True,
) -> bool:
    """Decide whether a retrained candidate may replace the champion automatically.

    The margin is relative to the champion's score, so one setting suits metrics of any scale.
    For a lower-is-better metric (MAE, RMSE) the candidate passes when
    ``candidate <= champion + margin * |champion|``; with ``margin=0.05`` and a positive
    champion that is ``candidate <= champion * 1.05``. For a higher-is-better metric (R²,
    hit-rate) it passes when ``candidate >= champion - margin * |champion|``. Using ``|champion|``
    keeps the margin a tolerance even when scores can be negative, as R² can.

    Parameters
    ----------
    candidate : float
        Hold-out score of the new model.
    champion : float or None
        Hold-out score of the active model, or None when there is no active model.
    margin : float
        Allowed relative slack, at least 0 (0.05 means 5 %).
    lower_is_better : bool, default True
        Direction of the metric.

    Returns
    -------
    bool
        False whenever the candidate's score is NaN, since an unmeasured model must never be
        promoted unattended. Otherwise True when there is no usable champion score (None or
        NaN), or when the candidate is within the margin.

    Raises
    ------
    ValueError
        If ``margin`` is negative or NaN.
    """
    if not margin >= 0.0:
        raise ValueError(f"margin must be 0 or more, got {margin!r}")
    if math.isnan(candidate):
        return False
    if champion is None or math.isnan(champion):
        return True
    slack = margin * abs(champion)
    if lower_is_better:
        return candidate <= champion + slack
    return candidate >= champion - slack


def _check_rankings(
    ranked_lists: Sequence[Sequence[Hashable]], truths: Sequence[Hashable], k: int
) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number of 1 or more, got {k!r}")
    if len(ranked_lists) == 0 or len(ranked_lists) != len(truths):
        raise ValueError(
            "need one ranked list per truth, and at least one; "
            f"got {len(ranked_lists)} lists and {len(truths)} truths"
        )


def _hits(ranked_lists: Sequence[Sequence[Hashable]], truths: Sequence[Hashable], k: int) -> int:
    # list(): slicing a numpy array of names and testing membership would compare elementwise.
    pairs = zip(ranked_lists, truths, strict=True)
    return sum(truth in list(ranked[:k]) for ranked, truth in pairs)


def hit_rate_at_k(
    ranked_lists: Sequence[Sequence[Hashable]], truths: Sequence[Hashable], k: int
) -> float:
    """Share of queries whose true answer is among the first ``k`` suggestions.

    Parameters
    ----------
    ranked_lists : sequence of sequences
        One ranking per query, best first. A list may be shorter than ``k``.
    truths : sequence of hashable
        The one item actually chosen for each query (for games: the game the party picked).
    k : int
        How many suggestions are shown, 1 or more.

    Returns
    -------
    float
        Between 0 and 1.

    Raises
    ------
    ValueError
        If ``k`` is not a positive whole number, or the inputs are empty or differ in length.

    Examples
    --------
    >>> hit_rate_at_k([["a", "b"], ["c", "a"]], ["b", "b"], k=2)
    0.5
    """
    _check_rankings(ranked_lists, truths, k)
    return _hits(ranked_lists, truths, k) / len(truths)


def precision_at_k(
    ranked_lists: Sequence[Sequence[Hashable]], truths: Sequence[Hashable], k: int
) -> float:
    """Mean share of the first ``k`` suggestions that are relevant, with one relevant item each.

    Each query has exactly one relevant item (the one chosen), so a query's precision@k is
    ``1/k`` on a hit and 0 otherwise, and the mean is :func:`hit_rate_at_k` divided by ``k``:
    at most ``1/k`` even for a perfect model. The divisor stays ``k`` when a ranked list is
    shorter, because ``k`` slots were on offer. It is reported beside the hit rate for
    comparison with multi-item recommenders; for choosing between models the hit rate says the
    same thing more plainly.

    Parameters
    ----------
    ranked_lists : sequence of sequences
        One ranking per query, best first.
    truths : sequence of hashable
        The one relevant item of each query.
    k : int
        How many suggestions are shown, 1 or more.

    Returns
    -------
    float
        Between 0 and ``1/k``.

    Raises
    ------
    ValueError
        As :func:`hit_rate_at_k`.

    Examples
    --------
    >>> precision_at_k([["a", "b"], ["c", "a"]], ["b", "b"], k=2)
    0.25
    """
    _check_rankings(ranked_lists, truths, k)
    return _hits(ranked_lists, truths, k) / (len(truths) * k)


def popularity_ranking(picks: Iterable[str], all_names: Iterable[str]) -> list[str]:
    """Rank every item by how often it was picked: the "most popular" baseline.

    This is what staff would suggest without any model ("people like these"), the same list for
    every query, so a recommender is only worth running if it beats it.

    Parameters
    ----------
    picks : iterable of str
        The name picked each time, in any order (for games, ``pick.game``).
    all_names : iterable of str
        Every item that can be suggested, in any order.

    Returns
    -------
    list of str
        All of ``all_names``, most picked first; ties (including items never picked) in
        code-point order of the name, so the ranking is the same on every run.

    Raises
    ------
    ValueError
        If ``all_names`` repeats a name, or a pick names an item not in ``all_names`` (it could
        never be suggested, so the data and the catalogue disagree).

    Examples
    --------
    >>> popularity_ranking(["b", "c", "c"], ["a", "b", "c", "d"])
    ['c', 'b', 'a', 'd']
    """
    names = list(all_names)
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"all_names repeats {', '.join(map(repr, duplicates))}")
    counts = Counter(picks)
    unknown = sorted(set(counts) - set(names))
    if unknown:
        raise ValueError(f"picks name items that are not offered: {', '.join(map(repr, unknown))}")
    return sorted(names, key=lambda name: (-counts[name], name))
