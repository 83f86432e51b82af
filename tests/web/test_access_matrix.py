"""Role × endpoint matrix, generated from the URL map so a new route cannot slip through.

Every endpoint must be listed in ``ACCESS`` with the roles that may use it; the test fails for
an unlisted endpoint. "public" means no login is needed.
"""

from __future__ import annotations

import pytest

ROLES = ("admin", "staff", "host")
ANYONE = ("admin", "staff", "host")

# endpoint -> roles allowed ("public" for no login). Admin may use everything.
ACCESS = {
    "static": "public",
    "auth.login": "public",
    "main.healthz": "public",
    "auth.logout": ANYONE,
    "main.home": ANYONE,
    "admin.users": ("admin",),
    "admin.users_create": ("admin",),
    "admin.users_toggle_active": ("admin",),
    "admin.models": ("admin",),
    "admin.model_card": ("admin",),
    "admin.retrain": ("admin",),
    "admin.activate": ("admin",),
    "admin.rollback": ("admin",),
    "pizzeria.index": ("host", "staff"),
    "pizzeria.predict": ("host", "staff"),
}

# Values for URL arguments, so every rule can be requested.
SAMPLE_ARGS = {"user_id": 999999, "filename": "app.css", "kind": "dough", "version": "v-none"}


def all_rules(app):
    """Every (rule, method) pair the app serves, except HEAD/OPTIONS."""
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def url_for_rule(app, rule):
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **{arg: SAMPLE_ARGS[arg] for arg in rule.arguments})


def test_every_endpoint_is_in_the_matrix(app):
    missing = {rule.endpoint for rule, _ in all_rules(app)} - set(ACCESS)
    assert not missing, f"Add these endpoints to ACCESS with their roles: {sorted(missing)}"


def test_the_matrix_lists_no_endpoint_that_does_not_exist(app):
    stale = set(ACCESS) - {rule.endpoint for rule, _ in all_rules(app)}
    assert not stale, f"These endpoints are in ACCESS but not served: {sorted(stale)}"


def test_anonymous_users_reach_only_public_endpoints(app, client):
    for rule, method in all_rules(app):
        response = client.open(url_for_rule(app, rule), method=method)
        response.close()  # static files are streamed; close them to free the file handle
        if ACCESS[rule.endpoint] == "public":
            assert response.status_code not in (302, 401, 403), rule
        else:
            assert response.status_code == 302, (rule, method, response.status_code)
            assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_403_exactly_where_it_is_not_allowed(app, client, auth, role):
    for rule, method in all_rules(app):
        allowed = ACCESS[rule.endpoint]
        if allowed == "public" or rule.endpoint == "auth.logout":
            continue
        auth.login(role)
        response = client.open(url_for_rule(app, rule), method=method)
        response.close()
        if role in allowed or role == "admin":
            assert response.status_code != 403, (role, rule, method)
        else:
            assert response.status_code == 403, (role, rule, method, response.status_code)
            assert b"Not allowed" in response.data


def test_forbidden_fragment_is_retargeted_to_the_flash_region(client, htmx_client, auth):
    auth.login("host")
    response = htmx_client.get("/admin/users")
    assert response.status_code == 403
    assert b"<html" not in response.data
    assert b'id="flash"' in response.data
    assert response.headers["HX-Retarget"] == "#flash"
