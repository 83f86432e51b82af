from __future__ import annotations

import math

import numpy as np
import pytest

from ml.evaluation import chronological_split, passes_gate, regression_metrics


@pytest.mark.parametrize(
    ("n_rows", "holdout", "n_train", "n_test"),
    [(10, 0.2, 8, 2), (5, 0.2, 4, 1), (4, 0.2, 3, 1), (4, 0.9, 1, 3), (259, 0.2, 207, 52)],
)
def test_split_holds_back_the_latest_rows(n_rows, holdout, n_train, n_test):
    train, test = chronological_split(n_rows, holdout)
    assert (len(train), len(test)) == (n_train, n_test)
    assert np.array_equal(np.concatenate([train, test]), np.arange(n_rows))


def test_split_refuses_too_few_rows():
    with pytest.raises(ValueError, match="need at least 4 rows.*got 3"):
        chronological_split(3)


@pytest.mark.parametrize("holdout", [0.0, 1.0, -0.1, float("nan")])
def test_split_refuses_a_holdout_outside_zero_and_one(holdout):
    with pytest.raises(ValueError, match="holdout"):
        chronological_split(10, holdout)


def test_regression_metrics_match_hand_computed_values():
    metrics = regression_metrics([1, 2, 3, 4], [1, 2, 3, 6])
    assert metrics == pytest.approx({"mae": 0.5, "rmse": 1.0, "r2": 0.2})
    assert all(type(value) is float for value in metrics.values())


def test_r2_is_nan_for_a_single_row_without_a_warning():
    metrics = regression_metrics([3.0], [5.0])
    assert metrics["mae"] == 2.0
    assert math.isnan(metrics["r2"])


def test_regression_metrics_refuse_mismatched_lengths():
    with pytest.raises(ValueError, match="equally long"):
        regression_metrics([1, 2], [1])


@pytest.mark.parametrize(
    ("candidate", "champion", "margin", "lower_is_better", "expected"),
    [
        (5.0, None, 0.05, True, True),
        (10.5, 10.0, 0.05, True, True),
        (10.6, 10.0, 0.05, True, False),
        (9.0, 10.0, 0.0, True, True),
        (10.0, 10.0, 0.0, True, True),
        (0.77, 0.8, 0.05, False, True),
        (0.75, 0.8, 0.05, False, False),
        (-0.21, -0.2, 0.1, False, True),
        (-0.23, -0.2, 0.1, False, False),
        (float("nan"), 10.0, 0.05, True, False),
        (float("nan"), None, 0.05, True, False),
        (3.0, float("nan"), 0.05, True, True),
    ],
)
def test_gate(candidate, champion, margin, lower_is_better, expected):
    assert passes_gate(candidate, champion, margin, lower_is_better) is expected


def test_gate_refuses_a_negative_margin():
    with pytest.raises(ValueError, match="margin"):
        passes_gate(1.0, 1.0, -0.1)
