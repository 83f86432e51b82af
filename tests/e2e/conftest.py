"""Browser tier: a live Curate server, driven by Playwright on Debian's chromium.

Two topologies, chosen by ``E2E_TOPOLOGY``:

- ``thread`` (default): the app in a werkzeug server thread of the test process, jobs in a
  thread, on SQLite or ``DATABASE_URL``;
- ``scaleout``: the deployment of docs/deploy.md as real processes, started from the project's
  ``Procfile`` by honcho: 2 gunicorn workers and 1 RQ worker, on a fresh PostgreSQL database
  (``DATABASE_URL`` must point at a PostgreSQL server) and Redis (``REDIS_URL``, default the
  local one), with models and uploads in folders every process shares.

The test process keeps an app of its own on the same database for setting up rows. Without
chromium, PostgreSQL or Redis the tier is skipped with a loud message; with ``CI=true`` it fails
instead. Screenshots go to a temporary folder, or to ``docs/screenshots/`` with
``UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
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
from webapp.config import ENV_KEYS
from webapp.extensions import db
from webapp.registry import ModelVersion

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
TOPOLOGY = os.environ.get("E2E_TOPOLOGY", "thread")
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


class ScaledOut:
    """The Procfile's processes (gunicorn web workers, an RQ worker) under honcho.

    ``settings`` are the app's configuration as environment variables: the processes see only
    those (plus PATH and the like), as on a real host.
    """

    def __init__(self, settings: dict[str, str], log_path: Path):
        self.settings, self.log_path = settings, log_path
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self) -> ScaledOut:
        """Start every process and wait until the web workers answer /healthz."""
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        env.update(self.settings, WEB_CONCURRENCY="2", PORT=str(self.port))
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [str(PROJECT_ROOT / ".venv" / "bin" / "honcho"), "--no-colour", "-e", os.devnull,
             "-f", str(PROJECT_ROOT / "Procfile"), "start", "-p", str(self.port)],
            cwd=PROJECT_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while not self._healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the scaled-out processes did not start:\n{self.output()}",
                            pytrace=False)
            time.sleep(0.2)
        return self

    def restart_web_workers(self) -> None:
        """Replace the web workers by fresh ones (gunicorn's graceful HUP) and wait for them.

        A worker keeps serving the model it holds when the registry no longer names an active
        version (a blip must not take predictions down). Tests delete every row between them,
        so a test that expects "no model yet" needs workers that never held one.
        """
        master = self._gunicorn_master()
        old = set(self._children(master))
        os.kill(master, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while True:
            current = set(self._children(master))
            if len(current) >= 2 and not current & old and self._healthy():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the web workers did not restart:\n{self.output()}", pytrace=False)
            time.sleep(0.1)

    def _gunicorn_master(self) -> int:
        """The pid of the gunicorn master among honcho's processes (not the shell running it)."""
        processes = self._session()
        gunicorns = {pid for pid, (_, command) in processes.items()
                     if "bin/gunicorn" in command and not command.startswith("/bin/sh")}
        for pid in gunicorns:
            if processes[pid][0] not in gunicorns:
                return pid
        raise AssertionError("no gunicorn master among the scaled-out processes")

    def _children(self, parent: int) -> list[int]:
        return [pid for pid, (ppid, _) in self._session().items() if ppid == parent]

    def _session(self) -> dict[int, tuple[int, str]]:
        """pid -> (parent pid, command line) of honcho's descendants (it may regroup them)."""
        table = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            table[int(entry.name)] = (parent, command)
        found, frontier = {}, [self._process.pid]
        while frontier:
            parent = frontier.pop()
            for pid, (ppid, command) in table.items():
                if ppid == parent and pid not in found:
                    found[pid] = (ppid, command)
                    frontier.append(pid)
        return found

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def output(self) -> str:
        """The last lines the processes printed (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop honcho, which stops every process it started."""
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._log.close()


def require_scaleout_services() -> str:
    """The Redis URL of the scale-out tier; skip (fail under CI) when a service is missing."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres", "postgresql")):
        skip_or_fail("E2E_TOPOLOGY=scaleout needs DATABASE_URL pointing at a PostgreSQL server")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except RedisError as error:
        skip_or_fail(f"E2E_TOPOLOGY=scaleout needs Redis at {redis_url}: {error}")
    return redis_url


def scaleout_settings(config: dict, tmp_dir: Path, redis_url: str) -> dict[str, str]:
    """The scale-out configuration, shared by the processes and the test process's app."""
    shared = tmp_dir / "shared"  # one folder all processes see, as a shared volume would be
    config.update(
        JOBS_BACKEND="rq", REDIS_URL=redis_url,
        RQ_QUEUE=f"curate-e2e-{uuid.uuid4().hex[:8]}",  # never another run's leftover jobs
        MODEL_DIR=str(shared / "models"), GIFTS_IMPORT_FOLDER=str(shared / "imports"),
        COVER_FOLDER=str(shared / "covers"))
    return {
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": config["SECRET_KEY"],
        "JOBS_BACKEND": "rq", "REDIS_URL": redis_url, "RQ_QUEUE": config["RQ_QUEUE"],
        "MODEL_DIR": config["MODEL_DIR"], "GIFTS_IMPORT_FOLDER": config["GIFTS_IMPORT_FOLDER"],
        "COVER_FOLDER": config["COVER_FOLDER"], "LOGIN_RATE_LIMIT": config["LOGIN_RATE_LIMIT"],
        # Tests act, then look at once: every worker checks the model and catalogue per request.
        "MODEL_CHECK_SECONDS": str(config["MODEL_CHECK_SECONDS"]),
        "GIFTS_CATALOGUE_SECONDS": str(config["GIFTS_CATALOGUE_SECONDS"]),
    }


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    """The app of the test process, on the tier's migrated database, with CSRF on.

    In the thread topology it is also the app under test; in the scale-out one it only sets up
    rows, and ``live_app.extensions["scaleout"]`` holds the settings the processes run with.
    """
    tmp_dir = tmp_path_factory.mktemp("e2e")
    redis_url = require_scaleout_services() if TOPOLOGY == "scaleout" else None
    with fresh_database(tmp_dir) as url:
        upgrade_database(url, tmp_dir)
        config = base_test_config(url, tmp_dir)
        config["TESTING"] = False  # errors render as pages, as users see them
        settings = scaleout_settings(config, tmp_dir, redis_url) if redis_url else None
        app = create_app(config)
        if settings:
            app.extensions["scaleout"] = settings
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="session")
def live_server(live_app, tmp_path_factory):
    """A running server for the whole browser session: a thread, or the Procfile's processes."""
    settings = live_app.extensions.get("scaleout")
    if settings:
        log_path = tmp_path_factory.mktemp("scaleout") / "processes.log"
        server = ScaledOut(settings, log_path).start()
    else:
        server = LiveServer(live_app).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_rows(live_app, live_server):
    """Each browser test starts with an empty database and one account per role."""
    # Holders outlive tables: forget models loaded for an earlier test's (now deleted) versions.
    live_app.extensions.get("curate_holders", {}).clear()
    with live_app.app_context():
        if isinstance(live_server, ScaledOut) and db.session.scalar(
                select(func.count()).select_from(ModelVersion)):
            live_server.restart_web_workers()  # the same, for the holders of other processes
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


# What chromium says when the policy refuses something, and what htmx says when it would have
# evaluated a string (a trigger filter or a js: value) but allowEval is false.
REFUSALS = ("Content Security Policy", "htmx:evalDisallowedError")


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) per test, with base URL and a sane timeout.

    Every journey doubles as a Content Security Policy check: the test fails at teardown if
    the browser reported anything the policy refused, or htmx refused to evaluate a string.
    """
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    refused = []
    page.on("console", lambda message: refused.append(message.text)
            if message.type == "error" and any(sign in message.text for sign in REFUSALS)
            else None)
    yield page
    context.close()
    assert not refused, f"the Content Security Policy refused: {sorted(set(refused))}"


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
