"""train_dough: hold-out metrics, the typical error, the baseline, "auto", and the acceptance
numbers of the pizzeria issue."""

from __future__ import annotations

import dataclasses
import datetime
import math
import statistics

import numpy as np
import pytest

from ml.dough import (
    MODEL_TYPES,
    DoughModel,
    Night,
    _last_week,
    build_estimator,
    train_dough,
    training_nights,
)
from ml.evaluation import regression_metrics, same_weekday_last_week
from ml.synthetic import generate_linear_year, generate_weekday_year, generate_year


def measured_fit(model_type: str, nights: list[Night], n_test: int, degree: int = 2):
    """Fit, independently of train_dough, what it measures: the earlier usable nights only."""
    usable = training_nights(nights)
    train, test = usable[:-n_test], usable[-n_test:]
    if model_type == "multi":
        X = [[n.reservations, n.date.weekday(), n.date.month,
              math.nan if n.temperature is None else n.temperature, float(n.holiday)]
             for n in train]
    else:
        X = [[n.reservations] for n in train]
    estimator = build_estimator(model_type, degree).fit(np.array(X, dtype=float),
                                                        [n.doughs for n in train])
    return DoughModel(estimator), test


def test_night_keeps_its_positional_fields_and_gains_optional_details():
    night = Night(datetime.date(2023, 5, 22), 12, 36)
    assert (night.temperature, night.holiday) == (None, False)
    detailed = Night(datetime.date(2023, 5, 22), 12, 36, 18.5, True)
    assert (detailed.reservations, detailed.doughs, detailed.temperature, detailed.holiday) == (
        12, 36, 18.5, True
    )


def test_metrics_hold_the_typical_error_and_the_baseline():
    trained = train_dough(generate_year(3))
    assert {
        "mae", "rmse", "r2", "mae_rounded", "p80_abs_error", "baseline_mae", "baseline_rows",
        "train_rows", "holdout_rows",
    } <= trained.metrics.keys()
    assert trained.model.typical_error_ == trained.metrics["p80_abs_error"]


def test_typical_error_is_the_smallest_error_eight_in_ten_hold_out_nights_stayed_within():
    nights = generate_year(2)
    trained = train_dough(nights, model_type="polynomial")
    model, test = measured_fit("polynomial", nights, trained.metrics["holdout_rows"])
    errors = sorted(abs(model.predict_one(n.reservations) - n.doughs) for n in test)
    typical = trained.model.typical_error_
    within = sum(error <= typical for error in errors) / len(errors)
    within_one_less = sum(error <= typical - 1 for error in errors) / len(errors)
    assert within >= 0.8 > within_one_less
    assert typical == errors[math.ceil(0.8 * len(errors)) - 1]
    assert type(typical) is float


def test_baseline_mae_uses_the_night_a_week_earlier_even_when_it_is_excluded():
    nights = generate_year(4)
    usable_dates = [n.date for n in training_nights(nights)]
    # Excluding a week-earlier night keeps it out of training but not out of the baseline.
    hold_out_night = usable_dates[-3]
    week_before = hold_out_night - datetime.timedelta(days=7)
    trained = train_dough(nights, excluded_dates=frozenset({week_before}))
    usable = training_nights(nights, excluded_dates=frozenset({week_before}))
    test = usable[-trained.metrics["holdout_rows"]:]
    known = {n.date: n.doughs for n in nights if n.doughs is not None}
    pairs = [(n.doughs, known[n.date - datetime.timedelta(days=7)]) for n in test
             if n.date - datetime.timedelta(days=7) in known]
    assert week_before in known and any(n.date == hold_out_night for n in test)
    assert trained.metrics["baseline_rows"] == len(pairs) < len(test)
    assert trained.metrics["baseline_mae"] == pytest.approx(
        statistics.mean(abs(actual - guess) for actual, guess in pairs)
    )


def test_the_baseline_lookup_agrees_with_same_weekday_last_week():
    nights = [night for night in generate_year(4) if night.date.day % 5]  # gaps, unknown counts
    shuffled = nights[::3] + nights[1::3] + nights[2::3]
    for history, test in ((nights, nights[-80:]), (shuffled, nights[::-2]), ([], nights[:5])):
        covered, predicted = _last_week(history, test)
        expected = same_weekday_last_week(
            ((night.date, night.doughs) for night in history), (night.date for night in test)
        )
        np.testing.assert_array_equal(covered, expected[0])
        np.testing.assert_array_equal(predicted, expected[1])
        assert covered.dtype == expected[0].dtype and predicted.dtype == expected[1].dtype


def test_the_baseline_lookup_names_the_first_repeated_day_it_reaches():
    day = datetime.date(2023, 5, 1)
    history = [Night(day + datetime.timedelta(days=i), 10, 30) for i in range(5)]
    history += [Night(day + datetime.timedelta(days=3), 1, 2),
                Night(day + datetime.timedelta(days=1), 1, 2),
                Night(day + datetime.timedelta(days=1), 1, None)]  # unknown: not a value
    with pytest.raises(ValueError, match="two values for 2023-05-04"):
        same_weekday_last_week([(n.date, n.doughs) for n in history], [])
    with pytest.raises(ValueError, match="two values for 2023-05-04"):
        _last_week(history, [])


@pytest.mark.parametrize(
    ("nights", "expected"),
    [
        (generate_year(42), "polynomial"),
        (generate_weekday_year(42), "multi"),
        (generate_linear_year(0), "linear"),
    ],
    ids=["log-year", "weekday-year", "linear-year"],
)
def test_auto_publishes_the_type_with_the_least_hold_out_error(nights, expected):
    trained = train_dough(nights, model_type="auto")
    maes = {kind: trained.metrics[f"mae_{kind}"] for kind in MODEL_TYPES}
    assert min(maes, key=maes.get) == expected
    assert trained.params["model_type"] == trained.model.model_type == expected
    assert trained.params["chosen_by"] == "auto"
    explicit = train_dough(nights, model_type=expected)
    assert trained.metrics["mae"] == explicit.metrics["mae"] == maes[expected]
    assert trained.model.coefficients_ == explicit.model.coefficients_
    assert trained.params["degree"] == explicit.params["degree"]
    assert "chosen_by" not in explicit.params


def test_auto_breaks_a_tie_in_favour_of_the_simpler_model():
    # A degree-1 polynomial is the straight line: the same hold-out error, so linear is chosen.
    trained = train_dough(generate_year(0), model_type="auto", degree=1)
    assert trained.metrics["mae_polynomial"] == trained.metrics["mae_linear"]
    assert trained.params["model_type"] == "linear"


def test_auto_falls_back_to_an_unmeasured_line_with_too_few_nights(week_nights):
    few = week_nights[:3]  # Monday to Wednesday: nothing can be held out
    trained = train_dough(few, model_type="auto")
    assert trained.params["model_type"] == trained.model.model_type == "linear"
    assert trained.params["chosen_by"] == "auto"
    assert trained.metrics["holdout_rows"] == 0 and trained.metrics["train_rows"] == 3
    for key in ("mae", "rmse", "r2", "mae_rounded", "p80_abs_error", "baseline_mae"):
        assert math.isnan(trained.metrics[key]), key
    assert math.isnan(trained.model.typical_error_)
    line = np.polyfit([12, 20, 18], [36, 72, 68], 1)
    assert trained.model.coefficients_ == pytest.approx((line[1], line[0]), rel=1e-9)
    assert trained.training_rows == 3


def test_auto_with_two_nights_fits_the_line_through_them(week_nights):
    trained = train_dough(week_nights[:2], model_type="auto")
    assert trained.model.coefficients_ == pytest.approx((-18.0, 4.5))  # through (12, 36) and (20, 72)


def test_auto_needs_two_nights_and_explicit_types_need_four(week_nights):
    message = "need at least 4 training nights, or 2 for an unmeasured line, got 1"
    with pytest.raises(ValueError, match=message):
        train_dough(week_nights[:1], model_type="auto")
    for kind in MODEL_TYPES:
        with pytest.raises(ValueError, match="need at least 4 training nights, got 3"):
            train_dough(week_nights[:3], model_type=kind)


def test_auto_checks_its_settings_even_when_it_cannot_measure(week_nights):
    with pytest.raises(ValueError, match="holdout"):
        train_dough(week_nights[:3], model_type="auto", holdout=1.5)
    with pytest.raises(ValueError, match="degree"):
        train_dough(week_nights[:3], model_type="auto", degree=9)


def test_a_multi_model_measures_like_the_others():
    nights = generate_weekday_year(1)
    trained = train_dough(nights, model_type="multi")
    model, test = measured_fit("multi", nights, trained.metrics["holdout_rows"])
    X = [[n.reservations, n.date.weekday(), n.date.month, n.temperature, int(n.holiday)] for n in test]
    expected = regression_metrics([n.doughs for n in test], model.predict_raw(X))
    assert {k: trained.metrics[k] for k in ("mae", "rmse", "r2")} == pytest.approx(expected)


def test_the_night_details_are_part_of_the_data_hash(week_nights):
    detailed = [dataclasses.replace(n, temperature=20.0) for n in week_nights]
    assert train_dough(detailed).data_hash != train_dough(week_nights).data_hash


# Acceptance numbers of the pizzeria issue.


def _mae(nights, model_type):
    return train_dough(nights, model_type=model_type, degree=2).metrics["mae"]


def test_week_reference_line(week_nights):
    trained = train_dough(week_nights, model_type="linear")
    intercept, slope = trained.model.coefficients_
    assert round(slope, 4) == 2.3761 and round(intercept, 3) == 17.177
    assert trained.model.predict_one(15) == 53


def test_polynomial_has_at_most_seven_tenths_of_the_linear_error_on_generated_years():
    # Measured: seeds 0..9 give 0.44-0.70 (seed 5 is the worst, 0.697), mean 0.54; seed 42,
    # the demo's, gives 0.48.
    ratios = [_mae(generate_year(seed), "polynomial") / _mae(generate_year(seed), "linear")
              for seed in range(10)]
    assert statistics.mean(ratios) <= 0.7
    assert max(ratios) <= 0.75
    demo = generate_year(42)
    assert _mae(demo, "polynomial") <= 0.7 * _mae(demo, "linear")


def test_multi_beats_linear_when_the_weekday_matters():
    # Measured: multi has 0.20-0.26 of linear's error for seeds 0..9 and 42; the rest is the
    # +-3 doughs of noise the generator adds.
    for seed in (0, 1, 2, 42):
        nights = generate_weekday_year(seed)
        assert _mae(nights, "multi") <= 0.4 * _mae(nights, "linear")


def test_multi_costs_little_when_the_weekday_does_not_matter():
    # On the reference's log year the weekday, month and temperature are noise: multi is the
    # straight line plus 20 needless weights, and must not be much worse than it.
    for seed in range(5):
        nights = generate_year(seed)
        assert _mae(nights, "multi") <= 1.1 * _mae(nights, "linear")
