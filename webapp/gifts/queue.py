"""The keyboard labelling queue: one pending item at a time, decisions, undo, the order.

One page (``gifts/queue.html``). With htmx every decision answers with the next item and, out of
band, the progress counter, the sidebar of recent decisions and a flash line: no page reload.
Without JavaScript the same forms post and redirect (303) back to the queue.

"Next item" must stay an index seek at 100k items: each order has an index that starts with
``(status, skipped)`` (see ``Item.__table_args__``), non-skipped items are asked for first, and
the random slice of "least certain first" seeks a random id on the primary key instead of
``ORDER BY random()``. The policy matches ``ml.label_model.order_by_uncertainty``.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from flask import abort, flash, g, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from jinja2_fragments.flask import render_blocks
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from wtforms.fields import SelectField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from webapp.extensions import db
from webapp.gifts import bp, labelling
from webapp.gifts.models import (
    QUEUE_ORDERS,
    Item,
    Label,
    LabelDecision,
    LabelGroup,
    gifts_settings,
)
from webapp.gifts.sources import live_sources
from webapp.htmx import render_page_or_block, wants_fragment

TEMPLATE = "gifts/queue.html"
ORDER_LABELS = {"uncertain": "Least certain first", "newest": "Newest first",
                "vendor": "By vendor"}
#: Hotkeys for labels, in order: digits first, then letters that no action uses (x rejects).
KEYS = tuple("1234567890") + tuple("asdfghjklqwertyuiopcvbnm")
#: How many decisions the sidebar lists.
RECENT = 10
#: Blocks a decision's htmx answer carries: the new item, then the out-of-band ones.
DECISION_BLOCKS = ("queue_item", "queue_progress", "queue_sidebar", "queue_flash")
#: The answer to a sidebar edit: the sidebar itself, then the out-of-band ones.
EDIT_BLOCKS = ("queue_sidebar", "queue_progress", "queue_flash")
#: The flash line after each action ("Accepted “Mug”.").
DONE_MESSAGES = {"accept": "Accepted", "reject": "Rejected", "skip": "Skipped",
                 "edit": "Saved the labels of"}


class DecisionForm(FlaskForm):
    """A queue decision: the action and the ticked labels' ids."""

    action = SelectField("Action", validators=[InputRequired("Say what to do: accept, reject, "
                                                             "skip or edit.")],
                         choices=[SelectChoice(action) for action in labelling.ACTIONS])
    #: Any ids: ``labelling.decide`` checks that they exist (one query, only when some are
    #: ticked), so a skip or reject costs no vocabulary read.
    label_ids = SelectMultipleField("Labels", coerce=int, choices=[], validate_choice=False)


class OrderForm(FlaskForm):
    """The queue's order."""

    order = SelectField("Queue order", choices=[
        SelectChoice(order, ORDER_LABELS[order]) for order in QUEUE_ORDERS])


# --- queries ----------------------------------------------------------------------------------

def _pending(skipped: bool):
    """Conditions for pending items, skipped or not (the prefix of every queue index)."""
    return Item.status == "pending", Item.skipped == skipped


def _ordered(order: str, skipped: bool):
    """The first pending item by ``order`` among skipped (or non-skipped) items, as a query."""
    query = select(Item).where(*_pending(skipped))
    if order == "newest":
        return query.order_by(Item.created_at.desc(), Item.id.desc())
    if order == "vendor":
        return query.order_by(Item.vendor_key, Item.id)
    # Least certain first: highest uncertainty, then the lowest id among equals. Two seeks on
    # (status, skipped, uncertainty, id) rather than a mixed-direction sort of the pending set.
    top = (select(Item.uncertainty).where(*_pending(skipped))
           .order_by(Item.uncertainty.desc()).limit(1).scalar_subquery())
    return query.where(Item.uncertainty == top).order_by(Item.id)


def _random_pending(rng: random.Random) -> Item | None:
    """A pending, non-skipped item picked at random: the first at or after a random id."""
    # Two statements: SQLite seeks min() or max() alone, but scans for both at once.
    low = db.session.scalar(select(func.min(Item.id)))
    high = db.session.scalar(select(func.max(Item.id)))
    if low is None:
        return None
    pivot = rng.randint(low, high)
    base = select(Item).where(*_pending(False)).order_by(Item.id).limit(1)
    return (db.session.scalars(base.where(Item.id >= pivot)).first()
            or db.session.scalars(base.where(Item.id < pivot)).first())


def next_item(order: str, random_share: float = 0.0, rng: random.Random | None = None):
    """The item the queue shows next, or None when nothing is pending.

    Non-skipped items come before skipped ones. With "uncertain", about ``random_share`` of the
    picks are a random pending item instead, so the queue does not loop on near-duplicates.
    """
    rng = rng or random
    if order == "uncertain" and random_share > 0 and rng.random() < random_share:
        picked = _random_pending(rng)
        if picked is not None:
            return picked
    for skipped in (False, True):
        found = db.session.scalars(_ordered(order, skipped).limit(1)).first()
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Progress:
    """How far the labelling is: reviewed items out of all, what is left, how many skipped."""

    total: int
    done: int
    remaining: int
    skipped: int


class TotalCache:
    """How many items exist, counted at most once per ``ttl`` seconds per process.

    A full ``count(*)`` costs ~10 ms at 100k rows on PostgreSQL, too much per keypress. New
    items always get a higher id, so the cached count is keyed on ``max(id)`` (an index seek
    that ``progress`` reads anyway) and an import shows at once; only a deletion waits for the
    ``ttl``.
    """

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entry: tuple[str, int | None, float, int] | None = None  # db, max id, when, count

    def count(self, newest: int | None) -> int:
        """The number of items, given the current ``max(id)`` (exact up to deletions in the
        last ``ttl`` seconds)."""
        where = str(db.engine.url)
        now = time.monotonic()
        with self._lock:
            entry = self._entry
        if entry and entry[:2] == (where, newest) and now - entry[2] < self.ttl:
            return entry[3]
        total = db.session.scalar(select(func.count()).select_from(Item))
        with self._lock:
            self._entry = (where, newest, now, total)
        return total


TOTAL = TotalCache()


def _count(*conditions):
    """``count(*)`` of the items matching ``conditions``, as a scalar subquery."""
    return select(func.count()).select_from(Item).where(*conditions).scalar_subquery()


def progress() -> Progress:
    """The counter, in one round trip: reviewed and skipped items are counted on the queue
    index (ranges as big as the items reviewed or skipped), and the total comes from ``TOTAL``."""
    newest, done, skipped = db.session.execute(select(
        select(func.max(Item.id)).scalar_subquery(),
        _count(Item.status.in_(("accepted", "rejected"))),
        _count(*_pending(True)))).one()
    total = TOTAL.count(newest)
    return Progress(total, done, max(total - done, 0), skipped)


@dataclass(frozen=True)
class KeyedLabel:
    """A label as the queue shows it: with its hotkey and its group."""

    label: Label
    group: LabelGroup
    key: str | None


def label_groups() -> list[tuple[LabelGroup, list[KeyedLabel]]]:
    """Every group with its labels, each label with its hotkey (groups and labels by position)."""
    # One query (a join) rather than two: this runs on every keypress.
    groups = db.session.scalars(select(LabelGroup).options(joinedload(LabelGroup.labels))
                                .order_by(LabelGroup.position, LabelGroup.name_key)).unique().all()
    keys = iter(KEYS)
    return [(group, [KeyedLabel(label, group, next(keys, None)) for label in group.labels])
            for group in groups]


# --- rendering --------------------------------------------------------------------------------

def user_name() -> str:
    """Who decides: the logged-in user's name (kept for the request: after a commit, reading it
    from the expired user row would cost another query)."""
    if "gifts_user" not in g:
        g.gifts_user = current_user.username
    return g.gifts_user


def shown_item(settings) -> Item | None:
    """The item to show: ``item_id`` from the URL when it is still pending, else the next one."""
    item_id = request.args.get("item_id", type=int)
    item = db.session.get(Item, item_id) if item_id else None
    if item is not None and item.status == "pending":
        return item
    return next_item(settings.queue_order, settings.random_share)


def queue_context(item: Item | None = None, *, full: bool = True, **extra) -> dict:
    """What the page (``full``) or a decision's answer shows; ``extra`` overrides."""
    settings = gifts_settings()
    if item is None and "item" not in extra:
        item = shown_item(settings)
    groups = label_groups()
    context = {
        "item": item, "groups": groups, "progress": progress(),
        "recent": labelling.recent_decisions(user_name(), RECENT),
        "labels_by_id": {keyed.label.id: keyed for _, labels in groups for keyed in labels},
        "checked": None, "error": None, "editing_id": None, "message": None, "oob": (),
        "message_category": "success", "edit_checked": None, "edit_error": None,
    }
    if full:
        # Live sources cost a count over every human label: the whole page shows them, the
        # per-keypress answers do not need them.
        context["sources"] = live_sources()
        context["order_form"] = OrderForm(formdata=None, order=settings.queue_order)
    context.update(extra)
    return context


def decision_answer(item: Item | None = None, status: int = 200, blocks=DECISION_BLOCKS,
                    **extra):
    """The answer to a decision: htmx gets ``blocks`` (the first swaps its target, the others
    go out of band); without JavaScript, the whole page."""
    if not wants_fragment():
        return render_page_or_block(TEMPLATE, blocks[0], status=status,
                                    **queue_context(item, **extra))
    context = queue_context(item, full=False, oob=blocks[1:], **extra)
    return render_blocks(TEMPLATE, list(blocks), **context), status, {"Vary": "HX-Request"}


def back_to_queue(message: str, category: str = "success", item_id: int | None = None):
    """The no-JS answer to a form that worked: the queue again (303), with a message."""
    flash(message, category)
    return redirect(url_for("gifts.queue", item_id=item_id) if item_id
                    else url_for("gifts.queue"), code=303)


def item_or_404(item_id: int) -> Item:
    """The item, or 404."""
    item = db.session.get(Item, item_id)
    if item is None:
        abort(404, "There is no such item: it may have been deleted.")
    return item


# --- views ------------------------------------------------------------------------------------

@bp.route("/queue")
def queue():
    """The queue: the next pending item, the progress, recent decisions, the key help."""
    return render_page_or_block(TEMPLATE, "queue_item",
                                **queue_context(full=not wants_fragment()))


@bp.route("/queue/items/<int:item_id>/decide", methods=["POST"])
def decide(item_id: int):
    """Accept, reject, skip or edit an item; answer with the next item (or the sidebar)."""
    item = item_or_404(item_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        problems = "; ".join(error for errors in form.errors.values() for error in errors)
        return refused(item, form, f"Nothing was saved: {problems}", 422)
    message = f"{DONE_MESSAGES[form.action.data]} “{item.name}”."  # before commit expires it
    try:
        labelling.decide(item, form.action.data, form.label_ids.data or [], user_name())
    except labelling.LabellingError as error:
        db.session.rollback()
        return refused(item, form, str(error),
                       409 if isinstance(error, labelling.AlreadyReviewed) else 422)
    if not wants_fragment():
        return back_to_queue(message)
    if form.action.data == "edit":
        return decision_answer(blocks=EDIT_BLOCKS, message=message)
    return decision_answer(message=message)


def refused(item: Item, form: DecisionForm, error: str, status: int):
    """A decision that could not be made: the same form, the ticks as sent, the reason."""
    checked = set(form.label_ids.data or [])
    if form.action.data == "edit":
        editing = request.form.get("decision_id", type=int)
        return decision_answer(status=status, blocks=EDIT_BLOCKS, editing_id=editing,
                               edit_checked=checked, edit_error=error)
    if item.status != "pending":
        # Someone else reviewed it meanwhile: say so and move on to the next item.
        return decision_answer(status=status, message=error, message_category="error")
    return decision_answer(item, status=status, checked=checked, error=error)


@bp.route("/queue/undo", methods=["POST"])
def undo_last():
    """Undo the user's last decision (Backspace / Ctrl+Z)."""
    try:
        decision = labelling.undo_last(user_name())
    except labelling.LabellingError as error:
        db.session.rollback()
        return undo_refused(str(error))
    return undone(decision)


@bp.route("/queue/decisions/<int:decision_id>/undo", methods=["POST"])
def undo_decision(decision_id: int):
    """Undo one decision from the sidebar."""
    decision = db.session.get(LabelDecision, decision_id)
    if decision is None or decision.created_by != user_name():
        abort(404, "There is no such decision of yours.")
    try:
        labelling.undo(decision_id)
    except labelling.LabellingError as error:
        db.session.rollback()
        return undo_refused(str(error))
    return undone(decision)


def undone(decision: LabelDecision):
    """After an undo: show the item again when it is back in the queue."""
    item = db.session.get(Item, decision.item_id)
    message = f"Undone: {decision.action} of “{item.name}”."
    back = item if item.status == "pending" else None
    if not wants_fragment():
        return back_to_queue(message, "info", item_id=back.id if back else None)
    return decision_answer(back, message=message, message_category="info")


def undo_refused(message: str):
    """An undo that could not be done: say why (409), change nothing."""
    if not wants_fragment():
        return back_to_queue(message, "error")
    return decision_answer(status=409, message=message, message_category="error")


@bp.route("/queue/decisions/<int:decision_id>/edit")
def edit_decision(decision_id: int):
    """A sidebar entry opened for editing its item's labels."""
    decision = db.session.get(LabelDecision, decision_id)
    if decision is None or decision.created_by != user_name():
        abort(404, "There is no such decision of yours.")
    return render_page_or_block(TEMPLATE, "queue_sidebar",
                                **queue_context(full=not wants_fragment(), editing_id=decision_id))


@bp.route("/queue/sidebar")
def queue_sidebar():
    """The sidebar of recent decisions (what Cancel on a sidebar edit goes back to)."""
    return render_page_or_block(TEMPLATE, "queue_sidebar",
                                **queue_context(full=not wants_fragment()))


@bp.route("/queue/order", methods=["POST"])
def queue_order():
    """Change the queue's order (saved for everyone) and show the first item by it."""
    form = OrderForm()
    if not form.validate_on_submit():
        abort(422, "Choose an order: least certain first, newest first or by vendor.")
    settings = gifts_settings()
    settings.queue_order = form.order.data
    db.session.commit()
    message = f"Queue order: {ORDER_LABELS[form.order.data].lower()}."
    if not wants_fragment():
        return back_to_queue(message, "info")
    return decision_answer(message=message, message_category="info")
