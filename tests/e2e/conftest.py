"""Browser tier: a live Curate server in a thread, driven by Playwright on Debian's chromium.

Without chromium the tier is skipped with a loud message; with ``CI=true`` it fails instead.
Screenshots go to a temporary folder, or to ``docs/screenshots/`` with ``UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.support import (
    TEST_PASSWORD,
    base_test_config,
    clear_tables,
    fresh_database,
    make_user,
    skip_or_fail,
    upgrade_database,
)
from webapp import PROJECT_ROOT, create_app
from webapp.extensions import db

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


class LiveServer:
    """A werkzeug server for ``app`` on a free loopback port, in a daemon thread."""

    def __init__(self, app):
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.shutdown()
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    """The app under test, on its own migrated database, with CSRF on as in production."""
    tmp_dir = tmp_path_factory.mktemp("e2e")
    with fresh_database(tmp_dir) as url:
        upgrade_database(url, tmp_dir)
        config = base_test_config(url, tmp_dir)
        config["TESTING"] = False  # errors render as pages, as users see them
        app = create_app(config)
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="session")
def live_server(live_app):
    """A running server for the whole browser session."""
    server = LiveServer(live_app).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_rows(live_app):
    """Each browser test starts with an empty database and one account per role."""
    # Holders outlive tables: forget models loaded for an earlier test's (now deleted) versions.
    live_app.extensions.get("curate_holders", {}).clear()
    with live_app.app_context():
        clear_tables(db)
        for role in ("admin", "staff", "host"):
            make_user(role, role)
        db.session.remove()
    yield


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium under Playwright; skipped loudly (failed under CI) when missing."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        skip_or_fail(f"chromium not found at {CHROMIUM}: install it with `apt-get install -y "
                     "chromium` to run the browser tier")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) per test, with base URL and a sane timeout."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where screenshots go: docs/screenshots with UPDATE_SCREENSHOTS=1, else a temp folder."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        target = PROJECT_ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path_factory.mktemp("screenshots")


def log_in(page, username: str, password: str = TEST_PASSWORD) -> None:
    """Fill and submit the login form."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
