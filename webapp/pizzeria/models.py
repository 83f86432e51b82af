"""Nights: how many reservations the pizzeria had and how many doughs it used."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Mapped, mapped_column

from webapp.auth.models import utcnow
from webapp.extensions import db


class Night(db.Model):
    """One night. ``doughs`` is empty until the point of sale reports it."""

    __tablename__ = "pizzeria_night"

    id: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[dt.date] = mapped_column(unique=True)
    reservations: Mapped[int | None] = mapped_column()
    doughs: Mapped[int | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<Night {self.date} res={self.reservations} doughs={self.doughs}>"


def night_rows():
    """Every night as ``(date, reservations, doughs)`` tuples, oldest first, in chunks."""
    query = select(Night.date, Night.reservations, Night.doughs).order_by(Night.date)
    return db.session.execute(query.execution_options(yield_per=5000))


def night_counts() -> dict:
    """How many nights there are, and how many have a dough count."""
    total, with_doughs = db.session.execute(
        select(func.count(Night.id), func.count(Night.doughs))
    ).one()
    return {"total": total, "with_doughs": with_doughs}
