"""A seeded, synthetic gift catalogue: items a gifting company could buy, with their labels.

Origin: wholly synthetic, made for Curate. No real shop's catalogue was copied; vendor names,
product names, descriptions and prices are composed here from small hand-written parts, so the
data is free to use anywhere (demo, tests, benchmarks).

What it is for: the demo (``flask demo load``), the labelling workbench's tests and the
benchmarks need a catalogue that behaves like a real one. So:

* six vendors (a local roaster, a tea house, a stationery brand, a tech accessories partner, a
  wellness shop and a chocolatier), each with its own categories and price ranges;
* attributes (local, sustainable, brandable, perishable) that follow the vendor and category,
  and that the descriptions mention in varied words ("fair trade", "recycled", "compostable");
* labels that follow from the item's nature the way a careful person would give them. Some
  follow from words a rule can catch ("coffee", "tea", "chocolate"), others only from wording a
  model has to learn ("a warm welcome for someone's first week" -> occasion:onboarding), and a
  few labels are noise (dropped or added at random), as in any hand-labelled set. Hand-written
  keyword rules get most themes right but few occasions and audiences; a model trained on the
  human labels does better there.

:func:`generate_items` is a generator: it keeps one item in memory at a time, so a benchmark can
draw a million items. The same ``(n, seed)`` always gives the same items.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

#: The demo's label vocabulary: group -> (multi-label?, labels).
DEMO_GROUPS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "occasion": (True, ("onboarding", "retention", "client appreciation", "conference")),
    "theme": (True, ("coffee", "tea", "wellness", "sustainability", "local", "tech", "sweets",
                     "home")),
    "audience": (False, ("everyone", "executives", "remote teams", "new hires")),
}

#: Chance that a generated item's labels are disturbed (a label dropped or a wrong one added),
#: like the slips in any set labelled by people.
NOISE = 0.08


@dataclass(frozen=True)
class Vendor:
    """A supplier: its name, SKU prefix and how likely its items are local or sustainable."""

    name: str
    code: str
    local: float
    sustainable: float


ROASTER = Vendor("Northside Roasters", "NSR", 0.95, 0.55)
TEA_HOUSE = Vendor("Kettle & Leaf Tea House", "KLT", 0.25, 0.5)
STATIONERY = Vendor("Paperline Stationery Co.", "PPL", 0.1, 0.45)
TECH = Vendor("Voltwise Accessories", "VWA", 0.0, 0.15)
WELLNESS = Vendor("Stillwater Wellness", "SWW", 0.4, 0.5)
CHOCOLATIER = Vendor("Maison Cacao Chocolatier", "MCC", 0.85, 0.5)


@dataclass(frozen=True)
class Product:
    """A kind of item a vendor sells, with the parts its names and descriptions are made of.

    ``occasions`` and ``audiences`` are weights: how likely a careful labeller picks each one
    for this kind of item, before price and wording shift them.
    """

    vendor: Vendor
    category: str
    names: tuple[str, ...]
    variants: tuple[str, ...]
    blurbs: tuple[str, ...]
    price: tuple[float, float]
    themes: tuple[str, ...]
    occasions: dict[str, float]
    audiences: dict[str, float]
    brandable: float = 0.2
    perishable: float = 0.0
    weight: float = 1.0


PRODUCTS: tuple[Product, ...] = (
    Product(ROASTER, "coffee",
            ("Ethiopia Yirgacheffe", "Colombia Huila", "Guatemala Antigua", "Sumatra Mandheling",
             "House Blend", "Espresso Blend", "Decaf Swiss Water", "Breakfast Blend"),
            ("Whole Bean Coffee 250 g", "Ground Coffee 250 g", "Coffee Beans 500 g",
             "Coffee Beans 1 kg", "Coffee Gift Tin"),
            ("Notes of {note}, roasted the week it ships.",
             "A {roast} roast with notes of {note}.",
             "Single-origin beans with a {roast}, {note} finish.",
             "Freshly roasted coffee; the bag says the roast date."),
            (11.0, 39.0), ("coffee",),
            {"client appreciation": 0.5, "retention": 0.35, "onboarding": 0.25,
             "conference": 0.05},
            {"everyone": 0.5, "remote teams": 0.4, "executives": 0.1}, 0.3, 0.15, 1.6),
    Product(ROASTER, "coffee gear",
            ("French Press", "Pour-Over Dripper Set", "Hand Coffee Grinder", "Cold Brew Bottle",
             "Espresso Cup Pair", "Gooseneck Kettle"),
            ("Steel", "Glass", "Matte Black", "Copper", "Ceramic"),
            ("Brews a café-quality cup at home.", "Everything needed for a slow morning brew.",
             "Pairs with any of our beans.", "Built to last for years of daily brewing."),
            (18.0, 95.0), ("coffee", "home"),
            {"retention": 0.45, "client appreciation": 0.45, "onboarding": 0.2},
            {"everyone": 0.45, "remote teams": 0.4, "executives": 0.15}, 0.35, 0.0, 0.8),
    Product(ROASTER, "mug",
            ("Stoneware Coffee Mug", "Insulated Travel Mug", "Enamel Camp Mug",
             "Double-Wall Latte Glass", "Speckled Diner Mug"),
            ("Sand", "Forest Green", "Charcoal", "Sky Blue", "Oat", "Terracotta"),
            ("Holds 350 ml; dishwasher safe.", "Keeps coffee hot through the morning stand-up.",
             "A sturdy mug for the desk.", "Glazed by hand, so no two are alike."),
            (7.5, 32.0), ("home",),
            {"onboarding": 0.6, "conference": 0.35, "retention": 0.1},
            {"new hires": 0.45, "everyone": 0.45, "remote teams": 0.1}, 0.9, 0.0, 1.0),
    Product(TEA_HOUSE, "tea",
            ("Earl Grey", "Sencha Green", "Chamomile Calm", "Rooibos Vanilla", "Masala Chai",
             "Jasmine Pearl", "Peppermint Leaf", "Lemon Ginger", "Oolong Milk", "Hojicha"),
            ("Loose Leaf Tea 100 g", "20 Pyramid Tea Bags", "Tea Tin 80 g",
             "Tea Sampler Box"),
            ("A {cup} cup, steeped for three minutes.", "Whole leaves, blended in the shop.",
             "Brewed hot or cold, it is {cup}.", "Our best-loved blend, {cup} and bright."),
            (8.0, 34.0), ("tea",),
            {"client appreciation": 0.4, "retention": 0.4, "onboarding": 0.3},
            {"everyone": 0.55, "remote teams": 0.35, "executives": 0.1}, 0.25, 0.1, 1.5),
    Product(TEA_HOUSE, "teaware",
            ("Glass Teapot with Infuser", "Cast Iron Kettle", "Matcha Whisk Set",
             "Porcelain Tea Cup Pair", "Travel Tea Tumbler"),
            ("White", "Celadon", "Black", "Clear", "Indigo"),
            ("For a slow afternoon pot.", "Steeps loose leaves without the mess.",
             "A quiet ritual between meetings.", "Made by a family workshop."),
            (14.0, 88.0), ("tea", "home"),
            {"retention": 0.45, "client appreciation": 0.4, "onboarding": 0.15},
            {"everyone": 0.5, "remote teams": 0.35, "executives": 0.15}, 0.4, 0.0, 0.7),
    Product(STATIONERY, "notebook",
            ("A5 Dotted Notebook", "Hardcover Lined Journal", "Kraft Pocket Notebook",
             "Weekly Desk Planner", "Linen Sketchbook", "Meeting Notes Pad"),
            ("Navy", "Black", "Sage", "Mustard", "Blush", "Graphite"),
            ("192 numbered pages of 100 gsm paper.", "Lies flat, with a ribbon marker.",
             "Sized for a laptop bag.", "A fresh start for a new job's notes."),
            (6.0, 36.0), (),
            {"onboarding": 0.7, "conference": 0.55, "retention": 0.05},
            {"new hires": 0.55, "everyone": 0.4, "executives": 0.05}, 0.9, 0.0, 1.3),
    Product(STATIONERY, "pen",
            ("Aluminium Ballpoint Pen", "Bamboo Pen Set", "Brass Fountain Pen",
             "Gel Pen Trio", "Stylus Pen"),
            ("Black", "Silver", "Rose Gold", "Natural", "Blue"),
            ("Writes smoothly on any paper.", "Refillable, with a spare cartridge.",
             "Weighted for long signing sessions.", "Slim enough for a badge holder."),
            (3.5, 74.0), (),
            {"conference": 0.75, "onboarding": 0.45, "client appreciation": 0.1},
            {"everyone": 0.55, "new hires": 0.3, "executives": 0.15}, 0.95, 0.0, 1.0),
    Product(TECH, "charger",
            ("15 W Wireless Charging Pad", "65 W USB-C Fast Charger", "10,000 mAh Power Bank",
             "3-in-1 Charging Stand", "Solar Power Bank"),
            ("White", "Black", "Slate", "Fabric Grey"),
            ("Charges a phone in about two hours.", "Small enough for a conference tote.",
             "Works with USB-C and Qi phones.", "Keeps a laptop going through travel days."),
            (14.0, 79.0), ("tech",),
            {"conference": 0.55, "onboarding": 0.35, "client appreciation": 0.2},
            {"everyone": 0.5, "remote teams": 0.3, "executives": 0.2}, 0.75, 0.0, 1.1),
    Product(TECH, "desk tech",
            ("Aluminium Laptop Stand", "Wireless Earbuds", "Webcam Privacy Cover Set",
             "Braided USB-C Cable 2 m", "Noise-Cancelling Headphones", "Bluetooth Speaker",
             "Ergonomic Wireless Mouse"),
            ("Space Grey", "Black", "White", "Midnight"),
            ("Makes video calls from home easier.", "Pairs in seconds over Bluetooth.",
             "A tidy upgrade for the home office.", "Folds flat for travel."),
            (9.0, 189.0), ("tech",),
            {"onboarding": 0.45, "retention": 0.3, "client appreciation": 0.25,
             "conference": 0.15},
            {"remote teams": 0.6, "everyone": 0.25, "executives": 0.15}, 0.6, 0.0, 1.0),
    Product(WELLNESS, "candle",
            ("Soy Candle", "Scented Travel Candle", "Three-Wick Candle", "Beeswax Taper Pair"),
            ("Lavender", "Cedar & Sage", "Sea Salt", "Fig Leaf", "Bergamot", "Amber"),
            ("Burns for about {hours} hours.", "Hand-poured, cotton wick, {hours}-hour burn.",
             "A calm evening in a jar.", "Fills a room without being loud."),
            (12.0, 58.0), ("wellness", "home"),
            {"retention": 0.55, "client appreciation": 0.45, "onboarding": 0.15},
            {"everyone": 0.65, "remote teams": 0.25, "executives": 0.1}, 0.3, 0.0, 1.0),
    Product(WELLNESS, "socks",
            ("Merino Wool Socks", "Cosy Bamboo Socks", "Cable-Knit House Socks",
             "Running Socks Pair"),
            ("Charcoal", "Heather", "Mustard", "Navy Stripe", "Forest"),
            ("Warm feet for the home office.", "Soft, breathable and made to last.",
             "One size fits most.", "A small comfort for the first cold week."),
            (9.0, 28.0), ("wellness",),
            {"onboarding": 0.5, "retention": 0.4, "conference": 0.15},
            {"everyone": 0.45, "remote teams": 0.35, "new hires": 0.2}, 0.4, 0.0, 0.9),
    Product(WELLNESS, "plant",
            ("Potted Succulent", "Snake Plant in Ceramic Pot", "Desk Air Plant Trio",
             "Mini Herb Garden Kit", "Pothos in Hanging Pot"),
            ("Small", "Medium", "Desk Size", "Gift Wrapped"),
            ("Thrives on a bright desk; water every two weeks.",
             "Cleans the air and asks for little.", "Ships in a recyclable box.",
             "Something green that grows with the team."),
            (11.0, 64.0), ("home", "wellness"),
            {"retention": 0.5, "onboarding": 0.4, "client appreciation": 0.3},
            {"everyone": 0.55, "remote teams": 0.3, "new hires": 0.15}, 0.2, 0.9, 0.8),
    Product(WELLNESS, "self-care",
            ("Bath Salt Soak", "Aromatherapy Roller", "Silk Eye Mask", "Hand Cream Trio",
             "Recycled Wool Throw Blanket", "Yoga Mat Strap Set"),
            ("Eucalyptus", "Rose", "Unscented", "Oat", "Neroli"),
            ("Made for switching off after work.", "A slow evening, packed in a box.",
             "Gentle on skin, with no parabens.", "Rest is part of the job."),
            (10.0, 129.0), ("wellness",),
            {"retention": 0.6, "client appreciation": 0.35, "onboarding": 0.1},
            {"everyone": 0.55, "executives": 0.2, "remote teams": 0.25}, 0.2, 0.05, 1.0),
    Product(CHOCOLATIER, "chocolate",
            ("72% Dark Chocolate Bar", "Sea Salt Caramel Truffles", "Hazelnut Praline Box",
             "Hot Chocolate Flakes", "Milk Chocolate Orange", "Chocolate Tasting Flight",
             "Ruby Chocolate Hearts"),
            ("6 pieces", "12 pieces", "24 pieces", "100 g", "Gift Box"),
            ("Bean-to-bar, tempered by hand.", "Made in small batches this week.",
             "Rich and {note}, with a clean snap.", "A box people fight over politely."),
            (5.0, 68.0), ("sweets",),
            {"client appreciation": 0.65, "retention": 0.35, "conference": 0.1,
             "onboarding": 0.15},
            {"everyone": 0.6, "executives": 0.3, "remote teams": 0.1}, 0.35, 0.95, 1.4),
    Product(CHOCOLATIER, "biscuits",
            ("Butter Shortbread Tin", "Almond Biscotti", "Gingerbread Stars",
             "Oat & Chocolate Cookies"),
            ("Small Tin", "Large Tin", "Gift Bag", "Box of 12"),
            ("Baked the day before shipping.", "Crisp, buttery and {note}.",
             "Made for sharing at the team table.", "A tin that stays on the desk."),
            (6.0, 32.0), ("sweets",),
            {"client appreciation": 0.45, "onboarding": 0.35, "retention": 0.2,
             "conference": 0.15},
            {"everyone": 0.8, "new hires": 0.1, "remote teams": 0.1}, 0.4, 0.95, 0.8),
)

_WEIGHTS = tuple(product.weight for product in PRODUCTS)

# Parts that fill the blurbs' placeholders.
_FILLS = {
    "note": ("dark cherry", "cocoa", "citrus", "caramel", "toasted almond", "blueberry",
             "brown sugar", "hazelnut"),
    "roast": ("light", "medium", "dark", "city"),
    "cup": ("mellow", "bright", "floral", "malty", "soothing", "smoky"),
    "hours": ("25", "40", "45", "60"),
}

# Attribute phrases. Several wordings per attribute: a rule on one word catches some items
# and misses others, as with real descriptions.
_LOCAL = ("Made locally.", "Roasted in small batches across town.", "From a workshop in our city.",
          "Produced within 50 km of the office.", "A neighbourhood favourite.")
_SUSTAINABLE = ("Fair trade.", "Organic.", "Packed in compostable packaging.",
                "Made from recycled materials.", "Plastic-free packaging.",
                "Certified B Corp maker.", "Refillable, so nothing is thrown away.")
_BRANDABLE = ("Can be printed with your logo.", "Engraving available.",
              "Custom branding on request.", "Add your logo to the sleeve.")
_PERISHABLE = ("Best before six months from delivery.", "Keep cool and dry.",
               "Ships fresh; enjoy within weeks.", "Needs light and a little water.")

# Wording that hints at an occasion or audience without naming it: only a model learns these.
_OCCASION_HINTS = {
    "onboarding": ("A warm welcome for someone's first week.", "Great in a welcome kit.",
                   "Day one, sorted."),
    "retention": ("A thank-you for the long haul.", "For the colleague who stays late.",
                  "Marks a work anniversary nicely."),
    "client appreciation": ("Says thank you to a partner.", "Leaves a good impression after "
                            "a deal closes.", "Packed in a presentation box."),
    "conference": ("Fits in a tote at the booth.", "Light enough to hand out by the hundred.",
                   "A giveaway people actually keep."),
}
_AUDIENCE_HINTS = {
    "executives": ("Hand-finished, with a premium feel.", "Our luxury edition.",
                   "For the corner office."),
    "remote teams": ("Posts anywhere, for teams spread across time zones.",
                     "For the home desk.", "Brightens a video call."),
    "new hires": ("Ideal for the first day.", "Starter pack for newcomers."),
}


def _price(rng: random.Random, low: float, high: float, premium: bool) -> float:
    """A shop-like price in the range: whole units plus .00, .50, .95, .99 or stray cents."""
    if premium:
        low = (low + high) / 2
    units = int(rng.uniform(low, high))
    cents = rng.choice((0, 50, 95, 99, 99, rng.randrange(100)))
    return round(max(units, 1) + cents / 100, 2)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    """One key of ``weights``, drawn in proportion to its weight."""
    keys = tuple(weights)
    return rng.choices(keys, weights=tuple(weights[key] for key in keys))[0]


def _occasions(rng: random.Random, product: Product, price: float, brandable: bool,
               premium: bool) -> set[str]:
    """The occasions a careful labeller gives: the product's habits, shifted by price."""
    chosen = set()
    for occasion, chance in product.occasions.items():
        if occasion == "conference" and brandable and price < 20:
            chance += 0.3
        if occasion in ("client appreciation", "retention") and premium:
            chance += 0.25
        if occasion == "conference" and price > 50:
            chance -= 0.4
        if rng.random() < chance:
            chosen.add(occasion)
    if not chosen:
        chosen.add(_pick(rng, product.occasions))
    return chosen


def _audience(rng: random.Random, product: Product, price: float, premium: bool,
              occasions: set[str]) -> str:
    """The one audience: premium items go to executives, welcome items to new hires."""
    if premium and price > 45 and rng.random() < 0.8:
        return "executives"
    weights = dict(product.audiences)
    if "onboarding" in occasions:
        weights["new hires"] = weights.get("new hires", 0.0) + 0.35
    return _pick(rng, weights)


def _themes(product: Product, local: bool, sustainable: bool, name: str) -> set[str]:
    """Themes follow the category, the attributes and a few words of the name."""
    themes = set(product.themes)
    if local:
        themes.add("local")
    if sustainable:
        themes.add("sustainability")
    lowered = name.lower()
    if "coffee" in lowered or "espresso" in lowered or "latte" in lowered:
        themes.add("coffee")
    if "tea" in lowered.split() or "chamomile" in lowered or "peppermint" in lowered:
        themes.add("wellness" if ("chamomile" in lowered or "peppermint" in lowered) else "tea")
    if "hot chocolate" in lowered:
        themes.add("home")
    return themes


def _disturb(rng: random.Random, labels: set[str]) -> None:
    """Drop one multi-group label or add a wrong one (never empties the occasion group)."""
    if rng.random() < 0.5:
        droppable = sorted(label for label in labels if label.startswith("theme:"))
        if droppable:
            labels.discard(rng.choice(droppable))
            return
    group = rng.choice(("occasion", "theme"))
    labels.add(f"{group}:{rng.choice(DEMO_GROUPS[group][1])}")


def _description(rng: random.Random, product: Product, attributes: dict[str, bool],
                 occasions: set[str], audience: str) -> str:
    """Two to five sentences: a blurb, attribute phrases, and sometimes a hint."""
    blurb = rng.choice(product.blurbs)
    parts = [blurb.format(**{key: rng.choice(values) for key, values in _FILLS.items()})]
    phrases = {"local": _LOCAL, "sustainable": _SUSTAINABLE, "brandable": _BRANDABLE,
               "perishable": _PERISHABLE}
    for attribute, wordings in phrases.items():
        # Not every description mentions every attribute: a column says more than the text.
        if attributes[attribute] and rng.random() < 0.75:
            parts.append(rng.choice(wordings))
    for occasion in sorted(occasions):
        if rng.random() < 0.45:
            parts.append(rng.choice(_OCCASION_HINTS[occasion]))
    if audience in _AUDIENCE_HINTS and rng.random() < 0.6:
        parts.append(rng.choice(_AUDIENCE_HINTS[audience]))
    return " ".join(parts)


def _item(rng: random.Random, index: int) -> dict:
    """The ``index``-th item (0-based) drawn from ``rng``."""
    product = rng.choices(PRODUCTS, weights=_WEIGHTS)[0]
    vendor = product.vendor
    base = rng.choice(product.names)
    name = f"{base}, {rng.choice(product.variants)}"
    premium = rng.random() < 0.15
    if premium and rng.random() < 0.5:
        name = f"{name} (Signature Edition)"
    price = _price(rng, *product.price, premium)
    attributes = {
        "local": rng.random() < vendor.local,
        "sustainable": rng.random() < vendor.sustainable,
        "brandable": rng.random() < product.brandable,
        "perishable": rng.random() < product.perishable,
    }
    occasions = _occasions(rng, product, price, attributes["brandable"], premium)
    audience = _audience(rng, product, price, premium, occasions)
    themes = _themes(product, attributes["local"], attributes["sustainable"], name)
    labels = ({f"occasion:{occasion}" for occasion in occasions}
              | {f"theme:{theme}" for theme in themes} | {f"audience:{audience}"})
    if rng.random() < NOISE:
        _disturb(rng, labels)
    sku = f"{vendor.code}-{index + 1:07d}"
    return {
        "sku": sku,
        "name": name,
        "description": _description(rng, product, attributes, occasions, audience),
        "vendor": vendor.name,
        "category": product.category,
        "price": price,
        **attributes,
        "image_url": f"https://images.giftbetter.example/items/{sku.lower()}.jpg",
        "labels": frozenset(labels),
    }


def generate_items(n: int, seed: int = 7) -> Iterator[dict]:
    """Yield ``n`` synthetic gift items, the same ones for the same seed.

    Parameters
    ----------
    n : int
        How many items to yield (0 or more).
    seed : int, default 7
        Seed of the private random generator; the global ``random`` state is left alone.

    Yields
    ------
    dict
        Keys ``sku`` (unique within one run), ``name``, ``description``, ``vendor``,
        ``category``, ``price`` (float, two decimals), ``local``, ``sustainable``,
        ``brandable``, ``perishable`` (bools), ``image_url`` and ``labels`` (a frozenset of
        ``"group:label"`` names from :data:`DEMO_GROUPS`, exactly one per single-label group).
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, not {n}")
    rng = random.Random(seed)
    for index in range(n):
        yield _item(rng, index)


__all__ = ["DEMO_GROUPS", "NOISE", "PRODUCTS", "generate_items"]
