"""Error pages, the 500 rollback, and /healthz."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.support import base_test_config, db_engine_dispose
from webapp import create_app
from webapp.auth.models import User
from webapp.extensions import db


def test_unknown_url_is_a_404_page(client, auth):
    auth.login("host")
    response = client.get("/definitely/not/here")
    assert response.status_code == 404
    assert b"<html" in response.data and b"Not found" in response.data


def test_500_rolls_back_and_shows_a_page(app_config):
    app_config["TESTING"] = False  # let the error handler run instead of propagating
    app = create_app(app_config)

    @app.route("/boom")
    def boom():
        db.session.add(User(username="half-written", password_hash="x", role="staff"))
        db.session.flush()
        raise RuntimeError("simulated failure")

    app.before_request_funcs[None].clear()  # reach /boom without logging in
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert b"Nothing was saved" in response.data
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0
        db_engine_dispose()


def test_healthz_reports_database_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


def test_healthz_reports_503_when_the_database_is_unreachable(tmp_path):
    config = base_test_config(f"sqlite:///{tmp_path}/missing/dir/x.sqlite3", tmp_path)
    app = create_app(config)
    response = app.test_client().get("/healthz")
    with app.app_context():
        db_engine_dispose()
    assert response.status_code == 503
    assert response.json["status"] == "error"
