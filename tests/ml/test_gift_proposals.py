"""Gift proposals: every bundle keeps the brief's rules; bundles differ; the learned model
finds a pattern popularity cannot."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.gift_history import generate_history, make_clients
from ml.gift_model import (
    PastGift,
    brief_features,
    brief_from_dict,
    budget_band,
    fit,
    train_gift_model,
)
from ml.gifts import Brief, Candidate, cold_score, explain_infeasible, is_excluded, propose

THEMES = ("coffee", "tea", "wellness", "sustainability", "local", "tech", "sweets", "home")
CATEGORIES = ("coffee", "tea", "mug", "notebook", "charger", "candle", "chocolate", "socks",
              "plant", "bottle")
ATTRIBUTES = ("local", "sustainable", "brandable", "perishable")


def candidate(id_, category, price, themes=(), attributes=(), occasions=(), vendor="V"):
    labels = frozenset({f"theme:{t}" for t in themes} | {f"occasion:{o}" for o in occasions})
    return Candidate(id_, f"item {id_}", vendor, category, price, labels, frozenset(attributes))


@st.composite
def catalogues(draw):
    size = draw(st.integers(min_value=0, max_value=40))
    items = []
    for i in range(size):
        items.append(candidate(
            i + 1, draw(st.sampled_from(CATEGORIES)),
            draw(st.floats(min_value=0.5, max_value=120, allow_nan=False)),
            draw(st.lists(st.sampled_from(THEMES), max_size=2, unique=True)),
            draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=2, unique=True)),
            vendor=draw(st.sampled_from(("A", "B", "C")))))
    return items


@st.composite
def briefs(draw):
    low = draw(st.floats(min_value=0, max_value=100, allow_nan=False))
    high = low + draw(st.floats(min_value=0.5, max_value=150, allow_nan=False))
    return Brief(occasion=draw(st.sampled_from((None, "onboarding", "retention"))),
                 budget_min=low, budget_max=high,
                 themes=tuple(draw(st.lists(st.sampled_from(THEMES), max_size=2, unique=True))),
                 exclude=tuple(draw(st.lists(st.sampled_from(("perishable", "sweets",
                                                               "theme:tech")),
                                             max_size=2, unique=True))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogues(), briefs())
def test_every_bundle_keeps_the_brief(items, brief):
    proposal = propose(items, brief)
    assert proposal.explanation
    seen: set[int] = set()
    for bundle in proposal.bundles:
        assert brief.budget_min - 1e-6 <= bundle.cost <= brief.budget_max + 1e-6
        categories = [line.item.category for line in bundle.lines]
        assert len(categories) == len(set(categories)), "a category appears twice"
        for line in bundle.lines:
            assert not is_excluded(line.item, brief.exclude)
            assert line.quantity >= 1 and line.reasons
        for theme in brief.themes:
            assert any(line.item.covers(theme) for line in bundle.lines), theme
        assert not (bundle.item_ids & seen), "bundles must not share items"
        seen |= bundle.item_ids


def test_three_different_bundles_when_the_catalogue_allows():
    items = [candidate(i, CATEGORIES[i % len(CATEGORIES)], 8 + i % 7, [THEMES[i % 3]])
             for i in range(1, 61)]
    proposal = propose(items, Brief("onboarding", 20, 40, themes=("coffee",)))
    assert len(proposal.bundles) == 3
    ids = [bundle.item_ids for bundle in proposal.bundles]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert proposal.explanation.startswith("three different bundles")


def test_locked_items_stay_in_the_first_bundle_and_avoided_ones_never_appear():
    items = [candidate(i, CATEGORIES[i % len(CATEGORIES)], 10, ["coffee"] if i < 5 else [])
             for i in range(1, 31)]
    brief = Brief(None, 20, 50, locked=(17,), avoid=frozenset({1, 2}))
    proposal = propose(items, brief)
    assert 17 in proposal.bundles[0].item_ids
    assert "locked by staff" in next(line for line in proposal.bundles[0].lines
                                     if line.item.id == 17).reasons
    assert all(not ({1, 2} & bundle.item_ids) for bundle in proposal.bundles)


def test_quantities_rise_to_reach_the_minimum():
    items = [candidate(1, "coffee", 10, ["coffee"]), candidate(2, "mug", 5)]
    proposal = propose(items, Brief(None, 30, 36, themes=("coffee",)))
    (bundle,) = proposal.bundles
    assert 30 <= bundle.cost <= 36
    assert max(line.quantity for line in bundle.lines) > 1


def test_reasons_name_the_theme_the_vendor_and_past_use():
    item = Candidate(1, "Roast", "Local Roasters", "coffee", 12.0,
                     frozenset({"theme:coffee", "occasion:client appreciation"}),
                     frozenset({"local"}), {"client appreciation": 3})
    score, reasons = cold_score(item, Brief("client appreciation", 10, 30, themes=("coffee",)))
    assert score > 0
    assert reasons == ("theme: coffee", "local vendor", "suits client appreciation",
                       "3 past client appreciation gifts used it")


@pytest.mark.parametrize("items, brief, expected", [
    ([], Brief(None, 5, 10), "The catalogue has no items yet."),
    ([candidate(1, "coffee", 12, ["coffee"])], Brief(None, 1, 5, themes=("coffee",)),
     "No item under 5.00 matches 'coffee'."),
    ([candidate(1, "chocolate", 3, ["sweets"], ["perishable"])],
     Brief(None, 1, 5, exclude=("perishable",)), "Every item is excluded by perishable."),
    ([candidate(1, "coffee", 3, ["coffee"])], Brief(None, 1, 5, themes=("tea",)),
     "No item matches 'tea' once the exclusions are applied."),
])
def test_an_infeasible_brief_is_explained(items, brief, expected):
    proposal = propose(items, brief)
    assert proposal.bundles == ()
    assert proposal.explanation == expected == explain_infeasible(items, brief)


def test_a_bad_budget_is_refused():
    with pytest.raises(ValueError, match="budget"):
        Brief(None, 50, 10)
    with pytest.raises(ValueError, match="budget"):
        Brief(None, 0, float("nan"))


def test_brief_features_and_bands():
    brief = Brief("onboarding", 10, 45, themes=("tea", "coffee"), industry="tech")
    assert brief_features(brief) == ["band=25-60", "occasion=onboarding", "industry=tech",
                                     "theme=coffee", "theme=tea"]
    assert [budget_band(x) for x in (10, 25, 80, 500)] == ["under-25", "25-60", "60-120",
                                                           "120-plus"]


def planted_catalogue(seed=3):
    rng = random.Random(seed)
    vendors = ("Roasters", "Tea House", "Paper Co", "Gadgets", "Calm Shop", "Chocolatier")
    items = []
    for i in range(1, 181):
        vendor = vendors[i % len(vendors)]
        items.append(candidate(i, CATEGORIES[rng.randrange(len(CATEGORIES))],
                               round(rng.uniform(4, 40), 2), [rng.choice(THEMES)], vendor=vendor))
    return items


def test_the_learned_model_beats_popularity_on_a_planted_pattern():
    items = planted_catalogue()
    history = [gift for _, gift in generate_history(items, make_clients(30), 600, seed=5)]
    trained = train_gift_model(history, cold_ranker=lambda brief: [
        c.id for c in sorted(items, key=lambda c: -cold_score(c, brief)[0])])
    metrics = trained.metrics
    assert metrics["hit_rate_at_10"] > metrics["popular_hit_rate_at_10"]
    assert metrics["recall_at_10"] > metrics["popular_recall_at_10"] * 1.2
    assert "cold_recall_at_10" in metrics and metrics["holdout_gifts"] == 120
    smoke = trained.model.predict(trained.smoke_input)
    assert len(smoke[0]) == 10


def test_model_scores_are_between_0_and_1_and_unknown_features_are_ignored():
    gifts = [PastGift(Brief("onboarding", 10, 30, industry="tech"), (1, 2)),
             PastGift(Brief("retention", 40, 90, industry="legal"), (3,))]
    model = fit(gifts)
    scores = model.scores(brief_from_dict({"budget_max": 30, "occasion": "onboarding",
                                           "themes": ["never-seen"], "industry": "space"}))
    assert set(scores) == {1, 2, 3}
    assert min(scores.values()) == 0.0 and max(scores.values()) == 1.0
    assert model.top(Brief("onboarding", 10, 30, industry="tech"), 2) == [1, 2]


def test_too_few_gifts_are_refused():
    with pytest.raises(ValueError, match="at least 20 past gifts"):
        train_gift_model([PastGift(Brief(None, 1, 10), (1, 2))] * 5)


def test_items_swapped_out_before_score_lower():
    plain = Candidate(1, "Mug", "V", "mug", 10.0, frozenset({"occasion:onboarding"}))
    swapped = Candidate(2, "Mug", "V", "mug", 10.0, frozenset({"occasion:onboarding"}),
                        past_swaps={"onboarding": 4})
    brief = Brief("onboarding", 5, 20)
    assert cold_score(swapped, brief)[0] < cold_score(plain, brief)[0]


def test_a_theme_the_attribute_covers_is_not_said_twice():
    item = Candidate(1, "Roast", "Local Roasters", "coffee", 12.0, frozenset({"theme:coffee"}),
                     frozenset({"local"}))
    assert cold_score(item, Brief(None, 10, 30, themes=("coffee", "local")))[1] == (
        "theme: coffee, local",)


def test_item_scores_read_like_a_dict_and_align_with_a_catalogue():
    import numpy as np

    from ml.gifts import CandidateIndex, ItemScores

    scores = ItemScores([30, 10, 20], [0.3, 0.1, 0.2])
    assert dict(scores) == {10: 0.1, 20: 0.2, 30: 0.3} and scores.get(99, 0.0) == 0.0
    index = CandidateIndex([candidate(i, "mug", 5.0) for i in (20, 99, 10)])
    assert index.learned_vector(scores).tolist() == [0.2, 0.0, 0.1]
    assert index.learned_vector(dict(scores)).tolist() == [0.2, 0.0, 0.1]
    assert ItemScores([], []).aligned(np.array([1, 2])).tolist() == [0.0, 0.0]
