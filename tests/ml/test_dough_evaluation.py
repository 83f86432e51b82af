"""evaluate_dough: every type and the baseline on one hold-out, with chart data."""

from __future__ import annotations

import dataclasses
import datetime
import math
import pickle
import statistics

import numpy as np
import pytest

from ml.dough import (
    CURVE_POINTS,
    DoughEvaluation,
    evaluate_dough,
    train_dough,
    training_nights,
)
from ml.synthetic import generate_linear_year, generate_weekday_year, generate_year

LOG_YEAR = generate_year(42)


@pytest.fixture(scope="module")
def evaluation() -> DoughEvaluation:
    return evaluate_dough(LOG_YEAR, degree=3)


def test_scores_cover_the_three_types_and_the_baseline(evaluation):
    assert [score.name for score in evaluation.scores] == [
        "linear", "polynomial", "multi", "baseline"
    ]
    assert [score.n for score in evaluation.scores[:3]] == [evaluation.holdout_rows] * 3
    assert evaluation.score("multi") is evaluation.scores[2]
    with pytest.raises(KeyError):
        evaluation.score("tree")


@pytest.mark.parametrize("model_type", ["linear", "polynomial", "multi"])
def test_scores_are_the_hold_out_metrics_train_dough_reports(evaluation, model_type):
    trained = train_dough(LOG_YEAR, model_type=model_type, degree=3)
    score = evaluation.score(model_type)
    assert (score.mae, score.rmse, score.r2) == (
        trained.metrics["mae"], trained.metrics["rmse"], trained.metrics["r2"]
    )
    assert evaluation.train_rows == trained.metrics["train_rows"]
    assert evaluation.holdout_rows == trained.metrics["holdout_rows"]
    assert evaluation.score("baseline").mae == trained.metrics["baseline_mae"]
    assert evaluation.score("baseline").n == trained.metrics["baseline_rows"]


def test_the_baseline_score_is_last_weeks_count(evaluation):
    known = {n.date: n.doughs for n in LOG_YEAR if n.doughs is not None}
    test = training_nights(LOG_YEAR)[-evaluation.holdout_rows:]
    errors = [abs(n.doughs - known[n.date - datetime.timedelta(days=7)]) for n in test
              if n.date - datetime.timedelta(days=7) in known]
    baseline = evaluation.score("baseline")
    assert baseline.n == len(errors)
    assert baseline.mae == pytest.approx(statistics.mean(errors))
    assert baseline.rmse == pytest.approx(math.sqrt(statistics.mean(e * e for e in errors)))


def test_a_baseline_with_nothing_a_week_earlier_is_unscored(week_nights):
    score = evaluate_dough(week_nights).score("baseline")
    assert score.n == 0 and math.isnan(score.mae) and math.isnan(score.r2)


def test_the_split_and_points_follow_the_usable_nights(evaluation):
    usable = training_nights(LOG_YEAR)
    assert evaluation.train_rows + evaluation.holdout_rows == len(usable)
    assert evaluation.holdout_rows == round(0.2 * len(usable))
    test = usable[-evaluation.holdout_rows:]
    assert (evaluation.holdout_start, evaluation.holdout_end) == (test[0].date, test[-1].date)
    assert evaluation.holdout_points == tuple((n.reservations, n.doughs) for n in test)
    assert evaluation.train_points == tuple(
        (n.reservations, n.doughs) for n in usable[: evaluation.train_rows]
    )


def test_curves_are_the_scored_fits_from_zero_to_the_most_reservations(evaluation):
    train = training_nights(LOG_YEAR)[: evaluation.train_rows]
    x = np.array([n.reservations for n in train], dtype=float)
    y = np.array([n.doughs for n in train], dtype=float)
    most = max(n.reservations for n in training_nights(LOG_YEAR))
    for name, degree in (("linear", 1), ("polynomial", 3)):
        curve = np.array(evaluation.curves[name])
        assert curve.shape == (CURVE_POINTS, 2)
        assert (curve[0, 0], curve[-1, 0]) == (0.0, most)
        expected = np.maximum(np.polyval(np.polyfit(x, y, degree), curve[:, 0]), 0.0)
        np.testing.assert_allclose(curve[:, 1], expected, rtol=1e-7, atol=1e-7)
    assert set(evaluation.curves) == {"linear", "polynomial"}


def test_multi_predictions_are_one_per_hold_out_night(evaluation):
    trained_on_train = train_dough(
        training_nights(LOG_YEAR)[: evaluation.train_rows], model_type="multi"
    ).model  # published on every night it was given: exactly the training part
    test = training_nights(LOG_YEAR)[-evaluation.holdout_rows:]
    expected = tuple(
        (n.reservations, trained_on_train.estimate_one(n.reservations, n.date, n.temperature))
        for n in test
    )
    np.testing.assert_allclose(evaluation.multi_holdout_predictions, expected, rtol=1e-9)
    assert [r for r, _ in evaluation.multi_holdout_predictions] == [r for r, _ in expected]


def test_the_winner_is_what_auto_would_publish():
    for nights in (LOG_YEAR, generate_weekday_year(3), generate_linear_year(0)):
        evaluation = evaluate_dough(nights)
        assert evaluation.winner == train_dough(nights, model_type="auto").params["model_type"]


def test_the_summary_compares_the_winner_with_the_line(evaluation):
    linear, polynomial = evaluation.score("linear").mae, evaluation.score("polynomial").mae
    assert evaluation.winner == "polynomial"
    saving = round(100 * (1 - polynomial / linear))
    assert 40 <= saving <= 80  # 71 for this year at degree 3
    assert evaluation.summary == f"polynomial: {saving}% less error than linear"
    weekday = evaluate_dough(generate_weekday_year(0))
    assert weekday.summary.startswith("multi: ") and weekday.summary.endswith("% less error than linear")
    assert evaluate_dough(generate_linear_year(0)).summary == "linear: no other model had less error"


def test_the_evaluation_is_plain_frozen_data(evaluation):
    with pytest.raises(dataclasses.FrozenInstanceError):
        evaluation.winner = "linear"
    assert pickle.loads(pickle.dumps(evaluation)) == evaluation
    points = [*evaluation.train_points, *evaluation.holdout_points]
    assert all(type(r) is int and type(d) is int for r, d in points)
    curve_values = [v for curve in evaluation.curves.values() for point in curve for v in point]
    assert all(type(v) is float for v in curve_values)
    assert all(type(v) is float for _, v in evaluation.multi_holdout_predictions)
    assert all(type(getattr(s, f)) is float for s in evaluation.scores for f in ("mae", "rmse", "r2"))
    assert evaluation.degree == 3


def test_evaluation_needs_four_usable_nights_and_a_sane_degree(week_nights):
    with pytest.raises(ValueError, match="need at least 4 training nights, got 3"):
        evaluate_dough(week_nights[:3])
    with pytest.raises(ValueError, match="degree"):
        evaluate_dough(LOG_YEAR, degree=6)
