"""A database outage answers 503 with ``Retry-After`` (pages, fragments, API), never a 500.

The outage is simulated at the DBAPI boundary: the dialect's execute/commit raise the driver's
own ``OperationalError`` (what psycopg or sqlite3 raise when the server goes away), so
SQLAlchemy wraps it exactly as it would in production.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.pizzeria.models import Night

EXECUTE_HOOKS = ("do_execute", "do_execute_no_params", "do_executemany")


class Outage:
    """Makes the app's database fail on demand, and records the statements it refused."""

    def __init__(self, app, monkeypatch):
        with app.app_context():
            self.dialect = db.engine.dialect
        self._monkeypatch = monkeypatch
        self.refused: list[str] = []
        self.down = False
        #: The driver's exception class to raise (both are DBAPIErrors of connection loss).
        self.error_class = "OperationalError"

    def _error(self):
        error_class = getattr(self.dialect.loaded_dbapi, self.error_class)
        return error_class("server closed the connection unexpectedly")

    def start(self, when=lambda statement: True) -> None:
        """Go down at the first statement for which ``when(statement)`` is true, and stay down.

        Staying down matters: after the failure, the error page must not need the database
        (e.g. to reload the logged-in user that the rollback expired), and the ROLLBACK fails
        too, as it does on a connection that is gone.
        """
        for name in EXECUTE_HOOKS:
            original = getattr(self.dialect, name)

            def failing(cursor, statement, *args, _original=original, **kwargs):
                if self.down or when(statement):
                    self.down = True
                    self.refused.append(statement)
                    raise self._error()
                return _original(cursor, statement, *args, **kwargs)

            self._monkeypatch.setattr(self.dialect, name, failing)
        original_rollback = self.dialect.do_rollback

        def failing_rollback(connection):
            if self.down:
                self.refused.append("ROLLBACK")
                raise self._error()
            return original_rollback(connection)

        self._monkeypatch.setattr(self.dialect, "do_rollback", failing_rollback)

    def fail_commits(self) -> None:
        """Let statements run but fail the COMMIT, as when the server dies mid-request."""
        def failing(_connection):
            self.refused.append("COMMIT")
            raise self._error()

        self._monkeypatch.setattr(self.dialect, "do_commit", failing)

    def stop(self) -> None:
        """The database is back."""
        self._monkeypatch.undo()
        self.down = False


@pytest.fixture
def outage(app, monkeypatch):
    """Switch the database off and on."""
    return Outage(app, monkeypatch)


def night_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Night))


def assert_unavailable_page(response):
    assert response.status_code == 503, response.status_code
    assert response.headers["Retry-After"] == "5"
    assert b"database is unavailable" in response.data


def test_a_failing_page_query_gives_a_503_page(client, auth, outage, caplog):
    auth.login("host")
    outage.start(when=lambda statement: "pizzeria_night" in statement)
    response = client.get("/pizzeria/nights")
    assert_unavailable_page(response)
    assert b"<html" in response.data and b"503" in response.data
    assert "pizzeria_night" in outage.refused[0]  # the page's query, not the user_loader's
    logged = [r for r in caplog.records if r.getMessage().startswith("Database unavailable")]
    assert logged and logged[0].levelname == "ERROR" and logged[0].exc_info


def test_a_failing_fragment_goes_to_the_flash_region(client, htmx_client, auth, outage):
    auth.login("host")
    outage.start(when=lambda statement: "pizzeria_night" in statement)
    response = htmx_client.get("/pizzeria/nights")
    assert_unavailable_page(response)
    assert b"<html" not in response.data
    assert response.headers["HX-Retarget"] == "#flash"


@pytest.mark.parametrize("error_class", ["OperationalError", "InterfaceError"])
def test_the_login_check_failing_to_load_the_user_gives_a_503(client, auth, outage, error_class):
    auth.login("host")
    outage.error_class = error_class
    outage.start()  # everything fails: the first statement is the user_loader's
    response = client.get("/pizzeria/nights")
    assert_unavailable_page(response)
    assert "users" in outage.refused[0]


def test_the_api_answers_503_json(app, client, auth, outage):
    from tests.web.test_access_matrix import bearer_token

    token = bearer_token(app, auth, "host")
    outage.start()
    response = client.post("/api/v1/pizzeria/predictions", json={"reservations": 40},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "database is unavailable" in response.get_json()["error"]["message"]
    assert outage.refused  # the token lookup reached the (failing) database


@pytest.mark.parametrize("htmx", [False, True])
def test_a_post_whose_commit_fails_writes_nothing(app, client, auth, outage, htmx):
    auth.login("host")
    outage.fail_commits()
    response = client.post("/pizzeria/nights",
                           data={"date": "2024-05-03", "reservations": 40, "doughs": 30},
                           headers={"HX-Request": "true"} if htmx else {})
    assert_unavailable_page(response)
    assert outage.refused == ["COMMIT"]  # the INSERT ran; only the commit failed
    outage.stop()
    assert night_count(app) == 0


def test_a_rollback_on_the_dead_connection_is_tolerated(client, auth, outage):
    auth.login("host")
    outage.start()
    assert_unavailable_page(client.get("/pizzeria/nights"))
    assert "ROLLBACK" in outage.refused  # the handler's rollback failed and was survived


def test_outside_testing_mode_it_is_a_503_too(app_config, monkeypatch):
    """Production does not propagate exceptions; the outage must not fall through to a 500."""
    from tests.support import TEST_PASSWORD, db_engine_dispose, make_user
    from webapp import create_app

    app_config["TESTING"] = False
    app = create_app(app_config)
    with app.app_context():
        make_user("offline-host", "host")
    client = app.test_client()
    client.post("/login", data={"username": "offline-host", "password": TEST_PASSWORD})
    outage = Outage(app, monkeypatch)
    outage.start()
    response = client.get("/pizzeria/nights")
    outage.stop()
    with app.app_context():
        db_engine_dispose()
    assert_unavailable_page(response)


def test_the_next_request_works_once_the_database_is_back(app, client, auth, outage):
    auth.login("host")
    outage.start()
    assert client.get("/pizzeria/nights").status_code == 503
    outage.stop()
    response = client.get("/pizzeria/nights")
    assert response.status_code == 200  # still logged in, and the pool recovered
    response = client.post("/pizzeria/nights",
                           data={"date": "2024-05-03", "reservations": 40, "doughs": 30})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Night.date)) == date(2024, 5, 3)


def test_a_pool_with_every_connection_busy_gives_a_503(app, client, auth, monkeypatch):
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    auth.login("host")
    with app.app_context():
        pool = db.engine.pool

    def busy(*args, **kwargs):
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

    monkeypatch.setattr(pool, "connect", busy)
    assert_unavailable_page(client.get("/pizzeria/nights"))
    monkeypatch.undo()
    assert client.get("/pizzeria/nights").status_code == 200
