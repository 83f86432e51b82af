"""Gift proposals' learned scorer on the platform: past gifts in, item scores for a brief out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ml import gift_model, gifts
from webapp.extensions import db
from webapp.ml_bridge import KindSpec


def _brief_of(gift) -> gifts.Brief:
    """The brief a stored gift answered (its cost stands in for a missing budget)."""
    cost = float(gift.cost_per_recipient) or 1.0
    high = float(gift.budget_max) if gift.budget_max is not None else cost
    low = float(gift.budget_min) if gift.budget_min is not None else min(cost, high)
    return gifts.Brief(occasion=gift.occasion or None, budget_min=min(low, high),
                       budget_max=max(high, 0.01), recipients=gift.recipients,
                       themes=tuple(gift.themes or ()), industry=gift.client.industry or None)


def load_data() -> list[gift_model.PastGift]:
    """Every proposed or sent gift with items, oldest first, as past gifts."""
    from webapp.gifts.models import Gift
    from webapp.gifts.recommend import KEPT_STATUSES

    query = (select(Gift).where(Gift.status.in_(KEPT_STATUSES))
             .options(selectinload(Gift.lines), selectinload(Gift.client))
             .order_by(Gift.gift_date, Gift.created_at, Gift.id))
    past = []
    for gift in db.session.scalars(query):
        items = tuple(line.item_id for line in gift.lines if line.item_id is not None)
        if items:
            when = gift.gift_date or gift.created_at
            past.append(gift_model.PastGift(
                _brief_of(gift), items, when.date() if isinstance(when, datetime) else when))
    return past


def train_context() -> dict:
    """Today's catalogue (its cold-start ranking is measured beside the model) and the
    least number of past gifts to learn from."""
    from webapp.gifts.models import gifts_settings
    from webapp.gifts.recommend import load_catalogue

    return {"index": load_catalogue().index, "min_gifts": gifts_settings().min_gifts}


def train(data: list[gift_model.PastGift], index, min_gifts: int):
    """Fit the scorer; ``index``'s cold-start ranking is measured beside it."""
    return gift_model.train_gift_model(data, cold_ranker=index.ranked_ids, min_gifts=min_gifts)


SPEC = KindSpec(
    kind="gifts",
    title="Gift proposals",
    description="Gifts: which items past gifts for similar briefs (occasion, budget band, themes, "
                "industry) used; added to the cold-start score with the weight set on the "
                "brief page.",
    load_data=load_data,
    train=train,
    train_context=train_context,
    primary_metric="recall_at_10",
    lower_is_better=False,
    metric_labels={"hit_rate_at_10": "Hit rate@10", "recall_at_10": "Recall@10",
                   "popular_hit_rate_at_10": "Popular hit@10",
                   "popular_recall_at_10": "Popular recall@10",
                   "cold_hit_rate_at_10": "Cold-start hit@10",
                   "cold_recall_at_10": "Cold-start recall@10"},
)
