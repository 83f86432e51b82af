"""Security headers on every response, generated from the URL map; cookie flags in production.

The browser tier checks the policy from the other side: its ``page`` fixture fails a journey
whenever chromium reports something the Content Security Policy refused.
"""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie

import pytest
from flask_login.config import COOKIE_NAME as REMEMBER_COOKIE

from tests.web.test_access_matrix import ACCESS, Token, bearer_token, url_for_rule
from tests.web.test_tavern_covers import PNG, upload
from webapp import PROJECT_ROOT
from webapp.security import SCRIPT_SRC

# The promise, written out (not imported) so that loosening the policy fails here.
EXPECTED = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-eval'; "
    "style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' https: http:; "
    "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "Strict-Transport-Security"
TEMPLATES = PROJECT_ROOT / "templates"


def assert_secured(response, what, expected=EXPECTED):
    """Each expected header is there with its value; HSTS only when ``expected`` has it."""
    for name, value in expected.items():
        assert response.headers.get(name) == value, (what, response.status_code, name)
    if HSTS not in expected:
        assert HSTS not in response.headers, what


def swept_rules(app):
    """Every rule answering GET, and the API's rules (POST only, JSON answers)."""
    for rule in app.url_map.iter_rules():
        if isinstance(ACCESS[rule.endpoint], Token):
            yield rule, sorted(rule.methods - {"HEAD", "OPTIONS"})[0], True
        elif "GET" in rule.methods:
            yield rule, "GET", False


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_every_route_carries_the_headers(app, client, auth, who):
    token = {}
    if who == "admin":
        auth.login("admin")  # may use every page
        token = {"Authorization": f"Bearer {bearer_token(app, auth, 'admin')}"}
    statuses, swept = set(), 0
    for rule, method, api in swept_rules(app):
        response = client.open(url_for_rule(app, rule), method=method,
                               headers=token if api else {}, json={} if api else None)
        response.close()  # static files are streamed
        statuses.add(response.status_code)
        swept += 1
        assert response.is_json or not api, rule
        assert_secured(response, (rule, method))
    assert swept > 40  # the sweep really walks the app
    # Pages, redirects to the login, JSON errors and error pages are all among them.
    expected_statuses = {200, 302, 401} if who == "anonymous" else {200, 404, 422}
    assert expected_statuses <= statuses, statuses


def test_error_pages_carry_the_headers(client, auth):
    assert_secured(client.get("/no/such/page"), "404 page")
    auth.login("host")
    forbidden = client.get("/admin/users")
    assert forbidden.status_code == 403
    assert_secured(forbidden, "403 page")


def test_a_server_error_page_carries_the_headers(app_config, request):
    app_config["TESTING"] = False  # the error handler answers instead of the test seeing it
    app = request.getfixturevalue("app")

    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    client = request.getfixturevalue("client")
    request.getfixturevalue("auth").login("staff")
    response = client.get("/boom")
    assert response.status_code == 500
    assert_secured(response, "500 page")


def test_a_view_keeps_its_own_stricter_policy(app, client, auth, tmp_path):
    from decimal import Decimal

    from webapp.extensions import db
    from webapp.tavern import service
    from webapp.tavern.models import Game

    app.config["COVER_FOLDER"] = str(tmp_path / "covers")  # never the developer's instance
    with app.app_context():
        game_id = service.save_game(Game(), "Tetris", "Gameboy", Decimal("2.99"), []).id
    auth.login("staff")
    assert upload(client, game_id, PNG).status_code == 303
    with app.app_context():
        name = db.session.get(Game, game_id).cover_filename
    response = client.get(f"/tavern/covers/{name}")
    response.close()
    assert response.status_code == 200
    # The sandbox policy alone: not replaced, and no second, looser one beside it.
    assert response.headers.getlist("Content-Security-Policy") == [
        "default-src 'none'; sandbox"]
    assert_secured(response, "cover", {
        key: value for key, value in EXPECTED.items() if key != "Content-Security-Policy"})


@pytest.mark.parametrize(("env", "hsts"), [("production", True), ("development", False)])
def test_hsts_is_sent_only_in_production(app_config, request, env, hsts):
    app_config["ENV"] = env
    client = request.getfixturevalue("client")  # the app is built from the changed config
    for path in ("/login", "/healthz", "/no/such/page"):
        response = client.get(path)
        assert (response.headers.get(HSTS) == "max-age=31536000") is hsts, (env, path)
        assert_secured(response, path, {**EXPECTED, HSTS: "max-age=31536000"} if hsts
                       else EXPECTED)


def cookie_flags(response, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie header for ``name`` (lower-case keys)."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            cookie = SimpleCookie()
            cookie.load(header)
            morsel = cookie[name]
            return {key: morsel[key] for key in ("secure", "httponly", "samesite")}
    raise AssertionError(f"no {name} cookie in {response.headers.getlist('Set-Cookie')}")


def assert_locked_cookie(flags: dict[str, str], name: str) -> None:
    """Secure, HttpOnly and SameSite=Lax."""
    assert flags["secure"] is True, name
    assert flags["httponly"] is True, name
    assert flags["samesite"] == "Lax", name


def test_production_login_cookies_are_secure_httponly_and_lax(app_config, request):
    app_config["ENV"] = "production"
    app = request.getfixturevalue("app")
    response = request.getfixturevalue("auth").login("staff")
    assert response.status_code == 303
    assert_locked_cookie(cookie_flags(response, app.config["SESSION_COOKIE_NAME"]), "session")
    # The login form has no "remember me"; should one be added, its cookie is locked too.
    from flask_login import login_user

    from webapp.auth.service import find_user

    with app.test_request_context("/login", method="POST"):
        login_user(find_user("test-staff"), remember=True)
        remembered = app.process_response(app.make_response("ok"))
    assert_locked_cookie(cookie_flags(remembered, app.config.get("REMEMBER_COOKIE_NAME", REMEMBER_COOKIE)), "remember")


# --- What the templates need from the policy -------------------------------------------------

# An hx-trigger event followed by "[" is a filter, which htmx compiles with Function().
TRIGGER_FILTER = re.compile(r"(?:^|,)\s*[\w:.-]+\[")
EVAL_ATTRIBUTES = re.compile(r"\bhx-on|\bhx-vars=|\bhx-vals=[\"']\s*(?:js|javascript):")


def template_sources():
    """(path, text) of every template."""
    return [(path, path.read_text()) for path in sorted(TEMPLATES.rglob("*.html"))]


def htmx_eval_uses() -> list[str]:
    """Templates (and what) that make htmx evaluate strings."""
    uses = []
    for path, text in template_sources():
        for trigger in re.findall(r'hx-trigger="([^"]*)"', text):
            if TRIGGER_FILTER.search(trigger):
                uses.append(f"{path.relative_to(TEMPLATES)}: hx-trigger=\"{trigger}\"")
        uses += [f"{path.relative_to(TEMPLATES)}: {m}" for m in EVAL_ATTRIBUTES.findall(text)]
    return uses


def htmx_config() -> dict:
    """The htmx-config meta of base.html."""
    text = (TEMPLATES / "base.html").read_text()
    return json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", text)[1])


def test_the_filter_finder_finds_filters_and_not_selectors():
    assert TRIGGER_FILTER.search("keyup[key=='Escape']")
    assert TRIGGER_FILTER.search("change, click[ctrlKey]")
    assert not TRIGGER_FILTER.search("change, input changed delay:300ms from:input[type=number]")


def test_eval_is_allowed_exactly_while_templates_need_it():
    uses = htmx_eval_uses()
    allowed_by_policy = "'unsafe-eval'" in SCRIPT_SRC.split()
    allowed_by_htmx = htmx_config().get("allowEval", True)
    if uses:
        assert allowed_by_policy and allowed_by_htmx, (
            "htmx evaluates strings here; the policy and htmx-config must allow it:\n"
            + "\n".join(uses))
    else:
        assert not allowed_by_policy, "no template needs eval: drop 'unsafe-eval' (security.py)"
        assert allowed_by_htmx is False, 'no template needs eval: set "allowEval": false'


def test_templates_use_no_inline_script_handler_or_style_element():
    for path, text in template_sources():
        name = path.relative_to(TEMPLATES)
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, (name, tag)  # script-src 'self': inline code is refused
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", text), name  # nor on*= handlers
        assert "javascript:" not in text, name
        assert "<style" not in text, name  # style-src 'self': only style= attributes
