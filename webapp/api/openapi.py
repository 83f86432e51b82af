"""``GET /api/v1/openapi.json``: the OpenAPI 3 description of the API, written by hand.

The spec is a plain dict kept next to the forms it describes; tests/web/test_api_schema.py
checks that it lists exactly the API routes and fuzzes every operation against it, so a new
route, field or status that is not described here fails the tests.
"""

from __future__ import annotations

from flask import jsonify

from ml.games import BUDGETS
from webapp.api import bp
from webapp.api.auth import public
from webapp.api.forms import MAX_LIMIT
from webapp.api.gifts import BUDGET_LIMIT
from webapp.pizzeria.forms import MAX_RESERVATIONS

JSON = "application/json"


def ref(name: str) -> dict:
    """A reference to a schema under ``components/schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict, description: str) -> dict:
    """A JSON response (or request body) with ``schema``."""
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error(description: str) -> dict:
    """A JSON error response."""
    return json_body(ref("Error"), description)


def nullable(schema: dict) -> dict:
    """``schema`` or null: the API treats a key whose value is null as not sent."""
    return {**schema, "nullable": True}


def string_list(description: str, max_items: int | None = None,
                max_length: int | None = None) -> dict:
    """A JSON array of strings, optionally bounded."""
    schema: dict = {"type": "array", "description": description,
                    "items": {"type": "string"}}
    if max_items is not None:
        schema["maxItems"] = max_items
    if max_length is not None:
        schema["items"]["maxLength"] = max_length
    return nullable(schema)


UNAUTHORIZED = {
    **error("No `Authorization: Bearer` header, an unknown or revoked token, or a deactivated "
            "account."),
    "headers": {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
}
FORBIDDEN = error("The token's role may not use this operation.")
INVALID = error("The body is not a JSON object sent as `application/json` (`fields` is `{}`), "
                "or some fields are invalid (one list of messages per field).")
NO_MODEL = error("No model of this kind has been trained yet, or the active one cannot be "
                 "loaded; retry later.")

MODEL_VERSION = {"type": "string", "minLength": 1}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {
            "type": "object",
            "required": ["message"],
            "additionalProperties": False,
            "properties": {
                "message": {"type": "string", "minLength": 1},
                "fields": {"type": "object",
                           "additionalProperties": {"type": "array",
                                                    "items": {"type": "string"}}},
            },
        }},
    },
    "PredictionRequest": {
        "type": "object",
        "description": "Other keys are ignored.",
        "required": ["reservations"],
        "properties": {
            "reservations": {"type": "integer", "minimum": 0, "maximum": MAX_RESERVATIONS,
                             "description": "A JSON integer (not 15.0, \"15\" or true)."},
            "date": nullable({"type": "string", "format": "date",
                              "description": "The night (YYYY-MM-DD); tonight when omitted."}),
        },
        "example": {"reservations": 15, "date": "2023-05-29"},
    },
    "Prediction": {
        "type": "object",
        "required": ["doughs", "estimate", "typical_error", "model"],
        "additionalProperties": False,
        "properties": {
            "doughs": {"type": "integer", "description": "Whole doughs to prepare."},
            "estimate": {"type": "number", "description": "The unrounded estimate."},
            "typical_error": nullable({
                "type": "integer", "minimum": 0,
                "description": "80 % of hold-out nights were within this many doughs."}),
            "model": {
                "type": "object",
                "required": ["kind", "version", "type"],
                "additionalProperties": False,
                "properties": {"kind": {"type": "string", "enum": ["dough"]},
                               "version": MODEL_VERSION,
                               "type": {"type": "string", "minLength": 1}},
            },
        },
    },
    "RecommendationRequest": {
        "type": "object",
        "description": "Other keys are ignored.",
        "required": ["budget"],
        "properties": {
            "budget": {"type": "string", "enum": list(BUDGETS)},
            "gameplay": string_list("Gameplay style names the model knows (an unknown one "
                                    "gets 422)."),
            "limit": nullable({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                               "description": "How many games (default 5)."}),
        },
        "example": {"budget": "premium", "gameplay": ["Adventure"], "limit": 5},
    },
    "Recommendations": {
        "type": "object",
        "required": ["games", "model"],
        "additionalProperties": False,
        "properties": {
            "games": {"type": "array", "maxItems": MAX_LIMIT, "items": {
                "type": "object",
                "required": ["name", "score", "reasons"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"},
                               "score": {"type": "number", "minimum": 0, "maximum": 1},
                               "reasons": {"type": "array", "items": {"type": "string"}}},
            }},
            "model": {
                "type": "object",
                "required": ["kind", "version"],
                "additionalProperties": False,
                "properties": {"kind": {"type": "string", "enum": ["games"]},
                               "version": MODEL_VERSION},
            },
        },
    },
    "ProposalRequest": {
        "type": "object",
        "description": "A client's brief. Other keys are ignored.",
        "required": ["budget"],
        "properties": {
            "occasion": nullable({"type": "string", "maxLength": 60,
                                  "description": "An occasion label (an unknown one gets 422)."}),
            "budget": {
                "type": "object",
                "description": "Per recipient; needs min <= max and max above 0.",
                "required": ["min", "max"],
                "properties": {
                    "min": {"type": "number", "minimum": 0, "maximum": BUDGET_LIMIT},
                    "max": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                            "maximum": BUDGET_LIMIT},
                },
            },
            "recipients": nullable({"type": "integer", "minimum": 1, "maximum": 100000,
                                    "description": "Default 1."}),
            "themes": string_list("Theme labels, or local / sustainability (an unknown one "
                                  "gets 422).", max_items=50, max_length=100),
            "exclude": string_list("Attributes or labels, bare (sweets) or qualified "
                                   "(theme:sweets); an unknown one gets 422.",
                                   max_items=50, max_length=100),
            "industry": nullable({"type": "string", "maxLength": 80}),
        },
        "example": {"occasion": "onboarding", "budget": {"min": 40, "max": 80},
                    "recipients": 25, "themes": ["coffee"], "exclude": ["perishable"]},
    },
    "Proposals": {
        "type": "object",
        "required": ["bundles", "explanation", "model"],
        "additionalProperties": False,
        "properties": {
            "bundles": {"type": "array", "maxItems": 3, "items": ref("Bundle")},
            "explanation": {"type": "string"},
            "model": {
                "type": "object",
                "required": ["kind", "version", "weight"],
                "additionalProperties": False,
                "properties": {"kind": {"type": "string", "enum": ["gifts"]},
                               "version": nullable(MODEL_VERSION),
                               "weight": {"type": "number", "minimum": 0}},
            },
        },
    },
    "Bundle": {
        "type": "object",
        "required": ["items", "cost_per_recipient", "reasons"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["id", "name", "vendor", "category", "unit_price", "quantity",
                             "labels", "reasons"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "vendor": {"type": "string"},
                    "category": {"type": "string"},
                    "unit_price": {"type": "number", "minimum": 0},
                    "quantity": {"type": "integer", "minimum": 1},
                    "labels": {"type": "array", "items": {"type": "string"}},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                },
            }},
            "cost_per_recipient": {"type": "number", "minimum": 0},
            "reasons": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def operation(summary: str, roles: str, request: str, response: str, statuses: dict) -> dict:
    """A POST operation taking a JSON ``request`` schema and answering ``response``."""
    return {"post": {
        "summary": summary,
        "description": f"Roles: {roles}.",
        "requestBody": {"required": True, "content": {JSON: {"schema": ref(request)}}},
        "responses": {"200": json_body(ref(response), "The answer."),
                      "401": UNAUTHORIZED, "403": FORBIDDEN, "422": INVALID, **statuses},
    }}


SPEC = {
    "openapi": "3.0.3",
    "info": {
        "title": "Curate API",
        "version": "1",
        "description": "Curate's JSON API (see docs/api.md). Every operation needs "
                       "`Authorization: Bearer <token>` (`flask users token NAME`).",
    },
    "paths": {
        "/api/v1/openapi.json": {"get": {
            "summary": "This description (no token needed).",
            "security": [],
            "responses": {"200": json_body({"type": "object"}, "The OpenAPI document.")},
        }},
        "/api/v1/pizzeria/predictions": operation(
            "Doughs to prepare for a night's reservations.", "host, staff, admin",
            "PredictionRequest", "Prediction", {"503": NO_MODEL}),
        "/api/v1/tavern/recommendations": operation(
            "The best games for a party's budget and gameplay styles.", "host, staff, admin",
            "RecommendationRequest", "Recommendations", {"503": NO_MODEL}),
        "/api/v1/gifts/proposals": operation(
            "Up to three gift bundles for a brief (an infeasible one is 200 with none and the "
            "reason in `explanation`).", "staff, admin", "ProposalRequest", "Proposals", {}),
    },
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
    },
    "security": [{"bearerAuth": []}],
}


@bp.get("/openapi.json")
@public
def openapi():
    """The OpenAPI 3 description of this API (public: it holds no data)."""
    return jsonify(SPEC)
