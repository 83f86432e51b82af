"""Template globals shared by every page."""

from __future__ import annotations

import math

from flask import current_app
from wtforms.validators import Length


def field_attrs(field, extra: dict) -> dict:
    """HTML attributes for a form field: ARIA links to its help and errors, and ``maxlength``.

    ``maxlength`` mirrors the server's Length validator, so the browser stops over-long input
    early; the server still checks it.
    """
    attrs = dict(extra)
    described = []
    if field.description:
        described.append(f"{field.id}-help")
    if field.errors:
        described.append(f"{field.id}-error")
        attrs["aria-invalid"] = "true"
    if described:
        attrs["aria-describedby"] = " ".join(described)
    for validator in field.validators:
        if isinstance(validator, Length) and validator.max and validator.max > 0:
            attrs.setdefault("maxlength", validator.max)
    return attrs


def has_endpoint(endpoint: str) -> bool:
    """True when the app serves ``endpoint``, so templates never link to a missing page."""
    return endpoint in current_app.view_functions


def metric(value, digits: int = 3) -> str:
    """A metric for display: fixed digits, or "n/a" when it is missing or NaN (no hold-out)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def register_template_globals(app) -> None:
    """Make the helpers above available in every template."""
    app.jinja_env.globals["field_attrs"] = field_attrs
    app.jinja_env.globals["has_endpoint"] = has_endpoint
    app.jinja_env.filters["metric"] = metric
