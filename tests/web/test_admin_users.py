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


def user_id(app, username: str) -> int:
    with app.app_context():
        return find_user(username).id


def test_change_a_role(app, htmx_client, auth):
    auth.ensure_user("staff")
    auth.login("admin")
    response = htmx_client.post(f"/admin/users/{user_id(app, 'test-staff')}/role",
                                data={"role": "host"})
    assert response.status_code == 200
    assert b"<html" not in response.data and b'id="user-table"' in response.data
    assert b"test-staff is now host." in response.data
    with app.app_context():
        assert find_user("test-staff").role == "host"


def test_a_demoted_users_session_loses_the_rights_at_once(app, client, auth):
    from webapp.auth.service import set_role

    auth.login("staff")
    assert client.get("/gifts/queue").status_code == 200
    auth.ensure_user("admin")
    with app.app_context():
        set_role(find_user("test-staff"), "host")
    assert client.get("/gifts/queue").status_code == 403


def test_role_change_refuses_bad_input_and_your_own_account(app, htmx_client, auth):
    auth.ensure_user("staff")
    auth.login("admin")
    staff_id = user_id(app, "test-staff")
    response = htmx_client.post(f"/admin/users/{staff_id}/role", data={"role": "owner"})
    assert response.status_code == 422 and b"Choose a role" in response.data
    response = htmx_client.post(f"/admin/users/{user_id(app, 'test-admin')}/role",
                                data={"role": "host"})
    assert response.status_code == 422
    assert b"cannot change the role of your own account" in response.data
    assert htmx_client.post("/admin/users/424242/role", data={"role": "host"}).status_code == 404
    with app.app_context():
        assert find_user("test-staff").role == "staff"
        assert find_user("test-admin").role == "admin"


def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(app, runner):
    with app.app_context():
        from tests.support import make_user
        from webapp.auth.service import AccountError, set_active, set_role

        root = make_user("root", "admin")
        for change in (lambda: set_role(root, "staff"), lambda: set_active(root, False)):
            try:
                change()
            except AccountError as error:
                assert "last active admin" in str(error)
            else:
                raise AssertionError("the last admin was changed")
    result = runner.invoke(args=["users", "set-role", "root", "host"])
    assert result.exit_code == 1 and "last active admin" in result.output
    with app.app_context():
        make_user("second", "admin")
    assert runner.invoke(args=["users", "set-role", "root", "host"]).exit_code == 0
    with app.app_context():
        assert find_user("root").role == "host"


def test_reset_a_password_shows_the_new_one_once(app, client, htmx_client, auth):
    from tests.support import TEST_PASSWORD

    auth.ensure_user("staff")
    auth.login("admin")
    response = htmx_client.post(f"/admin/users/{user_id(app, 'test-staff')}/password")
    assert response.status_code == 200 and b'id="user-table"' in response.data
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    new = text.split('<code class="secret">', 1)[1].split("</code>", 1)[0]
    assert "New password for <strong>test-staff</strong>" in text and len(new) >= 16
    with app.app_context():
        user = find_user("test-staff")
        assert user.check_password(new) and not user.check_password(TEST_PASSWORD)
    assert new not in client.get("/admin/users").get_data(as_text=True)
    response = htmx_client.post(f"/admin/users/{user_id(app, 'test-admin')}/password")
    assert response.status_code == 422


def test_a_password_reset_ends_the_sessions_opened_with_the_old_one(app, client, htmx_client,
                                                                   auth):
    """Whoever knew the old password is logged out everywhere; the new one logs in."""
    from tests.support import TEST_PASSWORD

    auth.ensure_user("staff")
    theirs = app.test_client()
    assert theirs.post("/login", data={"username": "test-staff",
                                       "password": TEST_PASSWORD}).status_code == 303
    assert theirs.get("/tavern/").status_code == 200
    auth.login("admin")
    response = htmx_client.post(f"/admin/users/{user_id(app, 'test-staff')}/password")
    new = response.get_data(as_text=True).split('<code class="secret">', 1)[1].split("</code>")[0]

    assert theirs.get("/tavern/").status_code == 302  # to the login page
    assert client.get("/admin/users").status_code == 200  # the admin stays logged in
    again = app.test_client()
    assert again.post("/login", data={"username": "test-staff", "password": new}).status_code == 303
    assert again.get("/tavern/").status_code == 200


def test_a_session_cookie_without_a_password_stamp_is_not_a_login(app, client, auth):
    """A cookie holding only an id (or a stamp of another password) loads nobody."""
    auth.ensure_user("staff")
    staff_id = user_id(app, "test-staff")
    for forged in (str(staff_id), f"{staff_id}:{'0' * 32}", f"{2**40}:x", "²:x", ":"):
        with client.session_transaction() as session:
            session["_user_id"] = forged
            session["_fresh"] = True
        assert client.get("/tavern/").status_code == 302, forged


def test_reset_password_command(app, runner):
    with app.app_context():
        from tests.support import make_user

        make_user("alice", "host")
    result = runner.invoke(args=["users", "reset-password", "alice"])
    assert result.exit_code == 0, result.output
    new = result.output.rsplit(": ", 1)[1].strip()
    with app.app_context():
        assert find_user("alice").check_password(new)
    assert runner.invoke(args=["users", "reset-password", "nobody"]).exit_code == 1


def test_the_users_page_links_to_the_tokens(client, auth):
    auth.login("admin")
    assert b'href="/admin/users/tokens"' in client.get("/admin/users").data
