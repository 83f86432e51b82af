"""One-row settings tables, created race-free on first use."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from webapp.extensions import db


def singleton_row(model, defaults: dict):
    """The row with id 1 of ``model``, inserted with ``defaults`` when missing.

    A request and a job thread (or two workers) may ask at once: INSERT … ON CONFLICT DO
    NOTHING lets the slower one find the row instead of failing on the primary key.
    """
    row = db.session.get(model, 1)
    if row is None:
        insert = postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
        db.session.execute(insert(model.__table__).values(id=1, **defaults)
                           .on_conflict_do_nothing(index_elements=["id"]))
        db.session.commit()
        row = db.session.get(model, 1)
    return row
