"""Demo clients and a year of past gifts, generated with a fixed seed from the demo catalogue.

Made for Curate (see ``ml/gift_history.py``): every client and gift is marked synthetic. Each
industry quietly prefers one vendor, so the gift model has a pattern to find.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from ml.gift_history import generate_history, make_clients
from webapp.extensions import db
from webapp.gifts.models import Client, Gift, GiftLine, Item, name_key
from webapp.gifts.recommend import load_catalogue

CLIENTS = 36
GIFTS = 400
SEED = 11


def load_demo_clients_and_gifts() -> tuple[int, int]:
    """Add the demo clients and their gifts unless synthetic gifts exist; (clients, gifts) added."""
    if db.session.scalar(select(func.count()).select_from(Gift).where(Gift.synthetic)):
        return 0, 0
    candidates = load_catalogue().candidates
    if not candidates:
        return 0, 0
    clients = {}
    for made in make_clients(CLIENTS, seed=SEED):
        client = db.session.scalar(select(Client).where(Client.name_key == name_key(made.name)))
        if client is None:
            client = Client(name=made.name, name_key=name_key(made.name),
                            industry=made.industry, synthetic=True,
                            notes="Synthetic demo client.")
            db.session.add(client)
        clients[made.id] = client
    db.session.flush()
    items = {item.id: item for item in db.session.scalars(select(Item))}
    added = 0
    for made, past in generate_history(candidates, make_clients(CLIENTS, seed=SEED), GIFTS,
                                       seed=SEED):
        brief = past.brief
        gift = Gift(client_id=clients[made.id].id,
                    name=f"{(brief.occasion or 'gift').capitalize()} gift {added + 1}",
                    occasion=brief.occasion or "", status="sent", synthetic=True,
                    recipients=5 + (added * 7) % 40,
                    budget_min=Decimal(str(brief.budget_min)),
                    budget_max=Decimal(str(brief.budget_max)), themes=list(brief.themes),
                    gift_date=datetime.combine(past.when, datetime.min.time()),
                    created_by="demo")
        for position, item_id in enumerate(past.items):
            item = items[item_id]
            gift.lines.append(GiftLine(item_id=item.id, item_name=item.name,
                                       unit_price=item.unit_price, quantity=1,
                                       position=position))
        db.session.add(gift)
        added += 1
    db.session.commit()
    return len(clients), added
