"""Dough demand: how many doughs to prepare for a night.

Three model types, all least-squares regressions fitted with scikit-learn:

- ``"linear"``: doughs from reservations, a straight line;
- ``"polynomial"``: doughs from powers of reservations (degree 2 by default, 1 to 5);
- ``"multi"``: doughs from reservations, weekday and month (one-hot), temperature (missing
  values imputed with the training mean) and holiday.

:func:`train_dough` measures a model on a chronological hold-out, then refits it on every
usable night for publishing; with ``model_type="auto"`` it picks the type with the lowest
hold-out error. :func:`evaluate_dough` scores all three side by side against a naive
"same weekday last week" baseline, with data for a chart.

The fitted estimator is compiled into plain coefficients (:class:`DoughModel`), because
scikit-learn's input validation costs 50-150 µs per call while the same arithmetic in plain
Python costs well under 1 µs, and the app predicts one night at a time.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures
from sklearn.utils.validation import check_is_fitted

from ml.encoding import one_hot
from ml.evaluation import (
    check_holdout,
    chronological_split,
    regression_metrics,
)
from ml.training import TrainedModel, data_hash

__all__ = [
    "AUTO",
    "CURVE_POINTS",
    "DEFAULT_EXCLUDED_WEEKDAYS",
    "MAX_DEGREE",
    "MIN_AUTO_NIGHTS",
    "MIN_TRAINING_NIGHTS",
    "MODEL_TYPES",
    "MONTHS",
    "MULTI_COLUMNS",
    "MULTI_SMOKE_INPUT",
    "SMOKE_INPUT",
    "TRAINING_CHOICES",
    "TYPICAL_ERROR_PERCENTILE",
    "WEEKDAYS",
    "DoughEvaluation",
    "DoughModel",
    "ModelScore",
    "Night",
    "TrainedModel",
    "build_estimator",
    "data_hash",
    "evaluate_dough",
    "multi_row",
    "nights_hash",
    "train_dough",
    "training_nights",
]

DEFAULT_EXCLUDED_WEEKDAYS = frozenset({4, 5})
"""Friday and Saturday (Monday is 0): walk-ins, not reservations, drive those nights."""

MODEL_TYPES = ("linear", "polynomial", "multi")
"""Model types :func:`build_estimator` accepts, simplest first (the order breaks ties)."""

AUTO = "auto"
"""The ``model_type`` that lets :func:`train_dough` pick the type with the least hold-out error."""

TRAINING_CHOICES = (*MODEL_TYPES, AUTO)
"""Every ``model_type`` :func:`train_dough` accepts."""

MAX_DEGREE = 5
"""Highest polynomial degree: beyond it raw powers of ~60 reservations get ill-conditioned and
the curve swings wildly between the nights it was fitted on."""

MIN_TRAINING_NIGHTS = 4
"""Fewest usable nights :func:`train_dough` measures on (it must hold some back)."""

MIN_AUTO_NIGHTS = 2
"""Fewest usable nights ``model_type="auto"`` accepts; below :data:`MIN_TRAINING_NIGHTS` it
fits an unmeasured straight line, since two points already define one."""

WEEKDAYS = tuple(range(7))
"""The weekday vocabulary of the multi model (Monday is 0)."""

MONTHS = tuple(range(1, 13))
"""The month vocabulary of the multi model (January is 1)."""

MULTI_COLUMNS = ("reservations", "weekday", "month", "temperature", "holiday")
"""The input columns of a ``"multi"`` model, in order: see :func:`multi_row`."""

SMOKE_INPUT = [[0], [15], [40]]
"""Smoke-test input for ``"linear"`` and ``"polynomial"`` models: reservation counts."""

MULTI_SMOKE_INPUT = [[0, 0, 1, None, 0], [15, 2, 6, 21.5, 0], [40, 6, 12, -3.0, 1]]
"""Smoke-test input for ``"multi"`` models: :func:`multi_row` rows. The ``None`` (JSON null)
temperature makes the smoke test cover the imputation as well."""

TYPICAL_ERROR_PERCENTILE = 80
"""Percentile of absolute hold-out errors reported as a model's typical error."""

CURVE_POINTS = 50
"""Points per fitted curve in :class:`DoughEvaluation`; enough for a smooth degree-5 curve."""


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
    temperature : float or None, default None
        Outside temperature in °C, or None when not recorded.
    holiday : bool, default False
        Whether the night is a public holiday.
    """

    date: datetime.date
    reservations: int | None
    doughs: int | None
    temperature: float | None = None
    holiday: bool = False


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
        Individual nights to drop, such as private events.

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
    return sorted(kept, key=operator.attrgetter("date"))


def multi_row(
    reservations: float,
    date: datetime.date,
    temperature: float | None = None,
    holiday: bool = False,
) -> list:
    """Make one input row for a ``"multi"`` model's :meth:`DoughModel.predict`.

    Parameters
    ----------
    reservations : float
        Reservation count.
    date : datetime.date
        The night; its weekday (Monday 0) and month (January 1) become columns.
    temperature : float or None, default None
        °C; None (or NaN) means unknown, and the model then uses its training mean.
    holiday : bool, default False

    Returns
    -------
    list
        ``[reservations, weekday, month, temperature, holiday]`` (:data:`MULTI_COLUMNS`), with
        ``temperature`` None when unknown and ``holiday`` 0 or 1, so the row is JSON-ready.
    """
    return [reservations, date.weekday(), date.month, temperature, int(bool(holiday))]


def build_estimator(model_type: str = "polynomial", degree: int = 2) -> LinearRegression | Pipeline:
    """Make an unfitted scikit-learn estimator for dough demand.

    Parameters
    ----------
    model_type : {"linear", "polynomial", "multi"}, default "polynomial"
        ``"linear"`` is a plain :class:`~sklearn.linear_model.LinearRegression` over one column,
        reservations. ``"polynomial"`` puts :class:`~sklearn.preprocessing.PolynomialFeatures`
        in front of it. ``"multi"`` takes :data:`MULTI_COLUMNS` rows and puts a
        :class:`~sklearn.compose.ColumnTransformer` in front: reservations and holiday pass
        through, weekday and month are one-hot encoded over :data:`WEEKDAYS` and
        :data:`MONTHS`, and a missing (NaN) temperature is replaced by the training mean.
    degree : int, default 2
        Highest power of the reservation count, 1 to :data:`MAX_DEGREE`, for ``"polynomial"``;
        the other types ignore it.

    Returns
    -------
    LinearRegression or Pipeline

    Raises
    ------
    ValueError
        For an unknown ``model_type``, or a ``degree`` outside 1 to :data:`MAX_DEGREE`.
    """
    if model_type == "linear":
        return LinearRegression()
    if model_type == "multi":
        return Pipeline([("features", _multi_features()), ("linear", LinearRegression())])
    if model_type != "polynomial":
        raise ValueError(f"unknown model type {model_type!r}; choose one of {MODEL_TYPES}")
    _check_degree(degree)
    return Pipeline(
        [
            ("poly", PolynomialFeatures(degree=degree, include_bias=False)),
            ("linear", LinearRegression()),
        ]
    )


def _check_degree(degree: object) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or not 1 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree must be a whole number from 1 to {MAX_DEGREE}, got {degree!r}")


def _multi_features() -> ColumnTransformer:
    """The multi model's feature step; :func:`_compile_multi` relies on exactly this layout."""
    return ColumnTransformer(
        [
            ("reservations", "passthrough", [0]),
            ("weekday", OneHotEncoder(categories=[list(WEEKDAYS)], sparse_output=False), [1]),
            ("month", OneHotEncoder(categories=[list(MONTHS)], sparse_output=False), [2]),
            # keep_empty_features: with no temperature recorded at all the column stays (as
            # zeros, so its coefficient is 0) instead of vanishing and shifting the layout.
            ("temperature", SimpleImputer(strategy="mean", keep_empty_features=True), [3]),
            ("holiday", "passthrough", [4]),
        ],
        sparse_threshold=0.0,
    )


class _Compiled(NamedTuple):
    model_type: str
    degree: int
    coefficients: tuple[float, ...]
    feature_names: tuple[str, ...]
    temperature_fill: float | None


class DoughModel:
    """A fitted dough-demand regression, compiled to plain coefficients for fast predictions.

    Parameters
    ----------
    estimator : LinearRegression or Pipeline
        A fitted estimator from :func:`build_estimator`.

    Attributes
    ----------
    model_type : str
        ``"linear"``, ``"polynomial"`` or ``"multi"``.
    degree : int
        Highest power of the reservation count (1 for ``"linear"`` and ``"multi"``).
    coefficients_ : tuple of float
        Intercept first. For ``"linear"`` and ``"polynomial"``, polynomial coefficients, lowest
        power first: ``(c0, c1, c2, ...)``, predicting ``sum(c_k * x**k)``. For ``"multi"``,
        the intercept and then one weight per feature: reservations, weekday 0-6, month 1-12,
        temperature, holiday (23 in all); see ``feature_names_``.
    feature_names_ : tuple of str
        What each coefficient multiplies: ``"intercept"``, ``"reservations"``,
        ``"reservations^2"``, ``"weekday=0"``, ``"month=1"``, ``"temperature"``, ...
    temperature_fill_ : float or None
        For ``"multi"``, the mean training temperature, used when a night's is unknown (0.0 if
        no training night had one; the temperature weight is then 0). None for other types.
    typical_error_ : float
        The smallest error in doughs that at least :data:`TYPICAL_ERROR_PERCENTILE` % of the
        hold-out nights stayed within, set by :func:`train_dough`; NaN when not measured. Lets
        the app say "53 doughs, usually within ±4".
    estimator_ : LinearRegression or Pipeline
        The wrapped estimator, kept so the compiled form can be checked against it.

    Raises
    ------
    ValueError
        If the estimator is not one this class can compile.
    """

    def __init__(self, estimator: LinearRegression | Pipeline) -> None:
        self.estimator_ = estimator
        compiled = _compile(estimator)
        self.model_type = compiled.model_type
        self.degree = compiled.degree
        self.coefficients_ = compiled.coefficients
        self.feature_names_ = compiled.feature_names
        self.temperature_fill_ = compiled.temperature_fill
        self.typical_error_ = math.nan
        c = self.coefficients_
        # Pre-split views for the scalar path, so predict_one does no slicing or conversion.
        if self.model_type == "multi":
            self._intercept, self._w_reservations = c[0], c[1]
            self._w_weekday, self._w_month = c[2:9], c[9:21]
            self._w_temperature, self._w_holiday = c[21], c[22]
        else:
            self._horner = c[::-1]  # highest power first, for Horner's rule
            self._coef_array = np.asarray(self._horner, dtype=float)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle only the estimator and what training measured.

        The compiled form is rebuilt from the estimator on unpickling, so artefacts written by
        an older version of this class still load with every attribute the current one needs;
        the store's smoke test then proves the rebuilt form predicts as before.
        """
        return {"estimator_": self.estimator_, "typical_error_": self.typical_error_}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Recompile from the pickled estimator; see :meth:`__getstate__`."""
        self.__init__(state["estimator_"])
        self.typical_error_ = state.get("typical_error_", math.nan)

    def smoke_input(self) -> list:
        """Return a small JSON-ready input that :meth:`predict` accepts for this model type.

        Returns
        -------
        list
            A fresh copy of :data:`MULTI_SMOKE_INPUT` for ``"multi"``, else of
            :data:`SMOKE_INPUT`.
        """
        rows = MULTI_SMOKE_INPUT if self.model_type == "multi" else SMOKE_INPUT
        return [list(row) for row in rows]

    def predict_raw(self, X: ArrayLike) -> np.ndarray:
        """Predict unrounded doughs, without clipping.

        Parameters
        ----------
        X : array-like
            For ``"linear"`` and ``"polynomial"``: reservation counts, shape (n,) or (n, 1).
            For ``"multi"``: rows of :data:`MULTI_COLUMNS` (see :func:`multi_row`), shape
            (n, 5); a temperature of None or NaN means unknown.

        Returns
        -------
        numpy.ndarray of float, shape (n,)

        Raises
        ------
        ValueError
            For the wrong shape, or a weekday or month outside :data:`WEEKDAYS` /
            :data:`MONTHS`.
        """
        if self.model_type != "multi":
            return np.polyval(self._coef_array, _as_column(X))
        rows = _as_multi_rows(X)
        temperature = np.where(np.isnan(rows[:, 3]), self.temperature_fill_, rows[:, 3])
        # Term by term in predict_one's order, so both give bit-identical sums; a one-hot row
        # times the weights is exactly one weight (the other products are zeros).
        return (
            self._intercept
            + self._w_reservations * rows[:, 0]
            + _encode("weekday", rows[:, 1], WEEKDAYS) @ np.asarray(self._w_weekday)
            + _encode("month", rows[:, 2], MONTHS) @ np.asarray(self._w_month)
            + self._w_temperature * temperature
            + self._w_holiday * rows[:, 4]
        )

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predict whole doughs.

        Parameters
        ----------
        X : array-like
            As for :meth:`predict_raw`.

        Returns
        -------
        numpy.ndarray of int64, shape (n,)
            Predictions clipped at 0 and rounded half away from zero (the kitchen never
            prepares a negative dough, and a half dough rounds up).
        """
        return _whole_doughs(self.predict_raw(X))

    def estimate_one(
        self,
        reservations: float,
        date: datetime.date | None = None,
        temperature: float | None = None,
        holiday: bool = False,
    ) -> float:
        """Estimate doughs for one night, unrounded, without numpy or scikit-learn overhead.

        Parameters
        ----------
        reservations : float
            Reservation count.
        date : datetime.date, optional
            The night; required by ``"multi"`` models, ignored by the others.
        temperature : float or None, default None
            °C, for ``"multi"``; None or NaN means unknown (the training mean is used).
        holiday : bool, default False
            For ``"multi"``.

        Returns
        -------
        float
            ``predict_raw`` for the same night, clipped at 0.

        Raises
        ------
        ValueError
            If a ``"multi"`` model gets no date.
        """
        if self.model_type != "multi":
            value = 0.0
            for coefficient in self._horner:
                value = value * reservations + coefficient
            return value if value > 0.0 else 0.0
        if date is None:
            raise ValueError("the multi model needs the night's date (for weekday and month)")
        if temperature is None or temperature != temperature:  # NaN != NaN: unknown, too
            temperature = self.temperature_fill_
        value = (
            self._intercept
            + self._w_reservations * reservations
            + self._w_weekday[date.weekday()]
            + self._w_month[date.month - 1]
            + self._w_temperature * temperature
        )
        if holiday:
            value += self._w_holiday
        return value if value > 0.0 else 0.0

    def predict_one(
        self,
        reservations: float,
        date: datetime.date | None = None,
        temperature: float | None = None,
        holiday: bool = False,
    ) -> int:
        """Predict whole doughs for one night without numpy or scikit-learn overhead.

        Parameters
        ----------
        reservations, date, temperature, holiday
            As for :meth:`estimate_one`.

        Returns
        -------
        int
            The same value as :meth:`predict` gives for that night.

        Raises
        ------
        ValueError
            If a ``"multi"`` model gets no date.
        """
        value = self.estimate_one(reservations, date, temperature, holiday)
        whole = math.floor(value)
        return whole + 1 if value - whole >= 0.5 else whole

    def __repr__(self) -> str:
        """Show the compiled coefficients, which is what the model is."""
        terms = ", ".join(f"{c:.6g}" for c in self.coefficients_)
        return f"DoughModel(model_type={self.model_type!r}, degree={self.degree}, coef=({terms}))"


def _whole_doughs(raw: np.ndarray) -> np.ndarray:
    """Clip unrounded estimates at 0 and round halves up, as :meth:`DoughModel.predict` does."""
    clipped = np.maximum(raw, 0.0)
    whole = np.floor(clipped)
    # clipped - whole is exact, unlike clipped + 0.5, which rounds 0.49999999999999994 up.
    return (whole + (clipped - whole >= 0.5)).astype(np.int64)


def _compile(estimator: LinearRegression | Pipeline) -> _Compiled:
    """Read a fitted estimator's maths as plain coefficients."""
    if isinstance(estimator, LinearRegression):
        coefficients = _polynomial_coefficients(estimator, np.array([[1]]))
        return _Compiled("linear", 1, coefficients, ("intercept", "reservations"), None)
    steps = estimator.steps if isinstance(estimator, Pipeline) else []
    if (
        len(steps) == 2
        and isinstance(steps[0][1], ColumnTransformer)
        and isinstance(steps[1][1], LinearRegression)
    ):
        return _compile_multi(steps[0][1], steps[1][1])
    if (
        len(steps) != 2
        or not isinstance(steps[0][1], PolynomialFeatures)
        or not isinstance(steps[1][1], LinearRegression)
    ):
        raise ValueError(
            "DoughModel needs a LinearRegression, a PolynomialFeatures + LinearRegression "
            f"pipeline or a multi-feature pipeline from build_estimator, got {estimator!r}"
        )
    poly = steps[0][1]
    check_is_fitted(poly)
    if poly.n_features_in_ != 1:
        raise ValueError(f"DoughModel needs one input column, got {poly.n_features_in_}")
    degree = int(poly.powers_.max())
    coefficients = _polynomial_coefficients(steps[1][1], poly.powers_)
    names = ("intercept", "reservations", *(f"reservations^{k}" for k in range(2, degree + 1)))
    return _Compiled("polynomial", degree, coefficients, names, None)


def _polynomial_coefficients(linear: LinearRegression, powers: np.ndarray) -> tuple[float, ...]:
    """Fold a linear model over features ``x**powers`` into one coefficient per power."""
    check_is_fitted(linear)
    weights = np.ravel(linear.coef_)
    if weights.shape[0] != powers.shape[0]:
        raise ValueError(
            f"DoughModel needs a single-output regression over {powers.shape[0]} features, "
            f"got coefficients of shape {np.shape(linear.coef_)}"
        )
    coefficients = np.zeros(int(powers.max()) + 1)
    coefficients[0] = _intercept(linear)
    for power, weight in zip(powers[:, 0], weights, strict=True):
        coefficients[power] += weight
    return tuple(float(c) for c in coefficients)


def _intercept(linear: LinearRegression) -> float:
    return float(np.ravel(linear.intercept_)[0]) if linear.fit_intercept else 0.0


_MULTI_LAYOUT = {
    "reservations": ([0], "passthrough"),
    "weekday": ([1], WEEKDAYS),
    "month": ([2], MONTHS),
    "temperature": ([3], "mean"),
    "holiday": ([4], "passthrough"),
}


def _compile_multi(features: ColumnTransformer, linear: LinearRegression) -> _Compiled:
    """Read the multi pipeline as one weight per reservations/weekday/month/... feature."""
    check_is_fitted(features)
    check_is_fitted(linear)
    if _multi_layout(features) != _MULTI_LAYOUT:
        raise ValueError(
            "DoughModel needs the multi-feature layout of build_estimator('multi'), got "
            f"{_multi_layout(features)}"
        )
    weights = np.ravel(linear.coef_)
    if weights.shape[0] != features.output_indices_["holiday"].stop:
        raise ValueError(
            f"DoughModel needs a single-output regression, got coefficients of shape "
            f"{np.shape(linear.coef_)}"
        )
    ordered = [weights[features.output_indices_[name]] for name in _MULTI_LAYOUT]
    coefficients = (_intercept(linear), *(float(w) for part in ordered for w in part))
    names = (
        "intercept",
        "reservations",
        *(f"weekday={day}" for day in WEEKDAYS),
        *(f"month={month}" for month in MONTHS),
        "temperature",
        "holiday",
    )
    # With no temperature at all, keep_empty_features makes the mean (and the fill) 0.0.
    fill = float(features.named_transformers_["temperature"].statistics_[0])
    return _Compiled("multi", 1, coefficients, names, fill)


def _multi_layout(features: ColumnTransformer) -> dict[str, tuple[list, object]]:
    """Describe a fitted ColumnTransformer in :data:`_MULTI_LAYOUT`'s terms, to compare."""
    specified = {name: transformer for name, transformer, _ in features.transformers}
    layout: dict[str, tuple[list, object]] = {}
    for name, fitted, columns in features.transformers_:
        if name == "remainder":
            if fitted != "drop" or len(columns):
                layout[name] = (list(columns), fitted)
            continue
        if isinstance(fitted, OneHotEncoder):
            categories = fitted.categories_
            kind: object = (
                tuple(int(c) for c in categories[0])
                if len(categories) == 1 and fitted.drop is None
                else repr(fitted)
            )
        elif isinstance(fitted, SimpleImputer):
            kind = fitted.strategy
        else:
            kind = specified.get(name)
        layout[name] = (list(columns), kind)
    return layout


def _as_column(X: ArrayLike) -> np.ndarray:
    """Flatten reservation counts given as a scalar, a list, or one column into a 1-D array."""
    values = np.asarray(X, dtype=float)
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim <= 1:
        return values.reshape(-1)
    raise ValueError(f"expected reservation counts of shape (n,) or (n, 1), got {values.shape}")


def _as_multi_rows(X: ArrayLike) -> np.ndarray:
    """Read multi-model rows; None becomes NaN (an unknown temperature) on the way."""
    rows = np.asarray(X, dtype=float)
    if rows.ndim != 2 or rows.shape[1] != len(MULTI_COLUMNS):
        raise ValueError(
            f"expected rows of {list(MULTI_COLUMNS)}, shape (n, {len(MULTI_COLUMNS)}), "
            f"got {rows.shape}"
        )
    return rows


def _encode(column: str, values: np.ndarray, vocabulary: Sequence[int]) -> np.ndarray:
    """One-hot a category column, saying which column held an unknown value."""
    try:
        return one_hot(values.tolist(), vocabulary)
    except ValueError as exc:
        raise ValueError(f"{column}: {exc}") from None


class _Columns:
    """Usable nights as numpy columns, read from the :class:`Night` objects once per run.

    Every candidate fit and every hold-out score slices these arrays (the nights are in date
    order, so the training part is a prefix and the hold-out the rest). Building rows from the
    objects for each fit cost more than the fits themselves at 100,000 nights and more.
    """

    def __init__(self, nights: Sequence[Night]) -> None:
        self.nights = nights
        count = len(nights)
        self.doughs = np.fromiter((night.doughs for night in nights), float, count)
        self._reservations = np.fromiter((night.reservations for night in nights), float, count)
        self._multi: np.ndarray | None = None

    def inputs(self, model_type: str, rows: slice = slice(None)) -> np.ndarray:
        """The X a model of ``model_type`` takes for the nights at ``rows``."""
        if model_type != "multi":
            return self._reservations[rows, np.newaxis]
        if self._multi is None:  # only "multi" and "auto" need these columns
            self._multi = self._multi_rows()
        return self._multi[rows]

    def _multi_rows(self) -> np.ndarray:
        """:func:`multi_row` for every night, as one float array (NaN: unknown temperature)."""
        nights, count = self.nights, len(self.nights)
        days = np.fromiter((night.date.toordinal() for night in nights), np.int64, count)
        # Day 1 (1 January of year 1) is a Monday; day 719163 is 1970-01-01, numpy's day 0.
        months = (days - 719163).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        columns = (
            self._reservations,
            ((days - 1) % 7).astype(float),
            (months % 12 + 1).astype(float),
            np.fromiter(
                (math.nan if night.temperature is None else night.temperature for night in nights),
                float,
                count,
            ),
            np.fromiter((1.0 if night.holiday else 0.0 for night in nights), float, count),
        )
        return np.column_stack(columns)


def _fit(model_type: str, degree: int, columns: _Columns, rows: slice = slice(None)) -> DoughModel:
    """Fit a fresh estimator on the nights at ``rows`` and compile it."""
    estimator = build_estimator(model_type, degree)
    return DoughModel(estimator.fit(columns.inputs(model_type, rows), columns.doughs[rows]))


def _used_degree(model_type: str, degree: int) -> int:
    return degree if model_type == "polynomial" else 1


def _holdout_metrics(model: DoughModel, columns: _Columns, test: slice) -> dict:
    """Score ``model`` on the held-out nights at ``test``, unrounded and as whole doughs."""
    actual = columns.doughs[test]
    raw = model.predict_raw(columns.inputs(model.model_type, test))
    whole = _whole_doughs(raw)
    metrics: dict = regression_metrics(actual, raw)
    metrics["mae_rounded"] = regression_metrics(actual, whole)["mae"]
    # "inverted_cdf" picks an observed error: the smallest that at least 80% of nights were
    # within. Whole doughs, because "usually within ±N" is about the numbers staff are shown.
    metrics["p80_abs_error"] = float(
        np.percentile(np.abs(whole - actual), TYPICAL_ERROR_PERCENTILE, method="inverted_cdf")
    )
    metrics["holdout_rows"] = len(actual)
    return metrics


def _baseline_score(history: Sequence[Night], test: Sequence[Night]) -> ModelScore:
    """Score the same-weekday-last-week forecast on the ``test`` nights it covers."""
    covered, predictions = _last_week(history, test)
    if not len(covered):
        return ModelScore("baseline", math.nan, math.nan, math.nan, 0)
    actual = [test[i].doughs for i in covered.tolist()]
    return ModelScore("baseline", **regression_metrics(actual, predictions), n=len(covered))


def _last_week(history: Sequence[Night], test: Sequence[Night]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ml.evaluation.same_weekday_last_week` for nights, as a sorted-array lookup.

    The same covered positions, predictions and duplicate-day error, without a dict entry per
    night, which cost more than fitting a model on a million nights.
    """
    counted = [night for night in history if night.doughs is not None]
    days = np.fromiter((night.date.toordinal() for night in counted), np.int64, len(counted))
    values = np.fromiter((night.doughs for night in counted), float, len(counted))
    order = np.argsort(days, kind="stable")  # equal days keep their order in the history
    days, values = days[order], values[order]
    repeats = np.flatnonzero(days[1:] == days[:-1])
    if repeats.size:
        # The first repeat the history reaches, as same_weekday_last_week would find it.
        second = int(order[repeats + 1].min())
        raise ValueError(f"history has two values for {counted[second].date.isoformat()}")
    week_before = np.fromiter((night.date.toordinal() - 7 for night in test), np.int64, len(test))
    if not days.size:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    found = np.minimum(np.searchsorted(days, week_before), days.size - 1)
    covered = np.flatnonzero(days[found] == week_before)
    return covered.astype(np.int64), values[found[covered]]


def _pick(maes: dict[str, float]) -> str:
    """The type with the least MAE; near-ties (floating-point noise) go to the simpler type."""
    best = None
    for model_type in MODEL_TYPES:
        if model_type not in maes:
            continue
        # A degree-1 polynomial is the linear model, yet its MAE can differ in the last bits.
        if best is None or maes[model_type] < maes[best] - 1e-9 * max(1.0, abs(maes[best])):
            best = model_type
    if best is None:
        raise ValueError("no model was scored")
    return best


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
        All recorded nights; :func:`training_nights` picks the usable ones. The baseline may
        also look up nights that are not usable (see ``"baseline_mae"`` below).
    model_type : {"linear", "polynomial", "multi", "auto"}, default "polynomial"
        ``"auto"`` measures all of :data:`MODEL_TYPES` on the same hold-out and publishes the
        one with the lowest MAE (near-ties go to the simpler type, in :data:`MODEL_TYPES`
        order). With :data:`MIN_AUTO_NIGHTS` or more usable nights but fewer than
        :data:`MIN_TRAINING_NIGHTS`, nothing can be held out, so ``"auto"`` fits
        ``"linear"`` on all of them, unmeasured.
    degree : int, default 2
        Highest power for ``"polynomial"`` (also for the polynomial candidate of ``"auto"``),
        1 to :data:`MAX_DEGREE`; the other types are always degree 1.
    holdout : float, default 0.2
        Fraction of the most recent usable nights held back for measuring.
    excluded_weekdays : frozenset of int, default Friday and Saturday
    excluded_dates : frozenset of datetime.date, default empty

    Returns
    -------
    TrainedModel
        ``model`` is a :class:`DoughModel` with ``typical_error_`` set. ``metrics`` has the
        hold-out ``"mae"``, ``"rmse"`` and ``"r2"`` of the unrounded predictions,
        ``"mae_rounded"`` of the whole-dough predictions staff see, ``"p80_abs_error"``
        (= ``typical_error_``), ``"baseline_mae"`` of the same-weekday-last-week forecast
        (:func:`ml.evaluation.same_weekday_last_week`, from every given night with a dough
        count) over the ``"baseline_rows"`` hold-out nights it covers, and ``"train_rows"``
        and ``"holdout_rows"``. ``"auto"`` adds ``"mae_linear"``, ``"mae_polynomial"`` and
        ``"mae_multi"``. Unmeasured values are NaN (``"holdout_rows"`` is then 0).
        ``params`` has ``"model_type"`` (for ``"auto"``, the type chosen), ``"degree"``,
        ``"holdout"``, ``"excluded_weekdays"`` (sorted list) and ``"excluded_dates"`` (sorted
        ISO dates); ``"auto"`` adds ``"chosen_by": "auto"``.

    Raises
    ------
    ValueError
        With too few usable nights (:data:`MIN_TRAINING_NIGHTS`, or :data:`MIN_AUTO_NIGHTS`
        for ``"auto"``), or bad settings.
    """
    if model_type not in TRAINING_CHOICES:
        raise ValueError(f"unknown model type {model_type!r}; choose one of {TRAINING_CHOICES}")
    if model_type in ("polynomial", AUTO):
        _check_degree(degree)
    check_holdout(holdout)
    nights = list(nights)
    usable = training_nights(nights, excluded_weekdays, excluded_dates)
    candidates = MODEL_TYPES if model_type == AUTO else (model_type,)
    columns = _Columns(usable)
    if model_type == AUTO and MIN_AUTO_NIGHTS <= len(usable) < MIN_TRAINING_NIGHTS:
        chosen, metrics = "linear", _unmeasured_metrics(len(usable))
    else:
        if len(usable) < MIN_TRAINING_NIGHTS:
            # For "auto", say what each count buys: staff may only have two or three nights.
            also = f", or {MIN_AUTO_NIGHTS} for an unmeasured line" if model_type == AUTO else ""
            raise ValueError(
                f"need at least {MIN_TRAINING_NIGHTS} training nights{also}, got {len(usable)}"
            )
        train, test = _split(len(usable), holdout)
        scored = {
            kind: _holdout_metrics(_fit(kind, degree, columns, train), columns, test)
            for kind in candidates
        }
        chosen = _pick({kind: m["mae"] for kind, m in scored.items()})
        metrics = scored[chosen]
        baseline = _baseline_score(nights, usable[test])
        metrics["baseline_mae"], metrics["baseline_rows"] = baseline.mae, baseline.n
        metrics["train_rows"] = train.stop
        if model_type == AUTO:
            metrics.update({f"mae_{kind}": m["mae"] for kind, m in scored.items()})
    model = _fit(chosen, degree, columns)
    model.typical_error_ = metrics["p80_abs_error"]
    params = {
        "model_type": chosen,
        "degree": _used_degree(chosen, degree),
        "holdout": holdout,
        "excluded_weekdays": sorted(excluded_weekdays),
        "excluded_dates": sorted(day.isoformat() for day in excluded_dates),
    }
    if model_type == AUTO:
        params["chosen_by"] = AUTO
    return TrainedModel(
        model=model,
        metrics=metrics,
        params=params,
        training_rows=len(usable),
        data_hash=nights_hash(usable),
        smoke_input=model.smoke_input(),
    )


def _split(count: int, holdout: float) -> tuple[slice, slice]:
    """:func:`~ml.evaluation.chronological_split` as slices: a prefix, then the rest."""
    train_idx, _ = chronological_split(count, holdout)
    return slice(0, len(train_idx)), slice(len(train_idx), count)


_HASH_CHUNK = 10_000
"""Nights serialised at a time by :func:`nights_hash`, so it never holds all of their JSON."""

_NIGHT_JSON = '{"date":%s,"doughs":%s,"holiday":%s,"reservations":%s,"temperature":%s}'
"""One night as ``data_hash`` writes it (keys sorted, no spaces), given each value's JSON."""


def nights_hash(nights: Sequence[Night]) -> str:
    """Compute :func:`ml.training.data_hash` of ``nights`` without its generic walk.

    ``data_hash`` inspects every value of every row to find its canonical form, which takes
    longer than fitting all three models on a million nights. Plain :class:`Night` values
    have a known canonical form: a dict of their fields with the date as ISO text. This writes
    that JSON directly, a chunk of nights at a time and each field's values with one
    ``json.dumps`` call, and feeds it to SHA-256; a value that is not a plain scalar ``json``
    can write (a numpy integer, say) sends the whole list through ``data_hash`` instead.

    Parameters
    ----------
    nights : sequence of Night

    Returns
    -------
    str
        Exactly ``data_hash(nights)``.
    """
    if any(type(night) is not Night for night in nights):
        return data_hash(nights)  # a subclass may have more fields
    digest = hashlib.sha256(b"[")
    try:
        for start in range(0, len(nights), _HASH_CHUNK):
            part = nights[start : start + _HASH_CHUNK]
            columns = (
                _json_values([night.date.isoformat() for night in part]),
                _json_values([night.doughs for night in part]),
                _json_values([night.holiday for night in part]),
                _json_values([night.reservations for night in part]),
                _json_values([night.temperature for night in part]),
            )
            text = ",".join([_NIGHT_JSON % values for values in zip(*columns, strict=True)])
            digest.update((b"," if start else b"") + text.encode("utf-8"))
    except TypeError:
        return data_hash(nights)
    digest.update(b"]")
    return digest.hexdigest()


def _json_values(values: list) -> list[str]:
    """Each value's JSON text as ``data_hash`` writes it, from one ``json.dumps`` of them all.

    Raises
    ------
    TypeError
        Unless every value is a scalar that ``json`` writes without a comma or a bracket (a
        number, a bool, None, a plain string), so the split is exact and a value's text is
        the same inside a row as in this list.
    """
    text = json.dumps(values, separators=(",", ":"))[1:-1]
    parts = text.split(",") if values else []
    if len(parts) != len(values) or "[" in text or "{" in text:
        raise TypeError("not a list of plain scalars")
    return parts


def _unmeasured_metrics(training_rows: int) -> dict:
    """Metrics of a model fitted with nothing held out: every score is unknown."""
    unknown = ("mae", "rmse", "r2", "mae_rounded", "p80_abs_error", "baseline_mae")
    return {
        **dict.fromkeys(unknown, math.nan),
        "baseline_rows": 0,
        "holdout_rows": 0,
        "train_rows": training_rows,
    }


@dataclasses.dataclass(frozen=True)
class ModelScore:
    """Hold-out scores of one model (or of the baseline).

    Parameters
    ----------
    name : str
        ``"linear"``, ``"polynomial"``, ``"multi"`` or ``"baseline"``.
    mae, rmse, r2 : float
        Of the unrounded predictions; NaN when nothing was scored (r2 also with one night).
    n : int
        Hold-out nights scored: all of them for a model, those with a known count a week
        earlier for the baseline.
    """

    name: str
    mae: float
    rmse: float
    r2: float
    n: int


@dataclasses.dataclass(frozen=True)
class DoughEvaluation:
    """The three model types and the baseline, scored side by side on one hold-out.

    Parameters
    ----------
    train_rows, holdout_rows : int
        Usable nights fitted on and held out.
    holdout_start, holdout_end : datetime.date
        First and last held-out night.
    degree : int
        Degree of the polynomial model.
    scores : tuple of ModelScore
        ``linear``, ``polynomial``, ``multi`` and ``baseline``, in that order.
    winner : str
        The model type with the lowest MAE, chosen as ``train_dough(model_type="auto")`` does.
    summary : str
        One plain sentence comparing the winner with the linear model, such as
        ``"polynomial: 48% less error than linear"``.
    train_points, holdout_points : tuple of (int, int)
        ``(reservations, doughs)`` of the training and held-out nights.
    curves : dict of str to tuple of (float, float)
        ``"linear"`` and ``"polynomial"``: ``(reservations, estimated doughs)`` over
        :data:`CURVE_POINTS` points from 0 to the most reservations seen, from the very fits
        that were scored (on the training part only). Estimates are clipped at 0.
    multi_holdout_predictions : tuple of (int, float)
        ``(reservations, estimated doughs)`` of the multi model for each held-out night: it
        depends on more than reservations, so it has no single curve.
    """

    train_rows: int
    holdout_rows: int
    holdout_start: datetime.date
    holdout_end: datetime.date
    degree: int
    scores: tuple[ModelScore, ...]
    winner: str
    summary: str
    train_points: tuple[tuple[int, int], ...]
    holdout_points: tuple[tuple[int, int], ...]
    curves: dict[str, tuple[tuple[float, float], ...]]
    multi_holdout_predictions: tuple[tuple[int, float], ...]

    def score(self, name: str) -> ModelScore:
        """Return the score named ``name``.

        Parameters
        ----------
        name : str
            ``"linear"``, ``"polynomial"``, ``"multi"`` or ``"baseline"``.

        Returns
        -------
        ModelScore

        Raises
        ------
        KeyError
            For any other name.
        """
        for score in self.scores:
            if score.name == name:
                return score
        raise KeyError(name)


def evaluate_dough(
    nights: Iterable[Night],
    degree: int = 2,
    holdout: float = 0.2,
    excluded_weekdays: frozenset[int] = DEFAULT_EXCLUDED_WEEKDAYS,
    excluded_dates: frozenset[datetime.date] = frozenset(),
) -> DoughEvaluation:
    """Score every model type and the naive baseline on the same chronological hold-out.

    Each type is fitted on the earlier usable nights only, exactly as :func:`train_dough`
    measures it, so the scores here equal that function's hold-out metrics.

    Parameters
    ----------
    nights : iterable of Night
        All recorded nights; the baseline may look up any of them with a dough count.
    degree : int, default 2
        Degree of the polynomial model, 1 to :data:`MAX_DEGREE`.
    holdout : float, default 0.2
        Fraction of the most recent usable nights held back.
    excluded_weekdays : frozenset of int, default Friday and Saturday
    excluded_dates : frozenset of datetime.date, default empty

    Returns
    -------
    DoughEvaluation

    Raises
    ------
    ValueError
        With fewer than :data:`MIN_TRAINING_NIGHTS` usable nights, or bad settings.
    """
    _check_degree(degree)
    nights = list(nights)
    usable = training_nights(nights, excluded_weekdays, excluded_dates)
    if len(usable) < MIN_TRAINING_NIGHTS:
        raise ValueError(
            f"need at least {MIN_TRAINING_NIGHTS} training nights, got {len(usable)}"
        )
    columns = _Columns(usable)
    train_rows, test_rows = _split(len(usable), holdout)
    train, test = usable[train_rows], usable[test_rows]
    actual = columns.doughs[test_rows]
    fits = {kind: _fit(kind, degree, columns, train_rows) for kind in MODEL_TYPES}
    scores = [
        ModelScore(
            kind,
            **regression_metrics(actual, fit.predict_raw(columns.inputs(kind, test_rows))),
            n=len(test),
        )
        for kind, fit in fits.items()
    ]
    scores.append(_baseline_score(nights, test))
    maes = {score.name: score.mae for score in scores if score.name in MODEL_TYPES}
    winner = _pick(maes)
    grid = np.linspace(0.0, float(max(night.reservations for night in usable)), CURVE_POINTS)
    return DoughEvaluation(
        train_rows=len(train),
        holdout_rows=len(test),
        holdout_start=test[0].date,
        holdout_end=test[-1].date,
        degree=degree,
        scores=tuple(scores),
        winner=winner,
        summary=_summary(winner, maes),
        train_points=tuple((night.reservations, night.doughs) for night in train),
        holdout_points=tuple((night.reservations, night.doughs) for night in test),
        curves={
            kind: tuple(
                (float(x), float(y))
                for x, y in zip(grid, np.maximum(fits[kind].predict_raw(grid), 0.0), strict=True)
            )
            for kind in ("linear", "polynomial")
        },
        multi_holdout_predictions=tuple(
            (night.reservations, float(estimate))
            for night, estimate in zip(
                test,
                np.maximum(fits["multi"].predict_raw(columns.inputs("multi", test_rows)), 0.0),
                strict=True,
            )
        ),
    )


def _summary(winner: str, maes: dict[str, float]) -> str:
    """Say in plain words how much the winner improves on the straight line."""
    if winner == "linear":
        return "linear: no other model had less error"
    saving = 1.0 - maes[winner] / maes["linear"]
    if saving < 0.005:
        return f"{winner}: slightly less error than linear"
    return f"{winner}: {saving:.0%} less error than linear"
