"""Pizzeria pages: tonight's live dough prediction."""

from __future__ import annotations

from flask import request

from webapp.htmx import render_page_or_block, wants_fragment
from webapp.ml_bridge import ModelUnavailable
from webapp.ml_bridge import dough as dough_bridge
from webapp.pizzeria import bp
from webapp.pizzeria.forms import PredictForm
from webapp.pizzeria.models import night_counts

TEMPLATE = "pizzeria/index.html"


def prediction_context(form: PredictForm) -> dict:
    """The prediction for a valid form, or why there is none."""
    if "reservations" not in request.args or not form.validate():
        return {"prediction": None, "unavailable": None}
    try:
        prediction = dough_bridge.predict(form.reservations.data, date=form.date.data)
    except ModelUnavailable as error:
        return {"prediction": None, "unavailable": str(error)}
    return {"prediction": prediction, "unavailable": None}


def page_counts() -> dict | None:
    """Night counts for the whole page; a live-preview fragment skips the query."""
    return None if wants_fragment() else night_counts()


@bp.route("/")
def index():
    """Tonight: type the reservations, see the doughs to prepare."""
    form = PredictForm(request.args)
    return render_page_or_block(TEMPLATE, "prediction", form=form, counts=page_counts(),
                                **prediction_context(form))


@bp.route("/predict")
def predict():
    """The live prediction fragment (422 with the message when the input is invalid)."""
    form = PredictForm(request.args)
    context = prediction_context(form)
    status = 422 if form.errors else 200
    response = render_page_or_block(TEMPLATE, "prediction", status=status, form=form,
                                    counts=page_counts(), **context)
    if context["prediction"] is not None:
        response.headers["X-Model-Version"] = context["prediction"].version
    return response
