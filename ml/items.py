"""A gift item as plain data: what the rules engine and the label model read.

``ml/`` never sees ORM rows; the web app turns each item into an ``ItemData``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The boolean attributes, in a fixed order (features and forms use it).
ATTRIBUTES = ("local", "sustainable", "brandable", "perishable")


@dataclass(frozen=True)
class ItemData:
    """One item's fields. ``price`` is per unit, in the shop's currency."""

    id: int
    name: str
    description: str = ""
    vendor: str = ""
    category: str = ""
    sku: str | None = None
    price: float = 0.0
    local: bool = False
    sustainable: bool = False
    brandable: bool = False
    perishable: bool = False

    @property
    def text(self) -> str:
        """Name and description together: what "name/description contains" searches."""
        return f"{self.name}\n{self.description}" if self.description else self.name


def qualified(group: str, label: str) -> str:
    """A label's full name, ``group:label``, as rules, models and exports write it."""
    return f"{group}:{label}"


def split_qualified(name: str) -> tuple[str, str]:
    """``"theme:coffee"`` -> ``("theme", "coffee")``; ValueError without a group."""
    group, sep, label = name.partition(":")
    if not sep or not group or not label:
        raise ValueError(f"{name!r} is not a label name of the form group:label")
    return group, label
