"""API endpoints. Each one checks its roles, validates its body, calls a bridge and answers JSON."""

from __future__ import annotations

from flask import jsonify, request

from webapp.api import bp
from webapp.api.auth import roles_required
from webapp.api.errors import json_error
from webapp.api.forms import PredictionRequest, RecommendationRequest
from webapp.ml_bridge import dough as dough_bridge
from webapp.ml_bridge import games as games_bridge

INVALID = "Some of what was sent is not valid."


def json_object():
    """The request body when it is a JSON object; None otherwise (not JSON, an array, ...)."""
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # a body nested thousands deep: not an object anyone sends
        return None
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


@bp.post("/tavern/recommendations")
@roles_required("host", "staff")
def tavern_recommendations():
    """The best games for a party's budget and gameplay styles (503 until a model is trained)."""
    payload = json_object()
    if payload is None:
        return json_error(422, 'Send a JSON object with Content-Type: application/json, like '
                               '{"budget": "premium", "gameplay": ["Adventure"]}.', fields={})
    form = RecommendationRequest.from_json(payload)
    if not form.validate():
        return json_error(422, INVALID, fields=form.errors)
    unknown = games_bridge.unknown_styles(form.gameplay.data)
    if unknown:
        return json_error(422, INVALID, fields={"gameplay": [
            f"Unknown gameplay style: {name}." for name in unknown]})
    suggestions, version = games_bridge.recommend(form.budget.data, tuple(form.gameplay.data),
                                                  form.limit.data or 5)
    return jsonify(
        games=[{"name": s.name, "score": round(s.score, 4), "reasons": list(s.reasons)}
               for s in suggestions],
        model={"kind": "games", "version": version},
    )
