"""The JSON API at /api/v1: bearer tokens, JSON errors, validation and dough predictions."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import g
from werkzeug.exceptions import Forbidden, MethodNotAllowed, NotFound

from tests.support import add_nights, demo_year_nights, make_user, wait_for_job
from webapp import jobs, registry
from webapp.api.auth import roles_required
from webapp.api.errors import handle_http_error
from webapp.auth import tokens
from webapp.auth.service import find_user
from webapp.extensions import db
from webapp.ml_bridge import dough as dough_bridge

URL = "/api/v1/pizzeria/predictions"
UNAUTHORIZED = {"error": {"message": "Missing or invalid bearer token."}}


def token_for(app, role: str = "host", username: str | None = None) -> str:
    """Create (if needed) a user with ``role`` and return a new token of theirs."""
    username = username or f"api-{role}"
    with app.app_context():
        user = find_user(username) or make_user(username, role)
        return tokens.create_token(user, "test")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token(app):
    return token_for(app)


def train(app, model_type: str) -> str:
    """Load the demo nights and make a ``model_type`` dough model active, through the real job
    machinery; return its version."""
    with app.app_context():
        add_nights(demo_year_nights())
        job, _ = jobs.enqueue("retrain", {"kind": "dough", "trained_by": "tester",
                                          "model_type": model_type},
                              dedupe_key="retrain:dough", subject="dough")
        job = wait_for_job(job.id)
        assert job.status == "succeeded", job.error
        return registry.active_version("dough").version


@pytest.fixture
def trained(app):
    """An active polynomial dough model (its version)."""
    return train(app, "polynomial")


def assert_unauthorized(response):
    assert response.status_code == 401
    assert response.is_json and response.get_json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "Set-Cookie" not in response.headers


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Token {token}",
    "Basic YWRtaW46Y29ycmVjdCBob3JzZSBiYXR0ZXJ5",  # admin:correct horse battery
    "Bearer {token}x",
    "Bearer not-a-token-at-all",
], ids=["missing", "empty", "scheme-only", "empty-token", "wrong-scheme", "basic", "altered",
        "unknown"])
def test_requests_without_a_valid_bearer_token_get_401_json(app, client, token, header):
    headers = {} if header is None else {"Authorization": header.format(token=token)}
    assert_unauthorized(client.post(URL, json={"reservations": 15}, headers=headers))


def test_the_scheme_is_case_insensitive(client, token):
    response = client.post(URL, json={"reservations": 15}, headers={"Authorization":
                                                                    f"bearer {token}"})
    assert response.status_code == 503  # authenticated; no model yet


def test_a_revoked_token_gets_401(app, client, token):
    assert client.post(URL, json={"reservations": 15}, headers=bearer(token)).status_code == 503
    with app.app_context():
        [row] = tokens.tokens_for(find_user("api-host"))
        tokens.revoke(row.id)
    assert_unauthorized(client.post(URL, json={"reservations": 15}, headers=bearer(token)))


def test_an_inactive_users_token_gets_401(app, client, token):
    with app.app_context():
        find_user("api-host").active = False
        db.session.commit()
    assert_unauthorized(client.post(URL, json={"reservations": 15}, headers=bearer(token)))


def test_a_browser_session_alone_gets_401(client, auth):
    # The API does not accept the session cookie: a browser attaches cookies to cross-site
    # requests by itself, so accepting them would expose the API to CSRF. Tokens are never
    # attached automatically, which is why the API can skip CSRF tokens.
    assert auth.login("admin").status_code == 303
    assert client.get("/").status_code == 200  # the session works for pages
    assert_unauthorized(client.post(URL, json={"reservations": 15}))


def test_a_request_marks_its_token_used(app, client, token):
    client.post(URL, json={"reservations": 15}, headers=bearer(token))
    with app.app_context():
        [row] = tokens.tokens_for(find_user("api-host"))
        assert row.last_used_at is not None


# --- statelessness and CSRF ----------------------------------------------------------------


def test_responses_set_no_cookie_even_for_a_logged_in_browser(app, client, auth, token,
                                                              trained):
    for body in ({"reservations": 15}, {"reservations": "15"}):
        response = client.post(URL, json=body, headers=bearer(token))
        assert response.status_code in (200, 422)
        assert "Set-Cookie" not in response.headers
    auth.login("staff")
    response = client.post(URL, json={"reservations": 15}, headers=bearer(token))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_no_csrf_token_is_needed(app, client, token):
    app.config["WTF_CSRF_ENABLED"] = True
    # CSRF protection is on: a page's POST without the token is refused...
    assert client.post("/login", data={"username": "x", "password": "y"}).status_code == 400
    # ...while the API, authenticated by its bearer token, does not ask for one.
    response = client.post(URL, json={"reservations": 15}, headers=bearer(token))
    assert response.status_code == 503 and response.is_json


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("body, content_type", [
    ("reservations=15", "application/x-www-form-urlencoded"),
    ('{"reservations": 15}', "text/plain"),
    ('{"reservations": 15', "application/json"),
    ("", "application/json"),
    ("[15]", "application/json"),
    ('"15"', "application/json"),
    ("null", "application/json"),
], ids=["form", "text", "broken-json", "empty", "array", "string", "null"])
def test_a_body_that_is_not_a_json_object_gets_422(client, token, body, content_type):
    response = client.post(URL, data=body, content_type=content_type, headers=bearer(token))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert "JSON object" in error["message"] and "Content-Type: application/json" in error["message"]
    assert error["fields"] == {}


@pytest.mark.parametrize("body, field, message", [
    ({}, "reservations", "Send the number of reservations, like 15."),
    ({"reservations": None}, "reservations", "Send the number of reservations, like 15."),
    ({"date": "2023-05-29"}, "reservations", "Send the number of reservations, like 15."),
    ({"reservations": "15"}, "reservations", "Must be a whole number, like 15."),
    ({"reservations": 1.5}, "reservations", "Must be a whole number, like 15."),
    ({"reservations": 15.0}, "reservations", "Must be a whole number, like 15."),
    ({"reservations": True}, "reservations", "Must be a whole number, like 15."),
    ({"reservations": [15]}, "reservations", "Must be a whole number, like 15."),
    ({"reservations": {"n": 15}}, "reservations", "Must be a whole number, like 15."),
    ({"reservations": -1}, "reservations", "Number must be between 0 and 10000."),
    ({"reservations": 10001}, "reservations", "Number must be between 0 and 10000."),
    ({"reservations": 15, "date": "29/05/2023"}, "date", "Must be an ISO date, like 2023-05-29."),
    ({"reservations": 15, "date": "2023-02-30"}, "date", "Must be an ISO date, like 2023-05-29."),
    ({"reservations": 15, "date": 20230529}, "date", "Must be an ISO date, like 2023-05-29."),
    ({"reservations": 15, "date": ["2023-05-29"]}, "date", "Must be an ISO date, like 2023-05-29."),
    ({"reservations": 15, "date": ""}, "date", "Must be an ISO date, like 2023-05-29."),
])
def test_invalid_fields_get_422_with_one_message_per_field(client, token, body, field, message):
    response = client.post(URL, json=body, headers=bearer(token))
    assert response.status_code == 422
    assert response.get_json() == {"error": {"message": "Some of what was sent is not valid.",
                                             "fields": {field: [message]}}}


@pytest.mark.parametrize("body", [{"budget": 5}, {"budget": ["premium"]}])
def test_a_budget_that_is_not_a_string_gets_422(client, token, body):
    response = client.post("/api/v1/tavern/recommendations", json=body, headers=bearer(token))
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"]["budget"] == ["Must be a string."]


def test_a_body_nested_too_deep_gets_422_not_500(client, token):
    # Regression: json.loads raised RecursionError, which escaped as a 500.
    body = "[" * 100_000 + "]" * 100_000
    response = client.post(URL, data=body, content_type="application/json",
                           headers=bearer(token))
    assert response.status_code == 422 and "JSON object" in response.get_json()["error"]["message"]


def test_every_invalid_field_is_reported_at_once(client, token):
    response = client.post(URL, json={"reservations": 1.5, "date": "soon"}, headers=bearer(token))
    assert set(response.get_json()["error"]["fields"]) == {"reservations", "date"}


@pytest.mark.parametrize("body", [
    {"reservations": 0},
    {"reservations": 10000},
    {"reservations": 15, "date": "2023-05-29"},
    {"reservations": 15, "date": None},
    {"reservations": 15, "unknown": "ignored"},
])
def test_valid_bodies_pass_validation(client, token, body):
    response = client.post(URL, json=body, headers=bearer(token))
    assert response.status_code == 503  # past validation, stopped only by the missing model


# --- predictions ---------------------------------------------------------------------------


def test_no_model_yet_gets_503_json(client, token):
    response = client.post(URL, json={"reservations": 15}, headers=bearer(token))
    assert response.status_code == 503
    assert response.get_json() == {"error": {"message": "dough model not trained yet"}}


@pytest.mark.parametrize("role", ["host", "staff", "admin"])
def test_prediction_for_each_role(app, client, trained, role):
    token = token_for(app, role)
    response = client.post(URL, json={"reservations": 15, "date": "2023-05-29"},
                           headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert set(body) == {"doughs", "estimate", "typical_error", "model"}
    assert body["model"] == {"kind": "dough", "version": trained, "type": "polynomial"}
    with app.app_context():
        expected = dough_bridge.predict(15, date=dt.date(2023, 5, 29))
    assert body["doughs"] == expected.doughs and isinstance(body["doughs"], int)
    assert body["estimate"] == expected.estimate and isinstance(body["estimate"], float)
    assert abs(body["estimate"] - body["doughs"]) <= 1
    assert isinstance(body["typical_error"], int) and body["typical_error"] >= 0


def test_prediction_grows_with_reservations_and_date_is_optional(client, token, trained):
    few = client.post(URL, json={"reservations": 5}, headers=bearer(token))
    many = client.post(URL, json={"reservations": 60}, headers=bearer(token))
    assert few.status_code == many.status_code == 200
    assert many.get_json()["doughs"] > few.get_json()["doughs"]


# --- the error handlers and the role check, for what no endpoint exercises yet ---------------


def test_role_check_answers_403_json_for_a_role_without_access(app):
    staff_only = roles_required("staff")(lambda: "ok")
    with app.test_request_context(URL):
        for role, allowed in (("host", False), ("staff", True), ("admin", True)):
            g.api_user = make_user(f"api-{role}", role)
            g.api_role = role  # the effective role: the token's, capped by its user's
            if allowed:
                assert staff_only() == "ok"
            else:
                with pytest.raises(Forbidden) as raised:
                    staff_only()
                response = handle_http_error(raised.value)
                assert response.status_code == 403
                assert response.get_json() == {"error": {
                    "message": "This token's role does not give access to this."}}


def test_http_errors_raised_in_api_views_are_json(app):
    with app.test_request_context(URL):
        not_found = handle_http_error(NotFound())
        assert not_found.status_code == 404 and not_found.is_json
        assert not_found.get_json()["error"]["message"] == "There is nothing at this address."
        specific = handle_http_error(NotFound("No such night."))
        assert specific.get_json() == {"error": {"message": "No such night."}}
        not_allowed = handle_http_error(MethodNotAllowed(valid_methods=["POST"]))
        assert not_allowed.status_code == 405 and not_allowed.headers["Allow"] == "POST"
        assert not_allowed.headers["Content-Type"] == "application/json"


def test_the_date_reaches_a_model_that_uses_it(app, client, token):
    version = train(app, "multi")  # weekday and month are among its features
    answers = {}
    for day in ("2023-05-29", "2023-06-01"):  # a Monday and a Thursday
        response = client.post(URL, json={"reservations": 40, "date": day}, headers=bearer(token))
        assert response.status_code == 200
        assert response.get_json()["model"] == {"kind": "dough", "version": version,
                                                "type": "multi"}
        answers[day] = response.get_json()["estimate"]
        with app.app_context():
            assert answers[day] == dough_bridge.predict(40, dt.date.fromisoformat(day)).estimate
    assert answers["2023-05-29"] != answers["2023-06-01"]


def test_unknown_api_url_and_wrong_method_answer_in_json(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response.is_json
    response = client.get("/api/v1/pizzeria/predictions")
    assert response.status_code == 405 and response.is_json
    assert "POST" in response.headers["Allow"]
