"""JSON errors for the API: ``{"error": {"message": ..., "fields": {...}}}`` with the status.

Handlers are registered on the blueprint, so they cover errors raised by API hooks and views.
Routing errors (an unknown URL under ``/api/v1``, or a method no API route accepts) happen before
any blueprint is known, so the app's own error pages answer those.
"""

from __future__ import annotations

import logging

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException, default_exceptions

from webapp.api import bp
from webapp.extensions import db
from webapp.ml_bridge import ModelUnavailable

log = logging.getLogger(__name__)

#: Messages for API clients where werkzeug's stock wording is written for browsers.
MESSAGES = {
    401: "Missing or invalid bearer token.",
    403: "This token's role does not give access to this.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    500: "The server hit an error. Nothing was saved.",
}


def json_error(status: int, message: str, fields: dict | None = None,
               headers: list[tuple[str, str]] | None = None) -> Response:
    """An error response: ``{"error": {"message": message[, "fields": fields]}}``."""
    body = {"message": message}
    if fields is not None:
        body["fields"] = fields
    response = jsonify(error=body)
    response.status_code = status
    response.headers.extend(headers or [])
    return response


def handle_http_error(error: HTTPException) -> Response:
    """Any HTTP error raised by an API hook or view, as JSON."""
    status = error.code or 500
    if status == 500:
        # As for pages: a failed request leaves no half-written rows, and the cause is logged.
        db.session.rollback()
        log.exception("Unhandled API error", exc_info=getattr(error, "original_exception", error))
    # A description passed to abort() is specific to the case; werkzeug's stock one is not.
    stock = type(error).description
    message = (error.description if error.description != stock
               else MESSAGES.get(status, stock or f"Error {status}."))
    # Keep the headers the error defines (WWW-Authenticate for 401, Allow for 405), not its HTML.
    headers = [(name, value) for name, value in error.get_headers()
               if name.lower() != "content-type"]
    return json_error(status, message, headers=headers)


def handle_model_unavailable(error: ModelUnavailable) -> Response:
    """503 while the model a view needs has not been trained (or cannot be loaded)."""
    return json_error(503, str(error))


# Registered per status code, not just for HTTPException: Flask looks handlers up by code first,
# and the app's handlers for a code (its 500 and CSRF pages) would otherwise beat this one.
for _code in default_exceptions:
    bp.register_error_handler(_code, handle_http_error)
bp.register_error_handler(ModelUnavailable, handle_model_unavailable)
