"""CSRF matrix, generated from the URL map so a new route cannot slip through.

With CSRF on, every state-changing route outside the JSON API refuses a request without the
token, whether a plain form post or an htmx one, with the "security token" page and no row
changed. The API is exempt by design (bearer tokens, never the session cookie), so the only
routes that skip the check must be API routes that answer 401 without a bearer token.
"""

from __future__ import annotations

import pytest
from flask import Blueprint
from sqlalchemy import func, select

from tests.web.test_access_matrix import all_rules, url_for_rule
from tests.web.test_csrf import log_in_with_token
from webapp.extensions import csrf, db

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_MESSAGE = b"security token is missing"
#: Sent with every forged request, so it looks like a real form post.
FORGED_FORM = {"username": "mallory", "role": "admin", "name": "forged", "date": "2024-05-03"}


@pytest.fixture
def app_config(app_config):
    app_config["WTF_CSRF_ENABLED"] = True
    return app_config


def state_changing_rules(app):
    """Every (rule, method) pair that may change state."""
    return [(rule, method) for rule, method in all_rules(app) if method in STATE_CHANGING]


def is_api(rule) -> bool:
    """True for a route of the JSON API blueprint."""
    return rule.endpoint.startswith("api.")


def row_counts(app) -> dict[str, int]:
    """Rows per table, read in one statement."""
    tables = db.metadata.sorted_tables
    with app.app_context():
        counts = db.session.execute(select(*[
            select(func.count()).select_from(table).scalar_subquery().label(table.name)
            for table in tables])).one()
        db.session.remove()
    return dict(zip((table.name for table in tables), counts, strict=True))


def log_in_as_admin(client, auth) -> None:
    """Log in as admin the way a browser does: with the login page's token."""
    log_in_with_token(client, auth)


def forge(client, app, rule, method, htmx: bool):
    """Send ``method`` to ``rule`` without a CSRF token."""
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.open(url_for_rule(app, rule), method=method, data=FORGED_FORM,
                           headers=headers)
    response.close()
    return response


def csrf_skipping_routes(app, client) -> dict[tuple[str, str], object]:
    """(endpoint, method) -> response, for each state-changing route that did not refuse a
    token-less request with the CSRF page (sent with the session cookie of ``client``)."""
    skipped = {}
    for rule, method in state_changing_rules(app):
        response = forge(client, app, rule, method, htmx=False)
        if not (response.status_code == 400 and CSRF_MESSAGE in response.data):
            skipped[(rule.endpoint, method)] = response
    return skipped


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_every_state_changing_route_refuses_a_request_without_the_token(app, client, auth, htmx):
    log_in_as_admin(client, auth)
    rules = [(rule, method) for rule, method in state_changing_rules(app) if not is_api(rule)]
    assert len(rules) > 50  # the matrix really walks the app, not an empty list
    before = row_counts(app)
    for rule, method in rules:
        response = forge(client, app, rule, method, htmx)
        assert response.status_code == 400, (rule.rule, method, response.status_code)
        assert CSRF_MESSAGE in response.data, (rule.rule, method)
        if htmx:
            assert b"<html" not in response.data, (rule.rule, method)
            assert response.headers["HX-Retarget"] == "#flash", (rule.rule, method)
        assert row_counts(app) == before, (rule.rule, method)
    assert client.get("/").status_code == 200  # the forged logout did not log the admin out


def test_only_api_routes_skip_the_check_and_they_need_a_bearer_token(app, client, auth):
    log_in_as_admin(client, auth)
    api_routes = {(rule.endpoint, method) for rule, method in state_changing_rules(app)
                  if is_api(rule)}
    assert api_routes  # the API does have state-changing routes
    skipped = csrf_skipping_routes(app, client)
    assert set(skipped) == api_routes
    for route, response in skipped.items():
        # The session cookie (which a forged request would carry) is no credential there.
        assert response.status_code == 401, route
        assert response.headers["WWW-Authenticate"] == "Bearer", route


def test_an_exempt_html_route_would_be_caught(app, client, auth):
    """The guard above can fail: a CSRF-exempt page route shows up among the skipping routes."""
    sneaky = Blueprint("sneaky", __name__, url_prefix="/sneaky")

    @sneaky.post("/change")
    def change():
        return "changed"

    csrf.exempt(sneaky)
    app.register_blueprint(sneaky)
    log_in_as_admin(client, auth)
    skipped = csrf_skipping_routes(app, client)
    assert ("sneaky.change", "POST") in skipped
    assert skipped[("sneaky.change", "POST")].status_code == 200
