"""Dough demand: pizzeria nights in, a dough prediction out."""

from __future__ import annotations

from dataclasses import dataclass

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange

from ml import dough as dough_ml
from webapp.ml_bridge import KindSpec, serve
from webapp.pizzeria.models import night_rows


def load_nights() -> list[dough_ml.Night]:
    """Every night staff did not exclude, as plain ``ml.dough.Night`` values.

    The ml side drops the excluded weekdays and nights without a dough count.
    """
    return [dough_ml.Night(row.date, row.reservations, row.doughs)
            for row in night_rows() if not row.excluded]


def train(nights: list[dough_ml.Night], model_type: str = "polynomial", degree: int = 2):
    """Fit the dough model on ``nights`` with Fridays and Saturdays left out."""
    return dough_ml.train_dough(nights, model_type=model_type, degree=int(degree))


class DoughTrainForm(FlaskForm):
    """Options for a dough retrain."""

    model_type = SelectField("Model", choices=[
        SelectChoice("polynomial", "Polynomial (reservations, reservations², …)"),
        SelectChoice("linear", "Linear (a straight line)"),
    ])
    degree = IntegerField("Degree", default=2, validators=[NumberRange(1, 5)])


@dataclass(frozen=True)
class DoughPrediction:
    """Tonight's prediction and the model version that made it."""

    reservations: int
    doughs: int
    version: str
    model_type: str


def predict(reservations: int) -> DoughPrediction:
    """Predict doughs for ``reservations`` with the model this worker serves."""
    served = serve("dough")
    return DoughPrediction(reservations, served.model.predict_one(reservations), served.version,
                           served.model.model_type)


SPEC = KindSpec(
    kind="dough",
    title="Dough demand",
    description="Pizzeria: doughs needed from tonight's reservations (Fridays and Saturdays "
                "are left out of training).",
    load_data=load_nights,
    train=train,
    primary_metric="mae",
    param_form=DoughTrainForm,
    metric_labels={"mae": "MAE", "rmse": "RMSE", "r2": "R²"},
)
