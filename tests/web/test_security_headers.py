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
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
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

# A trigger whose event (or "every <interval>") is followed by "[" has a filter, which htmx
# compiles with Function(): refused by the policy (no 'unsafe-eval') and by allowEval false.
TRIGGER_FILTER = re.compile(r"^\s*(?:every\s+[^\s,\[]+\s*|[^\s,\[]+)\[")
# hx-trigger="…" / hx-trigger='…' attributes, and "hx-trigger": "…" keys of Jinja dicts.
HX_TRIGGER = re.compile(r"""hx-trigger(?:=|["']\s*:\s*)(["'])(.*?)\1""")
EVAL_ATTRIBUTES = re.compile(r"\bhx-on|\bhx-vars=|\bhx-vals=[\"']\s*(?:js|javascript):")
CURATE_EVENT = re.compile(r"\bcurate:[\w-]+")
APP_JS = PROJECT_ROOT / "webapp" / "static" / "app.js"


def template_sources():
    """(path, text) of every template."""
    return [(path, path.read_text()) for path in sorted(TEMPLATES.rglob("*.html"))]


def hx_triggers() -> list[tuple[str, str]]:
    """(template, value) of every hx-trigger in the templates, in either syntax."""
    return [(str(path.relative_to(TEMPLATES)), match[2])
            for path, text in template_sources() for match in HX_TRIGGER.finditer(text)]


def trigger_specs(value: str) -> list[str]:
    """Split an hx-trigger value at its top-level commas, as htmx reads it.

    Commas inside ``target:(a, b)`` or a filter's brackets do not separate triggers.
    """
    specs, depth, current = [], 0, ""
    for char in value:
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            specs.append(current)
            current = ""
        else:
            current += char
    return [*specs, current]


def has_filter(value: str) -> bool:
    """Whether any trigger of an hx-trigger value carries an (evaluated) filter."""
    return any(TRIGGER_FILTER.search(spec) for spec in trigger_specs(value))


def htmx_eval_uses() -> list[str]:
    """Templates (and what) that would make htmx evaluate strings."""
    uses = [f'{name}: hx-trigger="{value}"' for name, value in hx_triggers() if has_filter(value)]
    for path, text in template_sources():
        uses += [f"{path.relative_to(TEMPLATES)}: {m}" for m in EVAL_ATTRIBUTES.findall(text)]
    return uses


def htmx_config() -> dict:
    """The htmx-config meta of base.html."""
    text = (TEMPLATES / "base.html").read_text()
    return json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", text)[1])


@pytest.mark.parametrize("value", [
    "keyup[key=='Escape']", "change, click[ctrlKey]", "every 1s [ready()]", "every 1s[x]",
    "curate:escape, keyup[a, b]"])
def test_the_filter_finder_finds_filters(value):
    assert has_filter(value)


@pytest.mark.parametrize("value", [
    "change, input changed delay:300ms from:input[type=number]",
    "change target:(select, input[type=number]), submit",
    "input changed delay:150ms, change target:input[type=checkbox], submit",
    "curate:row-click", "every 1s", "games-changed from:body, budget-changed from:body"])
def test_the_filter_finder_leaves_selectors_alone(value):
    assert not has_filter(value)


def test_the_finder_reads_both_trigger_syntaxes():
    values = {value for _, value in hx_triggers()}
    assert "every 1s" in values  # hx-trigger="…" attributes
    assert "input changed delay:300ms, search" in values  # 'hx-trigger': '…' in Jinja dicts
    assert len(values) > 20


def test_nothing_is_evaluated_so_the_policy_allows_no_eval():
    assert not htmx_eval_uses(), (
        "htmx would evaluate these with Function(), which the policy refuses; use a curate: "
        "event from app.js or a target: modifier instead:\n" + "\n".join(htmx_eval_uses()))
    assert "'unsafe-eval'" not in SCRIPT_SRC.split()
    assert htmx_config()["allowEval"] is False  # a filter left over fails loudly


def test_every_curate_event_a_template_listens_for_is_sent_by_app_js():
    listened = {event for _, value in hx_triggers() for event in CURATE_EVENT.findall(value)}
    sent = set(re.findall(r'"(curate:[\w-]+)"', APP_JS.read_text()))
    assert listened == {"curate:escape", "curate:row-click"}
    assert listened <= sent, listened - sent


def test_templates_use_no_inline_script_handler_or_style_element():
    for path, text in template_sources():
        name = path.relative_to(TEMPLATES)
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, (name, tag)  # script-src 'self': inline code is refused
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", text), name  # nor on*= handlers
        assert "javascript:" not in text, name
        assert "<style" not in text, name  # style-src 'self': only style= attributes


# --- Behind a reverse proxy: X-Forwarded-* trusted only when configured -----------------------

CLIENT, OTHER_CLIENT, FORGED = "203.0.113.7", "203.0.113.8", "198.51.100.1"


def failed_logins(client, forwarded_for: str, times: int = 1) -> list[int]:
    """The statuses of ``times`` failed logins sent with this X-Forwarded-For header."""
    return [client.post("/login", data={"username": "nobody", "password": "bad"},
                        headers={"X-Forwarded-For": forwarded_for}).status_code
            for _ in range(times)]


@pytest.fixture
def throttled_config(app_config):
    """Three failed logins a minute per client address."""
    app_config["LOGIN_RATE_LIMIT"] = "3 per minute"
    return app_config


def test_behind_a_proxy_each_client_has_its_own_login_throttle(throttled_config, request):
    throttled_config["PROXY_FIX_X_FOR"] = 1  # one proxy, which appends the client's address
    app = request.getfixturevalue("app")
    assert failed_logins(app.test_client(), CLIENT, times=4) == [401, 401, 401, 429]
    # Another client behind the same proxy (same socket address) is not locked out.
    assert failed_logins(app.test_client(), OTHER_CLIENT) == [401]
    # A value forged in front of the proxy's does not free the throttled client.
    assert failed_logins(app.test_client(), f"{FORGED}, {CLIENT}") == [429]


def test_without_a_proxy_a_forged_forwarded_for_does_not_dodge_the_throttle(
        throttled_config, client):
    statuses = [failed_logins(client, f"203.0.113.{n}")[0] for n in range(1, 5)]
    assert statuses == [401, 401, 401, 429]


def seen_by_the_app(app, auth, client) -> dict:
    """What a view sees of the client, the scheme and the host, through a proxy's headers."""
    from flask import request, url_for

    @app.route("/test-proxy-probe")
    def probe():
        return {"addr": request.remote_addr, "secure": request.is_secure,
                "login": url_for("auth.login", _external=True)}

    auth.login("staff")
    return client.get("/test-proxy-probe", headers={
        "X-Forwarded-For": f"{FORGED}, {CLIENT}", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "curate.example.org"}).get_json()


def test_behind_a_proxy_views_see_the_client_and_https(app_config, request):
    app_config.update(PROXY_FIX_X_FOR=1, PROXY_FIX_X_PROTO=1, PROXY_FIX_X_HOST=1)
    app, auth, client = (request.getfixturevalue(name) for name in ("app", "auth", "client"))
    assert seen_by_the_app(app, auth, client) == {
        "addr": CLIENT, "secure": True, "login": "https://curate.example.org/login"}


def test_without_a_proxy_the_forwarded_headers_are_ignored(app, auth, client):
    assert app.config["PROXY_FIX_X_FOR"] == 0  # the default
    assert seen_by_the_app(app, auth, client) == {
        "addr": "127.0.0.1", "secure": False, "login": "http://localhost/login"}


def test_proxy_counts_come_from_the_environment_as_whole_numbers():
    from webapp.config import ConfigError, from_environment, validate

    assert from_environment({"PROXY_FIX_X_FOR": "2", "PROXY_FIX_X_PROTO": "1"}) == {
        "PROXY_FIX_X_FOR": 2, "PROXY_FIX_X_PROTO": 1}
    for bad in ("-1", "one", "1.5"):
        with pytest.raises(ConfigError, match="PROXY_FIX_X_HOST must be a whole number"):
            from_environment({"PROXY_FIX_X_HOST": bad})
    settings = {"JOBS_BACKEND": "thread", "PROXY_FIX_X_FOR": 0, "PROXY_FIX_X_PROTO": 0,
                "PROXY_FIX_X_HOST": 0}
    validate(settings)
    with pytest.raises(ConfigError, match="PROXY_FIX_X_FOR"):
        validate({**settings, "PROXY_FIX_X_FOR": True})
