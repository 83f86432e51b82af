"""Configuration layering, the secret key rule, and start-up validation."""

from __future__ import annotations

import pytest

from webapp import create_app
from webapp.config import ConfigError, ensure_secret_key, from_environment


def test_environment_overrides_defaults():
    found = from_environment({"DATABASE_URL": "postgres://u@h/db", "JOBS_BACKEND": "rq",
                              "MODEL_DIR": "/m", "REDIS_URL": "redis://x"})
    assert found["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    assert found["JOBS_BACKEND"] == "rq" and found["MODEL_DIR"] == "/m"


def test_scale_out_settings_come_from_the_environment():
    found = from_environment({"MODEL_CHECK_SECONDS": "0.5", "GIFTS_CATALOGUE_SECONDS": "0",
                              "GIFTS_IMPORT_FOLDER": "/shared/imports",
                              "COVER_FOLDER": "/shared/covers"})
    assert found["MODEL_CHECK_SECONDS"] == 0.5 and found["GIFTS_CATALOGUE_SECONDS"] == 0.0
    assert found["GIFTS_IMPORT_FOLDER"] == "/shared/imports"
    assert found["COVER_FOLDER"] == "/shared/covers"


def test_a_check_interval_that_is_not_a_number_is_refused():
    with pytest.raises(ConfigError, match="MODEL_CHECK_SECONDS must be a number"):
        from_environment({"MODEL_CHECK_SECONDS": "soon"})


def test_production_refuses_to_start_without_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        ensure_secret_key({"ENV": "production"}, str(tmp_path))


def test_development_generates_and_keeps_a_secret_key(tmp_path):
    first = ensure_secret_key({"ENV": "development"}, str(tmp_path))
    assert len(first) >= 32
    assert ensure_secret_key({"ENV": "development"}, str(tmp_path)) == first


def test_unknown_jobs_backend_is_refused(app_config):
    app_config["JOBS_BACKEND"] = "carrier-pigeon"
    with pytest.raises(ConfigError, match="JOBS_BACKEND must be one of"):
        create_app(app_config)


def test_production_cookies_are_secure(app_config):
    app_config["ENV"] = "production"
    app = create_app(app_config)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
