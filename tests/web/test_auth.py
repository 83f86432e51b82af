"""Login, logout, throttling and bad input on the login form."""

from __future__ import annotations

import pytest

from tests.support import TEST_PASSWORD


def test_login_page_is_public(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b"Log in to Curate" in response.data


def test_pages_need_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login?next=/" in response.headers["Location"]


def test_htmx_request_without_login_asks_for_a_redirect(htmx_client):
    response = htmx_client.get("/admin/users")
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=")


def test_login_and_logout(client, auth):
    response = auth.login("staff")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert b"Hello, test-staff" in client.get("/").data
    response = auth.logout()
    assert response.status_code == 303
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_with_a_clear_message(client, auth):
    username = auth.ensure_user("host")
    response = client.post("/login", data={"username": username, "password": "nope"})
    assert response.status_code == 401
    assert b"Wrong username or password." in response.data
    assert client.get("/").status_code == 302


def test_unknown_user_gets_the_same_message(client):
    response = client.post("/login", data={"username": "ghost", "password": "whatever"})
    assert response.status_code == 401
    assert b"Wrong username or password." in response.data


@pytest.mark.parametrize("field", ["username", "password"])
def test_over_long_field_is_rejected_with_422(client, field):
    data = {"username": "someone", "password": "secret"}
    data[field] = "x" * 5000
    response = client.post("/login", data=data)
    assert response.status_code == 422
    assert b"Field cannot be longer than" in response.data


def test_missing_fields_are_reported(client):
    response = client.post("/login", data={})
    assert response.status_code == 422
    assert b"This field is required." in response.data


def test_next_redirect_stays_on_site(client, auth):
    username = auth.ensure_user("admin")
    data = {"username": username, "password": TEST_PASSWORD}
    response = client.post("/login?next=//evil.example/x", data=data)
    assert response.headers["Location"] == "/"
    auth.logout()
    response = client.post("/login?next=/admin/users", data=data)
    assert response.headers["Location"] == "/admin/users"


def test_inactive_user_cannot_log_in(app, client, auth):
    from webapp.auth.service import find_user
    from webapp.extensions import db

    username = auth.ensure_user("staff")
    with app.app_context():
        find_user(username).active = False
        db.session.commit()
    response = client.post("/login", data={"username": username, "password": TEST_PASSWORD})
    assert response.status_code == 401


@pytest.fixture
def throttled_config(app_config):
    app_config["LOGIN_RATE_LIMIT"] = "3 per minute"
    return app_config


def test_failed_logins_are_throttled(throttled_config, client, auth):
    username = auth.ensure_user("host")
    statuses = [
        client.post("/login", data={"username": username, "password": "bad"}).status_code
        for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    response = client.post("/login", data={"username": username, "password": TEST_PASSWORD})
    assert response.status_code == 429
    assert b"Too many attempts" in response.data


def test_successful_logins_are_not_throttled(throttled_config, client, auth):
    for _ in range(5):
        assert auth.login("staff").status_code == 303
        auth.logout()
