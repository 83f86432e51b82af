from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.encoding import multi_hot, one_hot, vocabulary_index


def test_one_hot_puts_a_single_one_in_the_value_column():
    encoded = one_hot([2, 0, 2], vocabulary=range(3))
    assert encoded.tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 1]]
    assert encoded.dtype == float


def test_columns_follow_the_vocabulary_order_not_the_values():
    assert one_hot(["b"], vocabulary=["c", "a", "b"]).tolist() == [[0, 0, 1]]


def test_one_hot_of_no_values_still_has_every_column():
    assert one_hot([], vocabulary=range(1, 13)).shape == (0, 12)


def test_numbers_match_by_value_whatever_their_type():
    months = range(1, 13)
    expected = one_hot([3], months)
    assert np.array_equal(one_hot([3.0], months), expected)
    assert np.array_equal(one_hot([np.int64(3)], months), expected)
    assert np.array_equal(one_hot(np.array([3.0]).tolist(), months), expected)


@pytest.mark.parametrize("value", [7, -1, 3.5, math.nan, "3", None])
def test_an_unknown_value_raises_and_is_named(value):
    with pytest.raises(ValueError, match=rf"unknown category {value!r}"):
        one_hot([0, value], vocabulary=range(7))


def test_an_unhashable_value_is_an_unknown_category():
    with pytest.raises(ValueError, match=r"unknown category \[1\]"):
        one_hot([[1]], vocabulary=range(3))


@pytest.mark.parametrize(("vocabulary", "message"), [([], "empty"), ([1, 2, 1], "1 twice")])
def test_a_bad_vocabulary_is_refused(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        one_hot([1], vocabulary)
    with pytest.raises(ValueError, match=message):
        vocabulary_index(vocabulary)


def test_vocabulary_index_maps_categories_to_columns():
    assert vocabulary_index(["x", "y"]) == {"x": 0, "y": 1}


def test_multi_hot_marks_every_category_of_a_row():
    encoded = multi_hot([["co-op", "puzzle"], [], ["party", "party"]], ["co-op", "party", "puzzle"])
    assert encoded.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]


def test_multi_hot_names_an_unknown_category():
    with pytest.raises(ValueError, match="unknown category 'racing'"):
        multi_hot([["party"], ["racing"]], ["party"])


def test_multi_hot_refuses_a_bare_string_row():
    # "party" would otherwise be read as the categories p, a, r, t, y.
    with pytest.raises(ValueError, match="string 'party'"):
        multi_hot(["party"], ["party", "p", "a", "r", "t", "y"])


@given(st.lists(st.integers(min_value=0, max_value=6), max_size=30))
def test_one_hot_round_trips_through_argmax(values):
    encoded = one_hot(values, vocabulary=range(7))
    assert encoded.shape == (len(values), 7)
    assert encoded.sum(axis=1).tolist() == [1.0] * len(values)
    assert encoded.argmax(axis=1).tolist() == values


@given(st.lists(st.sets(st.sampled_from("abcde")), max_size=20))
def test_multi_hot_is_one_hot_summed_per_row(rows):
    vocabulary = list("abcde")
    encoded = multi_hot(rows, vocabulary)
    for row, categories in zip(encoded, rows, strict=True):
        expected = one_hot(sorted(categories), vocabulary).sum(axis=0)
        assert row.tolist() == expected.tolist()
