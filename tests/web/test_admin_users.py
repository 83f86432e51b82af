"""Admin users page: create (password shown once), validation, activate/deactivate."""

from __future__ import annotations

from webapp.auth.service import find_user


def test_create_user_via_htmx_shows_generated_password_once(app, htmx_client, auth):
    auth.login("admin")
    response = htmx_client.post("/admin/users", data={"username": "carla", "role": "host"})
    assert response.status_code == 201
    assert b"<html" not in response.data and b'id="user-form"' in response.data
    assert b"Password, shown once" in response.data
    assert "users-changed" in response.headers["HX-Trigger"]
    assert b"carla" in htmx_client.get("/admin/users").data


def test_chosen_password_is_not_echoed(app, htmx_client, auth):
    auth.login("admin")
    response = htmx_client.post("/admin/users",
                                data={"username": "dan", "role": "staff", "password": "long-enough"})
    assert response.status_code == 201
    assert b"Password, shown once" not in response.data and b"long-enough" not in response.data
    with app.app_context():
        assert find_user("dan").check_password("long-enough")


def test_invalid_input_returns_the_form_with_422(app, htmx_client, auth):
    auth.login("admin")
    cases = [
        ({"username": "", "role": "staff"}, b"This field is required."),
        ({"username": "x" * 65, "role": "staff"}, b"Field cannot be longer than 64"),
        ({"username": "bad name!", "role": "staff"}, b"Use letters, digits"),
        ({"username": "eve", "role": "overlord"}, b"Not a valid choice"),
        ({"username": "eve", "role": "staff", "password": "short"}, b"between 8 and 256"),
        ({"username": "test-admin", "role": "staff"}, b"already exists"),
    ]
    for data, message in cases:
        response = htmx_client.post("/admin/users", data=data)
        assert response.status_code == 422, data
        assert message in response.data, data
        assert b'aria-invalid="true"' in response.data
    with app.app_context():
        assert find_user("eve") is None


def test_deactivate_and_reactivate(app, client, auth):
    auth.ensure_user("staff")
    with app.app_context():
        staff_id = find_user("test-staff").id
    auth.login("admin")
    client.post(f"/admin/users/{staff_id}/active")
    with app.app_context():
        assert find_user("test-staff").active is False
    client.post(f"/admin/users/{staff_id}/active")
    with app.app_context():
        assert find_user("test-staff").active is True


def test_cannot_deactivate_yourself(app, client, auth):
    auth.login("admin")
    with app.app_context():
        admin_id = find_user("test-admin").id
    response = client.post(f"/admin/users/{admin_id}/active")
    assert response.status_code == 422
    assert b"cannot deactivate your own account" in response.data


def test_missing_user_is_404(client, auth):
    auth.login("admin")
    assert client.post("/admin/users/424242/active").status_code == 404
