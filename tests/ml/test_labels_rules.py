"""The rules engine: every operator, all/any, priority, single-label groups, "never overwrite
human" (skip_groups), descriptions, validation and the rules' uncertainty."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.items import ItemData
from ml.labels import (
    FIELDS,
    OPERATORS,
    REGEX_MAX_LENGTH,
    Condition,
    Rule,
    RuleError,
    RuleLabel,
    apply_rules,
    compile_regex,
    rule_uncertainty,
)

BEANS = ItemData(id=1, name="Fresh Roast Coffee Beans", description="Locally roasted, 250 g",
                 vendor="Bean There", category="Coffee", sku="BT-001", price=14.5, local=True,
                 sustainable=False, brandable=True, perishable=True)
MUG = ItemData(id=2, name="Branded mug", vendor="Mugs & Co", category="Home", price=9.0,
               brandable=True)


def rule(rule_id: int, conditions: list[dict], labels: list[str], priority: int = 100,
         match: str = "all", enabled: bool = True, name: str | None = None) -> Rule:
    """A validated rule from short arguments."""
    return Rule.from_dict(rule_id, name or f"rule {rule_id}", priority,
                          {"match": match, "conditions": conditions}, labels, enabled)


# --- Operators, positive and negative ------------------------------------------------------

@pytest.mark.parametrize(("field", "op", "value", "beans", "mug"), [
    ("text", "contains", "COFFEE", True, False),
    ("text", "contains", "roasted", True, False),        # found in the description
    ("name", "contains", "roasted", False, False),       # the name alone does not say it
    ("description", "contains", "250 g", True, False),
    ("text", "not_contains", "coffee", False, True),
    ("vendor", "equals", "bean there", True, False),
    ("vendor", "equals", "Bean", False, False),          # equals is the whole value
    ("category", "in", ["coffee", "Tea"], True, False),
    ("category", "not_in", ["coffee", "Tea"], False, True),
    ("sku", "equals", "bt-001", True, False),
    ("sku", "not_contains", "BT", False, True),          # a missing SKU contains nothing
    ("text", "regex", r"\bmugs?\b", False, True),
    ("text", "regex", r"^fresh", True, False),
    ("price", "lt", 10, False, True),
    ("price", "le", 9, False, True),
    ("price", "gt", 14.5, False, False),
    ("price", "ge", 14.5, True, False),
    ("price", "eq", "14.50", True, False),
    ("local", "is_true", None, True, False),
    ("local", "is_false", None, False, True),
    ("perishable", "is_true", "", True, False),
    ("brandable", "is_false", None, False, False),
    ("sustainable", "is_false", None, True, True),
])
def test_each_operator(field, op, value, beans, mug):
    condition = Condition(field, op, value)
    assert condition.matches(BEANS) is beans
    assert condition.matches(MUG) is mug


def test_every_field_and_operator_is_covered_above():
    kinds = {kind: set(ops) for kind, ops in OPERATORS.items()}
    assert set(FIELDS.values()) == set(kinds)
    assert kinds["text"] == {"contains", "not_contains", "equals", "regex", "in", "not_in"}
    assert kinds["number"] == {"lt", "le", "gt", "ge", "eq"}
    assert kinds["bool"] == {"is_true", "is_false"}


def test_all_and_any():
    conditions = [{"field": "text", "op": "contains", "value": "coffee"},
                  {"field": "price", "op": "lt", "value": 10}]
    both = rule(1, conditions, ["theme:coffee"], match="all")
    either = rule(2, conditions, ["theme:coffee"], match="any")
    assert not both.matches(BEANS) and not both.matches(MUG)
    assert either.matches(BEANS) and either.matches(MUG)
    assert both.matches(ItemData(id=3, name="Coffee sample", price=5))


# --- Applying rules ------------------------------------------------------------------------

COFFEE = {"field": "text", "op": "contains", "value": "coffee"}
LOCAL = {"field": "local", "op": "is_true"}


def test_a_rule_gives_all_its_labels_with_provenance():
    rules = [rule(7, [COFFEE], ["theme:coffee", "occasion:onboarding"], name="Coffee")]
    assert apply_rules(rules, BEANS) == [RuleLabel("theme:coffee", 7, "Coffee"),
                                         RuleLabel("occasion:onboarding", 7, "Coffee")]
    assert apply_rules(rules, MUG) == []


def test_priority_decides_which_rule_labels_first_and_ties_go_by_id():
    late = rule(1, [LOCAL], ["theme:local"], priority=50, name="late")
    early = rule(2, [COFFEE], ["theme:coffee", "theme:local"], priority=10, name="early")
    labels = apply_rules([late, early], BEANS)
    assert [(label.label, label.rule_name) for label in labels] == [
        ("theme:coffee", "early"), ("theme:local", "early")]  # each label once, from the first
    tie_b = rule(9, [LOCAL], ["audience:everyone"], priority=5, name="b")
    tie_a = rule(3, [LOCAL], ["audience:everyone"], priority=5, name="a")
    assert apply_rules([tie_b, tie_a], BEANS)[0].rule_name == "a"


def test_in_a_single_label_group_the_first_matching_rule_wins():
    first = rule(1, [COFFEE], ["audience:new hires"], priority=1)
    second = rule(2, [LOCAL], ["audience:everyone", "theme:local"], priority=2)
    labels = [label.label for label in apply_rules([second, first], BEANS,
                                                   single_label_groups={"audience"})]
    assert labels == ["audience:new hires", "theme:local"]
    # In a multi-label group both stay.
    both = [label.label for label in apply_rules([second, first], BEANS)]
    assert both == ["audience:new hires", "audience:everyone", "theme:local"]


def test_a_rule_listing_two_labels_of_a_single_label_group_gives_only_the_first():
    greedy = rule(1, [COFFEE], ["audience:everyone", "audience:executives"])
    assert [label.label for label in apply_rules([greedy], BEANS,
                                                 single_label_groups={"audience"})] == [
        "audience:everyone"]


def test_disabled_rules_are_skipped():
    rules = [rule(1, [COFFEE], ["theme:coffee"], enabled=False),
             rule(2, [LOCAL], ["theme:local"])]
    assert [label.label for label in apply_rules(rules, BEANS)] == ["theme:local"]


def test_never_overwrite_human_skip_groups_get_no_rule_label():
    """The caller passes the groups a person labelled (or the model owns): rules stay out."""
    rules = [rule(1, [COFFEE], ["theme:coffee", "occasion:onboarding"]),
             rule(2, [LOCAL], ["theme:local"])]
    labels = apply_rules(rules, BEANS, skip_groups={"theme"})
    assert [label.label for label in labels] == ["occasion:onboarding"]
    assert apply_rules(rules, BEANS, skip_groups={"theme", "occasion"}) == []


def test_a_skipped_group_does_not_block_a_single_label_group():
    rules = [rule(1, [COFFEE], ["theme:coffee"], priority=1),
             rule(2, [COFFEE], ["audience:everyone"], priority=2)]
    labels = apply_rules(rules, BEANS, single_label_groups={"audience"}, skip_groups={"theme"})
    assert [label.label for label in labels] == ["audience:everyone"]


# --- Descriptions ---------------------------------------------------------------------------

def test_describe_reads_like_the_issue():
    coffee = rule(1, [COFFEE, {"field": "price", "op": "lt", "value": 20}], ["theme:coffee"])
    assert coffee.describe() == 'name/description contains "coffee" and price < 20'
    mixed = rule(2, [{"field": "vendor", "op": "in", "value": ["A", "B c"]},
                     {"field": "local", "op": "is_true"},
                     {"field": "name", "op": "regex", "value": r"mugs?"},
                     {"field": "price", "op": "ge", "value": 12.5},
                     {"field": "sku", "op": "not_contains", "value": 'say "hi"'}],
                 ["theme:home"], match="any")
    assert mixed.describe() == ('vendor in ["A", "B c"] or local is true or name matches /mugs?/'
                                ' or price >= 12.5 or sku does not contain "say \\"hi\\""')


def test_condition_dict_round_trips_normalised():
    original = rule(4, [{"field": "vendor", "op": "in", "value": [" A ", "B", "A"]},
                        {"field": "price", "op": "le", "value": "19.99"},
                        {"field": "local", "op": "is_false", "value": ""}], ["theme:local"])
    stored = original.condition_dict()
    assert stored == {"match": "all", "conditions": [
        {"field": "vendor", "op": "in", "value": ["A", "B"]},
        {"field": "price", "op": "le", "value": 19.99},
        {"field": "local", "op": "is_false"}]}
    again = Rule.from_dict(4, original.name, original.priority, stored, original.labels)
    assert again == original


# --- Validation -----------------------------------------------------------------------------

@pytest.mark.parametrize(("condition", "message"), [
    ({"match": "some", "conditions": [COFFEE]}, "match must be 'all' or 'any'"),
    ({"match": "all", "conditions": []}, "the rule needs at least one condition"),
    ({"match": "all"}, "the rule needs at least one condition"),
    ({"match": "all", "conditions": [COFFEE, {"field": "price", "op": "lt", "value": "cheap"}]},
     "condition 2: 'price' needs a number"),
    ({"match": "all", "conditions": [{"field": "price", "op": "lt", "value": float("nan")}]},
     "condition 1: 'price' needs a finite number"),
    ({"match": "all", "conditions": [{"field": "price", "op": "lt", "value": True}]},
     "condition 1: 'price' needs a number"),
    ({"match": "all", "conditions": [{"field": "colour", "op": "equals", "value": "red"}]},
     "condition 1: there is no field 'colour'"),
    ({"match": "all", "conditions": [{"field": "price", "op": "contains", "value": "1"}]},
     "condition 1: 'price' cannot use 'contains'"),
    ({"match": "all", "conditions": [{"field": "name", "op": "contains", "value": "  "}]},
     "condition 1: 'name contains' needs some text"),
    ({"match": "all", "conditions": [{"field": "vendor", "op": "in", "value": "A, B"}]},
     "condition 1: 'vendor in' needs a list of values"),
    ({"match": "all", "conditions": [{"field": "vendor", "op": "in", "value": []}]},
     "condition 1: 'vendor in' needs at least one value"),
    ({"match": "all", "conditions": [{"field": "local", "op": "is_true", "value": "yes"}]},
     "condition 1: 'local is true' takes no value"),
    ({"match": "all", "conditions": [{"field": "name", "op": "regex", "value": "(unclosed"}]},
     "condition 1: the regular expression is invalid: missing ), unterminated subpattern"),
    ({"match": "all", "conditions": [{"field": "name", "op": "regex", "value": "(a+)+$"}]},
     "condition 1: the regular expression repeats a group that itself repeats"),
    ({"match": "all", "conditions": ["coffee"]}, "condition 1: expected an object"),
])
def test_invalid_conditions_say_what_is_wrong(condition, message):
    with pytest.raises(RuleError) as error:
        Rule.from_dict(1, "Broken", 100, condition, ["theme:coffee"])
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(("name", "priority", "labels", "message"), [
    ("  ", 1, ["theme:coffee"], "the rule needs a name"),
    ("x" * 121, 1, ["theme:coffee"], "the rule's name is longer than 120 characters"),
    ("ok", "1", ["theme:coffee"], "the priority must be a whole number"),
    ("ok", 1, [], "the rule needs at least one label"),
    ("ok", 1, ["coffee"], "'coffee' is not a label name of the form group:label"),
    ("ok", 1, "theme:coffee", "labels must be a list"),
])
def test_invalid_rules_say_what_is_wrong(name, priority, labels, message):
    with pytest.raises(RuleError, match="^" + message.replace("(", r"\(")):
        Rule.from_dict(1, name, priority, {"match": "all", "conditions": [COFFEE]}, labels)


def test_regex_length_is_limited_and_ordinary_patterns_pass():
    with pytest.raises(RuleError, match=f"longer than {REGEX_MAX_LENGTH}"):
        compile_regex("a" * (REGEX_MAX_LENGTH + 1))
    for pattern in (r"(ab)+", r"\bmugs?\b", r"[a-z]+(foo)?", r"(a|b){3}", r"\d{2,4} ?g"):
        compile_regex(pattern)
    for pattern in (r"(\w*)*$", r"(?:x{1,9})+", r"(a+){2,}"):
        with pytest.raises(RuleError, match="repeats a group"):
            compile_regex(pattern)


# --- Uncertainty ----------------------------------------------------------------------------

def test_rule_uncertainty_falls_as_more_groups_are_covered():
    groups = ["occasion", "theme", "audience", "unused"]
    none = rule_uncertainty([], groups)
    one = rule_uncertainty([RuleLabel("theme:coffee", 1, "r"), RuleLabel("theme:local", 1, "r")],
                           groups)
    three = rule_uncertainty([RuleLabel(label, 1, "r") for label in (
        "theme:coffee", "occasion:onboarding", "audience:everyone")], groups)
    everything = rule_uncertainty([RuleLabel(f"{group}:x", 1, "r") for group in groups], groups)
    assert none == 1.0 > one > three > everything == 0.5
    assert one == pytest.approx(1 - 0.5 / 4)
    # Labels of groups outside the list (e.g. live on the model) do not count.
    assert rule_uncertainty([RuleLabel("other:x", 1, "r")], groups) == 1.0
    assert rule_uncertainty([], []) == 1.0


# --- Properties -----------------------------------------------------------------------------

items = st.builds(ItemData, id=st.integers(0, 10), name=st.text(max_size=80),
                  description=st.text(max_size=200), vendor=st.text(max_size=30),
                  category=st.text(max_size=30), sku=st.none() | st.text(max_size=20),
                  price=st.floats(0, 1e6), local=st.booleans(), sustainable=st.booleans(),
                  brandable=st.booleans(), perishable=st.booleans())
values = st.text(min_size=1, max_size=30).filter(lambda text: text.strip())


@given(item=items, needle=values)
def test_text_operators_never_raise_and_contains_agrees_with_its_negation(item, needle):
    for field in ("text", "name", "description", "vendor", "category", "sku"):
        contains = Condition(field, "contains", needle).matches(item)
        assert Condition(field, "not_contains", needle).matches(item) is not contains
        inside = Condition(field, "in", [needle]).matches(item)
        assert Condition(field, "not_in", [needle]).matches(item) is not inside
        assert isinstance(Condition(field, "equals", needle).matches(item), bool)


@given(item=items, pattern=st.text(max_size=40))
def test_any_pattern_is_either_refused_cleanly_or_matches_without_error(item, pattern):
    try:
        condition = Condition("text", "regex", pattern)
    except RuleError:
        return
    assert isinstance(condition.matches(item), bool)


@given(item=items, labels=st.lists(st.sampled_from(
    ["theme:coffee", "theme:tea", "audience:everyone", "audience:executives"]),
    min_size=1, max_size=4), priorities=st.lists(st.integers(-5, 5), min_size=1, max_size=4))
def test_apply_rules_never_gives_two_labels_in_a_single_label_group(item, labels, priorities):
    rules = [rule(n, [{"field": "price", "op": "ge", "value": 0}], labels[n % len(labels):] or labels,
                  priority=p) for n, p in enumerate(priorities)]
    given_labels = apply_rules(rules, item, single_label_groups={"audience"},
                               skip_groups={"theme"})
    assert sum(label.label.startswith("audience:") for label in given_labels) <= 1
    assert not any(label.label.startswith("theme:") for label in given_labels)
    assert len({label.label for label in given_labels}) == len(given_labels)
