"""API tokens: the service in ``webapp.auth.tokens``, the ``flask users token*`` commands, the
admin's token page, and the role scoping (a token acts with the lower of its role and its
user's)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest

from tests.support import make_user
from webapp.auth import tokens
from webapp.auth.models import utcnow
from webapp.auth.service import find_user
from webapp.auth.tokens import ApiToken
from webapp.extensions import db


@pytest.fixture
def ctx(app):
    """Run the test body inside an app context."""
    with app.app_context():
        yield


@pytest.fixture
def alice(ctx):
    return make_user("alice", "staff")


def only_token():
    [token] = db.session.scalars(db.select(ApiToken)).all()
    return token


def test_create_token_stores_only_the_hash_and_a_prefix(alice):
    raw = tokens.create_token(alice, "  till  ")
    assert len(raw) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", raw)  # token_urlsafe(32)
    token = only_token()
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:8]
    assert token.label == "till" and token.user_id == alice.id
    assert token.role == "staff"  # the user's role by default
    assert token.last_used_at is None and token.revoked_at is None
    assert raw not in {token.token_hash, token.name, token.prefix}


def test_tokens_are_unique(alice):
    assert tokens.create_token(alice, "a") != tokens.create_token(alice, "a")


@pytest.mark.parametrize("label", ["", "   ", "x" * 65])
def test_create_token_refuses_an_empty_or_overlong_label(alice, label):
    with pytest.raises(tokens.TokenError, match="1 to 64 characters"):
        tokens.create_token(alice, label)
    assert db.session.scalars(db.select(ApiToken)).all() == []


def test_authenticate_returns_the_token_with_its_user(alice):
    raw = tokens.create_token(alice, "till")
    assert tokens.authenticate(raw) == only_token()
    assert tokens.authenticate(raw).user == alice
    assert tokens.authenticate(raw[:-1]) is None
    assert tokens.authenticate(raw + "x") is None
    assert tokens.authenticate("") is None


def test_a_revoked_token_authenticates_no_one(alice):
    raw = tokens.create_token(alice, "till")
    revoked = tokens.revoke(only_token().id)
    assert revoked.revoked_at is not None
    assert tokens.authenticate(raw) is None


def test_revoking_twice_keeps_the_first_time_and_unknown_ids_give_none(alice):
    tokens.create_token(alice, "till")
    first = tokens.revoke(only_token().id).revoked_at
    assert tokens.revoke(only_token().id).revoked_at == first
    assert tokens.revoke(999999) is None


def test_an_inactive_users_tokens_fail_until_reactivated(alice):
    raw = tokens.create_token(alice, "till")
    alice.active = False
    db.session.commit()
    assert tokens.authenticate(raw) is None
    alice.active = True
    db.session.commit()
    assert tokens.authenticate(raw).user == alice


def test_last_used_is_written_at_most_once_a_minute(alice):
    raw = tokens.create_token(alice, "till")
    tokens.authenticate(raw)
    first = only_token().last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=5)
    tokens.authenticate(raw)
    assert only_token().last_used_at == first  # within the minute: no write

    stale = utcnow() - timedelta(minutes=2)
    only_token().last_used_at = stale
    db.session.commit()
    tokens.authenticate(raw)
    assert only_token().last_used_at > stale + timedelta(minutes=1)


def test_tokens_for_lists_one_users_tokens_oldest_first(alice):
    bob = make_user("bob", "host")
    tokens.create_token(alice, "first")
    tokens.create_token(bob, "bobs")
    tokens.create_token(alice, "second")
    tokens.revoke(tokens.tokens_for(alice)[0].id)
    assert [t.label for t in tokens.tokens_for(alice)] == ["first", "second"]
    assert [t.label for t in tokens.tokens_for(bob)] == ["bobs"]


# --- flask users token / tokens / revoke-token ---------------------------------------------


def created_token(output: str) -> str:
    return re.search(r"Token \(shown once\): (\S+)", output).group(1)


def test_token_command_prints_a_working_token_once(app, runner):
    with app.app_context():
        make_user("alice", "host")
    result = runner.invoke(args=["users", "token", "ALICE", "--label", "till"])
    assert result.exit_code == 0, result.output
    raw = created_token(result.output)
    assert result.output.count(raw) == 1
    assert "Authorization: Bearer" in result.output
    with app.app_context():
        assert tokens.authenticate(raw).user == find_user("alice")
        assert only_token().label == "till" and only_token().role == "host"

    listing = runner.invoke(args=["users", "tokens", "alice"])
    assert listing.exit_code == 0, listing.output
    assert raw not in listing.output  # never shown again, only its prefix
    header, row = listing.output.strip().splitlines()
    assert header.split("\t") == ["id", "label", "prefix", "role", "created", "last used",
                                  "revoked"]
    token_id, label, prefix, role, created, last_used, revoked = row.split("\t")
    assert (label, prefix, role, revoked) == ("till", raw[:8], "host", "-")
    minute = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert re.fullmatch(minute, created) and re.fullmatch(minute, last_used)  # used just above


def test_token_command_uses_a_default_label(app, runner):
    with app.app_context():
        make_user("alice", "host")
    assert runner.invoke(args=["users", "token", "alice"]).exit_code == 0
    with app.app_context():
        assert only_token().label == "api"


def test_revoke_token_command_stops_the_token(app, runner):
    with app.app_context():
        make_user("alice", "staff")
    raw = created_token(runner.invoke(args=["users", "token", "alice"]).output)
    with app.app_context():
        token_id = only_token().id

    result = runner.invoke(args=["users", "revoke-token", str(token_id)])
    assert result.exit_code == 0, result.output
    assert f"Token {token_id} (api, {raw[:8]}…) of alice is revoked since" in result.output
    with app.app_context():
        assert tokens.authenticate(raw) is None
    [row] = runner.invoke(args=["users", "tokens", "alice"]).output.strip().splitlines()[1:]
    *_, last_used, revoked = row.split("\t")
    assert last_used == "-" and revoked != "-"  # never used: a revoked token is not "used"


def test_token_commands_fail_clearly(app, runner):
    result = runner.invoke(args=["users", "token", "nobody"])
    assert result.exit_code == 1 and "No user called 'nobody'" in result.output
    result = runner.invoke(args=["users", "tokens", "nobody"])
    assert result.exit_code == 1 and "No user called 'nobody'" in result.output
    result = runner.invoke(args=["users", "revoke-token", "424242"])
    assert result.exit_code == 1 and "No API token with id 424242" in result.output
    result = runner.invoke(args=["users", "revoke-token", "abc"])
    assert result.exit_code == 2

    with app.app_context():
        make_user("alice", "staff")
    result = runner.invoke(args=["users", "token", "alice", "--label", "x" * 65])
    assert result.exit_code == 2 and "1 to 64 characters" in result.output
    assert "has no API tokens" in runner.invoke(args=["users", "tokens", "alice"]).output


def test_token_command_refuses_an_inactive_user(app, runner):
    with app.app_context():
        make_user("alice", "staff").active = False
        db.session.commit()
    result = runner.invoke(args=["users", "token", "alice"])
    assert result.exit_code == 1 and "inactive" in result.output
    with app.app_context():
        assert db.session.scalars(db.select(ApiToken)).all() == []


# --- roles: a token acts with the lower of its own role and its user's ----------------------

LADDER = ("host", "staff", "admin")


@pytest.mark.parametrize("user_role", LADDER)
@pytest.mark.parametrize("token_role", LADDER)
def test_a_token_acts_with_the_lower_of_its_role_and_its_users(ctx, user_role, token_role):
    user = make_user("u", "admin")
    tokens.create_token(user, "t", token_role)
    user.role = user_role  # changed after the issue, as a demotion or promotion would
    db.session.commit()
    expected = min(token_role, user_role, key=LADDER.index)
    assert only_token().effective_role == expected


def test_a_token_cannot_be_issued_above_its_user_or_with_an_unknown_role(alice):
    with pytest.raises(tokens.TokenError, match="more rights than its user: alice is staff"):
        tokens.create_token(alice, "till", "admin")
    with pytest.raises(tokens.TokenError, match="Unknown role 'owner'"):
        tokens.create_token(alice, "till", "owner")
    assert db.session.scalars(db.select(ApiToken)).all() == []
    tokens.create_token(alice, "till", "host")  # lower is fine
    assert only_token().role == "host"


def test_demoting_the_user_demotes_the_token_and_promoting_does_not_raise_it(alice):
    from webapp.auth.service import set_role

    tokens.create_token(alice, "till", "staff")
    set_role(alice, "host")
    assert only_token().effective_role == "host"
    set_role(alice, "admin")
    assert only_token().effective_role == "staff"  # never above the role it was issued with


def test_token_command_takes_a_role_not_above_the_users(app, runner):
    with app.app_context():
        make_user("alice", "staff")
    result = runner.invoke(args=["users", "token", "alice", "--role", "host"])
    assert result.exit_code == 0, result.output
    assert "Created a host token for alice (staff)" in result.output
    result = runner.invoke(args=["users", "token", "alice", "--role", "admin"])
    assert result.exit_code == 2 and "more rights than its user" in result.output
    result = runner.invoke(args=["users", "token", "alice", "--role", "owner"])
    assert result.exit_code == 2
    with app.app_context():
        assert [t.role for t in db.session.scalars(db.select(ApiToken))] == ["host"]


def test_tokens_listing_shows_what_a_token_acts_as_after_a_demotion(app, runner):
    with app.app_context():
        make_user("alice", "staff")
        make_user("root", "admin")  # so alice is not the last admin when promoted and demoted
    runner.invoke(args=["users", "token", "alice"])
    assert runner.invoke(args=["users", "set-role", "alice", "host"]).exit_code == 0
    [row] = runner.invoke(args=["users", "tokens", "alice"]).output.strip().splitlines()[1:]
    assert row.split("\t")[3] == "staff (acts as host)"


# --- the API checks the effective role --------------------------------------------------------

PROPOSALS = "/api/v1/gifts/proposals"  # staff only
PREDICTIONS = "/api/v1/pizzeria/predictions"  # host and staff


def api_status(client, raw: str, url: str) -> int:
    return client.post(url, json={}, headers={"Authorization": f"Bearer {raw}"}).status_code


def test_a_host_scoped_token_of_an_admin_cannot_do_staff_things(app, client):
    with app.app_context():
        admin = make_user("boss", "admin")
        host_token = tokens.create_token(admin, "till", "host")
        full_token = tokens.create_token(admin, "scripts")
    assert api_status(client, host_token, PROPOSALS) == 403
    assert api_status(client, full_token, PROPOSALS) == 422  # past the role check: bad body
    assert api_status(client, host_token, PREDICTIONS) == 422  # a host may use this one


def test_demoting_a_user_takes_effect_on_their_next_api_request(app, client):
    from webapp.auth.service import set_role

    with app.app_context():
        make_user("root", "admin")
        raw = tokens.create_token(make_user("sam", "staff"), "scripts")
    assert api_status(client, raw, PROPOSALS) == 422
    with app.app_context():
        set_role(find_user("sam"), "host")
    response = client.post(PROPOSALS, json={}, headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 403
    assert response.get_json()["error"]["message"]


# --- the admin's token page -------------------------------------------------------------------

def test_the_token_page_shows_each_tokens_role_and_what_it_acts_as(app, client, auth):
    with app.app_context():
        tokens.create_token(make_user("sam", "staff"), "till", "host")
        tokens.create_token(find_user("sam"), "scripts")
        tokens.create_token(make_user("boss", "admin"), "ops", "staff")
        find_user("sam").role = "host"
        db.session.commit()
    auth.login("admin")
    page = client.get("/admin/users/tokens").get_data(as_text=True)
    assert re.findall(r'data-role="(\w+)" data-effective-role="(\w+)"', page) == [
        ("staff", "staff"), ("staff", "host"), ("host", "host")]  # newest first
    assert "acts as host: sam is host" in page
    assert "till" in page and "scripts" in page and "ops" in page


def test_the_token_page_has_an_empty_state(client, auth):
    auth.login("admin")
    assert b"No API tokens yet." in client.get("/admin/users/tokens").data


def test_issuing_a_token_from_the_page_shows_it_once(app, client, htmx_client, auth):
    with app.app_context():
        make_user("sam", "staff")
    auth.login("admin")
    response = htmx_client.post("/admin/users/tokens",
                                data={"username": "sam", "label": "till", "role": "host"})
    assert response.status_code == 201
    assert b"<html" not in response.data and b'id="token-form"' in response.data
    assert response.headers["Cache-Control"] == "no-store"
    assert "tokens-changed" in response.headers["HX-Trigger"]
    raw = re.search(r'<code class="secret">([^<]+)</code>', response.get_data(as_text=True))[1]
    with app.app_context():
        token = tokens.authenticate(raw)
        assert (token.user.username, token.label, token.role) == ("sam", "till", "host")
    assert raw not in client.get("/admin/users/tokens").get_data(as_text=True)

    response = htmx_client.post("/admin/users/tokens", data={"username": "sam", "label": "x"})
    assert response.status_code == 201  # no role: the account's
    with app.app_context():
        assert tokens.tokens_for(find_user("sam"))[-1].role == "staff"


@pytest.mark.parametrize("data, message", [
    ({"username": "sam", "label": "till", "role": "admin"}, "more rights than its user"),
    ({"username": "sam", "label": "till", "role": "owner"}, "Not a valid choice"),
    ({"username": "nobody", "label": "till"}, "Not a valid choice"),
    ({"username": "gone", "label": "till"}, "Not a valid choice"),  # inactive: not offered
    ({"username": "sam", "label": "   "}, "This field is required"),
    ({"username": "sam", "label": "x" * 65}, "longer than 64"),
])
def test_issuing_refuses_bad_input_with_422(app, htmx_client, auth, data, message):
    with app.app_context():
        make_user("sam", "staff")
        make_user("gone", "staff").active = False
        db.session.commit()
    auth.login("admin")
    response = htmx_client.post("/admin/users/tokens", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(db.select(ApiToken)).all() == []


def test_revoking_from_the_page_stops_the_token(app, client, htmx_client, auth):
    with app.app_context():
        raw = tokens.create_token(make_user("sam", "staff"), "till")
        token_id = only_token().id
    auth.login("admin")
    response = htmx_client.post(f"/admin/users/tokens/{token_id}/revoke")
    assert response.status_code == 200 and b'id="token-table"' in response.data
    assert b"is revoked" in response.data
    with app.app_context():
        assert tokens.authenticate(raw) is None
    assert client.post("/admin/users/tokens/424242/revoke").status_code == 404


def test_the_migration_gives_existing_tokens_their_users_role(tmp_path):
    """Tokens issued before roles existed keep doing exactly what they did: their user's role."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect, text

    from tests.support import base_test_config, fresh_database
    from webapp import create_app

    before, revision = "1c62c8d1c3f1", "8c34e1aa4077"
    with fresh_database(tmp_path) as url:
        app = create_app(base_test_config(url, tmp_path))
        with app.app_context():
            upgrade(revision=before)
            with db.engine.begin() as conn:
                for user_id, role in ((1, "host"), (2, "admin")):
                    conn.execute(text(
                        "INSERT INTO users (id, username, password_hash, role, active, created_at)"
                        " VALUES (:id, :name, 'x', :role, true, CURRENT_TIMESTAMP)"),
                        {"id": user_id, "name": f"u{user_id}", "role": role})
                    conn.execute(text(
                        "INSERT INTO api_token (user_id, name, token_hash, prefix, created_at)"
                        " VALUES (:id, 'old', :hash, 'abcd', CURRENT_TIMESTAMP)"),
                        {"id": user_id, "hash": str(user_id) * 64})
            upgrade(revision=revision)
            with db.engine.connect() as conn:
                assert conn.execute(text("SELECT user_id, role FROM api_token ORDER BY user_id")
                                    ).all() == [(1, "host"), (2, "admin")]
            downgrade(revision=before)
            with db.engine.connect() as conn:
                inspector = inspect(conn)
                assert "role" not in {c["name"] for c in inspector.get_columns("api_token")}
                assert "audit_event" not in inspector.get_table_names()
                assert conn.execute(text("SELECT count(*) FROM api_token")).scalar() == 2
            db.engine.dispose()
