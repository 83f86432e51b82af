"""Dough demand: pizzeria nights in, a dough prediction out."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange

from ml import dough as dough_ml
from webapp.fields import IntegerField
from webapp.ml_bridge import KindSpec, serve
from webapp.pizzeria.models import night_rows, pizzeria_settings


def load_nights() -> list[dough_ml.Night]:
    """Every night staff did not exclude, as plain ``ml.dough.Night`` values.

    The ml side drops the excluded weekdays and nights without a dough count.
    """
    return [dough_ml.Night(row.date, row.reservations, row.doughs, row.temperature,
                           bool(row.holiday))
            for row in night_rows() if not row.excluded]


def train_context() -> dict:
    """The pizzeria's excluded weekdays, which training leaves out."""
    return {"excluded_weekdays": pizzeria_settings().weekday_set}


def train(nights: list[dough_ml.Night], excluded_weekdays, model_type: str = "auto",
          degree: int = 2):
    """Fit the dough model on ``nights``, leaving out ``excluded_weekdays``.

    ``auto`` picks the algorithm with the lowest hold-out error (linear with too few nights).
    """
    return dough_ml.train_dough(nights, model_type=model_type, degree=int(degree),
                                excluded_weekdays=excluded_weekdays)


def evaluate(degree: int = 2):
    """Score linear, polynomial(``degree``), multi-feature and the baseline on the hold-out."""
    return dough_ml.evaluate_dough(load_nights(), degree=degree,
                                   excluded_weekdays=pizzeria_settings().weekday_set)


class DoughTrainForm(FlaskForm):
    """Options for a dough retrain."""

    model_type = SelectField("Model", default="auto", choices=[
        SelectChoice("auto", "Best on the hold-out (automatic)"),
        SelectChoice("polynomial", "Polynomial (reservations, reservations², …)"),
        SelectChoice("linear", "Linear (a straight line)"),
        SelectChoice("multi", "Multi-feature (reservations, weekday, month, weather, holiday)"),
    ])
    degree = IntegerField("Degree", default=2, validators=[NumberRange(1, 5)])


@dataclass(frozen=True)
class DoughPrediction:
    """A night's prediction, its typical error and the model version that made it."""

    reservations: int
    doughs: int
    estimate: float
    version: str
    model_type: str
    #: 80 % of hold-out nights were within this many doughs (None without a hold-out).
    typical_error: int | None


def predict(reservations: int, date: dt.date | None = None) -> DoughPrediction:
    """Predict doughs for ``reservations`` on ``date`` (tonight when omitted)."""
    served = serve("dough")
    model = served.model
    date = date or dt.date.today()
    estimate = model.estimate_one(reservations, date=date)
    # Artefacts published before the typical error was recorded simply have none.
    typical = getattr(model, "typical_error_", None)
    return DoughPrediction(
        reservations=reservations,
        doughs=model.predict_one(reservations, date=date),
        estimate=round(float(estimate), 2),
        version=served.version,
        model_type=model.model_type,
        typical_error=None if typical is None or math.isnan(typical) else round(typical),
    )


SPEC = KindSpec(
    kind="dough",
    title="Dough demand",
    description="Pizzeria: doughs needed from tonight's reservations (Fridays and Saturdays "
                "are left out of training).",
    load_data=load_nights,
    train=train,
    train_context=train_context,
    primary_metric="mae",
    param_form=DoughTrainForm,
    metric_labels={"mae": "MAE", "rmse": "RMSE", "r2": "R²"},
    algorithms=dough_ml.MODEL_TYPES,
    algorithm_param="model_type",
)
