"""Gift proposals: three different bundles of labelled items for a client's brief.

A **brief** asks for an occasion, a budget per recipient (min–max), themes to cover and things
to exclude. Every proposed **bundle** must:

- cost between the budget's min and max per recipient;
- hold no excluded item (an exclusion names a label, ``theme:sweets``, a bare label name,
  ``sweets``, or an attribute, ``perishable``);
- cover every requested theme (a theme is covered by an item with that label, or, for the
  themes ``local`` and ``sustainability``, by an item with that attribute);
- hold at most one item per category;
- share no item with the other bundles except locked ones (the diversity rule).

**Scoring.** Each item gets a cold-start score from the brief (:func:`cold_score`): matching
themes count most, then the occasion label, then past use for the occasion; each time staff
swapped the item out of a proposal for that occasion lowers it a little. Once a learned model
exists (:class:`LearnedScorer`), its normalised score is added with a configurable weight.

**Assembly** (:func:`propose`) is a small greedy optimisation, documented so staff can predict
it: (1) locked items go in first; (2) each uncovered theme takes the best-scoring affordable item
that covers it, rarest theme first; (3) the bundle is filled with the best remaining items while
they fit the budget, up to ``max_items``; (4) when it is still under the minimum, quantities of
the best items are raised (up to ``max_quantity``) while they fit. Bundles after the first may not
reuse an earlier bundle's items. When no bundle is feasible, :func:`explain_infeasible` says
why in one sentence ("no item under 5.00 matches 'coffee'").
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Themes that an item's attribute covers as well as a label does.
ATTRIBUTE_THEMES = {"local": "local", "sustainability": "sustainable"}
#: Attributes a brief may exclude.
EXCLUDABLE_ATTRIBUTES = ("perishable", "local", "sustainable", "brandable")
THEME_WEIGHT = 3.0
OCCASION_WEIGHT = 1.5
PAST_USE_WEIGHT = 0.5
SWAP_WEIGHT = 0.5
BUNDLES = 3
MAX_ITEMS = 5
MAX_QUANTITY = 3


@dataclass(frozen=True)
class Candidate:
    """An item that may go into a gift, as plain data.

    ``labels`` are qualified (``theme:coffee``); ``attributes`` the true ones (``local``…);
    ``past_uses`` counts the past gifts that used the item, by occasion; ``past_swaps`` the
    times staff swapped it out of a proposal, by occasion (feedback that lowers its score).
    """

    id: int
    name: str
    vendor: str
    category: str
    price: float
    labels: frozenset[str] = frozenset()
    attributes: frozenset[str] = frozenset()
    past_uses: Mapping[str, int] = field(default_factory=dict)
    past_swaps: Mapping[str, int] = field(default_factory=dict)
    #: The themes the item covers (labels and attributes), computed once: proposals ask
    #: for every item of the catalogue on every keystroke.
    themes: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        themes = set(self.label_names("theme"))
        themes.update(theme for theme, attribute in ATTRIBUTE_THEMES.items()
                      if attribute in self.attributes)
        object.__setattr__(self, "themes", frozenset(themes))

    def label_names(self, group: str) -> set[str]:
        """The item's labels of ``group``, without the group prefix."""
        prefix = f"{group}:"
        return {label[len(prefix):] for label in self.labels if label.startswith(prefix)}

    def covers(self, theme: str) -> bool:
        """True when the item counts for ``theme``."""
        return theme in self.themes


@dataclass(frozen=True)
class Brief:
    """What a client asks for. Budgets are per recipient."""

    occasion: str | None
    budget_min: float
    budget_max: float
    recipients: int = 1
    themes: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    industry: str | None = None
    #: Items the client received before (when staff ask to avoid repeats) or swapped out.
    avoid: frozenset[int] = frozenset()
    #: Items staff locked into the first bundle.
    locked: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.budget_min) and math.isfinite(self.budget_max)):
            raise ValueError("the budget must be a number")
        if self.budget_min < 0 or self.budget_max <= 0 or self.budget_min > self.budget_max:
            raise ValueError("the budget must satisfy 0 <= min <= max and max > 0")
        if self.recipients < 1:
            raise ValueError("there must be at least one recipient")


@dataclass(frozen=True)
class BundleItem:
    """One line of a bundle."""

    item: Candidate
    quantity: int
    reasons: tuple[str, ...]

    @property
    def cost(self) -> float:
        """The line's cost per recipient."""
        return self.item.price * self.quantity


@dataclass(frozen=True)
class Bundle:
    """A proposed gift: its lines, cost per recipient, and why it fits."""

    lines: tuple[BundleItem, ...]
    reasons: tuple[str, ...]

    @property
    def cost(self) -> float:
        """The cost per recipient (format it to the cent for display)."""
        return sum(line.cost for line in self.lines)

    @property
    def item_ids(self) -> frozenset[int]:
        """The ids of the bundle's items."""
        return frozenset(line.item.id for line in self.lines)


@dataclass(frozen=True)
class Proposal:
    """Up to three bundles, and one sentence about them (or about why there are none)."""

    bundles: tuple[Bundle, ...]
    explanation: str


def is_excluded(candidate: Candidate, exclude: Iterable[str]) -> bool:
    """True when an exclusion names one of the item's labels or attributes."""
    plain = {label.partition(":")[2] for label in candidate.labels}
    return any(word in candidate.labels or word in plain or word in candidate.attributes
               for word in exclude)


def cold_score(candidate: Candidate, brief: Brief) -> tuple[float, tuple[str, ...]]:
    """The item's score for the brief from its labels alone, with the reasons behind it."""
    score, reasons = 0.0, []
    themes = [theme for theme in brief.themes if theme in candidate.themes]
    if themes:
        score += THEME_WEIGHT * len(themes)
        reasons.append("theme: " + ", ".join(themes))
    if "local" in candidate.attributes and "local" not in themes:
        reasons.append("local vendor")
    if "sustainable" in candidate.attributes and "sustainability" not in themes:
        reasons.append("sustainable")
    if brief.occasion and brief.occasion in candidate.label_names("occasion"):
        score += OCCASION_WEIGHT
        reasons.append(f"suits {brief.occasion}")
    uses = candidate.past_uses.get(brief.occasion or "", 0)
    if uses:
        score += PAST_USE_WEIGHT * math.log1p(uses)
        gifts = "gift" if uses == 1 else "gifts"
        reasons.append(f"{uses} past {brief.occasion} {gifts} used it")
    swaps = candidate.past_swaps.get(brief.occasion or "", 0)
    if swaps:
        score -= SWAP_WEIGHT * math.log1p(swaps)
    return score, tuple(reasons)


class ItemScores(Mapping[int, float]):
    """A model's score per item id, kept as two sorted arrays.

    It reads like a dict (``scores[item_id]``, ``scores.get(...)``), and
    :meth:`CandidateIndex.learned_vector` takes it in one vectorised step instead of a dict
    lookup per catalogue item on every keystroke.
    """

    def __init__(self, ids, values) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        self._ids = ids[order]
        self._scores = np.asarray(values, dtype=np.float64)[order]

    @classmethod
    def sorted_by_id(cls, ids: np.ndarray, values: np.ndarray) -> ItemScores:
        """Scores whose ``ids`` are already in increasing order (a model's ``classes_``).

        Skips the sort, and keeps ``ids`` itself: a catalogue that aligned these ids once
        reuses that alignment for every later brief (see :meth:`CandidateIndex.learned_vector`).
        """
        scores = cls.__new__(cls)
        scores._ids = np.asarray(ids, dtype=np.int64)
        scores._scores = np.asarray(values, dtype=np.float64)
        return scores

    def _positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each of ``ids`` sits in ``self._ids``, and whether it is there at all."""
        if not len(self._ids):
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        positions = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
        return positions, self._ids[positions] == ids

    def __getitem__(self, item_id: int) -> float:
        positions, found = self._positions(np.array([item_id], dtype=np.int64))
        if not found[0]:
            raise KeyError(item_id)
        return float(self._scores[positions[0]])

    def __iter__(self):
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return len(self._ids)

    def best(self, k: int) -> list[int]:
        """The ``k`` best-scored ids, ties to the lower id."""
        return self._ids[np.lexsort((self._ids, -self._scores))[:k]].tolist()

    def aligned(self, ids: np.ndarray) -> np.ndarray:
        """The scores of ``ids`` in their order, 0 for ids the model does not know."""
        return self._take(*self._positions(ids))

    def _take(self, positions: np.ndarray, found: np.ndarray) -> np.ndarray:
        """The scores at ``positions`` (from :meth:`_positions`), 0 where not ``found``."""
        return np.where(found, self._scores[positions] if len(self._scores) else 0.0, 0.0)


class CandidateIndex:
    """The catalogue as arrays, built once and reused for every brief.

    Proposals run at every keystroke against catalogues of 10k items and more: scoring and
    filtering every item in Python took ~300 ms there, so the labels, attributes, history and
    prices are laid out as numpy arrays and one brief costs a few vectorised operations.
    Reasons are written only for the items a bundle keeps.

    Inside, the arrays are laid out in **tie order**: by price, then id, the order that breaks
    equal scores in a ranking. The best item of any subset is then the first maximum of its
    scores (one ``argmax``), so :func:`propose` never sorts the catalogue, and the items a
    budget affords are a prefix of the layout. ``position`` and the public arrays (``ids``,
    ``price``, ``category``) stay in catalogue order.
    """

    def __init__(self, candidates: Iterable[Candidate]) -> None:
        self.candidates = tuple(candidates)
        count = len(self.candidates)
        self.position = {c.id: i for i, c in enumerate(self.candidates)}
        self.ids = np.fromiter((c.id for c in self.candidates), dtype=np.int64, count=count)
        self.price = np.fromiter((c.price for c in self.candidates), dtype=np.float64,
                                 count=count)
        self.category = [c.category for c in self.candidates]
        #: tie position -> catalogue row, and back.
        self._tie = np.lexsort((self.ids, self.price))
        self._tie_position = np.empty(count, dtype=np.int64)
        self._tie_position[self._tie] = np.arange(count)
        rows = self._tie.tolist()
        tied = [self.candidates[row] for row in rows]
        self._t_ids = self.ids[self._tie]
        self._t_price = self.price[self._tie]
        self._t_price_list = self._t_price.tolist()  # bisected with the exact float test
        self._t_category, self._category_rows = self._groups([c.category for c in tied])
        self._unique_ids = len(self.position) == count
        self._themes = self._matrix([c.themes for c in tied])
        self._occasions = self._matrix([c.label_names("occasion") for c in tied])
        self._words = self._matrix([_exclusion_words(c) for c in tied])
        self._uses = self._counts([c.past_uses for c in tied])
        self._swaps = self._counts([c.past_swaps for c in tied])
        #: A model's ids array -> where this catalogue's items sit in it (see learned_vector).
        self._alignments: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.candidates)

    # A word's (or an occasion's) column is read whole for every brief: the tables are stored
    # one word per row, so that each is one contiguous array.
    @staticmethod
    def _matrix(sets: Sequence[Iterable[str]]) -> tuple[dict[str, int], np.ndarray]:
        vocabulary = {word: i for i, word in enumerate(sorted({w for s in sets for w in s}))}
        matrix = np.zeros((len(vocabulary), len(sets)), dtype=bool)
        for row, words in enumerate(sets):
            for word in words:
                matrix[vocabulary[word], row] = True
        return vocabulary, matrix

    @staticmethod
    def _counts(maps: Sequence[Mapping[str, int]]) -> tuple[dict[str, int], np.ndarray]:
        vocabulary = {key: i for i, key in enumerate(sorted({k for m in maps for k in m}))}
        matrix = np.zeros((len(vocabulary), len(maps)))
        for row, counts in enumerate(maps):
            for key, value in counts.items():
                matrix[vocabulary[key], row] = value
        return vocabulary, np.log1p(matrix)

    @staticmethod
    def _groups(names: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each row's group number, and the rows of each group (to block a category at once)."""
        numbers = {name: i for i, name in enumerate(sorted(set(names)))}
        codes = np.fromiter((numbers[name] for name in names), dtype=np.int64, count=len(names))
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(numbers) + 1))
        return codes, [order[bounds[i]:bounds[i + 1]] for i in range(len(numbers))]

    @staticmethod
    def _column(table: tuple[dict[str, int], np.ndarray], key: str | None):
        vocabulary, matrix = table
        column = vocabulary.get(key) if key is not None else None
        return None if column is None else matrix[column]

    def _untie(self, values: np.ndarray) -> np.ndarray:
        """``values`` laid out in tie order, back in catalogue order."""
        return values[self._tie_position]

    def covering(self, theme: str) -> np.ndarray:
        """A boolean mask of the items that cover ``theme``."""
        return self._untie(self._covering(theme))

    def _covering(self, theme: str) -> np.ndarray:
        column = self._column(self._themes, theme)
        return np.zeros(len(self), dtype=bool) if column is None else column

    def scores(self, brief: Brief, learned: Mapping[int, float] | None = None,
               learned_weight: float = 0.0) -> np.ndarray:
        """Every item's score for ``brief`` (the same arithmetic as :func:`cold_score`)."""
        boost = self._learned(learned) if learned and learned_weight else None
        return self._untie(self._scores(brief, boost, learned_weight))

    def _scores(self, brief: Brief, boost: np.ndarray | None, learned_weight: float):
        """:meth:`scores` in tie order, given the learned scores in tie order (or None)."""
        scores = np.zeros(len(self))
        for theme in brief.themes:
            scores += THEME_WEIGHT * self._covering(theme)
        occasion = brief.occasion or ""
        for table, weight in ((self._occasions, OCCASION_WEIGHT), (self._uses, PAST_USE_WEIGHT),
                              (self._swaps, -SWAP_WEIGHT)):
            column = self._column(table, occasion)
            if column is not None:
                scores += weight * column
        if boost is not None:
            scores += learned_weight * boost
        return scores

    def learned_vector(self, learned: Mapping[int, float]) -> np.ndarray:
        """The model's scores in catalogue order (0 for items it does not know)."""
        return self._untie(self._learned(learned))

    def _learned(self, learned: Mapping[int, float]) -> np.ndarray:
        """The model's scores in tie order.

        Where the catalogue's ids sit among an :class:`ItemScores`' ids is worked out once per
        ids array (a model's ``classes_``) and reused: one model scores every brief.
        """
        if not isinstance(learned, ItemScores):
            return np.fromiter((learned.get(int(i), 0.0) for i in self._t_ids),
                               dtype=np.float64, count=len(self))
        cached = self._alignments.get(id(learned._ids))
        if cached is None or cached[0] is not learned._ids:
            if len(self._alignments) >= 4:  # a few models at most: the live one, a swap
                self._alignments.clear()
            cached = (learned._ids, *learned._positions(self._t_ids))
            self._alignments[id(learned._ids)] = cached
        return learned._take(cached[1], cached[2])

    def eligible(self, brief: Brief) -> np.ndarray:
        """A mask of the items a bundle may hold: affordable, not excluded, not avoided
        (locked items stay eligible whatever else)."""
        return self._untie(self._eligible(brief))

    def _eligible(self, brief: Brief) -> np.ndarray:
        mask = self._t_price <= brief.budget_max + 1e-9
        mask &= ~self._excluded(brief.exclude)
        for item_id in brief.avoid:
            row = self.position.get(item_id)
            if row is not None:
                mask[self._tie_position[row]] = False
        for item_id in brief.locked:
            row = self.position.get(item_id)
            if row is not None and self.price[row] <= brief.budget_max + 1e-9:
                mask[self._tie_position[row]] = True
        return mask

    def _excluded(self, exclude: Iterable[str]) -> np.ndarray:
        """In tie order: the items an exclusion names (see :func:`is_excluded`)."""
        mask = np.zeros(len(self), dtype=bool)
        for word in exclude:
            column = self._column(self._words, word)
            if column is not None:
                mask |= column
        return mask

    def ranked(self, brief: Brief, learned: Mapping[int, float] | None = None,
               learned_weight: float = 0.0) -> np.ndarray:
        """Positions of the eligible items, best first; ties go to the cheaper item, then the
        lower id, so the order is stable."""
        boost = self._learned(learned) if learned and learned_weight else None
        scores = self._scores(brief, boost, learned_weight)
        tied = np.flatnonzero(self._eligible(brief))
        # Tie order already breaks ties: a stable sort on the score alone keeps it.
        return self._tie[tied[np.argsort(-scores[tied], kind="stable")]]

    def ranked_ids(self, brief: Brief) -> list[int]:
        """The eligible items' ids, best first (the cold-start ranking)."""
        return self.ids[self.ranked(brief)].tolist()


def _exclusion_words(candidate: Candidate) -> set[str]:
    """Every word an exclusion may use to name this item: its labels, bare or qualified, and
    its attributes."""
    plain = {label.partition(":")[2] for label in candidate.labels}
    return set(candidate.labels) | plain | set(candidate.attributes)


def rank(candidates: Iterable[Candidate] | CandidateIndex, brief: Brief,
         learned: Mapping[int, float] | None = None,
         learned_weight: float = 0.0) -> list[tuple[float, Candidate, tuple[str, ...]]]:
    """Eligible items, best first, with their scores and reasons (see :class:`CandidateIndex`).

    ``learned`` maps item ids to a model's score in [0, 1]; it adds ``learned_weight`` times
    that score.
    """
    index = candidates if isinstance(candidates, CandidateIndex) else CandidateIndex(candidates)
    scores = index.scores(brief, learned, learned_weight)
    return [(float(scores[row]), index.candidates[row],
             _reasons(index.candidates[row], brief, learned, learned_weight))
            for row in index.ranked(brief, learned, learned_weight).tolist()]


def _reasons(candidate: Candidate, brief: Brief, learned: Mapping[int, float] | None,
             learned_weight: float) -> tuple[str, ...]:
    boost = learned.get(candidate.id, 0.0) if learned and learned_weight else 0.0
    return _with_boost(cold_score(candidate, brief)[1], boost)


def _with_boost(reasons: tuple[str, ...], boost: float) -> tuple[str, ...]:
    """The reasons, plus the model's word when it scored the item above 0."""
    return reasons + (f"model: {boost:.0%} like past gifts",) if boost > 0 else reasons


class _Builder:
    """One bundle under construction."""

    def __init__(self, brief: Brief, max_items: int) -> None:
        self.brief, self.max_items = brief, max_items
        self.lines: list[list] = []  # [candidate, quantity, reasons]
        self.cost = 0.0
        self.categories: set[str] = set()
        self.ids: set[int] = set()

    def uncovered(self) -> list[str]:
        return [theme for theme in self.brief.themes
                if not any(candidate.covers(theme) for candidate, _, _ in self.lines)]

    def add(self, candidate: Candidate, reasons: tuple[str, ...], quantity: int = 1) -> None:
        self.lines.append([candidate, quantity, reasons])
        self.cost += candidate.price * quantity
        self.categories.add(candidate.category)
        self.ids.add(candidate.id)

    def raise_quantity(self, line: list) -> None:
        line[1] += 1
        self.cost += line[0].price


class _Request:
    """One brief against one index, in the index's tie order: every item's score, the eligible
    ones, and how to find the best item that fits a bundle without sorting the catalogue.

    An item fits a bundle when the bundle has room (``max_items``), holds nothing of its
    category (nor the item itself), and ``cost + price + reserve <= budget_max + 1e-9``.
    Picking "the first item of the ranking that fits" is picking, among the items that fit,
    the highest score, ties to the cheaper item and then the lower id: the first maximum in
    tie order. Fitting only ever turns false as a bundle grows, so the items ruled out so far
    are kept at -inf in a per-bundle copy of the scores (:class:`_Open`), and the budget's
    part is a prefix of the price-ordered layout (:meth:`affordable`).
    """

    def __init__(self, index: CandidateIndex, brief: Brief,
                 learned: Mapping[int, float] | None, learned_weight: float) -> None:
        self.index, self.brief = index, brief
        self.boost = index._learned(learned) if learned and learned_weight else None
        self.scores = index._scores(brief, self.boost, learned_weight)
        self.eligible = index._eligible(brief)
        self.limit = brief.budget_max + 1e-9

    def tied(self, item_id: int) -> int:
        """The tie position of the item ``index.position`` holds for ``item_id``."""
        return int(self.index._tie_position[self.index.position[item_id]])

    def candidate(self, tied: int) -> Candidate:
        """The candidate at tie position ``tied``."""
        return self.index.candidates[self.index._tie[tied]]

    def reasons(self, tied: int) -> tuple[str, ...]:
        """Why the item at ``tied`` suits the brief (only for the items a bundle keeps)."""
        boost = float(self.boost[tied]) if self.boost is not None else 0.0
        return _with_boost(cold_score(self.candidate(tied), self.brief)[1], boost)

    def affordable(self, cost: float, reserve: float) -> int:
        """How many items, cheapest first, pass the budget test ``cost + price + reserve <=
        budget_max + 1e-9``.

        The test is evaluated item by item as the greedy always wrote it, by bisection (float
        sums are monotonic in the price), so the boundary is exactly the same.
        """
        limit = self.limit
        return bisect.bisect_left(self.index._t_price_list, True,
                                  key=lambda price: cost + price + reserve > limit)


class _Open:
    """One bundle's scores, with every item it may no longer take set to -inf."""

    def __init__(self, request: _Request, usable: np.ndarray) -> None:
        self.request = request
        self.scores = np.where(usable, request.scores, -np.inf)

    def block(self, tied: int) -> None:
        """Rule out the item at ``tied``'s category (and its id, should ids repeat)."""
        index = self.request.index
        self.scores[index._category_rows[index._t_category[tied]]] = -np.inf
        if not index._unique_ids:
            self.scores[index._t_ids == index._t_ids[tied]] = -np.inf

    def best(self, builder: _Builder, reserve: float = 0.0,
             within: np.ndarray | None = None) -> int | None:
        """The tie position of the best item that fits ``builder`` (and ``within``), if any."""
        if len(builder.lines) >= builder.max_items:
            return None
        end = self.request.affordable(builder.cost, reserve)
        if not end:
            return None
        scores = self.scores[:end]
        if within is not None:
            scores = np.where(within[:end], scores, -np.inf)
        tied = int(np.argmax(scores))
        return tied if scores[tied] > -np.inf else None


def _build(request: _Request, banned: np.ndarray, locked: Sequence[int],
           max_items: int, max_quantity: int) -> Bundle | None:
    """Assemble one bundle (see the module docstring) or return None when it cannot fit.

    ``banned`` marks (in tie order) the items of earlier bundles; ``locked`` are tie
    positions.
    """
    brief = request.brief
    builder = _Builder(brief, max_items)
    for tied in locked:
        builder.add(request.candidate(tied), request.reasons(tied) + ("locked by staff",))
    usable = request.eligible & ~banned
    usable[[request.tied(item_id) for item_id in builder.ids]] = False
    bundle = _Open(request, usable)
    for tied in locked:
        bundle.block(tied)
    covering = {theme: request.index._covering(theme) & usable for theme in brief.themes}
    cheapest = {theme: _first_price(request.index, mask) for theme, mask in covering.items()}
    # Rarest theme first: it has the fewest items that can cover it.
    for theme in sorted(builder.uncovered(), key=lambda t: int(np.count_nonzero(covering[t]))):
        if theme not in builder.uncovered():
            continue  # an item picked for an earlier theme covers this one too
        reserve = sum(cheapest[t] for t in builder.uncovered() if t != theme)
        reserve = reserve if math.isfinite(reserve) else 0.0
        pick = bundle.best(builder, reserve, covering[theme])
        if pick is None:
            return None
        builder.add(request.candidate(pick), request.reasons(pick))
        bundle.block(pick)
    while (pick := bundle.best(builder)) is not None:
        builder.add(request.candidate(pick), request.reasons(pick))
        bundle.block(pick)
    _raise_quantities(builder, max_quantity)
    if builder.uncovered() or not builder.lines \
            or builder.cost < brief.budget_min - 1e-9 or builder.cost > brief.budget_max + 1e-9:
        return None
    lines = tuple(BundleItem(candidate, quantity, reasons or ("fills the budget",))
                  for candidate, quantity, reasons in builder.lines)
    return Bundle(lines, _bundle_reasons(lines, brief))


def _first_price(index: CandidateIndex, mask: np.ndarray) -> float:
    """The lowest price among ``mask`` (tie order is by price), inf when it is empty."""
    first = int(np.argmax(mask)) if len(mask) else 0
    return float(index._t_price[first]) if len(mask) and mask[first] else math.inf


def _raise_quantities(builder: _Builder, max_quantity: int) -> None:
    """Reach the budget's minimum by giving more of the best items, within the maximum."""
    brief = builder.brief
    while builder.cost < brief.budget_min - 1e-9:
        line = next((line for line in builder.lines if line[1] < max_quantity
                     and builder.cost + line[0].price <= brief.budget_max + 1e-9), None)
        if line is None:
            return
        builder.raise_quantity(line)


def _bundle_reasons(lines: Sequence[BundleItem], brief: Brief) -> tuple[str, ...]:
    cost = sum(line.cost for line in lines)
    reasons = [f"{cost:.2f} per recipient, within {brief.budget_min:.2f}–{brief.budget_max:.2f}"]
    if brief.themes:
        reasons.append("covers " + ", ".join(brief.themes))
    if brief.exclude:
        reasons.append("nothing " + ", ".join(brief.exclude))
    return tuple(reasons)


def propose(candidates: Iterable[Candidate] | CandidateIndex, brief: Brief, *,
            learned: Mapping[int, float] | None = None, learned_weight: float = 0.0,
            bundles: int = BUNDLES, max_items: int = MAX_ITEMS,
            max_quantity: int = MAX_QUANTITY) -> Proposal:
    """Up to ``bundles`` different bundles for ``brief`` (see the module docstring).

    Pass a :class:`CandidateIndex` built once when proposing repeatedly from one catalogue.
    """
    index = candidates if isinstance(candidates, CandidateIndex) else CandidateIndex(candidates)
    request = _Request(index, brief, learned, learned_weight)
    locked = [request.tied(item_id) for item_id in brief.locked
              if item_id in index.position and request.eligible[request.tied(item_id)]]
    made: list[Bundle] = []
    banned = np.zeros(len(index), dtype=bool)
    for number in range(bundles):
        bundle = _build(request, banned, locked if number == 0 else [], max_items,
                        max_quantity)
        if bundle is None:
            break
        made.append(bundle)
        banned[[request.tied(item_id) for item_id in bundle.item_ids]] = True
    if not made:
        return Proposal((), explain_infeasible(index, brief))
    count = "three different bundles" if len(made) == 3 else (
        f"{len(made)} bundle{'s' if len(made) > 1 else ''} (no more fit without reusing items)")
    return Proposal(tuple(made), f"{count} for {_describe(brief)}.")


def _describe(brief: Brief) -> str:
    parts = [f"{brief.budget_min:.2f}–{brief.budget_max:.2f} per recipient"]
    if brief.occasion:
        parts.insert(0, brief.occasion)
    if brief.themes:
        parts.append("themes " + ", ".join(brief.themes))
    return "; ".join(parts)


def explain_infeasible(candidates: Sequence[Candidate] | CandidateIndex, brief: Brief) -> str:
    """One plain sentence on why no bundle fits the brief."""
    index = candidates if isinstance(candidates, CandidateIndex) else CandidateIndex(candidates)
    if not len(index):
        return "The catalogue has no items yet."
    # "Allowed" ignores the budget: the sentence names what rules the items out.
    barred = np.fromiter(set(brief.avoid) - set(brief.locked), dtype=np.int64)
    allowed = ~index._excluded(brief.exclude) & ~np.isin(index._t_ids, barred)
    if not allowed.any():
        return "Every item is excluded by " + ", ".join(brief.exclude) + "."
    for theme in brief.themes:
        matching = allowed & index._covering(theme)
        if not matching.any():
            return f"No item matches '{theme}' once the exclusions are applied."
        if _first_price(index, matching) > brief.budget_max:
            return f"No item under {brief.budget_max:.2f} matches '{theme}'."
    if _first_price(index, allowed) > brief.budget_max:
        return f"No item costs {brief.budget_max:.2f} or less."
    if brief.themes:
        return ("The requested themes cannot all be covered together within "
                f"{brief.budget_min:.2f}–{brief.budget_max:.2f} with one item per category.")
    return (f"No combination of items (one per category, up to {MAX_ITEMS}) reaches "
            f"{brief.budget_min:.2f} without going over {brief.budget_max:.2f}.")


def popularity(gifts: Iterable[Iterable[int]]) -> list[int]:
    """Item ids by how many past gifts used them, most used first (ties: lower id first)."""
    counts = Counter(item for gift in gifts for item in set(gift))
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
