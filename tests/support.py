"""Helpers shared by the request and browser tiers: databases, users, and CI strictness."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from webapp.config import normalise_database_url

#: Password given to every test account; tests log in with it.
TEST_PASSWORD = "correct horse battery"


def running_in_ci() -> bool:
    """True under CI, where a missing browser or database must fail instead of skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip loudly on a developer machine; fail under CI (a tier must never skip there)."""
    if running_in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    print(f"\n*** SKIPPING: {reason} ***\n")
    pytest.skip(reason)


@contextmanager
def fresh_database(tmp_dir: Path):
    """Yield the URL of a brand-new, empty database, and drop it afterwards.

    With ``DATABASE_URL`` pointing at PostgreSQL, a database with a random name is created on
    that server; otherwise a SQLite file in ``tmp_dir`` is used.
    """
    base = os.environ.get("DATABASE_URL")
    if not base or not base.startswith(("postgres", "postgresql")):
        yield f"sqlite:///{tmp_dir / 'test.sqlite3'}"
        return
    import psycopg

    url = make_url(normalise_database_url(base))
    name = f"curate_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def upgrade_database(url: str, tmp_dir: Path) -> None:
    """Run the migrations on ``url`` (the same path a deployment takes)."""
    from flask_migrate import upgrade

    from webapp import create_app

    app = create_app(base_test_config(url, tmp_dir))
    with app.app_context():
        upgrade()
        db_engine_dispose()


def db_engine_dispose() -> None:
    """Close the current app's pooled connections (call inside an app context)."""
    from webapp.extensions import db

    db.session.remove()
    db.engine.dispose()


def base_test_config(url: str, tmp_dir: Path) -> dict:
    """The config every test app starts from."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": url,
        "MODEL_DIR": str(tmp_dir / "models"),
        "JOBS_BACKEND": "thread",
        "LOGIN_RATE_LIMIT": "1000 per minute",
        "MODEL_CHECK_SECONDS": 0.0,  # tests see a new active version on the next request
        "GIFTS_CATALOGUE_SECONDS": 0.0,  # and every change to the gift catalogue
    }


def clear_tables(db) -> None:
    """Delete every row, children first, so each test starts from an empty database."""
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


def make_user(username: str, role: str):
    """Create a user with ``TEST_PASSWORD`` (call inside an app context)."""
    from webapp.auth.service import create_user

    user, _ = create_user(username, role, TEST_PASSWORD)
    return user


def add_nights(rows) -> None:
    """Insert pizzeria nights given as (date, reservations, doughs) (inside an app context)."""
    from webapp.extensions import db
    from webapp.pizzeria.models import Night

    db.session.add_all(Night(date=d, reservations=r, doughs=p) for d, r, p in rows)
    db.session.commit()


def demo_year_nights():
    """The demo's week + generated year, as (date, reservations, doughs)."""
    from webapp.demo.pizzeria import demo_nights

    return demo_nights()


def wait_for_job(job_id: str, timeout: float = 30.0):
    """Poll the job table until the job is done (inside an app context); return the job."""
    import time

    from webapp import jobs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(job_id)
        if job.done:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


@contextmanager
def counting_statements(app):
    """Yield the list of SQL statements the app runs inside the block (query budgets)."""
    from sqlalchemy import event

    from webapp.extensions import db

    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def table_of(statement: str) -> str:
    """The table a SELECT reads (after FROM), or the start of any other statement."""
    if "FROM" in statement:
        return statement.split("FROM")[-1].split()[0]
    return statement.split("(")[0].strip()


def tear_down_app(app) -> None:
    """Let a running job finish, then empty the tables and close the app's pooled connections
    (each test builds its own engine on the session database)."""
    from webapp.extensions import db

    backend = app.extensions.get("curate_jobs", {}).get("backend")
    if backend is not None:
        backend.shutdown()
    with app.app_context():
        db.session.remove()
        clear_tables(db)
        db.engine.dispose()
