"""Demo gifts workbench: a synthetic catalogue of about 500 items, the label vocabulary, a
handful of readable rules, some human labels, then the rules applied and the label model trained.

The catalogue comes from ``ml.gift_items.generate_items`` (synthetic, made for Curate; fixed
seed, so every run gives the same items). Enough items are accepted by a person ("demo") that
every occasion label has the human labels the model needs to take that group over, while the
theme and audience groups stay on the rules: every screen has something real to show, including
the hand-over from rules to model.

Every step is idempotent: a second ``flask demo load`` adds nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, insert, select

from ml.gift_items import DEMO_GROUPS, generate_items
from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.gifts.models import (
    Item,
    ItemLabel,
    Label,
    LabelGroup,
    Rule,
    gifts_settings,
    name_key,
)

log = logging.getLogger(__name__)

SEED = 7
ITEMS = 500
SOURCE = "demo"
REVIEWER = "demo"
#: The group whose labels get enough human labels for the model to take over.
MODEL_GROUP = "occasion"
#: Human labels per label beyond the threshold, so one correction does not hand the group
#: back to the rules.
MARGIN = 2
#: Plants wilt in transit: the demo reviewer rejects the first few, so "rejected" has examples.
REJECT_CATEGORY, REJECTS = "plant", 4

#: (name, priority, condition, labels): readable rules a shop would write on day one. They
#: catch the obvious themes; occasions and audiences mostly need a person or the model.
DEMO_RULES: tuple[tuple[str, int, dict, tuple[str, ...]], ...] = (
    ("Coffee", 10, {"match": "any", "conditions": [
        {"field": "text", "op": "contains", "value": "coffee"},
        {"field": "text", "op": "regex", "value": r"\b(espresso|latte)\b"}]},
     ("theme:coffee",)),
    ("Tea", 20, {"match": "any", "conditions": [
        {"field": "text", "op": "regex", "value": r"\btea\b|teapot|matcha"},
        {"field": "category", "op": "equals", "value": "teaware"}]},
     ("theme:tea",)),
    ("Local makers", 30, {"match": "all", "conditions": [
        {"field": "vendor", "op": "in",
         "value": ["Northside Roasters", "Maison Cacao Chocolatier"]}]},
     ("theme:local",)),
    ("Sustainable", 40, {"match": "all", "conditions": [
        {"field": "sustainable", "op": "is_true"}]},
     ("theme:sustainability",)),
    ("Tech accessories", 50, {"match": "all", "conditions": [
        {"field": "category", "op": "in", "value": ["charger", "desk tech"]}]},
     ("theme:tech",)),
    ("Sweets", 60, {"match": "all", "conditions": [
        {"field": "category", "op": "in", "value": ["chocolate", "biscuits"]}]},
     ("theme:sweets",)),
    ("Wellness", 70, {"match": "any", "conditions": [
        {"field": "text", "op": "regex", "value": r"candle|bath|socks|aromatherapy|yoga|calm"},
        {"field": "category", "op": "equals", "value": "self-care"}]},
     ("theme:wellness",)),
    ("Conference giveaways", 80, {"match": "all", "conditions": [
        {"field": "category", "op": "in", "value": ["notebook", "pen"]},
        {"field": "brandable", "op": "is_true"}]},
     ("occasion:conference",)),
    ("Welcome kit", 90, {"match": "any", "conditions": [
        {"field": "text", "op": "contains", "value": "welcome"},
        {"field": "text", "op": "contains", "value": "first day"}]},
     ("occasion:onboarding", "audience:new hires")),
    ("Premium for executives", 100, {"match": "all", "conditions": [
        {"field": "price", "op": "ge", "value": 60}]},
     ("audience:executives",)),
)


@dataclass
class GiftsDemoResult:
    """What one run did, for the command's output."""

    groups: int = 0
    labels: int = 0
    items: int = 0
    rules: int = 0
    accepted: int = 0
    rejected: int = 0
    human_labels: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary for ``flask demo load``, one line per step."""
        added = (self.items, self.groups, self.labels, self.rules, self.accepted)
        if not any(added):
            return ["Gifts: the demo catalogue, vocabulary and rules are already loaded "
                    "(nothing added).", *(f"Gifts: {note}" for note in self.notes)]
        return [
            f"Gifts: {self.items} items added (synthetic catalogue, seed {SEED}), "
            f"{self.groups} label groups and {self.labels} labels added, {self.rules} rules added, "
            f"{self.accepted} items accepted with {self.human_labels} human labels and "
            f"{self.rejected} rejected by {REVIEWER!r}.",
            *(f"Gifts: {note}" for note in self.notes)]


def ensure_vocabulary(result: GiftsDemoResult) -> dict[str, Label]:
    """Create the demo label groups and labels that are missing; labels by ``group:label``."""
    groups = {group.name_key: group for group in db.session.scalars(select(LabelGroup))}
    for position, (group_name, (multi, names)) in enumerate(DEMO_GROUPS.items()):
        group = groups.get(name_key(group_name))
        if group is None:
            group = LabelGroup(name=group_name, name_key=name_key(group_name), multi=multi,
                               position=position)
            db.session.add(group)
            result.groups += 1
        have = {label.name_key for label in group.labels}
        for label_position, label_name in enumerate(names):
            if name_key(label_name) not in have:
                group.labels.append(Label(name=label_name, name_key=name_key(label_name),
                                          position=label_position))
                result.labels += 1
    db.session.flush()
    return {label.qualified_name: label for label in db.session.scalars(
        select(Label).join(Label.group).where(LabelGroup.name.in_(DEMO_GROUPS)))}


def demo_items_exist() -> bool:
    """True once the demo catalogue has been loaded (by this or an earlier run)."""
    return bool(db.session.scalar(select(func.count(Item.id)).where(Item.source == SOURCE)))


def add_items(result: GiftsDemoResult) -> list[frozenset[str]]:
    """Insert the synthetic catalogue in one statement; the generated labels, by row.

    Items arrive a minute apart, oldest first, so the queue's "newest" order means something.
    """
    start = utcnow() - timedelta(minutes=ITEMS)
    rows, labels = [], []
    for row, generated in enumerate(generate_items(ITEMS, seed=SEED), start=1):
        labels.append(generated["labels"])
        rows.append({
            "sku": generated["sku"], "name": generated["name"],
            "name_key": name_key(generated["name"]), "description": generated["description"],
            "vendor": generated["vendor"], "vendor_key": name_key(generated["vendor"]),
            "category": generated["category"], "unit_price": Decimal(str(generated["price"])),
            "local": generated["local"], "sustainable": generated["sustainable"],
            "brandable": generated["brandable"], "perishable": generated["perishable"],
            "image_url": generated["image_url"], "source": SOURCE, "source_row": row,
            "created_at": start + timedelta(minutes=row), "status": "pending"})
    db.session.execute(insert(Item), rows)
    result.items = len(rows)
    return labels


def add_rules(labels: dict[str, Label], result: GiftsDemoResult) -> None:
    """Create the demo rules that no rule of the same name exists for (validated first)."""
    from ml.labels import Rule as EngineRule

    taken = set(db.session.scalars(select(Rule.name)))
    for name, priority, condition, label_names in DEMO_RULES:
        if name in taken:
            continue
        EngineRule.from_dict(0, name, priority, condition, label_names)  # RuleError if wrong
        db.session.add(Rule(name=name, priority=priority, condition=condition,
                            created_by=REVIEWER,
                            labels=[labels[label] for label in label_names]))
        result.rules += 1
    db.session.flush()


def choose_accepted(generated: list[frozenset[str]], needed: int) -> list[int]:
    """Row numbers (1-based) to accept, in catalogue order: each one gives a label of
    ``MODEL_GROUP`` that is still short of ``needed`` human labels, until none is short.

    The other groups are left with fewer, so they stay on the rules.
    """
    targets = [f"{MODEL_GROUP}:{label}" for label in DEMO_GROUPS[MODEL_GROUP][1]]
    counts = dict.fromkeys(targets, 0)
    chosen = []
    for row, labels in enumerate(generated, start=1):
        if all(count >= needed for count in counts.values()):
            break
        if any(label in labels and counts[label] < needed for label in targets):
            chosen.append(row)
            for label in labels & counts.keys():
                counts[label] += 1
    return chosen


def review_items(generated: list[frozenset[str]], labels: dict[str, Label],
                 result: GiftsDemoResult) -> None:
    """Accept the chosen items with their generated labels (source human) and reject a few."""
    needed = gifts_settings().min_labels_per_label + MARGIN
    accepted = set(choose_accepted(generated, needed))
    ids = dict(db.session.execute(select(Item.source_row, Item.id)
                                  .where(Item.source == SOURCE)).all())
    when = utcnow() - timedelta(days=2)
    label_rows = []
    for position, row in enumerate(sorted(accepted)):
        # A few minutes apart, like a person working through the queue.
        reviewed_at = when + timedelta(minutes=2 * position)
        item_id = ids[row]
        db.session.execute(Item.__table__.update().where(Item.id == item_id).values(
            status="accepted", reviewed_by=REVIEWER, reviewed_at=reviewed_at, uncertainty=0.0))
        label_rows += [{"item_id": item_id, "label_id": labels[name].id, "source": "human",
                        "created_by": REVIEWER, "created_at": reviewed_at}
                       for name in sorted(generated[row - 1]) if name in labels]
    if label_rows:
        db.session.execute(insert(ItemLabel), label_rows)
    rejects = db.session.scalars(
        select(Item.id).where(Item.source == SOURCE, Item.category == REJECT_CATEGORY,
                              Item.status == "pending").order_by(Item.id).limit(REJECTS)).all()
    if rejects:
        db.session.execute(Item.__table__.update().where(Item.id.in_(rejects)).values(
            status="rejected", reviewed_by=REVIEWER, reviewed_at=when, uncertainty=0.0))
    result.accepted, result.rejected = len(accepted), len(rejects)
    result.human_labels = len(label_rows)


def run_rules(result: GiftsDemoResult) -> None:
    """Apply the enabled rules to the pending items, as the "apply rules" job does."""
    from webapp.gifts.rules import apply_rules_task

    counts = apply_rules_task(_quiet, started_by=REVIEWER)
    result.notes.append(f"rules applied: {_counts(counts)}.")


def train_and_suggest(result: GiftsDemoResult) -> None:
    """Train the label model unless one is active, then compute the batch suggestions.

    Skipped, with a note, when the "labels" model kind is not registered in this build.
    """
    from webapp.demo import train_if_untrained
    from webapp.gifts.sources import KIND
    from webapp.ml_bridge import KINDS

    if KIND not in KINDS:
        result.notes.append(f"label model skipped: the {KIND!r} model kind is not registered, "
                            "so the rules stay live for every group.")
        return
    result.notes.append(f"label model: {train_if_untrained(KIND)}.")
    from webapp.gifts.suggest import suggest_task

    result.notes.append(f"model suggestions: {_counts(suggest_task(_quiet, started_by=REVIEWER))}.")


def load_demo_gifts() -> GiftsDemoResult:
    """Load the gifts demo (see the module docstring); a second run adds nothing.

    The vocabulary and rules are topped up by name; the catalogue and its reviews are added
    only when no demo item exists yet. The rules job, the training (only if no label model is
    active) and the suggestions then run, each idempotent in itself.
    """
    result = GiftsDemoResult()
    labels = ensure_vocabulary(result)
    add_rules(labels, result)
    if not demo_items_exist():
        generated = add_items(result)
        review_items(generated, labels, result)
    db.session.commit()
    log.info("Gifts demo: %s", result)
    run_rules(result)
    train_and_suggest(result)
    return result


def _quiet(percent: int, message: str) -> None:
    """A job's progress callback that reports nowhere (the command prints the result)."""


def _counts(counts: dict) -> str:
    """A job's result as ``key value`` pairs (numbers only, the rest is detail)."""
    shown = [f"{key.replace('_', ' ')} {value}" for key, value in counts.items()
             if isinstance(value, int | float) and not isinstance(value, bool)]
    return ", ".join(shown) or "done"


__all__ = ["DEMO_RULES", "GiftsDemoResult", "choose_accepted", "load_demo_gifts"]
