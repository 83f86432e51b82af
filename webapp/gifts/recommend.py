"""Gift proposals for a brief: the catalogue as ``ml.gifts`` candidates, the learned model's
scores when one is live, and the feedback every proposal leaves behind.

The candidate list is built from the database at most every ``GIFTS_CATALOGUE_SECONDS`` per
worker (a few seconds by default): proposals run at every keystroke of a brief, and rebuilding
10k candidates with their labels and history costs far more than proposing from them. Labels
changed in the queue meanwhile reach proposals within that delay.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from flask import current_app
from flask_login import current_user
from sqlalchemy import select

from ml import gifts as gifts_ml
from ml.gift_model import brief_to_dict
from webapp.extensions import db
from webapp.gifts.models import (
    ATTRIBUTES,
    Gift,
    GiftLine,
    Item,
    ItemLabel,
    Label,
    LabelGroup,
    ProposalEvent,
    gifts_settings,
)
from webapp.ml_bridge import ModelUnavailable, serve

#: The gift model's kind on the ML platform.
KIND = "gifts"
#: Gifts that count as examples of what clients liked.
KEPT_STATUSES = ("proposed", "sent")


@dataclass(frozen=True)
class Catalogue:
    """Every item a gift may hold, as candidates, by id."""

    candidates: tuple[gifts_ml.Candidate, ...]
    by_id: dict[int, gifts_ml.Candidate]


def load_catalogue() -> Catalogue:
    """Build the candidates: items not rejected, their labels (any source), past uses and
    swaps by occasion. Four queries, whatever the catalogue's size."""
    labels: dict[int, set[str]] = defaultdict(set)
    query = (select(ItemLabel.item_id, LabelGroup.name, Label.name)
             .join(Label, Label.id == ItemLabel.label_id)
             .join(LabelGroup, LabelGroup.id == Label.group_id))
    for item_id, group, label in db.session.execute(query):
        labels[item_id].add(f"{group}:{label}")
    uses: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item_id, occasion in db.session.execute(
            select(GiftLine.item_id, Gift.occasion).join(Gift, Gift.id == GiftLine.gift_id)
            .where(Gift.status.in_(KEPT_STATUSES), GiftLine.item_id.is_not(None))):
        uses[item_id][occasion] += 1
    swaps: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item_id, brief in db.session.execute(
            select(ProposalEvent.item_id, ProposalEvent.brief)
            .where(ProposalEvent.event == "swapped_out", ProposalEvent.item_id.is_not(None))):
        swaps[item_id][(brief or {}).get("occasion") or ""] += 1
    columns = (Item.id, Item.name, Item.vendor, Item.category, Item.unit_price,
               *(getattr(Item, name) for name in ATTRIBUTES))
    candidates = []
    for row in db.session.execute(select(*columns).where(Item.status != "rejected")):
        attributes = frozenset(name for name in ATTRIBUTES if getattr(row, name))
        candidates.append(gifts_ml.Candidate(
            row.id, row.name, row.vendor, row.category or "other", float(row.unit_price),
            frozenset(labels.get(row.id, ())), attributes,
            dict(uses.get(row.id, {})), dict(swaps.get(row.id, {}))))
    return Catalogue(tuple(candidates), {c.id: c for c in candidates})


class CatalogueCache:
    """This worker's catalogue, rebuilt once it is ``max_age`` seconds old."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._catalogue: Catalogue | None = None
        self._born = 0.0

    def get(self) -> Catalogue:
        """The catalogue, rebuilt when stale (one rebuild at a time per worker)."""
        with self._lock:
            if self._catalogue is None or time.monotonic() - self._born >= self.max_age:
                self._catalogue, self._born = load_catalogue(), time.monotonic()
            return self._catalogue

    def clear(self) -> None:
        """Forget the catalogue (after this worker changed gifts or labels)."""
        with self._lock:
            self._catalogue = None


def catalogue_cache() -> CatalogueCache:
    """This app's catalogue cache."""
    extensions = current_app.extensions
    if "gifts_catalogue" not in extensions:
        extensions.setdefault("gifts_catalogue",
                              CatalogueCache(current_app.config["GIFTS_CATALOGUE_SECONDS"]))
    return extensions["gifts_catalogue"]


@dataclass(frozen=True)
class Proposed:
    """A proposal with what produced it."""

    proposal: gifts_ml.Proposal
    model_version: str | None
    learned_weight: float


def learned_scores(brief: gifts_ml.Brief) -> tuple[dict[int, float] | None, str | None]:
    """The live gift model's item scores for ``brief``, or (None, None) without a model."""
    try:
        served = serve(KIND)
    except ModelUnavailable:
        return None, None
    return served.model.scores(brief), served.version


def propose(brief: gifts_ml.Brief) -> Proposed:
    """Three bundles for ``brief`` from this worker's catalogue and the live model."""
    weight = gifts_settings().learned_weight
    scores, version = learned_scores(brief)
    proposal = gifts_ml.propose(catalogue_cache().get().candidates, brief, learned=scores,
                                learned_weight=weight if scores else 0.0)
    return Proposed(proposal, version, weight if scores else 0.0)


def record_event(event: str, brief: gifts_ml.Brief, bundles=(), item_id: int | None = None,
                 gift_id: int | None = None, model_version: str | None = None) -> None:
    """Store one piece of feedback (shown, swapped_out, locked, saved, sent) and commit."""
    by = current_user.username if current_user and current_user.is_authenticated else None
    db.session.add(ProposalEvent(
        event=event, brief=brief_to_dict(brief) | {"exclude": list(brief.exclude)},
        bundles=[sorted(bundle.item_ids) for bundle in bundles], item_id=item_id,
        gift_id=gift_id, model_version=model_version, created_by=by))
    db.session.commit()
