"""Small gift catalogues for the request and browser tiers (call inside an app context)."""

from __future__ import annotations

from decimal import Decimal

from webapp.extensions import db
from webapp.gifts.models import Client, Item, ItemLabel, Label, LabelGroup, name_key

THEMES = ("coffee", "tea", "sweets", "home")
CATEGORIES = ("coffee", "tea", "mug", "notebook", "candle", "chocolate", "socks", "plant")


def make_group(name: str, labels, multi: bool = True) -> LabelGroup:
    """A label group with its labels (added to the session, not committed)."""
    group = LabelGroup(name=name, name_key=name_key(name), multi=multi)
    group.labels = [Label(name=label, name_key=name_key(label), position=i)
                    for i, label in enumerate(labels)]
    db.session.add(group)
    return group


def seed_brief_catalogue() -> None:
    """40 accepted items over 8 categories with theme and occasion labels, and two clients."""
    occasion = make_group("occasion", ("onboarding", "retention"))
    theme = make_group("theme", THEMES)
    db.session.flush()
    labels = {label.name: label for label in theme.labels}
    onboarding = occasion.labels[0]
    for i in range(40):
        category = CATEGORIES[i % len(CATEGORIES)]
        item = Item(name=f"{category.title()} {i}", name_key=f"{category} {i}",
                    vendor="Roasters" if i % 3 else "Tea House",
                    vendor_key="roasters" if i % 3 else "tea house", category=category,
                    unit_price=Decimal(5 + (i * 7) % 30), perishable=category == "chocolate",
                    local=i % 4 == 0, status="accepted")
        item.labels = [ItemLabel(label_id=labels[THEMES[i % len(THEMES)]].id,
                                 source="human", created_by="t")]
        if i % 2 == 0:
            item.labels.append(ItemLabel(label_id=onboarding.id, source="rule",
                                         rule_name="r"))
        db.session.add(item)
    for name, industry in (("Acme Labs", "tech"), ("Civic Legal", "legal")):
        db.session.add(Client(name=name, name_key=name_key(name), industry=industry))
    db.session.commit()
