"""The label model: training, metrics against a rules baseline, decisions, uncertainty, ordering."""

from __future__ import annotations

import dataclasses
import io

import joblib
import numpy as np
import pytest

from ml import store
from ml.gift_items import DEMO_GROUPS, generate_items
from ml.items import ItemData
from ml.label_model import (
    ALGORITHMS,
    MIN_EXAMPLES,
    LabelExample,
    LabelFeatures,
    LabelModel,
    _examples_hash,
    order_by_uncertainty,
    train_labels,
)
from ml.training import data_hash

GROUPS = {group: labels for group, (_, labels) in DEMO_GROUPS.items()}
SINGLE = frozenset(group for group, (multi, _) in DEMO_GROUPS.items() if not multi)
FIELDS = ("sku", "name", "description", "vendor", "category", "price", "local", "sustainable",
          "brandable", "perishable")

#: A keyword rulebook like the one staff write on day one: themes from obvious words only.
KEYWORDS = {"theme:coffee": ("coffee", "espresso"), "theme:tea": ("tea",),
            "theme:sweets": ("chocolate", "truffle"), "theme:tech": ("usb", "charger")}


def examples(n: int, seed: int = 7) -> list[LabelExample]:
    """``n`` demo catalogue items with the labels a careful person gives them."""
    return [LabelExample(ItemData(id=i, **{name: row[name] for name in FIELDS}), row["labels"])
            for i, row in enumerate(generate_items(n, seed=seed))]


def keyword_rules(items: list[LabelExample]) -> dict[int, frozenset[str]]:
    """What the keyword rulebook labels each item with."""
    return {example.item.id: frozenset(label for label, words in KEYWORDS.items()
                                       if any(word in example.item.text.lower() for word in words))
            for example in items}


@pytest.fixture(scope="module")
def data() -> list[LabelExample]:
    """Four hundred labelled items."""
    return examples(400)


@pytest.fixture(scope="module")
def trained(data):
    """A logistic-regression label model with the keyword rules as the baseline."""
    return train_labels(data, GROUPS, SINGLE, keyword_rules(data), seed=3)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_beats_the_rules_baseline(data, algorithm):
    result = train_labels(data, GROUPS, SINGLE, keyword_rules(data), algorithm=algorithm)
    metrics = result.metrics
    assert metrics["micro_f1"] > metrics["baseline_micro_f1"] + 0.1
    assert metrics["macro_f1"] > metrics["baseline_macro_f1"] + 0.1
    assert metrics["holdout_items"] == 80 and metrics["train_items"] == 320
    assert result.params["algorithm"] == algorithm
    assert result.training_rows == 400


def test_beats_always_suggesting_the_commonest_labels(data, trained):
    # A trivial model: every item gets the labels most items have in each group.
    counts = {label: sum(label in ex.labels for ex in data) for names in GROUPS.values()
              for label in (f"{group}:{name}" for group in GROUPS for name in names)}
    common = frozenset(label for label, count in counts.items() if count > len(data) / 2)
    trivial = train_labels(data, GROUPS, SINGLE, {ex.item.id: common for ex in data}, seed=3)
    assert trained.metrics["micro_f1"] > trivial.metrics["baseline_micro_f1"]


def test_metrics_and_params(trained):
    metrics, labels = trained.metrics, trained.params["labels"]
    for key in ("micro_f1", "micro_precision", "micro_recall", "macro_f1", "baseline_micro_f1",
                "baseline_micro_precision", "baseline_micro_recall", "baseline_macro_f1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert set(metrics["per_label"]) == set(labels)
    assert len(labels) == sum(len(names) for names in GROUPS.values())
    coffee = metrics["per_label"]["theme:coffee"]
    assert set(coffee) == {"precision", "recall", "f1", "support", "baseline_precision",
                           "baseline_recall", "baseline_f1"}
    assert coffee["support"] > 0
    assert trained.params["groups"] == list(GROUPS)
    assert trained.params["single_label_groups"] == ["audience"]


def test_without_a_baseline_the_rules_metrics_are_none(data):
    metrics = train_labels(data[:60], GROUPS, SINGLE).metrics
    assert metrics["baseline_micro_f1"] is None and metrics["baseline_macro_f1"] is None
    assert metrics["micro_f1"] is not None


def test_single_label_group_takes_the_argmax(data, trained):
    model: LabelModel = trained.model
    items = [ex.item for ex in data[:50]]
    proba = model.predict_proba(items)
    audience = [j for j, name in enumerate(model.labels_) if name.startswith("audience:")]
    for row, suggestions, predicted in zip(proba, model.suggest(items), model.predict(items),
                                           strict=True):
        chosen = [(label, c) for label, c in suggestions if label.startswith("audience:")]
        best = audience[int(np.argmax(row[audience]))]
        assert [label for label, _ in chosen] == [model.labels_[best]]
        assert chosen[0][1] == pytest.approx(row[best] / row[audience].sum())
        assert [label for label in predicted if label.startswith("audience:")] == \
            [model.labels_[best]]


def test_multi_label_groups_use_the_threshold(data, trained):
    model: LabelModel = trained.model
    items = [ex.item for ex in data[:50]]
    proba = model.predict_proba(items)
    for row, suggestions in zip(proba, model.suggest(items), strict=True):
        themes = {label for label, _ in suggestions if label.startswith("theme:")}
        expected = {name for j, name in enumerate(model.labels_)
                    if name.startswith("theme:") and row[j] >= 0.5}
        assert themes == expected


def test_compiled_probabilities_match_scikit_learn(data, trained):
    model: LabelModel = trained.model
    items = [ex.item for ex in data[:40]]
    X = model.features.transform(items)
    expected = np.column_stack([estimator.predict_proba(X)[:, 1]
                                for estimator in model.estimators_])
    np.testing.assert_allclose(model.predict_proba(items), expected, rtol=1e-9, atol=1e-12)


def test_complement_nb_compiles_exactly_too(data):
    model = train_labels(data[:120], GROUPS, SINGLE, algorithm="complement_nb").model
    items = [ex.item for ex in data[:30]]
    X = model.features.transform(items)
    expected = np.column_stack([estimator.predict_proba(X)[:, 1]
                                for estimator in model.estimators_])
    np.testing.assert_allclose(model.predict_proba(items), expected, rtol=1e-9, atol=1e-12)


def test_uncertainty_follows_its_documented_formula(data, trained):
    model: LabelModel = trained.model
    items = [ex.item for ex in data[:20]]
    proba = model.predict_proba(items)
    for row, uncertainty in zip(proba, model.uncertainty(items), strict=True):
        margins = []
        for group, columns in model.groups_.items():
            values = row[list(columns)]
            if group in SINGLE:
                shares = np.sort(values / values.sum())[::-1]
                margins.append(shares[0] - shares[1])
            else:
                margins.append(2 * np.min(np.abs(values - 0.5)))
        assert uncertainty == pytest.approx(1 - np.mean(margins))
        assert 0.0 <= uncertainty <= 1.0
    assert model.uncertainty(items, groups=[]) == [1.0] * len(items)
    only_theme = model.uncertainty(items[:1], groups=["theme"])[0]
    theme = proba[0][list(model.groups_["theme"])]
    assert only_theme == pytest.approx(1 - 2 * np.min(np.abs(theme - 0.5)))


def test_suggestions_can_be_limited_to_groups(data, trained):
    suggestions = trained.model.suggest([ex.item for ex in data[:10]], groups=["audience"])
    assert all(len(row) == 1 and row[0][0].startswith("audience:") for row in suggestions)


def test_same_seed_same_model_and_metrics(data):
    first = train_labels(data[:150], GROUPS, SINGLE, seed=5)
    again = train_labels(data[:150], GROUPS, SINGLE, seed=5)
    assert first.metrics == again.metrics
    assert first.data_hash == again.data_hash
    items = [ex.item for ex in data[150:170]]
    np.testing.assert_array_equal(first.model.predict_proba(items),
                                  again.model.predict_proba(items))


def test_the_data_hash_is_data_hash_of_items_and_sorted_labels(data, trained, monkeypatch):
    def expected(some):
        return data_hash([{"item": ex.item, "labels": sorted(ex.labels)} for ex in some])

    assert trained.data_hash == expected(data)
    odd = [LabelExample(ItemData(id=1, name="Mug", sku=None, price=4), frozenset()),
           LabelExample(ItemData(id=2, name="Tea", price=float("nan"), local=True),
                        frozenset({"theme:tea", "occasion:onboarding"}))]
    monkeypatch.setattr("ml.label_model._HASH_CHUNK", 7)  # several chunks, joined as one list
    for some in ([], odd, data[:30] + odd):
        assert _examples_hash(some) == expected(some)

    class Boxed(ItemData):
        pass

    subclassed = [LabelExample(Boxed(id=3, name="Box"), frozenset())]  # data_hash's own walk
    assert _examples_hash(subclassed) == expected(subclassed)


def test_fit_transform_encodes_as_fit_then_transform(data):
    items = [ex.item for ex in data]
    features = LabelFeatures(min_df=2)
    together = features.fit_transform(items)
    apart = LabelFeatures(min_df=2).fit(items)
    assert features.vectorizer_.vocabulary_ == apart.vectorizer_.vocabulary_
    assert features.price_scale_ == apart.price_scale_
    # Equal up to the order each row's squares were summed in when it was normalised.
    np.testing.assert_allclose(together.toarray(), apart.transform(items).toarray(),
                               rtol=1e-12, atol=1e-15)


def test_a_different_seed_holds_out_different_items(data):
    # The hold-out counts are the same, but which items are held out changes the support.
    first = train_labels(data[:150], GROUPS, SINGLE, seed=5).metrics["per_label"]
    other = train_labels(data[:150], GROUPS, SINGLE, seed=6).metrics["per_label"]
    assert [v["support"] for v in first.values()] != [v["support"] for v in other.values()]


def test_pickles_and_survives_the_store(tmp_path, data, trained):
    buffer = io.BytesIO()
    joblib.dump(trained.model, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    items = [ex.item for ex in data[:25]]
    np.testing.assert_array_equal(loaded.predict_proba(items), trained.model.predict_proba(items))
    assert loaded.suggest(items) == trained.model.suggest(items)

    meta = store.publish(tmp_path, "labels", trained)
    assert meta.smoke_input == [dataclasses.asdict(ex.item) for ex in data[:3]]
    assert meta.smoke_output == trained.model.predict([ex.item for ex in data[:3]])
    again = store.load(tmp_path, "labels", meta.version, meta.sha256)
    assert again.model.predict(items) == trained.model.predict(items)


def test_too_few_examples_is_a_clear_error(data):
    with pytest.raises(ValueError, match=f"at least {MIN_EXAMPLES} human-labelled items"):
        train_labels(data[:MIN_EXAMPLES - 1], GROUPS, SINGLE)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"algorithm": "forest"}, "unknown algorithm 'forest'"),
    ({"holdout": 1.0}, "holdout must be between 0 and 1"),
    ({"single_label_groups": {"mood"}}, r"single-label groups \['mood'\]"),
])
def test_bad_settings_are_refused(data, kwargs, message):
    arguments = {"single_label_groups": SINGLE, **kwargs}
    with pytest.raises(ValueError, match=message):
        train_labels(data[:40], GROUPS, **arguments)


def test_no_known_label_at_all_is_refused(data):
    blank = [LabelExample(ex.item, frozenset({"mood:happy"})) for ex in data[:20]]
    with pytest.raises(ValueError, match="none of the examples has a label"):
        train_labels(blank, GROUPS, SINGLE)


def test_a_label_nobody_used_is_constant_and_its_group_not_covered(data):
    groups = {**GROUPS, "theme": (*GROUPS["theme"], "stationery-only")}
    result = train_labels(data[:80], groups, SINGLE)
    model = result.model
    column = model.labels_.index("theme:stationery-only")
    assert model.estimators_[column] is None
    assert (model.predict_proba([ex.item for ex in data[:5]])[:, column] == 0).all()
    assert "theme" not in result.params["groups"]
    assert "occasion" in result.params["groups"]


def test_unknown_labels_are_ignored_and_counted(data):
    noisy = [LabelExample(ex.item, ex.labels | {"mood:happy"}) for ex in data[:40]]
    assert train_labels(noisy, GROUPS, SINGLE).params["labels_ignored"] == 40


def test_qualified_and_plain_label_names_mean_the_same(data):
    qualified = {group: tuple(f"{group}:{name}" for name in names)
                 for group, names in GROUPS.items()}
    plain = train_labels(data[:60], GROUPS, SINGLE)
    full = train_labels(data[:60], qualified, SINGLE)
    assert plain.params["labels"] == full.params["labels"]
    assert plain.metrics == full.metrics


# ---------------------------------------------------------------------------------------------
# order_by_uncertainty
# ---------------------------------------------------------------------------------------------


def test_without_random_share_least_certain_come_first():
    ids = [10, 11, 12, 13, 14]
    assert order_by_uncertainty(ids, [0.2, 0.9, 0.5, 0.9, 0.1], 0.0, 0) == [11, 13, 12, 10, 14]


def test_random_share_fills_about_that_many_positions():
    rng = np.random.default_rng(0)
    ids = list(range(1000, 1200))
    values = rng.permutation(200) / 200.0
    uncertainty = dict(zip(ids, values, strict=True))
    order = order_by_uncertainty(ids, values, 0.1, 42)
    assert sorted(order) == ids
    left = set(ids)
    off_greedy = 0
    greedy = []
    for item in order:
        if uncertainty[item] != max(uncertainty[i] for i in left):
            off_greedy += 1
        else:
            greedy.append(uncertainty[item])
        left.remove(item)
    # 20 positions are random; a random pick is rarely the most uncertain one left.
    assert 15 <= off_greedy <= 20
    assert greedy == sorted(greedy, reverse=True)


def test_the_same_seed_gives_the_same_order():
    values = np.random.default_rng(1).random(300)
    ids = list(range(300))
    first = order_by_uncertainty(ids, values, 0.1, 7)
    assert order_by_uncertainty(ids, values, 0.1, 7) == first
    assert order_by_uncertainty(ids, values, 0.1, np.random.default_rng(7)) == first
    assert order_by_uncertainty(ids, values, 0.1, 8) != first


def test_all_random_is_still_every_item_once():
    ids = list(range(50))
    order = order_by_uncertainty(ids, [0.5] * 50, 1.0, 3)
    assert sorted(order) == ids and order != ids
    assert order_by_uncertainty([], [], 0.1, 0) == []


@pytest.mark.parametrize(("ids", "values", "share", "message"), [
    ([1, 2], [0.1], 0.1, "2 ids but 1 uncertainties"),
    ([1], [0.1], 1.5, "random_share must be between 0 and 1"),
])
def test_ordering_refuses_bad_input(ids, values, share, message):
    with pytest.raises(ValueError, match=message):
        order_by_uncertainty(ids, values, share, 0)
