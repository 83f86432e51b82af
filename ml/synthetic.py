"""Seeded ports of the reference pizzeria "year" generators.

The reference app (``Pizzeria.Migrations.Seeds.logarithmic/0`` and ``linear/0`` in
aforward-oss/empex_recommend) makes a fresh, unseeded year of nights each time it runs. These
ports keep its arithmetic and its order of random draws but take a seed, so tests and benchmarks
are repeatable. They cannot reproduce Erlang's ``:rand`` stream itself; a given seed gives the
same year on every run of this code, not the year any Elixir run produced.

:func:`generate_weekday_year` is this project's own: a year where the weekday matters, so the
multi-feature model has something to find that reservations alone cannot explain.

:func:`generate_picks` is this project's own too, and wholly synthetic: the reference app
records no history of what parties rented, so there is nothing to port. It gives the tavern's
recommender a plausible year of picks to learn from and be measured on.
"""

from __future__ import annotations

import datetime
import itertools
import math
import random
from collections.abc import Callable, Sequence

from ml.dough import Night
from ml.games import BUDGETS, DEFAULT_THRESHOLDS, GameExample, Pick, budget_of

MONTH_LENGTHS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
"""The reference's fixed month lengths: February has 28 days even in a leap year."""

MAX_RESERVATIONS = 59
"""Largest nightly reservation count the generators draw (``:rand.uniform(60) - 1``)."""


def round_half_away(x: float) -> int:
    """Round to the nearest integer, halves away from zero, like Erlang's ``round/1``.

    Python's :func:`round` sends halves to the even neighbour instead (``round(2.5) == 2``).

    Parameters
    ----------
    x : float
        A finite number.

    Returns
    -------
    int
    """
    magnitude = abs(x)
    whole = math.floor(magnitude)
    # magnitude - whole is exact in binary floating point, unlike magnitude + 0.5, which can
    # round 0.49999999999999994 up to 1.
    if magnitude - whole >= 0.5:
        whole += 1
    return int(math.copysign(whole, x)) if whole else 0


def generate_year(seed: int, year: int = 2023) -> list[Night]:
    """Generate a year of nights whose doughs grow with the logarithm of reservations.

    For each night, reservations are drawn uniformly from 0..59. When there are any,
    ``doughs = round(w * log2(reservations) + b)`` with ``w`` uniform in [9.5, 9.6) and ``b``
    uniform in [14, 16), both drawn afresh for the night.

    Parameters
    ----------
    seed : int
        Seed for :class:`random.Random`; the same seed gives the same year.
    year : int, default 2023
        Calendar year of the dates.

    Returns
    -------
    list of Night
        365 nights in date order. ``doughs`` is None on nights with no reservations, because
        the reference records no pizzas for them.
    """
    rng = random.Random(seed)

    def doughs(reservations: int) -> int:
        weight = 10 + (rng.random() * 0.1 - 0.5)
        bias = 15 + (rng.random() * 2.0 - 1.0)
        return round_half_away(weight * math.log2(reservations) + bias)

    return _year(rng, year, doughs)


def generate_linear_year(seed: int, year: int = 2023) -> list[Night]:
    """Generate a year of nights whose doughs grow linearly with reservations.

    As :func:`generate_year`, but ``doughs = round(w * reservations + b)`` with ``w`` uniform in
    [1.7, 2.3) and ``b`` uniform in [4.6, 5.4).

    Parameters
    ----------
    seed : int
        Seed for :class:`random.Random`.
    year : int, default 2023
        Calendar year of the dates.

    Returns
    -------
    list of Night
        365 nights in date order; ``doughs`` is None on nights with no reservations.
    """
    rng = random.Random(seed)

    def doughs(reservations: int) -> int:
        weight = 2 + (rng.random() * 0.6 - 0.3)
        bias = 5 + (rng.random() * 0.8 - 0.4)
        return round_half_away(weight * reservations + bias)

    return _year(rng, year, doughs)


WEEKDAY_BONUS = {0: 15, 6: 15}
"""Extra doughs :func:`generate_weekday_year` adds on Mondays and Sundays (Monday is 0)."""


def generate_weekday_year(
    seed: int, year: int = 2023, weekday_bonus: dict[int, float] | None = None
) -> list[Night]:
    """Generate a year where the weekday matters as much as the reservations.

    Not from the reference app: it gives the multi-feature model something to find. For each
    night, reservations are uniform in 0..59, the temperature follows the seasons (about 2 °C
    in January to 22 °C in July, plus noise), and when there are reservations
    ``doughs = round(2 * reservations + 5 + bonus[weekday] + noise)`` with noise uniform in
    [-3, 3). The temperature has no effect on doughs, so a model that leans on it is fitting
    noise.

    Parameters
    ----------
    seed : int
        Seed for :class:`random.Random`; the same seed gives the same year.
    year : int, default 2023
        Calendar year of the dates (all 365 or 366 days).
    weekday_bonus : dict of int to float, optional
        Extra doughs by weekday; defaults to :data:`WEEKDAY_BONUS`.

    Returns
    -------
    list of Night
        One night per day in date order, with ``temperature`` rounded to 0.1 °C and
        ``holiday`` False. ``doughs`` is None on nights with no reservations.
    """
    bonus = WEEKDAY_BONUS if weekday_bonus is None else weekday_bonus
    rng = random.Random(seed)
    nights = []
    day = datetime.date(year, 1, 1)
    while day.year == year:
        reservations = rng.randrange(MAX_RESERVATIONS + 1)
        # Coldest in mid-January (day 15), warmest half a year later.
        season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365)
        temperature = round(12 - 10 * season + rng.gauss(0, 3), 1)
        noise = rng.random() * 6 - 3
        doughs = None
        if reservations > 0:
            doughs = round_half_away(2 * reservations + 5 + bonus.get(day.weekday(), 0) + noise)
        nights.append(Night(day, reservations, doughs, temperature=temperature))
        day += datetime.timedelta(days=1)
    return nights


def _year(rng: random.Random, year: int, doughs: Callable[[int], int]) -> list[Night]:
    """Walk the reference calendar, drawing reservations and then, if any, doughs per night."""
    nights = []
    for month, length in enumerate(MONTH_LENGTHS, start=1):
        for day in range(1, length + 1):
            reservations = rng.randrange(MAX_RESERVATIONS + 1)
            night_doughs = doughs(reservations) if reservations > 0 else None
            nights.append(Night(datetime.date(year, month, day), reservations, night_doughs))
    return nights


POPULARITY_SKEW = 1.0
"""Zipf exponent of game popularity in :func:`generate_picks`: the n-th most popular game is
picked about 1/n as often as the most popular one."""

OFF_BUDGET = 0.15
"""Share of :func:`generate_picks` parties whose stated budget is not their game's bucket."""

NOISE = 0.1
"""Share of :func:`generate_picks` parties whose stated budget and styles are unrelated to the
game they take (they changed their mind at the shelf)."""

EXTRA_STYLE = 0.25
"""Chance that a :func:`generate_picks` party also ticks a style its game does not have."""


def generate_picks(
    games: Sequence[GameExample],
    seed: int,
    n: int = 1000,
    year: int = 2023,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> list[Pick]:
    """Generate a year of synthetic tavern picks: what parties asked for and what they took.

    Synthetic, not observed: no real party made these picks. Game popularity follows a Zipf
    law (:data:`POPULARITY_SKEW`) over a seeded shuffle of the games. Each party first takes a
    game by popularity, then states what it asked for: with probability :data:`NOISE`, a
    random budget and 1-3 random styles; otherwise the game's own budget bucket (a neighbouring
    one with probability :data:`OFF_BUDGET`) and 1-3 styles, as many as the game has, drawn
    from the game's styles, plus a style it does not have with probability
    :data:`EXTRA_STYLE`. So picks mostly match their query, and a model can learn both the
    matching and the popularity.

    Parameters
    ----------
    games : sequence of GameExample
        The catalogue, at least one game with a style; its order does not matter.
    seed : int
        Seed for :class:`random.Random`; the same seed and catalogue give the same picks.
    n : int, default 1000
        Number of picks, 0 or more.
    year : int, default 2023
        The picks' dates fall in this year.
    thresholds : sequence of two floats, default :data:`~ml.games.DEFAULT_THRESHOLDS`
        Budget buckets of the game prices.

    Returns
    -------
    list of Pick
        In date order (several picks can share a day), with each pick's styles sorted.

    Raises
    ------
    ValueError
        If ``n`` is negative or no game has a style.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n!r}")
    rng = random.Random(seed)
    catalogue = sorted(games, key=lambda game: game.name)
    styles = sorted({style for game in catalogue for style in game.gameplay})
    if not styles:
        raise ValueError("no game has a gameplay style")
    by_popularity = catalogue[:]
    rng.shuffle(by_popularity)
    weights = [1.0 / (rank + 1) ** POPULARITY_SKEW for rank in range(len(by_popularity))]
    # What each pick needs of its game, worked out once per game rather than once per pick;
    # cumulative weights make the same draws as the weights (random.choices computes them).
    cumulative = list(itertools.accumulate(weights))
    budgets = {game.name: budget_of(game.price, thresholds) for game in catalogue}
    own_styles = {game.name: sorted(set(game.gameplay)) for game in catalogue}
    other_styles = {
        name: [style for style in styles if style not in own] for name, own in own_styles.items()
    }
    first = datetime.date(year, 1, 1)
    days = (datetime.date(year + 1, 1, 1) - first).days
    dates = sorted(first + datetime.timedelta(days=rng.randrange(days)) for _ in range(n))
    picks = []
    for when in dates:
        game = rng.choices(by_popularity, cum_weights=cumulative)[0]
        wanted = rng.randint(1, 3)
        if rng.random() < NOISE:
            budget = rng.choice(BUDGETS)
            asked = rng.sample(styles, min(wanted, len(styles)))
        else:
            budget = budgets[game.name]
            if rng.random() < OFF_BUDGET:
                position = BUDGETS.index(budget)
                budget = BUDGETS[position + 1 if position == 0 else position - 1]
            own = own_styles[game.name]
            asked = rng.sample(own, min(wanted, len(own)))
            others = other_styles[game.name]
            if others and rng.random() < EXTRA_STYLE:
                asked.append(rng.choice(others))
        picks.append(Pick(budget, tuple(sorted(asked)), game.name, when))
    return picks
