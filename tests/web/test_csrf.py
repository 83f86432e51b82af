"""CSRF: every state-changing request needs the token, htmx requests included."""

from __future__ import annotations

import re

import pytest

from tests.support import TEST_PASSWORD


@pytest.fixture
def app_config(app_config):
    app_config["WTF_CSRF_ENABLED"] = True
    return app_config


def csrf_token_from(page: bytes) -> str:
    return re.search(rb'"X-CSRFToken": "([^"]+)"', page).group(1).decode()


def test_login_post_without_token_is_rejected(client, auth):
    username = auth.ensure_user("staff")
    response = client.post("/login", data={"username": username, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert b"security token is missing" in response.data
    assert client.get("/").status_code == 302  # not logged in


def log_in_with_token(client, auth) -> str:
    username = auth.ensure_user("admin")
    token = csrf_token_from(client.get("/login").data)
    response = client.post(
        "/login", data={"username": username, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303
    return csrf_token_from(client.get("/").data)


def test_htmx_post_without_header_is_rejected_and_changes_nothing(app, client, auth):
    log_in_with_token(client, auth)
    response = client.post(
        "/admin/users", data={"username": "mallory", "role": "admin"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#flash"
    with app.app_context():
        from webapp.auth.service import find_user

        assert find_user("mallory") is None


def test_htmx_post_with_header_token_succeeds(client, auth):
    token = log_in_with_token(client, auth)
    response = client.post(
        "/admin/users", data={"username": "alice", "role": "staff"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 201


def test_logout_needs_the_token(client, auth):
    log_in_with_token(client, auth)
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still logged in
