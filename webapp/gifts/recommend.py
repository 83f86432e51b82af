"""Gift proposals for a brief: the catalogue as ``ml.gifts`` candidates, the learned model's
scores when one is live, and the feedback every proposal leaves behind.

Each worker keeps the candidates (as a ``CandidateIndex``) and checks every
``GIFTS_CATALOGUE_SECONDS`` (5 s by default) whether the catalogue changed: proposals run at
every keystroke of a brief, and rebuilding 10k candidates with their labels and history costs
far more than proposing from them. Labels changed in the queue reach proposals within that
delay plus a rebuild.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from flask import current_app
from flask_login import current_user
from sqlalchemy import func, insert, select

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

logger = logging.getLogger(__name__)
#: The gift model's kind on the ML platform.
KIND = "gifts"
#: Gifts that count as examples of what clients liked.
KEPT_STATUSES = ("proposed", "sent")


@dataclass(frozen=True)
class Catalogue:
    """Every item a gift may hold, as candidates, by id."""

    candidates: tuple[gifts_ml.Candidate, ...]
    by_id: dict[int, gifts_ml.Candidate]
    #: The same candidates as arrays, built once per catalogue and reused by every brief.
    index: gifts_ml.CandidateIndex


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
    return Catalogue(tuple(candidates), {c.id: c for c in candidates},
                     gifts_ml.CandidateIndex(candidates))


def catalogue_revision() -> tuple:
    """A cheap fingerprint of everything a catalogue is built from (four aggregate queries):
    it changes when an item, a label, a gift line or a swap is added, edited or removed."""
    items = db.session.execute(select(func.count(), func.max(Item.updated_at))).one()
    labels = db.session.execute(select(func.count(), func.max(ItemLabel.id))).one()
    lines = db.session.execute(select(func.count(), func.max(GiftLine.id),
                                      func.max(Gift.updated_at))
                               .select_from(GiftLine).outerjoin(Gift)).one()
    swaps = db.session.execute(select(func.count()).select_from(ProposalEvent)
                               .where(ProposalEvent.event == "swapped_out")).scalar()
    return (*items, *labels, *lines, swaps)


class CatalogueCache:
    """This worker's catalogue, checked for changes every ``max_age`` seconds.

    A check costs four aggregate queries; only a changed catalogue is rebuilt, and the rebuild
    runs in a background thread while requests keep using the previous catalogue, so no
    request waits for it (a 10k-item rebuild takes a few hundred milliseconds). With
    ``max_age`` 0 (tests) every request rebuilds in place.
    """

    def __init__(self, app, max_age: float) -> None:
        self.app, self.max_age = app, max_age
        self._lock = threading.Lock()
        self._catalogue: Catalogue | None = None
        self._revision: tuple | None = None
        self._checked = 0.0
        self._refreshing = False

    def get(self) -> Catalogue:
        """The catalogue: built now the first time, then refreshed in the background."""
        with self._lock:
            if self._catalogue is None or self.max_age <= 0:
                self._revision, self._catalogue = catalogue_revision(), load_catalogue()
                self._checked = time.monotonic()
                return self._catalogue
            if time.monotonic() - self._checked >= self.max_age and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, daemon=True,
                                 name="gifts-catalogue").start()
            return self._catalogue

    def _refresh(self) -> None:
        try:
            with self.app.app_context():
                try:
                    revision = catalogue_revision()
                    if revision != self._revision:
                        catalogue = load_catalogue()
                        with self._lock:
                            self._catalogue, self._revision = catalogue, revision
                finally:
                    db.session.remove()
        except Exception:  # keep serving the previous catalogue; say why in the log
            logger.exception("refreshing the gift catalogue failed; the previous one stays")
        finally:
            with self._lock:
                self._refreshing, self._checked = False, time.monotonic()

    def clear(self) -> None:
        """Check for changes at the next request (after this worker changed gifts): the check
        and any rebuild still run in the background, so no request waits for them."""
        with self._lock:
            self._checked = 0.0


def catalogue_cache() -> CatalogueCache:
    """This app's catalogue cache."""
    extensions = current_app.extensions
    if "gifts_catalogue" not in extensions:
        extensions.setdefault("gifts_catalogue", CatalogueCache(
            current_app._get_current_object(), current_app.config["GIFTS_CATALOGUE_SECONDS"]))
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
    proposal = gifts_ml.propose(catalogue_cache().get().index, brief, learned=scores,
                                learned_weight=weight if scores else 0.0)
    return Proposed(proposal, version, weight if scores else 0.0)


def record_event(event: str, brief: gifts_ml.Brief, bundles=(), item_id: int | None = None,
                 gift_id: int | None = None, model_version: str | None = None) -> None:
    """Store one piece of feedback (shown, swapped_out, locked, saved, sent) and commit."""
    by = current_user.username if current_user and current_user.is_authenticated else None
    # One INSERT statement, no ORM object: every keystroke of a brief records one event, and
    # nothing reads it back in the request.
    db.session.execute(insert(ProposalEvent).values(
        event=event, brief=brief_to_dict(brief) | {"exclude": list(brief.exclude)},
        bundles=[sorted(bundle.item_ids) for bundle in bundles], item_id=item_id,
        gift_id=gift_id, model_version=model_version, created_by=by))
    db.session.commit()
