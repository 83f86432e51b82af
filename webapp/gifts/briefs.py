"""A client's brief with three live proposals: swap or lock items, save a bundle as a gift.

The brief's whole state (its fields, the locked and the swapped-out items) travels in the query
string of one GET form, so it works without JavaScript, can be bookmarked, and needs no
server-side session. Swap and Lock are submit buttons of that form (``form="brief-form"``), so
they always carry the brief as it is on screen. With htmx the form re-proposes on every change.
"""

from __future__ import annotations

from decimal import Decimal

from flask import abort, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from webapp.auth.models import utcnow
from webapp.extensions import MAX_ID, db
from webapp.gifts import bp
from webapp.gifts import recommend as service
from webapp.gifts.brief_forms import BriefForm, RecommenderSettingsForm, SaveGiftForm
from webapp.gifts.models import Client, Gift, GiftLine, Item, gifts_settings
from webapp.htmx import render_page_or_block, wants_fragment

TEMPLATE = "gifts/brief.html"


def received_items(client: Client | None) -> frozenset[int]:
    """Items the client received in gifts that were sent or proposed."""
    if client is None:
        return frozenset()
    query = (select(GiftLine.item_id).join(Gift, Gift.id == GiftLine.gift_id)
             .where(Gift.client_id == client.id, Gift.status.in_(service.KEPT_STATUSES),
                    GiftLine.item_id.is_not(None)))
    return frozenset(db.session.scalars(query))


def catalogue_item(value: str) -> int | None:
    """The id of the item a swap or lock button names, or None when it names no item (its
    feedback event would point at nothing: a foreign key failure, a 500)."""
    try:
        item_id = int(value)
    except ValueError:
        return None
    if not 0 < item_id <= MAX_ID or db.session.get(Item, item_id) is None:
        return None
    return item_id


def apply_actions(form: BriefForm, args: MultiDict) -> tuple[str, int] | None:
    """Apply a swap, a lock toggle or a restore from the query; return (event, item id) to
    record, if any."""
    if args.get("restore"):
        form.avoid_ids = []
        return None
    for name, event in (("swap", "swapped_out"), ("toggle_lock", "locked")):
        item_id = catalogue_item(args.get(name, ""))
        if item_id is None:
            continue
        if name == "swap":
            form.lock_ids = [i for i in form.lock_ids if i != item_id]
            form.avoid_ids = [*form.avoid_ids, item_id]
            return event, item_id
        if item_id in form.lock_ids:
            form.lock_ids = [i for i in form.lock_ids if i != item_id]
            return "unlocked", item_id
        form.lock_ids = [*form.lock_ids, item_id]
        form.avoid_ids = [i for i in form.avoid_ids if i != item_id]
        return event, item_id
    return None


def proposal_context(form: BriefForm) -> dict:
    """Everything the proposals block shows, and the feedback it leaves (``feedback``: record
    it with :func:`record_feedback` once the page is rendered)."""
    action = apply_actions(form, request.args)
    context = {"form": form, "lock": form.lock_ids, "avoid": form.avoid_ids, "proposed": None,
               "feedback": None}
    # A brief starts once it has a budget: a link that only names the client (from the
    # client's page) opens the form with the defaults, not with "give a budget" errors.
    started = "budget_min" in request.args or "budget_max" in request.args
    if not started or not form.validate():
        return context
    client = form.client()
    brief = form.brief(received_items(client))
    proposed = service.propose(brief)
    context.update(proposed=proposed, brief=brief, client=client)
    event, item_id = action if action else ("shown", None)
    if event != "unlocked":
        context["feedback"] = (event, brief, proposed.proposal.bundles, item_id,
                               proposed.model_version)
    return context


def record_feedback(context: dict) -> None:
    """Store the feedback :func:`proposal_context` left in ``context``, if any, and commit."""
    if context.get("feedback"):
        event, brief, bundles, item_id, model_version = context["feedback"]
        service.record_event(event, brief, bundles, item_id=item_id, model_version=model_version)


def render_brief(block: str, context: dict, status: int = 200):
    """Render the brief page (or ``block``), then record its feedback.

    The commit comes after the rendering: committing first would expire every loaded row
    (the user, the settings) and the template would load them again, two queries per
    keystroke.
    """
    response = render_page_or_block(TEMPLATE, block, status=status, **context)
    record_feedback(context)
    return response


@bp.route("/brief")
def brief():
    """The brief form and its three proposals (the whole page)."""
    return render_brief("proposals", page_context())


def page_context(settings_form: RecommenderSettingsForm | None = None) -> dict:
    """What the brief page shows, from the query string."""
    form = BriefForm(request.args if request.args else None)
    fragment = wants_fragment()
    if not fragment:  # the live block shows no select or tick: skip its queries
        form.load_choices()
    context = proposal_context(form)
    proposed, client = context["proposed"], context.get("client")
    # Only a bundle offers "save as gift" (for the brief's client by default): no bundle, no
    # client list to read.
    bundles = proposed is not None and proposed.proposal.bundles
    context["save_choices"] = client_choices() if bundles else []
    context["save_client"] = client.id if client is not None else None
    if not fragment or settings_form is not None:  # the live block has no settings form
        context["settings_form"] = settings_form or RecommenderSettingsForm(
            obj=gifts_settings(), formdata=None)
    return context


@bp.route("/brief/settings", methods=["POST"])
def brief_settings():
    """Save the gift model's weight and the past gifts it needs; errors come back in place."""
    settings = gifts_settings()
    form = RecommenderSettingsForm()
    if not form.validate_on_submit():
        if not wants_fragment():
            return render_brief("recommender_settings", page_context(form), status=422)
        return render_page_or_block(TEMPLATE, "recommender_settings", status=422,
                                    settings_form=form)
    settings.learned_weight = float(form.learned_weight.data)
    settings.min_gifts = form.min_gifts.data
    db.session.commit()
    if not wants_fragment():
        return redirect(url_for("gifts.brief"), code=303)
    return render_page_or_block(TEMPLATE, "recommender_settings", settings_form=form,
                                settings_saved=True)


@bp.route("/brief/proposals")
def brief_proposals():
    """The proposals block, re-proposed at every change of the brief."""
    return brief()


def client_choices() -> list[SelectChoice]:
    """Every client, by name, for a select."""
    return [SelectChoice(client_id, name) for client_id, name in db.session.execute(
        select(Client.id, Client.name).order_by(Client.name_key))]


@bp.route("/brief/save", methods=["POST"])
def brief_save():
    """Save a proposed bundle as a gift (status "proposed") and open it."""
    brief_form = BriefForm(request.form)
    brief_form.load_choices()
    save = SaveGiftForm()
    save.client_id.choices = client_choices()
    if not (save.validate_on_submit() and brief_form.validate()):
        errors = {**save.errors, **brief_form.errors}
        abort(422, "The gift could not be saved: " + "; ".join(
            f"{name}: {', '.join(messages)}" for name, messages in errors.items()))
    try:
        lines = save.parsed_lines()
    except ValueError:
        abort(422, "The gift could not be saved: the bundle's items are unreadable.")
    gift = create_gift(save, brief_form, lines)
    service.record_event("saved", brief_form.brief(), item_id=None, gift_id=gift.id)
    target = url_for("gifts.gift", gift_id=gift.id)
    if wants_fragment():
        response = redirect(target, code=303)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


def create_gift(save: SaveGiftForm, brief_form: BriefForm, lines) -> Gift:
    """Store the gift with its lines at today's prices (unknown items are refused)."""
    items = {item.id: item for item in db.session.scalars(
        select(Item).where(Item.id.in_([item_id for item_id, _ in lines])))}
    missing = [item_id for item_id, _ in lines if item_id not in items]
    if missing or not lines:
        abort(422, "The gift could not be saved: an item of the bundle no longer exists.")
    gift = Gift(client_id=save.client_id.data, name=save.name.data.strip(),
                occasion=brief_form.occasion.data or "", status="proposed",
                recipients=brief_form.recipients.data,
                budget_min=Decimal(brief_form.budget_min.data),
                budget_max=Decimal(brief_form.budget_max.data),
                themes=list(brief_form.themes.data or ()),
                exclude=list(brief_form.exclude.data or ()), note=brief_form.note.data or "",
                gift_date=utcnow(), created_by=current_user.username)
    for position, (item_id, quantity) in enumerate(lines):
        item = items[item_id]
        gift.lines.append(GiftLine(item_id=item.id, item_name=item.name,
                                   unit_price=item.unit_price, quantity=quantity,
                                   position=position))
    db.session.add(gift)
    db.session.commit()
    service.catalogue_cache().clear()  # past uses changed
    return gift
