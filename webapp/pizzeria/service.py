"""Pizzeria queries and changes: filtered pages of nights, the training summary, upserts."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Integer, cast, extract, func, select

from webapp.extensions import db
from webapp.pizzeria.models import Night, PizzeriaSettings

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_RE = re.compile(r"[0-9]{4}-[0-9]{2}")
NIGHT_FIELDS = ("date", "reservations", "doughs", "temperature", "holiday", "event_note",
                "excluded")


def weekday_of(column):
    """SQL for the weekday of a date column, Monday=0 as in Python, on SQLite and PostgreSQL."""
    if db.engine.dialect.name == "sqlite":
        sunday_zero = cast(func.strftime("%w", column), Integer)
    else:
        sunday_zero = cast(extract("dow", column), Integer)
    return (sunday_zero + 6) % 7


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of ``YYYY-MM``; ValueError for anything else."""
    # Checked first: a year of eleven digits overflowed ``date`` (OverflowError, a 500).
    if not MONTH_RE.fullmatch(month):
        raise ValueError(f"Not a month (YYYY-MM): {month[:20]!r}")
    year, number = (int(part) for part in month.split("-"))
    return dt.date(year, number, 1), dt.date(year, number, calendar.monthrange(year, number)[1])


def nights_query(month: str | None = None, weekday: int | None = None):
    """Nights, newest first, filtered by month (``YYYY-MM``) and weekday (Monday=0)."""
    query = select(Night).order_by(Night.date.desc())
    if month:
        first, last = month_bounds(month)
        query = query.where(Night.date.between(first, last))
    if weekday is not None:
        query = query.where(weekday_of(Night.date) == weekday)
    return query


def months_with_nights() -> list[str]:
    """Every ``YYYY-MM`` that has at least one night, newest first (for the filter).

    Read from the nights themselves, not every month between the first and the last: one
    night typed as 0001-01-01 made that a list (and a select) of 120,000 months.
    """
    year, month = extract("year", Night.date), extract("month", Night.date)
    rows = db.session.execute(select(year, month).distinct()
                              .order_by(year.desc(), month.desc()))
    return [f"{int(y):04d}-{int(m):02d}" for y, m in rows]


def training_status(night: Night, settings: PizzeriaSettings) -> tuple[bool, str]:
    """Whether ``night`` trains the model, and why not when it does not."""
    if night.excluded:
        return False, "excluded by hand"
    if night.date.weekday() in settings.weekday_set:
        return False, f"{WEEKDAYS[night.date.weekday()]}s are left out"
    if night.reservations is None or night.doughs is None:
        return False, "no dough count yet" if night.doughs is None else "no reservations count"
    return True, "trains the model"


@dataclass(frozen=True)
class TrainingSummary:
    """How many nights train the model, and why the others do not."""

    total: int
    used: int
    reasons: list[tuple[str, int]]


def training_summary(settings: PizzeriaSettings) -> TrainingSummary:
    """Count nights in and out of training, by reason (read in chunks, one query)."""
    query = select(Night.date, Night.reservations, Night.doughs, Night.excluded)
    reasons: Counter[str] = Counter()
    total = 0
    for row in db.session.execute(query.execution_options(yield_per=5000)):
        total += 1
        reasons[training_status(row, settings)[1]] += 1
    used = reasons.pop("trains the model", 0)
    return TrainingSummary(total=total, used=used, reasons=reasons.most_common())


class DuplicateDate(ValueError):
    """Another night already has this date."""


def save_night(night: Night, values: dict) -> Night:
    """Apply form ``values`` to ``night`` (new or existing) and commit.

    Raises DuplicateDate when another night has the same date.
    """
    clash = db.session.scalar(select(Night.id).where(Night.date == values["date"]))
    if clash is not None and clash != night.id:
        raise DuplicateDate(f"There is already a night on {values['date']:%Y-%m-%d}.")
    for name in NIGHT_FIELDS:
        setattr(night, name, values[name])
    db.session.add(night)
    db.session.commit()
    return night


def night_values(night: Night) -> dict:
    """The editable fields of ``night`` (what an undo needs to bring it back)."""
    return {name: getattr(night, name) for name in NIGHT_FIELDS}


def update_excluded_weekdays(settings: PizzeriaSettings, weekdays: list[int]) -> None:
    """Store which weekdays are left out of training."""
    settings.excluded_weekdays = ",".join(str(day) for day in sorted(set(weekdays)))
    db.session.commit()
