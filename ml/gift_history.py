"""A synthetic history of past gifts with a planted pattern (for demos, tests and notebooks).

Clients belong to industries, and each industry has a taste the brief does not state: it
prefers items of one vendor. Every gift answers a brief (occasion, budget, one or two themes)
with items that cover the themes, chosen mostly from the favourite vendor's items when the
client's industry has one. A popularity baseline cannot see that pattern; a model that reads the
brief's industry can. Nothing here is real data: it was made for Curate, with a fixed seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from ml.gift_model import PastGift
from ml.gifts import Brief, Candidate

OCCASIONS = ("onboarding", "retention", "client appreciation", "conference")
INDUSTRIES = ("tech", "finance", "healthcare", "retail", "education", "legal")
BUDGETS = ((15.0, 30.0), (30.0, 60.0), (50.0, 90.0), (80.0, 150.0))


@dataclass(frozen=True)
class Client:
    """A synthetic client."""

    id: int
    name: str
    industry: str


def make_clients(n: int, seed: int = 11) -> list[Client]:
    """``n`` clients with made-up names, spread over the industries."""
    rng = random.Random(seed)
    first = ("North", "Blue", "Bright", "Civic", "Harbor", "Summit", "Cedar", "Atlas", "Nova",
             "Pioneer", "Union", "Maple")
    second = ("Labs", "Partners", "Health", "Capital", "Works", "Learning", "Retail", "Legal",
              "Systems", "Group")
    names = set()
    clients = []
    while len(clients) < n:
        name = f"{rng.choice(first)} {rng.choice(second)}"
        if name in names:
            name = f"{name} {len(clients) + 1}"
        names.add(name)
        clients.append(Client(len(clients) + 1, name, INDUSTRIES[len(clients) % len(INDUSTRIES)]))
    return clients


def favourite_vendors(candidates: Sequence[Candidate], seed: int = 11) -> dict[str, str]:
    """The planted pattern: each industry's preferred vendor."""
    vendors = sorted({c.vendor for c in candidates})
    rng = random.Random(seed)
    return {industry: rng.choice(vendors) for industry in INDUSTRIES} if vendors else {}


def generate_history(candidates: Sequence[Candidate], clients: Sequence[Client], n_gifts: int,
                     seed: int = 11, start: date = date(2025, 1, 6),
                     loyalty: float = 0.8) -> list[tuple[Client, PastGift]]:
    """``n_gifts`` past gifts over a year, in date order, each with its client.

    With probability ``loyalty`` each item is drawn from the client's industry's favourite
    vendor (when that vendor has an item in an unused category), otherwise from any vendor.
    """
    rng = random.Random(seed)
    favourite = favourite_vendors(candidates, seed)
    by_vendor: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_vendor.setdefault(candidate.vendor, []).append(candidate)
    themes = sorted({label.partition(":")[2] for c in candidates for label in c.labels
                     if label.startswith("theme:")})
    history = []
    for index in range(n_gifts):
        client = rng.choice(clients)
        low, high = rng.choice(BUDGETS)
        brief = Brief(occasion=rng.choice(OCCASIONS), budget_min=low, budget_max=high,
                      themes=tuple(rng.sample(themes, min(len(themes), rng.randint(0, 1)))),
                      industry=client.industry)
        items = _pick_items(rng, brief, candidates, by_vendor.get(favourite.get(client.industry),
                                                                  []), loyalty)
        if not items:
            continue
        when = start + timedelta(days=round(index * 365 / max(1, n_gifts)))
        history.append((client, PastGift(brief, tuple(items), when)))
    return history


def _pick_items(rng: random.Random, brief: Brief, candidates: Sequence[Candidate],
                favourites: Sequence[Candidate], loyalty: float) -> list[int]:
    chosen: list[Candidate] = []
    cost = 0.0
    for _ in range(rng.randint(2, 4)):
        pool = favourites if favourites and rng.random() < loyalty else candidates
        options = [c for c in pool if c.category not in {x.category for x in chosen}
                   and cost + c.price <= brief.budget_max and c not in chosen]
        themed = [c for c in options if any(c.covers(t) for t in brief.themes)]
        if themed and not any(x.covers(t) for x in chosen for t in brief.themes):
            options = themed
        if not options:
            break
        pick = rng.choice(options)
        chosen.append(pick)
        cost += pick.price
    return [c.id for c in chosen]
