from __future__ import annotations

import datetime
import statistics

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline

from ml.dough import (
    DEFAULT_EXCLUDED_WEEKDAYS,
    DoughModel,
    Night,
    build_estimator,
    data_hash,
    nights_hash,
    train_dough,
    training_nights,
)
from ml.evaluation import passes_gate, regression_metrics
from ml.synthetic import generate_linear_year, generate_year


def _fitted(model_type, degree, x, y):
    X = np.asarray(x, dtype=float).reshape(-1, 1)
    return build_estimator(model_type, degree).fit(X, np.asarray(y, dtype=float))


def test_training_nights_drop_weekends_unknowns_and_excluded_dates(week_nights):
    extra = [
        Night(datetime.date(2023, 5, 29), None, 40),
        Night(datetime.date(2023, 5, 30), 14, None),
        Night(datetime.date(2023, 5, 21), 10, 30),
    ]
    kept = training_nights(
        list(reversed(week_nights)) + extra,
        excluded_dates=frozenset({datetime.date(2023, 5, 24)}),
    )
    assert [night.date.day for night in kept] == [21, 22, 23, 25, 28]
    assert DEFAULT_EXCLUDED_WEEKDAYS == frozenset({4, 5})


def test_training_nights_honour_custom_weekdays(week_nights):
    kept = training_nights(week_nights, excluded_weekdays=frozenset({0}))
    assert [night.date.weekday() for night in kept] == [1, 2, 3, 4, 5, 6]


def test_week_linear_fit_matches_the_reference_model(week_nights):
    trained = train_dough(week_nights, model_type="linear")
    intercept, slope = trained.model.coefficients_
    # The reference app's stored Scholar model: 2.3761063 x + 17.17699 (float32).
    assert slope == pytest.approx(2.3761063, abs=1e-5)
    assert intercept == pytest.approx(17.17699, abs=1e-4)
    assert trained.model.predict_one(15) == 53
    assert trained.model.predict([[15]]).tolist() == [53]
    assert trained.training_rows == 5


def test_week_training_records_its_settings(week_nights):
    trained = train_dough(
        week_nights, excluded_dates=frozenset({datetime.date(2023, 5, 22)}), holdout=0.25
    )
    assert trained.params == {
        "model_type": "polynomial",
        "degree": 2,
        "holdout": 0.25,
        "excluded_weekdays": [4, 5],
        "excluded_dates": ["2023-05-22"],
    }
    assert trained.training_rows == 4
    assert trained.smoke_input == [[0], [15], [40]]
    assert trained.model.degree == 2
    assert trained.model.model_type == "polynomial"


def test_linear_ignores_the_degree(week_nights):
    trained = train_dough(week_nights, model_type="linear", degree=4)
    assert trained.params["degree"] == 1
    assert len(trained.model.coefficients_) == 2


def test_too_few_nights_is_refused_plainly(week_nights):
    with pytest.raises(ValueError, match="need at least 4 training nights, got 3"):
        train_dough(week_nights[:3])


def test_holdout_measures_an_earlier_fit_and_the_published_model_uses_every_night():
    nights = generate_year(5)
    usable = training_nights(nights)
    trained = train_dough(nights, model_type="linear")
    n_test = trained.metrics["holdout_rows"]
    train, test = usable[:-n_test], usable[-n_test:]
    assert trained.metrics["train_rows"] == len(train) == len(usable) - n_test

    measured = _fitted("linear", 1, [n.reservations for n in train], [n.doughs for n in train])
    expected = regression_metrics(
        [n.doughs for n in test], measured.predict([[n.reservations] for n in test])
    )
    assert {k: trained.metrics[k] for k in ("mae", "rmse", "r2")} == pytest.approx(expected)

    everything = _fitted("linear", 1, [n.reservations for n in usable], [n.doughs for n in usable])
    assert trained.model.coefficients_ == pytest.approx(
        (everything.intercept_, everything.coef_[0]), rel=1e-9
    )
    assert trained.training_rows == len(usable)
    assert trained.data_hash == data_hash(usable)


def test_rounded_mae_scores_the_whole_dough_predictions():
    trained = train_dough(generate_year(2))
    usable = training_nights(generate_year(2))
    test = usable[-trained.metrics["holdout_rows"] :]
    train = usable[: -trained.metrics["holdout_rows"]]
    measured = DoughModel(
        _fitted("polynomial", 2, [n.reservations for n in train], [n.doughs for n in train])
    )
    errors = [abs(measured.predict_one(n.reservations) - n.doughs) for n in test]
    assert trained.metrics["mae_rounded"] == pytest.approx(statistics.mean(errors))


@pytest.mark.parametrize("degree", [1, 2, 3, 4, 5])
def test_compiled_polynomial_agrees_with_sklearn(degree):
    rng = np.random.default_rng(degree)
    x = rng.uniform(0, 60, size=80)
    y = 10 * np.log2(x + 1) + 15 + rng.normal(0, 2, size=80)
    estimator = _fitted("polynomial", degree, x, y)
    model = DoughModel(estimator)
    probe = rng.uniform(0, 60, size=200)
    expected = estimator.predict(probe.reshape(-1, 1))
    np.testing.assert_allclose(model.predict_raw(probe), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        model.predict_raw(probe.reshape(-1, 1)), expected, rtol=1e-9, atol=1e-9
    )
    assert len(model.coefficients_) == degree + 1
    assert all(type(c) is float for c in model.coefficients_)


def test_compiled_linear_agrees_with_sklearn():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 60, size=50)
    estimator = _fitted("linear", 1, x, 2 * x + 5 + rng.normal(0, 1, size=50))
    probe = rng.uniform(0, 60, size=100).reshape(-1, 1)
    np.testing.assert_allclose(
        DoughModel(estimator).predict_raw(probe), estimator.predict(probe), rtol=1e-9, atol=1e-9
    )


def test_predictions_never_call_sklearn(week_nights, monkeypatch):
    model = train_dough(week_nights).model
    expected = model.predict([0, 15, 40]).tolist()

    def refuse(*args, **kwargs):
        raise AssertionError("the compiled form must not call scikit-learn")

    for step in (model.estimator_, *model.estimator_.named_steps.values()):
        for name in ("predict", "transform"):
            if hasattr(step, name):
                monkeypatch.setattr(step, name, refuse)
    assert model.predict([0, 15, 40]).tolist() == expected
    assert [model.predict_one(r) for r in (0, 15, 40)] == expected


def test_predict_one_matches_predict():
    model = train_dough(generate_year(0), degree=3).model
    counts = list(range(0, 120))
    assert [model.predict_one(r) for r in counts] == model.predict(counts).tolist()
    assert all(type(model.predict_one(r)) is int for r in (0, 7))
    assert model.predict(counts).dtype == np.int64


def test_predictions_are_clipped_at_zero():
    model = DoughModel(_fitted("linear", 1, [5, 10, 20], [5, 20, 50]))  # y = 3x - 10
    assert model.predict_raw([0])[0] == pytest.approx(-10)
    assert model.predict([0, 1]).tolist() == [0, 0]
    assert model.predict_one(0) == 0


def test_halves_round_up():
    estimator = LinearRegression()
    estimator.coef_, estimator.intercept_, estimator.n_features_in_ = np.array([1.0]), 0.5, 1
    model = DoughModel(estimator)
    assert model.predict([0, 1, 2]).tolist() == [1, 2, 3]
    assert model.predict_one(2) == 3


def test_predict_refuses_more_than_one_column(week_nights):
    with pytest.raises(ValueError, match="shape"):
        train_dough(week_nights).model.predict([[1, 2]])


def test_build_estimator_makes_the_standard_pipelines():
    assert type(build_estimator("linear")) is LinearRegression
    pipeline = build_estimator("polynomial", degree=3)
    assert isinstance(pipeline, Pipeline)
    poly = pipeline.named_steps["poly"]
    assert (poly.degree, poly.include_bias) == (3, False)


@pytest.mark.parametrize(("model_type", "degree"), [("cubic", 2), ("polynomial", 0)])
def test_build_estimator_refuses_bad_settings(model_type, degree):
    with pytest.raises(ValueError, match="model type|degree"):
        build_estimator(model_type, degree)


def test_train_refuses_an_unknown_model_type(week_nights):
    with pytest.raises(ValueError, match="unknown model type 'tree'"):
        train_dough(week_nights, model_type="tree")


def test_dough_model_refuses_estimators_it_cannot_compile():
    with pytest.raises(NotFittedError):
        DoughModel(LinearRegression())
    ridge = Ridge().fit([[1.0], [2.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="needs a LinearRegression"):
        DoughModel(ridge)
    two_columns = LinearRegression().fit([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="single-output"):
        DoughModel(two_columns)


def test_data_hash_is_stable_and_order_sensitive(week_nights):
    assert data_hash(week_nights) == data_hash(list(week_nights))
    assert data_hash(week_nights) != data_hash(list(reversed(week_nights)))
    changed = [*week_nights[:-1], Night(week_nights[-1].date, 24, 76)]
    assert data_hash(week_nights) != data_hash(changed)
    assert data_hash([(1,)]) != data_hash([(1.0,)])
    assert data_hash([np.int64(3)]) == data_hash([3])
    assert len(data_hash([])) == 64


def test_nights_hash_is_the_data_hash(week_nights, monkeypatch):
    detailed = [
        Night(datetime.date(2023, 5, 22), 12, 36, temperature=21.5, holiday=True),
        Night(datetime.date(2023, 5, 23), 20, None, temperature=float("nan")),
        Night(datetime.date(2023, 5, 24), None, 68, temperature=-3),
        Night(datetime.date(2023, 5, 25), 30, 82.5),
    ]
    commas = [Night(datetime.date(2023, 5, 22), "1,2", 3), Night(datetime.date(2023, 5, 23),
                                                              [1, 2], {"a": 1})]
    for nights in ([], week_nights, detailed, week_nights + detailed, commas):
        assert nights_hash(nights) == data_hash(nights)
    monkeypatch.setattr("ml.dough._HASH_CHUNK", 2)  # several chunks, joined as one list
    assert nights_hash(week_nights + detailed) == data_hash(week_nights + detailed)


def test_nights_hash_falls_back_for_values_json_cannot_write(week_nights):
    numpy_counts = [Night(night.date, np.int64(night.reservations), night.doughs)
                    for night in week_nights]
    assert nights_hash(numpy_counts) == data_hash(numpy_counts) == data_hash(week_nights)

    class Rainy(Night):
        pass

    subclassed = [Rainy(night.date, night.reservations, night.doughs) for night in week_nights]
    assert nights_hash(subclassed) == data_hash(subclassed)
    with pytest.raises(TypeError, match="object"):
        nights_hash([Night(datetime.date(2023, 5, 22), 1, 2, temperature=object())])


def test_data_hash_refuses_values_without_a_canonical_form():
    with pytest.raises(TypeError, match="object"):
        data_hash([object()])


def _holdout_mae(nights, model_type):
    return train_dough(nights, model_type=model_type, degree=2).metrics["mae"]


def test_polynomial_roughly_halves_linear_error_on_the_log_year():
    # Measured for seeds 0..9: ratios 0.44..0.70, mean 0.54.
    ratios = []
    for seed in range(10):
        nights = generate_year(seed)
        ratios.append(_holdout_mae(nights, "polynomial") / _holdout_mae(nights, "linear"))
    assert max(ratios) < 0.75
    assert statistics.mean(ratios) < 0.6


def test_polynomial_does_no_harm_on_the_linear_year():
    for seed in range(5):
        nights = generate_linear_year(seed)
        assert passes_gate(_holdout_mae(nights, "polynomial"), _holdout_mae(nights, "linear"), 0.05)
