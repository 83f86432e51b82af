"""Nights: how many reservations the pizzeria had and how many doughs it used."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, false, func, select, text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.singletons import singleton_row


class Night(db.Model):
    """One night. ``doughs`` is empty until the point of sale reports it."""

    __tablename__ = "pizzeria_night"

    id: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[dt.date] = mapped_column(unique=True)
    reservations: Mapped[int | None] = mapped_column()
    doughs: Mapped[int | None] = mapped_column()
    temperature: Mapped[float | None] = mapped_column()  # °C, optional
    holiday: Mapped[bool] = mapped_column(default=False, server_default=false())
    event_note: Mapped[str | None] = mapped_column(String(200))
    #: Staff can leave out a single odd night (a private party, a power cut) from training.
    excluded: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: Optimistic locking: every ORM UPDATE checks and bumps it, so two staff editing the same
    #: night cannot silently overwrite each other (the second save raises StaleDataError).
    version: Mapped[int] = mapped_column(server_default=text("1"))

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<Night {self.date} res={self.reservations} doughs={self.doughs}>"


class PizzeriaSettings(db.Model):
    """The pizzeria's training choices (one row)."""

    __tablename__ = "pizzeria_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Weekdays left out of training, Monday=0, comma-separated; Friday and Saturday by default.
    excluded_weekdays: Mapped[str] = mapped_column(String(20), default="4,5")
    #: Point-of-sale item names that count as one dough each, comma-separated.
    dough_items: Mapped[str] = mapped_column(String(200), default="pizza")

    @property
    def weekday_set(self) -> frozenset[int]:
        """The excluded weekdays as integers."""
        return frozenset(int(day) for day in self.excluded_weekdays.split(",") if day.strip())

    @property
    def dough_item_set(self) -> frozenset[str]:
        """The dough item names, lower-cased."""
        return frozenset(item.strip().lower() for item in self.dough_items.split(",")
                         if item.strip())


DEFAULT_SETTINGS = {"excluded_weekdays": "4,5", "dough_items": "pizza"}


def pizzeria_settings() -> PizzeriaSettings:
    """The settings row, created with the defaults on first use (race-free)."""
    return singleton_row(PizzeriaSettings, DEFAULT_SETTINGS)


def night_rows():
    """Every night as tuples for training, oldest first, read in chunks.

    Columns: date, reservations, doughs, temperature, holiday, excluded.
    """
    query = select(Night.date, Night.reservations, Night.doughs, Night.temperature,
                   Night.holiday, Night.excluded).order_by(Night.date)
    return db.session.execute(query.execution_options(yield_per=5000))


def night_counts() -> dict:
    """How many nights there are, and how many have a dough count."""
    total, with_doughs = db.session.execute(
        select(func.count(Night.id), func.count(Night.doughs))
    ).one()
    return {"total": total, "with_doughs": with_doughs}
