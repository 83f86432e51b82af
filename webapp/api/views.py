"""API endpoints. Each one checks its roles, validates its body, calls a bridge and answers JSON."""

from __future__ import annotations

from flask import jsonify, request

from webapp.api import bp
from webapp.api.auth import roles_required
from webapp.api.errors import json_error
from webapp.api.forms import PredictionRequest
from webapp.ml_bridge import dough as dough_bridge

INVALID = "Some of what was sent is not valid."


def json_object():
    """The request body when it is a JSON object; None otherwise (not JSON, an array, ...)."""
    payload = request.get_json(silent=True)
    return payload if isinstance(payload, dict) else None


@bp.post("/pizzeria/predictions")
@roles_required("host", "staff")
def pizzeria_predictions():
    """Doughs to prepare for a night's reservations (503 until a dough model is trained)."""
    payload = json_object()
    if payload is None:
        return json_error(422, 'Send a JSON object with Content-Type: application/json, like '
                               '{"reservations": 15}.', fields={})
    form = PredictionRequest.from_json(payload)
    if not form.validate():
        return json_error(422, INVALID, fields=form.errors)
    prediction = dough_bridge.predict(form.reservations.data, date=form.date.data)
    return jsonify(
        doughs=prediction.doughs,
        estimate=prediction.estimate,
        typical_error=prediction.typical_error,
        model={"kind": "dough", "version": prediction.version, "type": prediction.model_type},
    )
