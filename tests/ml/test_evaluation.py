from __future__ import annotations

import datetime
import math

import numpy as np
import pytest

from ml.evaluation import (
    check_holdout,
    chronological_split,
    hit_rate_at_k,
    passes_gate,
    popularity_ranking,
    precision_at_k,
    regression_metrics,
    same_weekday_last_week,
)

MAY = {day: datetime.date(2023, 5, day) for day in range(1, 32)}  # 2023-05-01 is a Monday


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


def test_baseline_takes_the_value_exactly_seven_days_earlier_and_skips_gaps():
    history = [
        (MAY[1], 10),  # Monday: predicts Monday the 8th
        (MAY[2], None),  # Tuesday, count unknown: Tuesday the 9th has no baseline
        # Wednesday the 3rd is missing altogether: Wednesday the 10th has no baseline
        (MAY[4], 99),  # six days before the 10th: the wrong weekday, never used
        (MAY[8], 20),  # a target itself, and the week-earlier value for the 15th
        (MAY[9], 33),
        (MAY[10], 44),
    ]
    targets = [MAY[15], MAY[8], MAY[9], MAY[10], MAY[22]]
    covered, predicted = same_weekday_last_week(history, targets)
    assert covered.tolist() == [0, 1]
    assert predicted.tolist() == [20.0, 10.0]
    assert covered.dtype == np.int64 and predicted.dtype == float


def test_baseline_never_uses_a_targets_own_value_or_the_week_after():
    history = [(MAY[8], 20), (MAY[15], 30)]
    covered, predicted = same_weekday_last_week(reversed(history), [MAY[8], MAY[15]])
    assert covered.tolist() == [1]
    assert predicted.tolist() == [20.0]


def test_baseline_with_nothing_to_go_on_is_empty():
    covered, predicted = same_weekday_last_week([], [MAY[8]])
    assert covered.tolist() == [] and predicted.tolist() == []
    assert same_weekday_last_week([(MAY[1], 3)], [])[0].tolist() == []


def test_baseline_refuses_two_values_for_one_day():
    with pytest.raises(ValueError, match="two values for 2023-05-01"):
        same_weekday_last_week([(MAY[1], 3), (MAY[1], 4)], [MAY[8]])


@pytest.mark.parametrize("holdout", [0.0, 1.0, float("nan"), 2])
def test_check_holdout_refuses_fractions_outside_zero_and_one(holdout):
    with pytest.raises(ValueError, match="holdout must be between 0 and 1"):
        check_holdout(holdout)
    check_holdout(0.5)


# --- ranking metrics --------------------------------------------------------------------------

RANKED = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"], ["a", "c"]]
TRUTHS = ["a", "a", "a", "b"]


@pytest.mark.parametrize(("k", "hit_rate"), [(1, 0.25), (2, 0.5), (3, 0.75), (10, 0.75)])
def test_hit_rate_counts_truths_within_the_first_k(k, hit_rate):
    assert hit_rate_at_k(RANKED, TRUTHS, k) == hit_rate


@pytest.mark.parametrize(("k", "precision"), [(1, 0.25), (2, 0.25), (3, 0.25), (10, 0.075)])
def test_precision_is_hits_over_k_averaged_even_for_short_lists(k, precision):
    assert precision_at_k(RANKED, TRUTHS, k) == pytest.approx(precision)


def test_ranking_metrics_accept_numpy_rankings():
    ranked = [np.array(["x", "y"]), np.array(["y", "x"])]
    assert hit_rate_at_k(ranked, ["x", "x"], 1) == 0.5
    assert precision_at_k(ranked, ["x", "x"], 2) == 0.5


@pytest.mark.parametrize(
    ("ranked", "truths", "k", "message"),
    [
        ([], [], 5, "at least one"),
        ([["a"]], ["a", "b"], 5, "one ranked list per truth"),
        ([["a"]], ["a"], 0, "k must be"),
        ([["a"]], ["a"], 2.0, "k must be"),
        ([["a"]], ["a"], True, "k must be"),
    ],
)
def test_ranking_metrics_refuse_bad_input(ranked, truths, k, message):
    with pytest.raises(ValueError, match=message):
        hit_rate_at_k(ranked, truths, k)
    with pytest.raises(ValueError, match=message):
        precision_at_k(ranked, truths, k)


def test_popularity_ranks_by_pick_count_then_code_point_name():
    ranking = popularity_ranking(["b", "Z", "b", "a", "Z"], ["a", "b", "c", "Z", "B"])
    assert ranking == ["Z", "b", "a", "B", "c"]
    assert popularity_ranking([], ["b", "a"]) == ["a", "b"]


def test_popularity_refuses_unknown_picks_and_repeated_names():
    with pytest.raises(ValueError, match="not offered: 'x'"):
        popularity_ranking(["x"], ["a"])
    with pytest.raises(ValueError, match="repeats 'a'"):
        popularity_ranking([], ["a", "b", "a"])
