"""The synthetic gift catalogue: repeatable, well-typed, labelled from the demo vocabulary."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from ml.gift_items import DEMO_GROUPS, generate_items

KEYS = {"sku", "name", "description", "vendor", "category", "price", "local", "sustainable",
        "brandable", "perishable", "image_url", "labels"}


def test_same_seed_gives_the_same_items():
    assert list(generate_items(50, seed=3)) == list(generate_items(50, seed=3))


def test_another_seed_gives_other_items():
    assert list(generate_items(20, seed=1)) != list(generate_items(20, seed=2))


def test_a_longer_run_starts_with_the_shorter_one():
    """Items are drawn one after another, so n only decides where the stream stops."""
    assert list(generate_items(30))[:10] == list(generate_items(10))


def test_it_streams_and_leaves_the_global_random_state_alone():
    random.seed(0)
    expected = random.random()
    random.seed(0)
    stream = generate_items(10**9)
    first = list(itertools.islice(stream, 5))
    assert len(first) == 5
    assert random.random() == expected


def test_field_types():
    for item in generate_items(300):
        assert set(item) == KEYS
        for key in ("sku", "name", "description", "vendor", "category", "image_url"):
            assert isinstance(item[key], str) and item[key], key
        assert isinstance(item["price"], float)
        assert item["price"] > 0 and round(item["price"], 2) == item["price"]
        for key in ("local", "sustainable", "brandable", "perishable"):
            assert isinstance(item[key], bool)
        assert isinstance(item["labels"], frozenset)


def test_skus_are_unique():
    skus = [item["sku"] for item in generate_items(2000)]
    assert len(set(skus)) == len(skus)


def test_labels_come_from_the_demo_vocabulary_and_respect_single_label_groups():
    vocabulary = {f"{group}:{label}" for group, (_, labels) in DEMO_GROUPS.items()
                  for label in labels}
    for item in generate_items(500):
        assert item["labels"] <= vocabulary
        for group, (multi, _) in DEMO_GROUPS.items():
            count = sum(label.startswith(f"{group}:") for label in item["labels"])
            if group == "occasion":
                assert count >= 1, item["labels"]
            if not multi:
                assert count == 1, (group, item["labels"])


def test_every_group_and_label_is_represented():
    counts = Counter(label for item in generate_items(500) for label in item["labels"])
    for group, (_, labels) in DEMO_GROUPS.items():
        for label in labels:
            assert counts[f"{group}:{label}"] >= 20, f"{group}:{label}"


def test_a_few_vendors_and_believable_attributes():
    items = list(generate_items(500))
    vendors = Counter(item["vendor"] for item in items)
    assert 4 <= len(vendors) <= 8
    roasted = [item for item in items if item["category"] == "coffee"]
    assert roasted and sum(item["local"] for item in roasted) > len(roasted) / 2
    chocolate = [item for item in items if item["category"] == "chocolate"]
    assert chocolate and all(item["price"] < 100 for item in chocolate)
    assert sum(item["perishable"] for item in chocolate) > len(chocolate) / 2


def test_labels_follow_the_items_nature():
    """Coffee is labelled coffee and tech is labelled tech, apart from the deliberate noise."""
    items = list(generate_items(500))
    coffee = [item for item in items if item["category"] == "coffee"]
    tech = [item for item in items if item["category"] in ("charger", "desk tech")]
    assert sum("theme:coffee" in item["labels"] for item in coffee) / len(coffee) > 0.8
    assert sum("theme:tech" in item["labels"] for item in tech) / len(tech) > 0.8


def test_negative_n_is_refused():
    with pytest.raises(ValueError, match="0 or more"):
        list(generate_items(-1))
