from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.encoding import UNKNOWN, Vocabulary, multi_hot, one_hot, vocabulary_index


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


# --- Vocabulary -------------------------------------------------------------------------------


def test_a_strict_vocabulary_encodes_in_value_order_and_names_unknown_values():
    vocabulary = Vocabulary(["co-op", "party", "puzzle"])
    assert vocabulary.values == ("co-op", "party", "puzzle")
    assert len(vocabulary) == 3 and vocabulary.columns == vocabulary.values
    assert vocabulary.encode_one_hot("puzzle").tolist() == [0, 0, 1]
    assert vocabulary.encode_multi_hot(["party", "co-op", "party"]).tolist() == [1, 1, 0]
    assert vocabulary.encode_multi_hot([]).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="unknown category 'racing'; expected one of 'co-op'"):
        vocabulary.encode_one_hot("racing")
    with pytest.raises(ValueError, match="unknown category 'racing'"):
        vocabulary.encode_multi_hot(["party", "racing"])
    with pytest.raises(ValueError, match=r"unknown category \['party'\]"):
        vocabulary.index(["party"])


def test_a_catch_all_vocabulary_reserves_column_zero_for_unknown_values():
    vocabulary = Vocabulary(("co-op", "party"), strict=False)
    assert len(vocabulary) == 3
    assert vocabulary.columns == (UNKNOWN, "co-op", "party")
    assert [vocabulary.index(v) for v in ("co-op", "party", "racing", None)] == [1, 2, 0, 0]
    assert vocabulary.index(["unhashable"]) == 0
    assert vocabulary.encode_one_hot("racing").tolist() == [1, 0, 0]
    assert vocabulary.encode_one_hot("party").tolist() == [0, 0, 1]
    assert vocabulary.encode_multi_hot(["racing", "horror", "co-op"]).tolist() == [1, 1, 0]


def test_catch_all_columns_after_the_first_match_the_strict_encoding():
    strict, loose = Vocabulary("abc"), Vocabulary("abc", strict=False)
    for values in (["a"], ["b", "c"], []):
        assert loose.encode_multi_hot(values)[1:].tolist() == strict.encode_multi_hot(values).tolist()


def test_a_vocabulary_refuses_duplicates_emptiness_and_bare_strings():
    with pytest.raises(ValueError, match="'x' twice"):
        Vocabulary(("x", "y", "x"))
    with pytest.raises(ValueError, match="empty"):
        Vocabulary(())
    with pytest.raises(ValueError, match="string 'party'"):
        Vocabulary(("party", "p")).encode_multi_hot("party")


def test_a_vocabulary_is_an_immutable_hashable_value():
    vocabulary = Vocabulary(["a", "b"])
    assert vocabulary == Vocabulary(("a", "b")) != Vocabulary(("a", "b"), strict=False)
    assert hash(vocabulary) == hash(Vocabulary(("a", "b")))
    assert "a" in vocabulary and "z" not in vocabulary and ["a"] not in vocabulary
    with pytest.raises(AttributeError):
        vocabulary.strict = False  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(vocabulary)).encode_one_hot("b").tolist() == [0, 1]


def test_numbers_match_by_value_in_a_vocabulary_too():
    vocabulary = Vocabulary(range(1, 13))
    assert vocabulary.index(3.0) == vocabulary.index(np.int64(3)) == 2


@given(st.lists(st.sampled_from("abcdexyz"), max_size=10), st.booleans())
def test_vocabulary_multi_hot_agrees_with_the_batch_function(values, strict):
    vocabulary = Vocabulary("abcde", strict=strict)
    known = [v for v in values if v in "abcde"]
    if strict and len(known) < len(values):
        with pytest.raises(ValueError, match="unknown category"):
            vocabulary.encode_multi_hot(values)
        return
    encoded = vocabulary.encode_multi_hot(values)
    offset = 0 if strict else 1
    assert encoded[offset:].tolist() == multi_hot([known], list("abcde"))[0].tolist()
    if not strict:
        assert encoded[0] == float(len(known) < len(values))
