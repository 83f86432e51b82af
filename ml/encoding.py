"""Turn categorical values into indicator columns over a fixed vocabulary.

The vocabulary is always given, never learnt from the data being encoded, so the columns mean
the same thing at training time, in the compiled prediction path and in every later batch: a
weekday missing from a month of training data still gets its column. Encoding is strict: a value
outside the vocabulary raises, because silently mapping it to all zeros would quietly change a
prediction.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np

__all__ = ["multi_hot", "one_hot", "vocabulary_index"]


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
