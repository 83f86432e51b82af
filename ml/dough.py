"""Dough demand: how many doughs to prepare for a night, from its reservations.

The fitted scikit-learn estimator is compiled into a plain polynomial over the reservation count
(:class:`DoughModel`), because scikit-learn's input validation costs 50-150 µs per call while the
same arithmetic in numpy or plain Python costs 1-3 µs, and the app predicts one night at a time.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures
from sklearn.utils.validation import check_is_fitted

from ml.evaluation import chronological_split, regression_metrics
from ml.training import TrainedModel, data_hash

__all__ = [
    "DEFAULT_EXCLUDED_WEEKDAYS",
    "MIN_TRAINING_NIGHTS",
    "MODEL_TYPES",
    "SMOKE_INPUT",
    "DoughModel",
    "Night",
    "TrainedModel",
    "build_estimator",
    "data_hash",
    "train_dough",
    "training_nights",
]

DEFAULT_EXCLUDED_WEEKDAYS = frozenset({4, 5})
"""Friday and Saturday (Monday is 0): walk-ins, not reservations, drive those nights."""

MODEL_TYPES = ("linear", "polynomial")
"""Model types :func:`build_estimator` and :func:`train_dough` accept."""

MIN_TRAINING_NIGHTS = 4
"""Fewest usable nights :func:`train_dough` accepts (it must hold one back to measure)."""

SMOKE_INPUT = [[0], [15], [40]]
"""Reservation counts whose predictions are recorded at publish time and rechecked at load."""


@dataclasses.dataclass(frozen=True)
class Night:
    """One service night.

    Parameters
    ----------
    date : datetime.date
        The night's date.
    reservations : int or None
        Reservations booked, or None when unknown.
    doughs : int or None
        Doughs used, or None when not yet known (tonight) or not recorded.
    """

    date: datetime.date
    reservations: int | None
    doughs: int | None


def training_nights(
    nights: Iterable[Night],
    excluded_weekdays: frozenset[int] = DEFAULT_EXCLUDED_WEEKDAYS,
    excluded_dates: frozenset[datetime.date] = frozenset(),
) -> list[Night]:
    """Keep the nights a model may learn from, in date order.

    Parameters
    ----------
    nights : iterable of Night
        All recorded nights, in any order.
    excluded_weekdays : frozenset of int, default Friday and Saturday
        Weekdays to drop (Monday is 0).
    excluded_dates : frozenset of datetime.date, default empty
        Individual nights to drop, such as holidays or private events.

    Returns
    -------
    list of Night
        Nights with both counts known and not excluded, sorted by date so that a chronological
        split holds back the most recent ones.
    """
    kept = [
        night
        for night in nights
        if night.reservations is not None
        and night.doughs is not None
        and night.date.weekday() not in excluded_weekdays
        and night.date not in excluded_dates
    ]
    return sorted(kept, key=lambda night: night.date)


def build_estimator(model_type: str = "polynomial", degree: int = 2) -> LinearRegression | Pipeline:
    """Make an unfitted scikit-learn estimator for dough demand.

    Parameters
    ----------
    model_type : {"linear", "polynomial"}, default "polynomial"
        ``"linear"`` is a plain :class:`~sklearn.linear_model.LinearRegression` and ignores
        ``degree``; ``"polynomial"`` puts
        :class:`~sklearn.preprocessing.PolynomialFeatures` in front of it.
    degree : int, default 2
        Highest power of the reservation count, for ``"polynomial"``.

    Returns
    -------
    LinearRegression or Pipeline

    Raises
    ------
    ValueError
        For an unknown ``model_type`` or a ``degree`` below 1.
    """
    if model_type == "linear":
        return LinearRegression()
    if model_type != "polynomial":
        raise ValueError(f"unknown model type {model_type!r}; choose one of {MODEL_TYPES}")
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
        raise ValueError(f"degree must be a whole number of at least 1, got {degree!r}")
    return Pipeline(
        [
            ("poly", PolynomialFeatures(degree=degree, include_bias=False)),
            ("linear", LinearRegression()),
        ]
    )


class DoughModel:
    """A fitted dough-demand regression, compiled to a polynomial for fast predictions.

    Parameters
    ----------
    estimator : LinearRegression or Pipeline
        A fitted estimator from :func:`build_estimator`, trained on one column (reservations).

    Attributes
    ----------
    model_type : str
        ``"linear"`` or ``"polynomial"``.
    degree : int
        Highest power of the reservation count (1 for ``"linear"``).
    coefficients_ : tuple of float
        Polynomial coefficients, lowest power first: ``(intercept, c1, c2, ...)``. Predictions
        are ``sum(c_k * x**k)``.
    estimator_ : LinearRegression or Pipeline
        The wrapped estimator, kept so the compiled form can be checked against it.

    Raises
    ------
    ValueError
        If the estimator is not one this class can compile.
    """

    def __init__(self, estimator: LinearRegression | Pipeline) -> None:
        self.estimator_ = estimator
        self.model_type, self.degree, self.coefficients_ = _compile(estimator)
        self._coef_array = np.asarray(self.coefficients_[::-1], dtype=float)

    def predict_raw(self, X: ArrayLike) -> np.ndarray:
        """Predict unrounded doughs.

        Parameters
        ----------
        X : array-like of shape (n,) or (n, 1)
            Reservation counts.

        Returns
        -------
        numpy.ndarray of float, shape (n,)
        """
        return np.polyval(self._coef_array, _as_column(X))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predict whole doughs.

        Parameters
        ----------
        X : array-like of shape (n,) or (n, 1)
            Reservation counts.

        Returns
        -------
        numpy.ndarray of int64, shape (n,)
            Predictions clipped at 0 and rounded half away from zero (the kitchen never
            prepares a negative dough, and a half dough rounds up).
        """
        clipped = np.maximum(self.predict_raw(X), 0.0)
        return np.floor(clipped + 0.5).astype(np.int64)

    def predict_one(self, reservations: int) -> int:
        """Predict whole doughs for one night without numpy or scikit-learn overhead.

        Parameters
        ----------
        reservations : int
            Reservation count.

        Returns
        -------
        int
            The same value as ``predict([reservations])[0]``.
        """
        x = float(reservations)
        value = 0.0
        for coefficient in reversed(self.coefficients_):
            value = value * x + coefficient
        return math.floor(max(value, 0.0) + 0.5)

    def __repr__(self) -> str:
        """Show the compiled coefficients, which is what the model is."""
        terms = ", ".join(f"{c:.6g}" for c in self.coefficients_)
        return f"DoughModel(model_type={self.model_type!r}, degree={self.degree}, coef=({terms}))"


def _compile(estimator: LinearRegression | Pipeline) -> tuple[str, int, tuple[float, ...]]:
    """Read a fitted estimator's maths as polynomial coefficients over the reservation count."""
    if isinstance(estimator, LinearRegression):
        return "linear", 1, _linear_coefficients(estimator, np.array([[1]]))
    steps = estimator.steps if isinstance(estimator, Pipeline) else []
    if (
        len(steps) != 2
        or not isinstance(steps[0][1], PolynomialFeatures)
        or not isinstance(steps[1][1], LinearRegression)
    ):
        raise ValueError(
            "DoughModel needs a LinearRegression or a PolynomialFeatures + LinearRegression "
            f"pipeline, got {estimator!r}"
        )
    poly = steps[0][1]
    check_is_fitted(poly)
    if poly.n_features_in_ != 1:
        raise ValueError(f"DoughModel needs one input column, got {poly.n_features_in_}")
    return "polynomial", int(poly.powers_.max()), _linear_coefficients(steps[1][1], poly.powers_)


def _linear_coefficients(linear: LinearRegression, powers: np.ndarray) -> tuple[float, ...]:
    """Fold a linear model over features ``x**powers`` into one coefficient per power."""
    check_is_fitted(linear)
    weights = np.ravel(linear.coef_)
    if weights.shape[0] != powers.shape[0]:
        raise ValueError(
            f"DoughModel needs a single-output regression over {powers.shape[0]} features, "
            f"got coefficients of shape {np.shape(linear.coef_)}"
        )
    coefficients = np.zeros(int(powers.max()) + 1)
    coefficients[0] = float(np.ravel(linear.intercept_)[0]) if linear.fit_intercept else 0.0
    for power, weight in zip(powers[:, 0], weights, strict=True):
        coefficients[power] += weight
    return tuple(float(c) for c in coefficients)


def _as_column(X: ArrayLike) -> np.ndarray:
    """Flatten reservation counts given as a scalar, a list, or one column into a 1-D array."""
    values = np.asarray(X, dtype=float)
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim <= 1:
        return values.reshape(-1)
    raise ValueError(f"expected reservation counts of shape (n,) or (n, 1), got {values.shape}")


def _fit(model_type: str, degree: int, nights: Sequence[Night]) -> DoughModel:
    """Fit a fresh estimator on ``nights`` and compile it."""
    X = np.array([[night.reservations] for night in nights], dtype=float)
    y = np.array([night.doughs for night in nights], dtype=float)
    return DoughModel(build_estimator(model_type, degree).fit(X, y))


def train_dough(
    nights: Iterable[Night],
    model_type: str = "polynomial",
    degree: int = 2,
    holdout: float = 0.2,
    excluded_weekdays: frozenset[int] = DEFAULT_EXCLUDED_WEEKDAYS,
    excluded_dates: frozenset[datetime.date] = frozenset(),
) -> TrainedModel:
    """Train, measure and refit a dough-demand model.

    The model is first fitted on the earlier nights and scored on the most recent ``holdout``
    fraction. The published model is then refitted on every usable night: the hold-out exists
    only to measure, and throwing away the latest nights would make the real model worse.

    Parameters
    ----------
    nights : iterable of Night
        All recorded nights; :func:`training_nights` picks the usable ones.
    model_type : {"linear", "polynomial"}, default "polynomial"
    degree : int, default 2
        Highest power for ``"polynomial"``; ``"linear"`` is always degree 1.
    holdout : float, default 0.2
        Fraction of the most recent usable nights held back for measuring.
    excluded_weekdays : frozenset of int, default Friday and Saturday
    excluded_dates : frozenset of datetime.date, default empty

    Returns
    -------
    TrainedModel
        ``model`` is a :class:`DoughModel`. ``metrics`` has the hold-out ``"mae"``, ``"rmse"``
        and ``"r2"`` of the unrounded predictions, ``"mae_rounded"`` of the whole-dough
        predictions staff see, and ``"train_rows"`` and ``"holdout_rows"``. ``params`` has
        ``"model_type"``, ``"degree"``, ``"holdout"``, ``"excluded_weekdays"`` (sorted list)
        and ``"excluded_dates"`` (sorted ISO dates).

    Raises
    ------
    ValueError
        With fewer than :data:`MIN_TRAINING_NIGHTS` usable nights, or bad settings.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; choose one of {MODEL_TYPES}")
    degree = 1 if model_type == "linear" else degree
    usable = training_nights(nights, excluded_weekdays, excluded_dates)
    if len(usable) < MIN_TRAINING_NIGHTS:
        raise ValueError(f"need at least {MIN_TRAINING_NIGHTS} training nights, got {len(usable)}")
    train_idx, test_idx = chronological_split(len(usable), holdout)
    measured = _fit(model_type, degree, [usable[i] for i in train_idx])
    metrics = _holdout_metrics(measured, [usable[i] for i in test_idx])
    metrics["train_rows"] = len(train_idx)
    return TrainedModel(
        model=_fit(model_type, degree, usable),
        metrics=metrics,
        params={
            "model_type": model_type,
            "degree": degree,
            "holdout": holdout,
            "excluded_weekdays": sorted(excluded_weekdays),
            "excluded_dates": sorted(day.isoformat() for day in excluded_dates),
        },
        training_rows=len(usable),
        data_hash=data_hash(usable),
        smoke_input=[list(row) for row in SMOKE_INPUT],
    )


def _holdout_metrics(model: DoughModel, test: Sequence[Night]) -> dict:
    """Score ``model`` on the held-out nights, unrounded and as whole doughs."""
    reservations = [night.reservations for night in test]
    actual = [night.doughs for night in test]
    metrics: dict = regression_metrics(actual, model.predict_raw(reservations))
    metrics["mae_rounded"] = regression_metrics(actual, model.predict(reservations))["mae"]
    metrics["holdout_rows"] = len(test)
    return metrics
