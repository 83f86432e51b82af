"""The three model types, compiled: agreement with scikit-learn, inputs, rounding, pickling."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from ml.dough import (
    MODEL_TYPES,
    MULTI_COLUMNS,
    MULTI_SMOKE_INPUT,
    SMOKE_INPUT,
    DoughModel,
    Night,
    build_estimator,
    multi_row,
    train_dough,
    training_nights,
)
from ml.synthetic import generate_weekday_year, generate_year

START = datetime.date(2024, 1, 1)


def featured_nights(seed: int = 3) -> list[Night]:
    """A weekday-effect year with some holidays and some nights without a temperature."""
    nights = generate_weekday_year(seed)
    return [
        dataclasses.replace(
            night,
            holiday=i % 11 == 0,
            temperature=None if i % 7 == 3 else night.temperature,
            doughs=None if night.doughs is None else night.doughs + (10 if i % 11 == 0 else 0),
        )
        for i, night in enumerate(nights)
    ]


def fit(model_type: str, nights: list[Night], degree: int = 2) -> DoughModel:
    usable = training_nights(nights)
    if model_type == "multi":
        X = [multi_row(n.reservations, n.date, n.temperature, n.holiday) for n in usable]
    else:
        X = [[n.reservations] for n in usable]
    y = [n.doughs for n in usable]
    return DoughModel(build_estimator(model_type, degree).fit(np.array(X, dtype=float), y))


def probe_rows(n: int = 400, seed: int = 0) -> list[list]:
    """Multi rows over every weekday and month, with unknown temperatures and holidays."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        day = START + datetime.timedelta(days=int(rng.integers(0, 366)))
        temperature = None if i % 5 == 0 else float(rng.uniform(-10, 35))
        rows.append(multi_row(float(rng.uniform(0, 80)), day, temperature, i % 9 == 0))
    return rows


MODELS = {kind: fit(kind, featured_nights(5), degree=3) for kind in MODEL_TYPES}


@pytest.mark.parametrize(
    ("model_type", "degree"),
    [("linear", 1), *(("polynomial", d) for d in range(1, 6)), ("multi", 1)],
)
def test_the_numpy_path_equals_sklearn_for_every_type(model_type, degree):
    model = fit(model_type, featured_nights(), degree)
    rows = probe_rows()
    X = rows if model_type == "multi" else [[row[0]] for row in rows]
    expected = model.estimator_.predict(np.array(X, dtype=float))
    np.testing.assert_allclose(model.predict_raw(X), expected, rtol=1e-9, atol=1e-9)


def test_multi_has_one_named_coefficient_per_feature():
    model = fit("multi", featured_nights())
    names = model.feature_names_
    assert len(model.coefficients_) == len(names) == 1 + 1 + 7 + 12 + 1 + 1
    assert names[:3] == ("intercept", "reservations", "weekday=0")
    assert names[8:10] == ("weekday=6", "month=1") and names[-3:] == ("month=12", "temperature", "holiday")
    assert all(type(c) is float for c in model.coefficients_)
    assert (model.model_type, model.degree) == ("multi", 1)


def test_multi_coefficients_recover_the_effects_in_the_data():
    # featured_nights: 2 doughs per reservation, +15 on Sunday and Monday, +10 on holidays,
    # no temperature effect. Wrongly sliced coefficients would put these numbers elsewhere.
    model = fit("multi", featured_nights())
    weights = dict(zip(model.feature_names_, model.coefficients_, strict=True))
    assert weights["reservations"] == pytest.approx(2.0, abs=0.05)
    assert weights["weekday=6"] - weights["weekday=2"] == pytest.approx(15, abs=1.0)
    assert weights["weekday=0"] - weights["weekday=3"] == pytest.approx(15, abs=1.0)
    assert weights["holiday"] == pytest.approx(10, abs=1.5)
    assert abs(weights["temperature"]) < 0.2


def test_an_unknown_temperature_is_the_training_mean():
    nights = featured_nights()
    model = fit("multi", nights)
    known = [n.temperature for n in training_nights(nights) if n.temperature is not None]
    assert model.temperature_fill_ == pytest.approx(np.mean(known), rel=1e-12)
    day = datetime.date(2023, 6, 6)
    at_mean = model.estimate_one(20, day, temperature=model.temperature_fill_)
    assert model.estimate_one(20, day) == at_mean
    assert model.estimate_one(20, day, temperature=math.nan) == at_mean
    assert model.predict_raw([multi_row(20, day)])[0] == at_mean


def test_without_any_temperature_the_multi_model_ignores_it():
    nights = [dataclasses.replace(n, temperature=None) for n in generate_weekday_year(1)]
    model = fit("multi", nights)
    assert model.temperature_fill_ == 0.0
    assert model.coefficients_[model.feature_names_.index("temperature")] == 0.0
    day = datetime.date(2023, 3, 3)
    assert model.estimate_one(12, day, temperature=30.0) == model.estimate_one(12, day)


def test_multi_predict_one_equals_predict_for_every_row():
    model = fit("multi", featured_nights())
    rows = probe_rows(seed=1)
    days = [START + datetime.timedelta(days=i) for i in range(len(rows))]
    rows = [multi_row(row[0], day, row[3], row[4]) for row, day in zip(rows, days, strict=True)]
    one_by_one = [
        model.predict_one(row[0], day, row[3], bool(row[4]))
        for row, day in zip(rows, days, strict=True)
    ]
    assert one_by_one == model.predict(rows).tolist()
    estimates = [model.estimate_one(row[0], day, row[3], bool(row[4])) for row, day in zip(rows, days, strict=True)]
    assert estimates == np.maximum(model.predict_raw(rows), 0.0).tolist()


@given(
    reservations=st.floats(min_value=0, max_value=200),
    offset=st.integers(min_value=0, max_value=3000),
    temperature=st.none() | st.floats(min_value=-30, max_value=45),
    holiday=st.booleans(),
)
def test_predict_one_and_predict_agree_on_any_night(reservations, offset, temperature, holiday):
    day = START + datetime.timedelta(days=offset)
    for model in MODELS.values():
        X = [multi_row(reservations, day, temperature, holiday)] if model.model_type == "multi" else [reservations]
        assert model.predict_one(reservations, day, temperature, holiday) == model.predict(X)[0]
        assert model.estimate_one(reservations, day, temperature, holiday) == max(model.predict_raw(X)[0], 0.0)


def test_multi_predictions_never_call_sklearn(monkeypatch):
    model = MODELS["multi"]
    rows = probe_rows(50, seed=2)
    expected = model.predict(rows).tolist()

    def refuse(*args, **kwargs):
        raise AssertionError("the compiled form must not call scikit-learn")

    features = model.estimator_.named_steps["features"]
    for step in (model.estimator_, *model.estimator_.named_steps.values(),
                 *features.named_transformers_.values()):
        for name in ("predict", "transform"):
            if hasattr(step, name):
                monkeypatch.setattr(step, name, refuse)
    assert model.predict(rows).tolist() == expected
    day = datetime.date(2023, 8, 1)
    assert model.predict_one(30, day, 25.0, True) == model.predict([multi_row(30, day, 25.0, True)])[0]


def test_multi_needs_the_date():
    with pytest.raises(ValueError, match="multi model needs the night's date"):
        MODELS["multi"].predict_one(15)
    with pytest.raises(ValueError, match="multi model needs the night's date"):
        MODELS["multi"].estimate_one(15, temperature=20.0)


def test_linear_and_polynomial_ignore_the_night_details():
    day = datetime.date(2023, 12, 25)
    for kind in ("linear", "polynomial"):
        model = MODELS[kind]
        assert model.predict_one(15, day, 30.0, True) == model.predict_one(15)
        assert model.estimate_one(15, day, 30.0, True) == model.estimate_one(15)


def test_multi_predict_refuses_bad_rows():
    model = MODELS["multi"]
    with pytest.raises(ValueError, match="shape"):
        model.predict([15, 2, 6, 20.0, 0])
    with pytest.raises(ValueError, match="shape"):
        model.predict([[15, 2, 6, 20.0]])
    with pytest.raises(ValueError, match="weekday: unknown category 7"):
        model.predict([[15, 7, 6, 20.0, 0]])
    with pytest.raises(ValueError, match="month: unknown category 0"):
        model.predict([[15, 1, 0, 20.0, 0]])


def test_multi_row_is_the_documented_json_ready_layout():
    row = multi_row(15, datetime.date(2023, 5, 28), None, True)
    assert row == [15, 6, 5, None, 1]
    assert len(row) == len(MULTI_COLUMNS)
    assert json.loads(json.dumps(row)) == row


def test_estimate_one_is_clipped_but_unrounded():
    model = DoughModel(build_estimator("linear").fit([[5.0], [10.0], [20.0]], [5.0, 20.0, 50.0]))
    assert model.estimate_one(0) == 0.0  # 3x - 10 would be -10
    assert model.estimate_one(4.5) == pytest.approx(3.5)
    assert model.predict_one(4.5) == 4


def test_a_float_just_below_a_half_rounds_down():
    # 0.49999999999999994 + 0.5 is 1.0 in floating point: floor(x + 0.5) would say 1 dough.
    estimator = LinearRegression()
    estimator.coef_, estimator.intercept_, estimator.n_features_in_ = (
        np.array([0.0]), 0.49999999999999994, 1
    )
    model = DoughModel(estimator)
    assert model.predict([0]).tolist() == [0]
    assert model.predict_one(0) == 0


def test_each_type_has_a_smoke_input_its_predict_accepts():
    for kind, model in MODELS.items():
        smoke = model.smoke_input()
        assert smoke == (MULTI_SMOKE_INPUT if kind == "multi" else SMOKE_INPUT)
        smoke.append([1])
        assert model.smoke_input() != smoke  # a copy: callers cannot change the constant
        # JSON round trip, as store.publish records it and store.load replays it.
        replayed = json.loads(json.dumps(model.smoke_input()))
        assert model.predict(replayed).tolist() == model.predict(model.smoke_input()).tolist()
    assert None in MULTI_SMOKE_INPUT[0]  # the smoke test also covers the imputation


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_pickling_keeps_predictions_and_the_typical_error(model_type):
    model = fit(model_type, featured_nights(5), degree=3)
    model.typical_error_ = 4.0
    restored = pickle.loads(pickle.dumps(model))
    assert restored.coefficients_ == model.coefficients_
    assert restored.feature_names_ == model.feature_names_
    assert restored.typical_error_ == 4.0
    smoke = model.smoke_input()
    assert restored.predict(smoke).tolist() == model.predict(smoke).tolist()


def test_an_artefact_pickled_before_the_multi_model_still_loads():
    estimator = build_estimator("polynomial", 2).fit([[0.0], [10.0], [20.0], [30.0]], [1, 30, 50, 60])
    legacy_state = {  # what DoughModel.__dict__ held before this version
        "estimator_": estimator,
        "model_type": "polynomial",
        "degree": 2,
        "coefficients_": (1.0, 2.0, 3.0),
        "_coef_array": np.array([3.0, 2.0, 1.0]),
    }
    restored = DoughModel.__new__(DoughModel)
    restored.__setstate__(legacy_state)
    assert restored.coefficients_ == DoughModel(estimator).coefficients_
    assert math.isnan(restored.typical_error_)
    assert restored.predict_one(15, datetime.date(2023, 1, 2)) == DoughModel(estimator).predict_one(15)


def test_build_estimator_makes_a_standard_multi_pipeline():
    pipeline = build_estimator("multi", degree=4)  # degree means nothing here
    assert [name for name, _ in pipeline.steps] == ["features", "linear"]
    features = pipeline.named_steps["features"]
    assert isinstance(features, ColumnTransformer)
    assert [name for name, _, _ in features.transformers] == list(MULTI_COLUMNS)


@pytest.mark.parametrize("degree", [6, 0, 2.0, True])
def test_degrees_outside_one_to_five_are_refused(degree):
    with pytest.raises(ValueError, match="degree must be a whole number from 1 to 5"):
        build_estimator("polynomial", degree)


def test_dough_model_refuses_a_pipeline_with_another_feature_layout():
    X = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    other = Pipeline(
        [
            ("features", ColumnTransformer([("weekday", OneHotEncoder(), [1])], remainder="passthrough")),
            ("linear", LinearRegression()),
        ]
    ).fit(X, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="multi-feature layout"):
        DoughModel(other)


def test_a_published_multi_model_trains_on_every_usable_night():
    nights = featured_nights()
    trained = train_dough(nights, model_type="multi")
    usable = training_nights(nights)
    assert trained.training_rows == len(usable)
    assert trained.model.coefficients_ == pytest.approx(fit("multi", nights).coefficients_, rel=1e-9)
    assert trained.smoke_input == MULTI_SMOKE_INPUT
    assert trained.params["model_type"] == "multi" and trained.params["degree"] == 1


def test_the_log_year_models_predict_positive_whole_doughs():
    model = train_dough(generate_year(0), model_type="multi").model
    day = datetime.date(2024, 2, 6)
    assert all(type(model.predict_one(r, day)) is int for r in (0, 20, 59))
