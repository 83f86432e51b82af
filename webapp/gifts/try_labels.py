"""Try the labeller: type an item and see, as you type, which labels the rules and the label
model would suggest for it. Nothing is saved.

The suggestions fragment runs at every pause in typing, so it does no avoidable work per
keystroke:

- the enabled rules (compiled to ``ml.labels.Rule``), the label groups and each group's live
  source are read once per worker and reused for ``GIFTS_CATALOGUE_SECONDS``; a stale copy is
  refreshed in a background thread while requests go on with the old one, as the gift
  catalogue is (``webapp.gifts.recommend.CatalogueCache``), so no keystroke waits for the
  reads. A rule edited on the Rules page shows here within that delay;
- the label model comes from this worker's model holder, which asks the database for the
  active version at most once per ``MODEL_CHECK_SECONDS``;
- the model scores the one item with ``LabelModel.suggest_one`` (a numpy product on the
  compiled weights), never scikit-learn's per-call-validating ``predict_proba``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from flask import current_app, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ml import labels as engine
from ml.items import ATTRIBUTES, ItemData
from webapp.extensions import db
from webapp.gifts import bp
from webapp.gifts.models import CATEGORY_MAX, NAME_MAX, VENDOR_MAX, LabelGroup
from webapp.gifts.rules import load_rules
from webapp.gifts.sources import KIND, live_sources
from webapp.htmx import render_page_or_block
from webapp.ml_bridge import ModelUnavailable, serve

log = logging.getLogger(__name__)

TEMPLATE = "gifts/try.html"
#: Longest description the preview takes (imports keep longer ones; rules and the model read
#: the same words either way, and a bound keeps one keystroke's cost bounded).
DESCRIPTION_MAX = 5000
PRICE_MAX = 1_000_000
#: The text fields: query name -> (label, most characters), in form order.
TEXT_FIELDS = {"title": ("Title", NAME_MAX), "description": ("Description", DESCRIPTION_MAX),
               "vendor": ("Vendor", VENDOR_MAX), "category": ("Category", CATEGORY_MAX)}


# --- The typed item ----------------------------------------------------------------------------
# Read by hand rather than by a WTForms form: binding its ten fields cost about 75 µs per
# keystroke, a third of this fragment's own work, for four length checks and a number.

@dataclass(frozen=True)
class Typed:
    """The item as typed (from the query string: nothing is saved, so no CSRF token)."""

    #: Each text field as typed (for the form), by query name.
    text: dict[str, str]
    #: The attributes ticked (names from ``ml.items.ATTRIBUTES``).
    flags: frozenset[str]
    #: The price field as typed, and as a number (None when empty or invalid).
    price_text: str
    price: float | None
    #: field name -> what is wrong with it.
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        """True once a title is typed: until then there is nothing to label."""
        return bool(self.text["title"].strip())

    def item(self) -> ItemData:
        """The typed item as the rules engine and the model read it."""
        text = {name: value.strip() for name, value in self.text.items()}
        return ItemData(0, text["title"], text["description"], text["vendor"], text["category"],
                        None, self.price or 0.0, *(name in self.flags for name in ATTRIBUTES))


def read_price(text: str) -> tuple[float | None, str | None]:
    """The price typed, and the problem with it (None when it is fine or empty)."""
    if not text.strip():
        return None, None
    try:
        price = float(text)
    except ValueError:
        return None, "give a number, such as 12.50"
    if not math.isfinite(price) or not 0 <= price <= PRICE_MAX:
        return None, f"give a price from 0 to {PRICE_MAX:,}"
    return price, None


def read_query(args) -> Typed:
    """The item from ``args`` (a request's query), with a message per invalid field."""
    text, errors = {}, {}
    for name, (_, longest) in TEXT_FIELDS.items():
        text[name] = args.get(name, "")
        if len(text[name]) > longest:
            errors[name] = f"at most {longest:,} characters (this one has {len(text[name]):,})"
    price_text = args.get("price", "")
    price, problem = read_price(price_text)
    if problem:
        errors["price"] = problem
    # A ticked checkbox sends its value; an unticked one sends nothing.
    flags = frozenset(name for name in ATTRIBUTES if args.get(name))
    return Typed(text, flags, price_text, price, errors)


def error_list(typed: Typed) -> list[tuple[str, str, str]]:
    """(field, its label, message) for each invalid field, in form order."""
    labels = {**{name: label for name, (label, _) in TEXT_FIELDS.items()}, "price": "Unit price"}
    return [(name, labels[name], typed.errors[name]) for name in labels if name in typed.errors]


# --- What the rules need, cached per worker ----------------------------------------------------

@dataclass(frozen=True)
class Setup:
    """The enabled rules in the order they run, the label groups in display order, and each
    group's live source: everything but the item that a suggestion needs from the database."""

    rules: tuple[engine.Rule, ...]
    #: (group name, several labels per item?) in the vocabulary page's order.
    groups: tuple[tuple[str, bool], ...]
    single_label_groups: frozenset[str]
    #: group name -> "rules" or "model".
    live: dict[str, str]


def load_setup() -> Setup:
    """Read the rules, the groups and their live sources (a handful of queries)."""
    groups = db.session.scalars(select(LabelGroup).options(selectinload(LabelGroup.labels))
                                .order_by(LabelGroup.position, LabelGroup.name_key)).all()
    live = {name: source.source for name, source in live_sources().items()}
    return Setup(rules=tuple(engine.ordered(load_rules())),
                 groups=tuple((group.name, group.multi) for group in groups),
                 single_label_groups=frozenset(g.name for g in groups if not g.multi),
                 live=live)


class SetupCache:
    """This worker's :class:`Setup`, refreshed once it is ``max_age`` seconds old.

    The first request builds it in place; after that a stale copy is rebuilt in a background
    thread while requests keep using it, so no keystroke waits for the database. With
    ``max_age`` 0 (tests) every request rebuilds it in place.
    """

    def __init__(self, app, max_age: float) -> None:
        self.app, self.max_age = app, max_age
        self._lock = threading.Lock()
        self._setup: Setup | None = None
        self._built = 0.0
        self._refreshing = False

    def get(self) -> Setup:
        """The setup: built now the first time, then refreshed in the background."""
        with self._lock:
            if self._setup is None or self.max_age <= 0:
                self._setup, self._built = load_setup(), time.monotonic()
                return self._setup
            if time.monotonic() - self._built >= self.max_age and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, daemon=True,
                                 name="gifts-try-labels").start()
            return self._setup

    def _refresh(self) -> None:
        try:
            with self.app.app_context():
                try:
                    setup = load_setup()
                finally:
                    db.session.remove()
            with self._lock:
                self._setup = setup
        except Exception:  # keep serving the previous setup; say why in the log
            log.exception("refreshing the labeller's rules failed; the previous ones stay")
        finally:
            with self._lock:
                self._refreshing, self._built = False, time.monotonic()


def setup_cache() -> SetupCache:
    """This app's cache of the labeller's setup."""
    extensions = current_app.extensions
    if "gifts_try_labels" not in extensions:
        extensions.setdefault("gifts_try_labels", SetupCache(
            current_app._get_current_object(), current_app.config["GIFTS_CATALOGUE_SECONDS"]))
    return extensions["gifts_try_labels"]


# --- Suggestions -------------------------------------------------------------------------------

class GroupSuggestions(NamedTuple):
    """One group's row in the fragment (a named tuple: a few are built per keystroke)."""

    name: str
    multi: bool
    #: "rules" or "model": which source labels imported items in this group now.
    live: str
    #: (label, rule name) the rules would give.
    rules: list[tuple[str, str]]
    #: (label, confidence in whole percent) the model would give; None when no model covers
    #: the group.
    model: list[tuple[str, int]] | None


def suggestions(item: ItemData, setup: Setup, model) -> list[GroupSuggestions]:
    """Per label group, what the rules and the model (when there is one) would suggest."""
    by_rules: dict[str, list[tuple[str, str]]] = {}
    for given in engine.apply_rules(setup.rules, item, setup.single_label_groups):
        group, _, name = given.label.partition(":")
        by_rules.setdefault(group, []).append((name, given.rule_name))
    by_model: dict[str, list[tuple[str, int]]] = {}
    if model is not None:
        by_model = {group: [] for group in model.groups_}  # the groups it was trained for
        for label, confidence in model.suggest_one(item):
            group, _, name = label.partition(":")
            by_model[group].append((name, round(confidence * 100)))
    return [GroupSuggestions(name, multi, setup.live.get(name, "rules"), by_rules.get(name, []),
                             by_model.get(name)) for name, multi in setup.groups]


def live_model() -> tuple[object | None, str | None, str | None]:
    """This worker's label model, its version, and why there is none (None when there is)."""
    try:
        served = serve(KIND)
    except ModelUnavailable as error:
        return None, None, str(error)
    return served.model, served.version, None


def suggestion_context(typed: Typed) -> dict:
    """Everything the page and its suggestions block show for the item as typed."""
    context = {"typed": typed, "errors": error_list(typed), "groups": None, "version": None,
               "unavailable": None, "setup_empty": False, "limits": TEXT_FIELDS,
               "attributes": ATTRIBUTES, "price_max": PRICE_MAX}
    if typed.errors or not typed.started:
        return context  # the block shows the errors, or asks for a title
    setup = setup_cache().get()
    model, version, unavailable = live_model()
    context.update(groups=suggestions(typed.item(), setup, model), version=version,
                   unavailable=unavailable, setup_empty=not setup.groups)
    return context


def render():
    """The page, or only its suggestions block for htmx; 422 when the input is invalid."""
    typed = read_query(request.args)
    context = suggestion_context(typed)
    response = render_page_or_block(TEMPLATE, "suggestions", status=422 if typed.errors else 200,
                                    **context)
    if context["version"]:
        response.headers["X-Model-Version"] = context["version"]
    return response


@bp.route("/labels/try")
def try_labels():
    """The "Try the labeller" page (with suggestions when the query already has a title)."""
    return render()


@bp.route("/labels/try/suggestions")
def try_labels_suggestions():
    """The live suggestions fragment (the whole page without htmx)."""
    return render()
