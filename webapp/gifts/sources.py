"""Which source suggests each label group's labels: the rules, or the label model.

The model takes over a group once an active label model covers it and every label of the group
has at least ``min_labels_per_label`` human labels; until then the rules engine's suggestions
stay live (cold start).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from webapp import registry
from webapp.extensions import db
from webapp.gifts.models import ItemLabel, LabelGroup, gifts_settings

#: The label model's kind on the ML platform.
KIND = "labels"


@dataclass(frozen=True)
class GroupSource:
    """A group's live source, and why."""

    group: str
    source: str  # "rules" or "model"
    #: The fewest human labels any label of the group has, and how many are needed.
    fewest_human: int
    needed: int
    model_version: str | None

    @property
    def reason(self) -> str:
        """One line for the page."""
        if self.source == "model":
            return f"model {self.model_version}: every label has ≥ {self.needed} human labels"
        if self.fewest_human < self.needed:
            return (f"rules: a label has only {self.fewest_human} human labels "
                    f"(the model takes over at {self.needed})")
        return "rules: no active label model covers this group yet"


def human_label_counts() -> dict[int, int]:
    """Human labels per label id (labels without any are absent)."""
    query = (select(ItemLabel.label_id, func.count()).where(ItemLabel.source == "human")
             .group_by(ItemLabel.label_id))
    return dict(db.session.execute(query).all())


def model_groups() -> tuple[str | None, set[str]]:
    """The active label model's version and the groups it was trained for."""
    active = registry.active_version(KIND)
    if active is None:
        return None, set()
    return active.version, set((active.params or {}).get("groups", ()))


def live_sources() -> dict[str, GroupSource]:
    """Every group's live source, by group name."""
    needed = gifts_settings().min_labels_per_label
    counts = human_label_counts()
    version, covered = model_groups()
    sources = {}
    groups = db.session.scalars(select(LabelGroup).order_by(LabelGroup.position,
                                                            LabelGroup.name_key))
    for group in groups:
        label_ids = [label.id for label in group.labels]
        fewest = min((counts.get(label_id, 0) for label_id in label_ids), default=0)
        use_model = bool(label_ids) and fewest >= needed and group.name in covered
        sources[group.name] = GroupSource(group.name, "model" if use_model else "rules",
                                          fewest, needed, version if use_model else None)
    return sources


def groups_by_name() -> dict[str, LabelGroup]:
    """Every label group by name, with its labels loaded."""
    return {group.name: group for group in db.session.scalars(select(LabelGroup))}


__all__ = ["KIND", "GroupSource", "groups_by_name", "human_label_counts",
           "live_sources", "model_groups"]
