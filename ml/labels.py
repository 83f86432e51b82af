"""The rules engine: readable conditions on an item's fields that assign labels (cold start).

A rule reads like ``name/description contains "coffee" and price < 20`` and assigns one or more
labels, named ``group:label``. Rules are plain frozen data: the web app stores them as JSON
(see ``Rule.condition_dict``) and builds them back with ``Rule.from_dict``, which validates
everything and raises ``RuleError`` with a message that says exactly what is wrong.

Condition JSON::

    {"match": "all" | "any",
     "conditions": [{"field": "price", "op": "lt", "value": 20}, ...]}

Text comparisons ignore case (``str.casefold``). Regular expressions are compiled once, when
the condition is built, with ``re.IGNORECASE``, and *searched* (not anchored).

Regex safety: Python's ``re`` has no time-out, so a pattern such as ``(a+)+$`` can take
exponential time on a long description. Patterns are therefore limited to
``REGEX_MAX_LENGTH`` characters, and a pattern with a quantified group that itself contains a
quantifier (``(a+)+``, ``(\\w*)*``, ``(x{1,9})+``) is refused. This reduces the risk; it
does not prove a pattern linear, so the web app only lets staff (not guests) write rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ml.items import ItemData, split_qualified

#: Each field a condition can test, and its kind.
FIELDS: dict[str, str] = {
    "text": "text", "name": "text", "description": "text", "vendor": "text",
    "category": "text", "sku": "text", "price": "number",
    "local": "bool", "sustainable": "bool", "brandable": "bool", "perishable": "bool",
}
#: The operators each kind of field takes.
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": ("contains", "not_contains", "equals", "regex", "in", "not_in"),
    "number": ("lt", "le", "gt", "ge", "eq"),
    "bool": ("is_true", "is_false"),
}
MATCHES = ("all", "any")
#: How fields and operators read in ``describe()``.
FIELD_NAMES = {"text": "name/description"}
OPERATOR_WORDS = {
    "contains": "contains", "not_contains": "does not contain", "equals": "is",
    "regex": "matches", "in": "in", "not_in": "not in",
    "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=",
    "is_true": "is true", "is_false": "is false",
}
#: Limits that keep a rule readable and its evaluation cheap.
REGEX_MAX_LENGTH = 200
VALUE_MAX_LENGTH = 200
MAX_CONDITIONS = 20
MAX_LIST_VALUES = 100
RULE_NAME_MAX = 120
#: A quantified group whose body holds a quantifier: the classic catastrophic backtracking shape.
NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*(?:[*+]|\{\d*,?\d*\})(?:[^()\\]|\\.)*\)"
                               r"\s*(?:[*+]|\{\d*,\d*\})")
#: How much a full set of rule labels lowers an item's uncertainty (see ``rule_uncertainty``).
RULE_CONFIDENCE = 0.5


class RuleError(ValueError):
    """A rule or condition is invalid; the message says exactly what is wrong."""


def _text_value(value: object, field_name: str, op: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"'{field_name} {OPERATOR_WORDS[op]}' needs some text to look for")
    if len(value) > VALUE_MAX_LENGTH:
        raise RuleError(f"the text for '{field_name}' is longer than {VALUE_MAX_LENGTH} "
                        "characters")
    return value.strip()


def _list_value(value: object, field_name: str, op: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise RuleError(f"'{field_name} {OPERATOR_WORDS[op]}' needs a list of values")
    items = tuple(_text_value(item, field_name, op) for item in value)
    if not items:
        raise RuleError(f"'{field_name} {OPERATOR_WORDS[op]}' needs at least one value")
    if len(items) > MAX_LIST_VALUES:
        raise RuleError(f"'{field_name} {OPERATOR_WORDS[op]}' takes at most {MAX_LIST_VALUES} "
                        "values")
    return tuple(dict.fromkeys(items))  # drop repeats, keep the order


def _number_value(value: object, field_name: str) -> float:
    if isinstance(value, bool):
        raise RuleError(f"'{field_name}' needs a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RuleError(f"'{field_name}' needs a number") from None
    if not math.isfinite(number):
        raise RuleError(f"'{field_name}' needs a finite number")
    return number


def compile_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled case-insensitively; RuleError when it is invalid or risky.

    Raises
    ------
    RuleError
        The pattern is empty, longer than ``REGEX_MAX_LENGTH``, has a nested quantifier, or
        does not compile (the message gives ``re``'s reason and position).
    """
    if len(pattern) > REGEX_MAX_LENGTH:
        raise RuleError(f"the regular expression is longer than {REGEX_MAX_LENGTH} characters")
    if NESTED_QUANTIFIER.search(pattern):
        raise RuleError("the regular expression repeats a group that itself repeats, such as "
                        "(a+)+, which can take forever to run; write it without the nesting")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        raise RuleError(f"the regular expression is invalid: {error}") from None


def _field_text(item: ItemData, name: str) -> str:
    value = item.text if name == "text" else getattr(item, name)
    return value or ""


@dataclass(frozen=True)
class Condition:
    """One test on one field of an item, such as ``price lt 20``.

    Parameters
    ----------
    field : str
        A key of ``FIELDS``.
    op : str
        One of ``OPERATORS[FIELDS[field]]``.
    value : str, float, tuple of str or None
        The text, the number, the list (``in``/``not_in``), or None (``is_true``/``is_false``).
        It is validated and normalised on construction (RuleError when it does not fit).
    """

    field: str
    op: str
    value: object = None
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _folded: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = FIELDS.get(self.field)
        if kind is None:
            raise RuleError(f"there is no field {self.field!r}; use one of "
                            f"{', '.join(FIELDS)}")
        if self.op not in OPERATORS[kind]:
            raise RuleError(f"'{self.field}' cannot use {self.op!r}; use one of "
                            f"{', '.join(OPERATORS[kind])}")
        value = self._normalised(kind)
        object.__setattr__(self, "value", value)
        if self.op == "regex":
            object.__setattr__(self, "_regex", compile_regex(value))
        elif isinstance(value, tuple):
            object.__setattr__(self, "_folded", frozenset(v.casefold() for v in value))
        elif isinstance(value, str):
            object.__setattr__(self, "_folded", value.casefold())

    def _normalised(self, kind: str) -> object:
        if kind == "bool":
            if self.value not in (None, ""):
                raise RuleError(f"'{self.field} {OPERATOR_WORDS[self.op]}' takes no value")
            return None
        if kind == "number":
            return _number_value(self.value, self.field)
        if self.op in ("in", "not_in"):
            return _list_value(self.value, self.field, self.op)
        return _text_value(self.value, self.field, self.op)

    def matches(self, item: ItemData) -> bool:
        """True when ``item`` passes this test."""
        kind = FIELDS[self.field]
        if kind == "bool":
            return bool(getattr(item, self.field)) is (self.op == "is_true")
        if kind == "number":
            return _compare(self.op, float(item.price), self.value)
        text = _field_text(item, self.field)
        if self.op == "regex":
            return self._regex.search(text) is not None
        folded = text.casefold()
        if self.op == "contains":
            return self._folded in folded
        if self.op == "not_contains":
            return self._folded not in folded
        if self.op == "equals":
            return folded.strip() == self._folded
        inside = folded.strip() in self._folded
        return inside if self.op == "in" else not inside

    def describe(self) -> str:
        """The condition in words, e.g. ``price < 20`` or ``vendor in ["A", "B"]``."""
        name = FIELD_NAMES.get(self.field, self.field)
        words = OPERATOR_WORDS[self.op]
        if self.value is None:
            return f"{name} {words}"
        if isinstance(self.value, float):
            return f"{name} {words} {self.value:g}"
        if isinstance(self.value, tuple):
            listed = ", ".join(_quoted(v) for v in self.value)
            return f"{name} {words} [{listed}]"
        if self.op == "regex":
            return f"{name} {words} /{self.value}/"
        return f"{name} {words} {_quoted(self.value)}"

    def to_dict(self) -> dict:
        """The condition as JSON-ready data (what ``Rule.condition_dict`` stores)."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        data = {"field": self.field, "op": self.op}
        if value is not None:
            data["value"] = value
        return data


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _compare(op: str, left: float, right: float) -> bool:
    if op == "lt":
        return left < right
    if op == "le":
        return left <= right
    if op == "gt":
        return left > right
    if op == "ge":
        return left >= right
    return math.isclose(left, right, rel_tol=0.0, abs_tol=0.005)  # prices are to the cent


def parse_condition(data: Mapping, number: int) -> Condition:
    """Condition ``number`` (1-based, for messages) from its JSON; RuleError when invalid."""
    if not isinstance(data, Mapping):
        raise RuleError(f"condition {number}: expected an object with field, op and value")
    try:
        return Condition(str(data.get("field", "")), str(data.get("op", "")), data.get("value"))
    except RuleError as error:
        raise RuleError(f"condition {number}: {error}") from None


@dataclass(frozen=True)
class Rule:
    """A named, prioritised condition that assigns ``labels`` (``group:label``) when it matches.

    Build one with ``from_dict``, which validates. Lower ``priority`` runs first; ties go by
    ``id``.
    """

    id: int
    name: str
    priority: int
    match: str
    conditions: tuple[Condition, ...]
    labels: tuple[str, ...]
    enabled: bool = True

    @classmethod
    def from_dict(cls, id: int, name: str, priority: int, condition: Mapping,
                  labels: Iterable[str], enabled: bool = True) -> Rule:
        """A validated rule from its stored parts.

        Raises
        ------
        RuleError
            Naming the first problem: an empty name, a bad match, no conditions, condition
            *n*'s field, operator or value, or a label not of the form ``group:label``.
        """
        name = " ".join(str(name or "").split())
        if not name:
            raise RuleError("the rule needs a name")
        if len(name) > RULE_NAME_MAX:
            raise RuleError(f"the rule's name is longer than {RULE_NAME_MAX} characters")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise RuleError("the priority must be a whole number")
        if not isinstance(condition, Mapping):
            raise RuleError("the condition must be an object with match and conditions")
        match = condition.get("match", "all")
        if match not in MATCHES:
            raise RuleError(f"match must be 'all' or 'any', not {match!r}")
        raw = condition.get("conditions")
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise RuleError("the rule needs at least one condition")
        if len(raw) > MAX_CONDITIONS:
            raise RuleError(f"a rule takes at most {MAX_CONDITIONS} conditions")
        conditions = tuple(parse_condition(item, n) for n, item in enumerate(raw, start=1))
        return cls(id, name, priority, match, conditions, _labels(labels), bool(enabled))

    def matches(self, item: ItemData) -> bool:
        """True when the item passes all (``match="all"``) or any of the conditions."""
        tests = (condition.matches(item) for condition in self.conditions)
        return all(tests) if self.match == "all" else any(tests)

    def describe(self) -> str:
        """The condition in words: ``name/description contains "coffee" and price < 20``."""
        joiner = " and " if self.match == "all" else " or "
        return joiner.join(condition.describe() for condition in self.conditions)

    def condition_dict(self) -> dict:
        """The normalised condition JSON to store (``from_dict`` reads it back unchanged)."""
        return {"match": self.match,
                "conditions": [condition.to_dict() for condition in self.conditions]}


def _labels(labels: Iterable[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise RuleError("labels must be a list of group:label names")
    names = []
    for label in labels:
        try:
            split_qualified(str(label))
        except ValueError as error:
            raise RuleError(str(error)) from None
        names.append(str(label))
    if not names:
        raise RuleError("the rule needs at least one label to assign")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class RuleLabel:
    """A label a rule gives an item, with the rule that gave it (provenance)."""

    label: str
    rule_id: int
    rule_name: str


def ordered(rules: Iterable[Rule]) -> list[Rule]:
    """The enabled rules in the order they run: by priority, then id."""
    return sorted((rule for rule in rules if rule.enabled), key=lambda r: (r.priority, r.id))


def apply_rules(rules: Iterable[Rule], item: ItemData,
                single_label_groups: frozenset[str] | set[str] = frozenset(),
                skip_groups: frozenset[str] | set[str] = frozenset()) -> list[RuleLabel]:
    """The labels the rules give ``item``, each with the first rule that gave it.

    Parameters
    ----------
    rules : iterable of Rule
        Disabled rules are ignored; the others run by (priority, id). Pass them already
        ``ordered`` to save the sort when applying to many items.
    item : ItemData
    single_label_groups : set of str
        Groups where an item has one label: only the first matching rule's label is kept.
    skip_groups : set of str
        Groups the rules must not touch (a person already labelled them, or the model is
        live there): no label of these groups is returned, so a human label is never
        overwritten.

    Returns
    -------
    list of RuleLabel
        In the order the rules gave them, each label once.
    """
    given: dict[str, RuleLabel] = {}
    filled: set[str] = set()
    for rule in ordered(rules):
        if not rule.matches(item):
            continue
        for label in rule.labels:
            group = split_qualified(label)[0]
            if group in skip_groups or label in given:
                continue
            if group in single_label_groups and group in filled:
                continue
            given[label] = RuleLabel(label, rule.id, rule.name)
            filled.add(group)
    return list(given.values())


def rule_uncertainty(labels: Iterable[RuleLabel], group_names: Iterable[str]) -> float:
    """How unsure the rules leave an item: 1.0 (no idea) down to ``1 - RULE_CONFIDENCE``.

    ``uncertainty = 1 - RULE_CONFIDENCE * covered / len(group_names)``, where ``covered`` is
    the number of ``group_names`` that got at least one label. A rule is a heuristic, never a
    person's judgement, so even a fully covered item keeps an uncertainty of
    ``1 - RULE_CONFIDENCE`` (0.5): items no rule says anything about come first in an
    "uncertain first" queue, then items with partial cover. With no groups, 1.0.
    """
    groups = set(group_names)
    if not groups:
        return 1.0
    covered = {split_qualified(label.label)[0] for label in labels} & groups
    return 1.0 - RULE_CONFIDENCE * len(covered) / len(groups)


__all__ = [
    "FIELDS", "OPERATORS", "Condition", "Rule", "RuleError", "RuleLabel", "apply_rules",
    "compile_regex", "ordered", "parse_condition", "rule_uncertainty",
]
