"""Shared data for the ml unit tier: the talk's one-week table, as literals."""

from __future__ import annotations

import datetime

import pytest

from ml.dough import Night

# pizzeria_week.csv from the reference talk, dated as the reference app's seed week
# (2023-05-22 is a Monday). Friday and Saturday have 0 reservations and are never trained on.
WEEK = [
    (datetime.date(2023, 5, 22), 12, 36),
    (datetime.date(2023, 5, 23), 20, 72),
    (datetime.date(2023, 5, 24), 18, 68),
    (datetime.date(2023, 5, 25), 30, 82),
    (datetime.date(2023, 5, 26), 0, 98),
    (datetime.date(2023, 5, 27), 0, 168),
    (datetime.date(2023, 5, 28), 24, 75),
]


@pytest.fixture
def week_nights() -> list[Night]:
    """The seven nights of the talk's week, Monday to Sunday."""
    return [Night(day, reservations, doughs) for day, reservations, doughs in WEEK]
