"""Prices as partners write them: ``$1,299.00``, ``1.299,00 €``, ``12,50 €``, ``USD 7``.

``parse_price`` turns such text into a ``Decimal`` rounded to the cent, or raises ``ValueError``
with a reason staff can act on (it never raises anything else, whatever the text).

The rule for separators (``.``, ``,``, ``'`` and spaces), applied after removing a currency
symbol or code at either end:

1. Spaces (including no-break and thin spaces) and apostrophes only ever group thousands:
   ``1 299,00`` and ``1'299.00`` are 1299.
2. When both ``.`` and ``,`` appear, the one further right is the decimal separator and the
   other groups thousands: ``1.299,00`` and ``1,299.00`` are both 1299.
3. When only one of them appears, more than once, it groups thousands: ``1.299.000`` is 1299000.
4. When only one of them appears once, it groups thousands if exactly three digits follow it
   and one to three digits (not a leading 0) precede it: ``1,299`` and ``1.299`` are 1299.
   Otherwise it is the decimal separator: ``12,50``, ``12.5``, ``0.125``.
   Prices are written to the cent, so three decimals almost always mean thousands.
5. Thousands groups must be well formed (three digits each): ``1,2,3`` is refused.

More than two decimals are rounded half up to the cent. Negative prices (``-5``, ``(5.00)``,
``5-``), empty cells and prices above ``MAX_PRICE`` (what the database column holds) are
refused.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal

#: The largest price the item table stores (``Numeric(10, 2)``).
MAX_PRICE = Decimal("99999999.99")
CENT = Decimal("0.01")
#: Currency codes accepted before or after the amount (a symbol such as $ or € always is).
CURRENCY_CODES = frozenset({
    "USD", "EUR", "GBP", "CHF", "CAD", "AUD", "NZD", "JPY", "SEK", "NOK", "DKK", "PLN", "CZK",
})
#: Text longer than this is not a price (and keeps the work per cell bounded).
TEXT_MAX = 60
MINUS_SIGNS = "-\u2212\u2012\u2013"
BODY_RE = re.compile(r"[0-9.,' ]+", re.ASCII)
#: "12", "12.5", "1299.00": read directly (never more than MAX_PRICE, never ambiguous).
PLAIN_RE = re.compile(r"[0-9]{1,8}(?:\.[0-9]{1,2})?", re.ASCII)
LEADING_CODE_RE = re.compile(r"^([A-Za-z]{3})\s*(?=[0-9.,(+" + MINUS_SIGNS + "])")
TRAILING_CODE_RE = re.compile(r"(?<=[0-9.,)" + MINUS_SIGNS + r"])\s*([A-Za-z]{3})$")


def _short(text: str) -> str:
    return text if len(text) <= 30 else text[:29] + "…"


def _strip_currency(text: str) -> str:
    """``text`` without a currency symbol or a known code at either end, and its spaces."""
    while text and unicodedata.category(text[0]) == "Sc":
        text = text[1:].strip()
    while text and unicodedata.category(text[-1]) == "Sc":
        text = text[:-1].strip()
    for pattern in (LEADING_CODE_RE, TRAILING_CODE_RE):
        match = pattern.search(text)
        if match and match.group(1).upper() in CURRENCY_CODES:
            text = (text[:match.start()] + text[match.end():]).strip()
    # A symbol may also sit after a sign (-€5): gone here, so the sign is seen.
    return "".join(ch for ch in text if unicodedata.category(ch) != "Sc").strip()


def _is_negative(text: str) -> bool:
    """True for ``-5``, ``−5``, ``5-`` and the accountants' ``(5.00)``."""
    return (text[:1] in MINUS_SIGNS or text[-1:] in MINUS_SIGNS
            or (text.startswith("(") and text.endswith(")")))


def _grouped(parts: list[str]) -> bool:
    """True when ``parts`` (split at a thousands separator) are 1-3 digits then threes."""
    return (1 <= len(parts[0]) <= 3 and parts[0].isdigit()
            and all(len(part) == 3 and part.isdigit() for part in parts[1:]))


def _split_number(body: str, original: str) -> tuple[str, str]:
    """The whole and decimal digits of ``body`` (digits, ``.``, ``,``), by the module's rule."""
    dots, commas = body.count("."), body.count(",")
    if dots and commas:
        decimal_mark = "." if body.rfind(".") > body.rfind(",") else ","
        group_mark = "," if decimal_mark == "." else "."
        if body.count(decimal_mark) > 1:
            raise ValueError(f"{_short(original)!r} is not a price: '{decimal_mark}' appears "
                             "more than once after the thousands")
        whole, decimals = body.split(decimal_mark)
        groups = whole.split(group_mark)
    elif dots + commas == 0:
        return body, ""
    else:
        mark = "." if dots else ","
        parts = body.split(mark)
        looks_grouped = len(parts) > 2 or (len(parts[1]) == 3 and 1 <= len(parts[0]) <= 3
                                           and not parts[0].startswith("0"))
        if not looks_grouped:
            return parts[0], parts[1]
        groups, decimals = parts, ""
    if not _grouped(groups):
        raise ValueError(f"{_short(original)!r} is not a price: its thousands separators "
                         "are in odd places")
    return "".join(groups), decimals


def parse_price(text: str) -> Decimal:
    """The price written in ``text``, rounded to the cent; ValueError with the reason if none.

    See the module's docstring for the separator rule. ``Decimal`` only ever sees ASCII digits
    with one ``.``, so nothing but ``ValueError`` can come out.
    """
    if not isinstance(text, str):
        raise ValueError("a price must be text")
    cleaned = text.strip()
    if PLAIN_RE.fullmatch(cleaned):  # the common machine-written case, without the detours
        return Decimal(cleaned).quantize(CENT)
    if not cleaned:
        raise ValueError("the price is empty")
    if len(cleaned) > TEXT_MAX:
        raise ValueError(f"{_short(cleaned)!r} is too long to be a price")
    amount = _strip_currency(cleaned)
    if not amount:
        raise ValueError(f"{_short(cleaned)!r} has no amount")
    if _is_negative(amount):
        raise ValueError(f"the price {_short(cleaned)!r} is negative")
    amount = amount.removeprefix("+")
    # Any Unicode space groups thousands (no-break U+00A0, thin U+2009, narrow U+202F...).
    body = "".join(" " if ch.isspace() else ch for ch in amount)
    if not BODY_RE.fullmatch(body) or not any(ch.isdigit() for ch in body):
        raise ValueError(f"{_short(cleaned)!r} is not a price")
    groups = re.split(r"[ ']+", body)
    if len(groups) > 1:  # spaces or apostrophes: thousands, checked like any grouping
        last = groups[-1]
        head, tail = (last.split(".", 1) if "." in last
                      else last.split(",", 1) if "," in last else (last, None))
        if any(ch in ".," for ch in "".join(groups[:-1])) or not _grouped([*groups[:-1], head]):
            raise ValueError(f"{_short(cleaned)!r} is not a price: its thousands separators "
                             "are in odd places")
        whole, decimals = "".join([*groups[:-1], head]), tail or ""
        if tail is not None and not tail.isdigit():
            raise ValueError(f"{_short(cleaned)!r} is not a price")
    else:
        whole, decimals = _split_number(body, cleaned)
    if not (whole + decimals).isdigit() or not whole + decimals:
        raise ValueError(f"{_short(cleaned)!r} is not a price")
    exact = Decimal(f"{whole or '0'}.{decimals or '0'}")
    # Compared before rounding too: quantize() fails on numbers longer than its precision.
    if exact > MAX_PRICE or exact.quantize(CENT, rounding=ROUND_HALF_UP) > MAX_PRICE:
        raise ValueError(f"the price {_short(cleaned)!r} is above the largest accepted "
                         f"({MAX_PRICE:,})")
    return exact.quantize(CENT, rounding=ROUND_HALF_UP)
