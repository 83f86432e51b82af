"""Request tier fixtures (flaskr style): ``app``, ``client``, ``htmx_client``, ``runner``, ``auth``.

The database is created once per session (fresh SQLite file, or a fresh PostgreSQL database when
``DATABASE_URL`` is set), migrated with Alembic, and emptied after every test.
"""

from __future__ import annotations

import pytest

from tests.support import (
    TEST_PASSWORD,
    base_test_config,
    fresh_database,
    make_user,
    tear_down_app,
    upgrade_database,
)
from webapp import create_app


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A migrated, empty database for this test session."""
    tmp_dir = tmp_path_factory.mktemp("db")
    with fresh_database(tmp_dir) as url:
        upgrade_database(url, tmp_dir)
        yield url


@pytest.fixture
def app_config(database_url, tmp_path):
    """The test app's config; tests may change it before ``app`` is built."""
    config = base_test_config(database_url, tmp_path)
    config["WTF_CSRF_ENABLED"] = False
    return config


@pytest.fixture
def app(app_config):
    """A Curate app on the session database, emptied after the test."""
    app = create_app(app_config)
    yield app
    tear_down_app(app)


@pytest.fixture
def client(app):
    """A test client."""
    return app.test_client()


class HtmxClient:
    """Wraps a test client so every request carries ``HX-Request: true``, sharing its cookies."""

    def __init__(self, client):
        self._client = client

    def open(self, *args, headers=None, **kwargs):
        """Send a request as htmx would; extra headers (e.g. ``HX-Boosted``) are merged."""
        return self._client.open(*args, headers={"HX-Request": "true", **(headers or {})}, **kwargs)

    def get(self, *args, **kwargs):
        """GET as htmx."""
        return self.open(*args, method="GET", **kwargs)

    def post(self, *args, **kwargs):
        """POST as htmx."""
        return self.open(*args, method="POST", **kwargs)


@pytest.fixture
def htmx_client(client):
    """The ``client``, with its requests made as htmx makes them (same session cookies)."""
    return HtmxClient(client)


@pytest.fixture
def runner(app):
    """A CLI runner for ``flask`` commands."""
    return app.test_cli_runner()


class AuthActions:
    """Log in and out as a user of a given role, creating the user on first use."""

    def __init__(self, app, client):
        self._app = app
        self._client = client

    def ensure_user(self, role: str, username: str | None = None) -> str:
        """Create the account if needed and return its username."""
        from webapp.auth.service import find_user

        username = username or f"test-{role}"
        with self._app.app_context():
            if find_user(username) is None:
                make_user(username, role)
        return username

    def login(self, role: str = "admin", username: str | None = None):
        """Log in as ``role``; returns the login response."""
        username = self.ensure_user(role, username)
        return self._client.post("/login", data={"username": username, "password": TEST_PASSWORD})

    def logout(self):
        """Log out."""
        return self._client.post("/logout")


@pytest.fixture
def auth(app, client):
    """Login helper bound to ``client``."""
    return AuthActions(app, client)
