"""Role × endpoint matrix, generated from the URL map so a new route cannot slip through.

Every endpoint must be listed in ``ACCESS`` with the roles that may use it; the test fails for
an unlisted endpoint. "public" means no login is needed; ``Token(roles)`` marks a JSON API
endpoint, reached with a bearer token (never the session) whose *effective* role (the lower of
the token's role and its user's) is one of ``roles``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

ROLES = ("admin", "staff", "host")
ANYONE = ("admin", "staff", "host")
STAFF = ("staff",)


@dataclass(frozen=True)
class Token:
    """An API endpoint: a bearer token of a user with one of ``roles`` (or admin) is needed."""

    roles: tuple[str, ...]


# endpoint -> roles allowed ("public" for no login). Admin may use everything.
ACCESS = {
    "static": "public",
    "auth.login": "public",
    "main.healthz": "public",
    "api.openapi": "public",
    "auth.logout": ANYONE,
    "main.home": ANYONE,
    "admin.users": ("admin",),
    "admin.users_create": ("admin",),
    "admin.users_toggle_active": ("admin",),
    "admin.users_role": ("admin",),
    "admin.users_password": ("admin",),
    "admin.tokens_list": ("admin",),
    "admin.tokens_create": ("admin",),
    "admin.tokens_revoke": ("admin",),
    "admin.audit_log": ("admin",),
    "admin.models": ("admin",),
    "admin.model_card": ("admin",),
    "admin.retrain": ("admin",),
    "admin.activate": ("admin",),
    "admin.rollback": ("admin",),
    "pizzeria.index": ("host", "staff"),
    "pizzeria.predict": ("host", "staff"),
    "pizzeria.evaluation": ("host", "staff"),
    "pizzeria.evaluation_chart": ("host", "staff"),
    "pizzeria.excluded_weekdays": ("host", "staff"),
    "pizzeria.import_apply": ("host", "staff"),
    "pizzeria.import_batch": ("host", "staff"),
    "pizzeria.import_page": ("host", "staff"),
    "pizzeria.import_report": ("host", "staff"),
    "pizzeria.import_start": ("host", "staff"),
    "pizzeria.night_delete": ("host", "staff"),
    "pizzeria.night_edit": ("host", "staff"),
    "pizzeria.night_restore": ("host", "staff"),
    "pizzeria.night_row": ("host", "staff"),
    "pizzeria.night_update": ("host", "staff"),
    "pizzeria.nights": ("host", "staff"),
    "pizzeria.nights_create": ("host", "staff"),
    "pizzeria.nights_summary": ("host", "staff"),
    "tavern.budget_summary": ("host", "staff"),
    "tavern.budget_update": ("host", "staff"),
    "tavern.cover": ("host", "staff"),
    "tavern.cover_remove": ("host", "staff"),
    "tavern.cover_upload": ("host", "staff"),
    "tavern.game_active": ("host", "staff"),
    "tavern.game_create": ("host", "staff"),
    "tavern.game_delete": ("host", "staff"),
    "tavern.game_edit": ("host", "staff"),
    "tavern.game_restore": ("host", "staff"),
    "tavern.game_row": ("host", "staff"),
    "tavern.game_update": ("host", "staff"),
    "tavern.games": ("host", "staff"),
    "tavern.import_page": ("host", "staff"),
    "tavern.import_report": ("host", "staff"),
    "tavern.import_result": ("host", "staff"),
    "tavern.import_start": ("host", "staff"),
    "tavern.index": ("host", "staff"),
    "tavern.static": ("host", "staff"),
    "tavern.style_create": ("host", "staff"),
    "tavern.style_delete": ("host", "staff"),
    "tavern.style_detach": ("host", "staff"),
    "tavern.style_edit": ("host", "staff"),
    "tavern.style_rename": ("host", "staff"),
    "tavern.style_row": ("host", "staff"),
    "tavern.styles": ("host", "staff"),
    "api.pizzeria_predictions": Token(("host", "staff")),
    "api.tavern_recommendations": Token(("host", "staff")),
    "tavern.suggestions": ("host", "staff"),
    # Gifts: the whole blueprint is staff-only (hosts get 403).
    "gifts.brief": STAFF,
    "gifts.try_labels": STAFF,
    "gifts.try_labels_suggestions": STAFF,
    "gifts.brief_proposals": STAFF,
    "gifts.brief_save": STAFF,
    "gifts.brief_settings": STAFF,
    "gifts.bulk_apply": STAFF,
    "gifts.client": STAFF,
    "gifts.client_create": STAFF,
    "gifts.client_update": STAFF,
    "gifts.clients": STAFF,
    "gifts.decide": STAFF,
    "gifts.edit_decision": STAFF,
    "gifts.export_download": STAFF,
    "gifts.export_page": STAFF,
    "gifts.gift": STAFF,
    "gifts.gift_line_add": STAFF,
    "gifts.gift_line_delete": STAFF,
    "gifts.gift_line_update": STAFF,
    "gifts.gift_picker": STAFF,
    "gifts.gift_update": STAFF,
    "gifts.group_create": STAFF,
    "gifts.group_delete": STAFF,
    "gifts.group_update": STAFF,
    "gifts.import_discard": STAFF,
    "gifts.import_mapping": STAFF,
    "gifts.import_mapping_check": STAFF,
    "gifts.import_mapping_save": STAFF,
    "gifts.import_page": STAFF,
    "gifts.import_profile_delete": STAFF,
    "gifts.import_profile_rename": STAFF,
    "gifts.import_rejects": STAFF,
    "gifts.import_result": STAFF,
    "gifts.import_upload": STAFF,
    "gifts.index": STAFF,
    "gifts.label_create": STAFF,
    "gifts.label_delete": STAFF,
    "gifts.label_update": STAFF,
    "gifts.queue": STAFF,
    "gifts.queue_order": STAFF,
    "gifts.queue_sidebar": STAFF,
    "gifts.rule_create": STAFF,
    "gifts.rule_delete": STAFF,
    "gifts.rule_edit": STAFF,
    "gifts.rule_enabled": STAFF,
    "gifts.rule_move": STAFF,
    "gifts.rule_preview": STAFF,
    "gifts.rule_restore": STAFF,
    "gifts.rule_update": STAFF,
    "gifts.rules": STAFF,
    "gifts.rules_apply": STAFF,
    "gifts.rules_apply_status": STAFF,
    "gifts.static": STAFF,
    "gifts.undo_batch": STAFF,
    "gifts.undo_decision": STAFF,
    "gifts.undo_last": STAFF,
    "gifts.vocabulary": STAFF,
    "gifts.vocabulary_settings": STAFF,
    "api.gift_proposals": Token(("staff",)),
    "tavern.record_pick": ("host", "staff"),
}

# Values for URL arguments, so every rule can be requested.
SAMPLE_ARGS = {"user_id": 999999, "filename": "app.css", "kind": "dough", "version": "v-none",
               "night_id": 999999, "batch_id": "0" * 32, "game_id": 999999, "style_id": 999999,
               "import_id": "0" * 32, "name": "0" * 32 + ".png", "item_id": 999999,
               "rule_id": 999999, "group_id": 999999, "label_id": 999999, "profile_id": 999999,
               "decision_id": 999999, "client_id": 999999, "gift_id": 999999,
               "line_id": 999999, "token_id": 999999}


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
        elif isinstance(ACCESS[rule.endpoint], Token):
            assert_api_unauthorized(response, rule, method)
        else:
            assert response.status_code == 302, (rule, method, response.status_code)
            assert "/login" in response.headers["Location"]


def assert_api_unauthorized(response, rule, method):
    assert response.status_code == 401, (rule, method, response.status_code)
    assert response.is_json and response.headers["WWW-Authenticate"] == "Bearer", (rule, method)


def bearer_token(app, auth, role: str, token_role: str | None = None) -> str:
    """A new API token of the test user with ``role``, scoped to ``token_role`` (default: the
    user's role)."""
    from webapp.auth import tokens
    from webapp.auth.service import find_user

    username = auth.ensure_user(role)
    with app.app_context():
        return tokens.create_token(find_user(username), "access matrix", token_role)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_403_exactly_where_it_is_not_allowed(app, client, auth, role):
    token = bearer_token(app, auth, role)
    for rule, method in all_rules(app):
        allowed = ACCESS[rule.endpoint]
        if allowed == "public" or rule.endpoint == "auth.logout":
            continue
        auth.login(role)
        response = client.open(url_for_rule(app, rule), method=method)
        response.close()
        api = isinstance(allowed, Token)
        if api:
            # The session is no credential for the API; the same role's token is.
            assert_api_unauthorized(response, rule, method)
            response = client.open(url_for_rule(app, rule), method=method,
                                   headers={"Authorization": f"Bearer {token}"})
            response.close()
            allowed = allowed.roles
        if role in allowed or role == "admin":
            assert response.status_code != 403, (role, rule, method)
        else:
            assert response.status_code == 403, (role, rule, method, response.status_code)
            if api:
                assert response.get_json()["error"]["message"], (role, rule, method)
            else:
                assert b"Not allowed" in response.data


def test_forbidden_fragment_is_retargeted_to_the_flash_region(client, htmx_client, auth):
    auth.login("host")
    response = htmx_client.get("/admin/users")
    assert response.status_code == 403
    assert b"<html" not in response.data
    assert b'id="flash"' in response.data
    assert response.headers["HX-Retarget"] == "#flash"


def test_the_roles_form_a_ladder(app):
    """Staff may open every page a host may: so "the lower of two roles" (a token's effective
    role) is well defined, and a token scoped down never gains a right its scope lacks."""
    for endpoint, allowed in ACCESS.items():
        roles = allowed.roles if isinstance(allowed, Token) else allowed
        if roles != "public" and "host" in roles:
            assert "staff" in roles, endpoint


#: (user's role, token's role) for every token a user may be issued.
SCOPED = [(user, token) for user in ROLES for token in ROLES
          if ROLES.index(token) >= ROLES.index(user)]  # ROLES runs from admin down


@pytest.mark.parametrize("user_role, token_role", SCOPED)
def test_every_api_endpoint_checks_the_tokens_effective_role(app, client, auth, user_role,
                                                             token_role):
    """Each API endpoint × each scoped token: 403 exactly where the token's role is not allowed,
    whatever its user may do (a host-scoped token of an admin is a host)."""
    token = bearer_token(app, auth, user_role, token_role)
    checked = 0
    for rule, method in all_rules(app):
        allowed = ACCESS[rule.endpoint]
        if not isinstance(allowed, Token):
            continue
        response = client.open(url_for_rule(app, rule), method=method, json={},
                               headers={"Authorization": f"Bearer {token}"})
        checked += 1
        if token_role in allowed.roles or token_role == "admin":
            assert response.status_code != 403, (user_role, token_role, rule)
        else:
            assert response.status_code == 403, (user_role, token_role, rule)
            assert response.is_json and response.get_json()["error"]["message"]
    assert checked >= 3


@pytest.mark.parametrize("token_role", ["staff", "host"])
def test_a_demoted_users_tokens_are_demoted_too(app, client, auth, token_role):
    """An admin's token keeps its scope when the admin is demoted to host: it is a host now."""
    from webapp.auth.service import find_user, set_role

    token = bearer_token(app, auth, "admin", token_role)
    auth.ensure_user("admin", "another-admin")  # the last admin cannot be demoted
    with app.app_context():
        set_role(find_user("test-admin"), "host")
    response = client.post("/api/v1/gifts/proposals", json={},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
