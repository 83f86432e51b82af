"""Turn categorical values into indicator columns over a fixed vocabulary.

The vocabulary is always given, never learnt from the data being encoded, so the columns mean
the same thing at training time, in the compiled prediction path and in every later batch: a
weekday missing from a month of training data still gets its column. :func:`one_hot` and
:func:`multi_hot` are strict: a value outside the vocabulary raises, because silently mapping it
to all zeros would quietly change a prediction.

A :class:`Vocabulary` is that fixed list as a value, in one of two modes. *Strict* (the default)
raises on an unknown value, naming it, so a web form can answer 422. *Catch-all* reserves column
0 for "unknown" and puts the real values from column 1: for data whose categories grow over time
(free-text tags), where an unseen value should still count as *something* instead of stopping
the pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

__all__ = ["UNKNOWN", "Vocabulary", "multi_hot", "one_hot", "vocabulary_index"]

UNKNOWN = "<unknown>"
"""Label of a catch-all vocabulary's column 0, the one every unknown value lands in."""


def vocabulary_index(vocabulary: Iterable[Hashable]) -> dict[Hashable, int]:
    """Map each vocabulary entry to its column.

    Parameters
    ----------
    vocabulary : iterable of hashable
        The categories, in column order.

    Returns
    -------
    dict
        ``{category: column}``. Python's equality applies, so ``3``, ``3.0`` and
        ``numpy.int64(3)`` find the same column.

    Raises
    ------
    ValueError
        If the vocabulary is empty or names a category twice (two columns could not both be
        "the" column for it).
    """
    index: dict[Hashable, int] = {}
    for column, category in enumerate(vocabulary):
        if category in index:
            raise ValueError(f"vocabulary names {category!r} twice")
        index[category] = column
    if not index:
        raise ValueError("vocabulary is empty")
    return index


def one_hot(values: Iterable[Hashable], vocabulary: Sequence[Hashable]) -> np.ndarray:
    """Encode one category per row as indicator columns.

    Parameters
    ----------
    values : iterable of hashable
        One category per row, for example weekdays ``0``-``6``.
    vocabulary : sequence of hashable
        Every allowed category, in column order.

    Returns
    -------
    numpy.ndarray of float, shape (n_values, len(vocabulary))
        Row ``i`` has a 1 in the column of ``values[i]`` and 0 elsewhere.

    Raises
    ------
    ValueError
        If a value is not in the vocabulary (the message names it), or the vocabulary is empty
        or has duplicates.

    Examples
    --------
    >>> one_hot([2, 0], vocabulary=range(3)).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    index = vocabulary_index(vocabulary)
    columns = [_column(index, value) for value in values]
    encoded = np.zeros((len(columns), len(index)))
    encoded[np.arange(len(columns)), columns] = 1.0
    return encoded


def multi_hot(
    rows: Iterable[Iterable[Hashable]], vocabulary: Sequence[Hashable]
) -> np.ndarray:
    """Encode any number of categories per row as indicator columns.

    Parameters
    ----------
    rows : iterable of iterables of hashable
        The categories of each row, for example a game's genres. A row may be empty; a category
        repeated within a row still gives a 1, not a count.
    vocabulary : sequence of hashable
        Every allowed category, in column order.

    Returns
    -------
    numpy.ndarray of float, shape (n_rows, len(vocabulary))
        Row ``i`` has a 1 in the column of each of its categories and 0 elsewhere.

    Raises
    ------
    ValueError
        If a category is not in the vocabulary (the message names it), or the vocabulary is
        empty or has duplicates.

    Examples
    --------
    >>> multi_hot([["co-op", "puzzle"], []], vocabulary=["co-op", "party", "puzzle"]).tolist()
    [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    index = vocabulary_index(vocabulary)
    # A single string is iterable too; treating "puzzle" as the letters p, u, z... would raise
    # a confusing error far from the caller's mistake.
    materialised = []
    for row in rows:
        if isinstance(row, str | bytes):
            raise ValueError(f"each row must be a collection of categories, got the string {row!r}")
        materialised.append([_column(index, value) for value in row])
    encoded = np.zeros((len(materialised), len(index)))
    for position, columns in enumerate(materialised):
        encoded[position, columns] = 1.0
    return encoded


def _column(index: dict[Hashable, int], value: Hashable) -> int:
    """Look a value up, naming it (and the choices) when it is not in the vocabulary."""
    try:
        return index[value]
    except (KeyError, TypeError):
        # TypeError: an unhashable value (a list) cannot be a category either.
        choices = ", ".join(repr(category) for category in index)
        raise ValueError(f"unknown category {value!r}; expected one of {choices}") from None


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A fixed, ordered set of categories and how to treat values outside it.

    Parameters
    ----------
    values : tuple of hashable
        The known categories, in column order; any iterable is stored as a tuple. Python's
        equality applies, as in :func:`vocabulary_index`.
    strict : bool, default True
        True: an unknown value raises :class:`ValueError` naming it. False (catch-all): column
        0 is reserved for every unknown value and the known categories take columns 1 onwards.

    Raises
    ------
    ValueError
        If ``values`` is empty or names a category twice.

    Examples
    --------
    >>> Vocabulary(("co-op", "party")).encode_one_hot("party").tolist()
    [0.0, 1.0]
    >>> Vocabulary(("co-op", "party"), strict=False).encode_multi_hot(["party", "racing"]).tolist()
    [1.0, 0.0, 1.0]
    """

    values: tuple
    strict: bool = True
    # Built once: a lookup per encoded value is the whole cost of encoding a query.
    _index: dict = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = tuple(self.values)
        object.__setattr__(self, "values", values)
        offset = 0 if self.strict else 1
        index = {value: column + offset for value, column in vocabulary_index(values).items()}
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        """Return the number of columns (one more than the values in catch-all mode)."""
        return len(self.values) + (0 if self.strict else 1)

    def __contains__(self, value: object) -> bool:
        """Say whether ``value`` is a known category (never true of unhashable values)."""
        try:
            return value in self._index
        except TypeError:
            return False

    @property
    def columns(self) -> tuple:
        """Tuple of the column labels: the values, after :data:`UNKNOWN` in catch-all mode."""
        return self.values if self.strict else (UNKNOWN, *self.values)

    def index(self, value: Hashable) -> int:
        """Return the column of ``value``.

        Parameters
        ----------
        value : hashable
            A category.

        Returns
        -------
        int
            Its column; 0 for an unknown value in catch-all mode.

        Raises
        ------
        ValueError
            In strict mode, if ``value`` is not a known category (the message names it and the
            choices).
        """
        if self.strict:
            return _column(self._index, value)
        try:
            return self._index.get(value, 0)
        except TypeError:  # an unhashable value is unknown too
            return 0

    def encode_one_hot(self, value: Hashable) -> np.ndarray:
        """Encode one category as indicator columns.

        Parameters
        ----------
        value : hashable
            The category.

        Returns
        -------
        numpy.ndarray of float, shape (len(self),)
            1 in the column of ``value`` and 0 elsewhere.

        Raises
        ------
        ValueError
            In strict mode, for an unknown value.
        """
        encoded = np.zeros(len(self))
        encoded[self.index(value)] = 1.0
        return encoded

    def encode_multi_hot(self, values: Iterable[Hashable]) -> np.ndarray:
        """Encode any number of categories as indicator columns.

        Parameters
        ----------
        values : iterable of hashable
            The categories; may be empty. A repeated category still gives 1, not a count, and
            so do several unknown values in catch-all mode.

        Returns
        -------
        numpy.ndarray of float, shape (len(self),)

        Raises
        ------
        ValueError
            If ``values`` is a single string (it would otherwise be read letter by letter), or,
            in strict mode, for an unknown value.
        """
        if isinstance(values, str | bytes):
            raise ValueError(f"expected a collection of categories, got the string {values!r}")
        encoded = np.zeros(len(self))
        for value in values:
            encoded[self.index(value)] = 1.0
        return encoded
