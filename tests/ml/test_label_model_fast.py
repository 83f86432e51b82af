"""The label model's single-item path (``predict_proba_one``, ``suggest_one``) against the batch
path it must agree with: same probabilities to rounding, same suggestions, for any text."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ml.gift_items import DEMO_GROUPS, generate_items
from ml.items import ItemData
from ml.label_model import (
    ALGORITHMS,
    LabelExample,
    LabelFeatures,
    LabelModel,
    _text,
    train_labels,
)

GROUPS = {group: labels for group, (_, labels) in DEMO_GROUPS.items()}
SINGLE = frozenset(group for group, (multi, _) in DEMO_GROUPS.items() if not multi)
FIELDS = ("sku", "name", "description", "vendor", "category", "price", "local", "sustainable",
          "brandable", "perishable")

#: Texts that take every branch of the encoder: accents (not ASCII), punctuation, underscores,
#: digits, one-letter words, repeated terms, unknown words, nothing at all.
ODD_TEXTS = [
    "", "   ", "a", "Café crème brûlée — ﬁne chocolate", "COFFEE coffee Coffee, coffee!",
    "tea_time 2x 10 mugs & a 1 kg bag", "zzyzx qwerty unknownword", "naïve\tnaïve\nnaive",
    "Straße ǅemal ﬃ İstanbul", "espresso-espresso espresso/espresso", "x y z coffee tea",
]


def examples(n: int, seed: int = 7) -> list[LabelExample]:
    """``n`` demo catalogue items with their labels."""
    return [LabelExample(ItemData(id=i, **{name: row[name] for name in FIELDS}), row["labels"])
            for i, row in enumerate(generate_items(n, seed=seed))]


def probes() -> list[ItemData]:
    """Unseen catalogue items, odd texts in every field, odd prices and attributes."""
    items = [example.item for example in examples(60, seed=99)]
    for i, text in enumerate(ODD_TEXTS):
        items.append(ItemData(1000 + i, name=text, description=text[::-1], vendor=text[:5],
                              category=text[-4:], price=[0.0, -3.0, 12.5, 1e9][i % 4],
                              local=bool(i % 2), sustainable=bool(i % 3),
                              brandable=bool(i % 5), perishable=i == 4))
    return items


@pytest.fixture(scope="module", params=ALGORITHMS)
def model(request) -> LabelModel:
    """A label model of each algorithm, on 300 items."""
    data = examples(300)
    return train_labels(data, GROUPS, SINGLE, algorithm=request.param, seed=3).model


def assert_same_suggestions(fast, batch):
    assert [label for label, _ in fast] == [label for label, _ in batch]
    assert [c for _, c in fast] == pytest.approx([c for _, c in batch], rel=1e-12, abs=1e-12)


def test_probabilities_match_the_batch_path(model):
    items = probes()
    batch = model.predict_proba(items)
    fast = np.array([model.predict_proba_one(item) for item in items])
    np.testing.assert_allclose(fast, batch, rtol=1e-12, atol=1e-14)


def test_suggestions_match_the_batch_path(model):
    items = probes()
    for item, batch in zip(items, model.suggest(items), strict=True):
        assert_same_suggestions(model.suggest_one(item), batch)


@pytest.mark.parametrize("groups", [["theme"], ["audience", "occasion"], ["nope"], []])
def test_suggestions_of_some_groups(model, groups):
    for item in probes()[:20]:
        assert_same_suggestions(model.suggest_one(item, groups), model.suggest([item], groups)[0])


def test_a_dict_item_is_accepted(model):
    item = probes()[0]
    as_dict = {name: getattr(item, name) for name in ("id", *FIELDS)}
    np.testing.assert_allclose(model.predict_proba_one(as_dict), model.predict_proba_one(item))


def test_one_label_per_single_label_group(model):
    for item in probes():
        audience = [label for label, _ in model.suggest_one(item) if label.startswith("audience:")]
        assert len(audience) == 1


def test_thresholds_changed_after_the_first_call_are_honoured():
    model = train_labels(examples(200), GROUPS, SINGLE, seed=1).model
    item = probes()[0]
    model.suggest_one(item)  # builds the single-item form
    model.thresholds_ = np.full(len(model.labels_), 0.01)
    assert_same_suggestions(model.suggest_one(item), model.suggest([item])[0])
    assert len(model.suggest_one(item)) > 3


def test_constant_labels_match():
    # Every example is labelled "theme:coffee" and none "theme:tea": both are constants.
    data = [LabelExample(ex.item, (ex.labels - {"theme:tea"}) | {"theme:coffee"})
            for ex in examples(120)]
    model = train_labels(data, GROUPS, SINGLE, seed=2).model
    items = probes()
    np.testing.assert_allclose([model.predict_proba_one(item) for item in items],
                               model.predict_proba(items), rtol=1e-12, atol=1e-14)
    coffee = model.labels_.index("theme:coffee")
    assert model.predict_proba_one(items[0])[coffee] == 1.0


@pytest.mark.parametrize("text", ODD_TEXTS + [example.item.text for example in examples(30)])
def test_the_fast_analyzer_gives_the_vectorizers_terms(model, text):
    vectorizer = model.features.vectorizer_
    assert LabelModel._one_item_analyzer(vectorizer)(text) == vectorizer.build_analyzer()(text)


def model_with(vectorizer: TfidfVectorizer) -> LabelModel:
    """A label model whose text columns come from ``vectorizer`` (another TF-IDF set-up)."""
    data = examples(150)
    items = [example.item for example in data]
    features = LabelFeatures().fit(items)
    features.vectorizer_ = vectorizer.fit([_text(item) for item in items])
    X = features.transform(items)
    labels = [f"{group}:{name}" for group, names in GROUPS.items() for name in names]
    estimators = []
    for label in labels:
        y = np.array([label in example.labels for example in data], dtype=int)
        estimators.append(LogisticRegression(solver="liblinear").fit(X, y))
    groups = {group: tuple(f"{group}:{name}" for name in names)
              for group, names in GROUPS.items()}
    return LabelModel(features, labels, groups, SINGLE, estimators, [None] * len(labels),
                      "logreg")


@pytest.mark.parametrize("options", [
    {"binary": True},
    {"sublinear_tf": False},
    {"norm": "l1"},
    {"norm": None, "use_idf": False},
    {"ngram_range": (1, 1)},
    {"ngram_range": (1, 3)},  # not the fast analyzer's set-up: scikit-learn's own
    {"stop_words": ["the", "and", "for"]},
    {"token_pattern": r"(?u)\b\w+\b"},
    {"lowercase": False},
    {"strip_accents": "ascii"},
])
def test_other_tfidf_set_ups_match_the_batch_path(options):
    settings = {"sublinear_tf": True, "ngram_range": (1, 2), "strip_accents": "unicode",
                **options}
    model = model_with(TfidfVectorizer(**settings))
    items = probes()
    np.testing.assert_allclose([model.predict_proba_one(item) for item in items],
                               model.predict_proba(items), rtol=1e-12, atol=1e-14)


def test_another_feature_layout_takes_the_batch_path(monkeypatch):
    class Extended(LabelFeatures):
        """A feature space the single-item encoder does not know."""

    model = train_labels(examples(100), GROUPS, SINGLE, seed=1).model
    model.features.__class__ = Extended
    called = []
    batch = LabelModel.predict_proba
    monkeypatch.setattr(LabelModel, "predict_proba",
                        lambda self, items: called.append(1) or batch(self, items))
    item = probes()[0]
    np.testing.assert_allclose(model.predict_proba_one(item), batch(model, [item])[0])
    assert called


def test_the_single_item_form_is_not_pickled_and_comes_back(model):
    item = probes()[0]
    before = model.predict_proba_one(item)
    assert "_one_item" in model.__dict__
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    loaded = joblib.load(io.BytesIO(buffer.getvalue()))
    assert "_one_item" not in loaded.__dict__
    np.testing.assert_allclose(loaded.predict_proba_one(item), before, rtol=1e-15)
    assert "_one_item" not in pickle.loads(pickle.dumps(model)).__dict__
