"""`flask db upgrade` on an empty database must produce exactly the models' schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.support import base_test_config, fresh_database
from webapp import create_app
from webapp.extensions import db


def test_upgrade_on_empty_database_matches_models(tmp_path):
    from flask_migrate import downgrade, upgrade

    with fresh_database(tmp_path) as url:
        app = create_app(base_test_config(url, tmp_path))
        with app.app_context():
            upgrade()
            with db.engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
            assert diff == [], f"Models and migrations differ; run `flask db migrate`: {diff}"
            downgrade(revision="base")  # every migration can be undone, too
            upgrade()
            db.engine.dispose()
