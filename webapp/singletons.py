"""Race-free inserts: one-row settings tables created on first use, and rows two writers may
both insert."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from webapp.extensions import db


def insert_skipping_conflicts(table, index_elements: list[str]):
    """INSERT … ON CONFLICT (``index_elements``) DO NOTHING, in the engine's own dialect.

    For writers that may race another writer of the same rows: the later one skips the rows
    the earlier one committed instead of failing on the unique constraint.
    """
    insert = postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing(index_elements=index_elements)


def singleton_row(model, defaults: dict):
    """The row with id 1 of ``model``, inserted with ``defaults`` when missing.

    A request and a job thread (or two workers) may ask at once: INSERT … ON CONFLICT DO
    NOTHING lets the slower one find the row instead of failing on the primary key.
    """
    row = db.session.get(model, 1)
    if row is None:
        db.session.execute(insert_skipping_conflicts(model.__table__, ["id"])
                           .values(id=1, **defaults))
        db.session.commit()
        row = db.session.get(model, 1)
    return row
