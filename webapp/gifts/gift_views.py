"""One gift, edited inline: add items from a search-as-you-type picker, change quantities,
remove lines, change its status. The running total and the over-budget warning update live."""

from __future__ import annotations

from datetime import datetime

from flask import abort, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import DateField, DecimalField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from ml.gifts import Brief
from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.fields import IntegerField, finite
from webapp.gifts import bp
from webapp.gifts import recommend as service
from webapp.gifts.models import GIFT_STATUSES, Gift, GiftLine, Item, name_key
from webapp.htmx import render_page_or_block, trigger, wants_fragment

TEMPLATE = "gifts/gift.html"
PICKER_LIMIT = 8


class GiftForm(FlaskForm):
    """A gift's name, status and budget."""

    name = StringField("Name", validators=[InputRequired("Name the gift."), Length(max=200)])
    status = SelectField("Status", choices=[SelectChoice(s, s.capitalize())
                                            for s in GIFT_STATUSES])
    recipients = IntegerField("Recipients", validators=[InputRequired("How many people?"),
                                                        NumberRange(min=1, max=100000)])
    budget_max = DecimalField("Budget per recipient (max)", places=2,
                              validators=[Optional(), finite("40"), NumberRange(min=0, max=100000)])
    gift_date = DateField("Date", validators=[Optional()],
                          description="When it is (or was) sent.")


class QuantityForm(FlaskForm):
    """One line's quantity."""

    quantity = IntegerField("Quantity", validators=[
        InputRequired("Give a quantity."), NumberRange(min=1, max=999, message="1 to 999.")])


def gift_or_404(gift_id: int) -> Gift:
    """The gift, or a 404 page."""
    gift = db.session.get(Gift, gift_id)
    if gift is None:
        abort(404, "There is no such gift.")
    return gift


def line_or_404(gift: Gift, line_id: int) -> GiftLine:
    """A line of ``gift``, or a 404 page."""
    line = db.session.get(GiftLine, line_id)
    if line is None or line.gift_id != gift.id:
        abort(404, "That line is not part of this gift.")
    return line


def gift_form(gift: Gift) -> GiftForm:
    """The details form filled from ``gift`` (its date without the time)."""
    form = GiftForm(obj=gift, formdata=None)
    form.gift_date.data = gift.gift_date.date() if gift.gift_date else None
    return form


def lines_block(gift: Gift, status: int = 200, **extra):
    """The lines with the total (or the whole page without htmx)."""
    return render_page_or_block(TEMPLATE, "lines", status=status, gift=gift,
                                form=extra.pop("form", None) or gift_form(gift), **extra)


@bp.route("/gifts/<int:gift_id>")
def gift(gift_id: int):
    """The gift editor."""
    return lines_block(gift_or_404(gift_id))


@bp.route("/gifts/<int:gift_id>", methods=["POST"])
def gift_update(gift_id: int):
    """Save the gift's name, status, recipients and budget; a gift marked sent is feedback."""
    found = gift_or_404(gift_id)
    form = GiftForm()
    if not form.validate_on_submit():
        return render_page_or_block(TEMPLATE, "details", status=422, gift=found, form=form)
    was_sent = found.status == "sent"
    found.name = form.name.data.strip()
    found.status, found.recipients = form.status.data, form.recipients.data
    found.budget_max = form.budget_max.data
    found.gift_date = (datetime.combine(form.gift_date.data, datetime.min.time())
                       if form.gift_date.data else None)
    db.session.commit()
    if found.status == "sent" and not was_sent:
        service.record_event("sent", brief_of(found), gift_id=found.id)
    service.catalogue_cache().clear()
    if not wants_fragment():
        flash("Saved.", "success")
        return redirect(url_for("gifts.gift", gift_id=found.id), code=303)
    response = render_page_or_block(TEMPLATE, "details", gift=found, form=form, saved=True)
    return trigger(response, "gift-changed")


def brief_of(gift: Gift) -> Brief:
    """The brief a gift answered, for feedback events."""
    high = float(gift.budget_max) if gift.budget_max is not None else max(
        float(gift.cost_per_recipient), 0.01)
    low = min(float(gift.budget_min) if gift.budget_min is not None else 0.0, high)
    return Brief(gift.occasion or None, low, high, gift.recipients, tuple(gift.themes or ()),
                 tuple(gift.exclude or ()), gift.client.industry or None)


@bp.route("/gifts/<int:gift_id>/picker")
def gift_picker(gift_id: int):
    """Items whose name, vendor or category matches what staff type (not rejected ones)."""
    found = gift_or_404(gift_id)
    query_text = (request.args.get("q") or "").strip()[:100]
    items = []
    if query_text:
        key = name_key(query_text)
        taken = {line.item_id for line in found.lines}
        items = [item for item in db.session.scalars(
            select(Item).where(Item.status != "rejected",
                               Item.name_key.contains(key, autoescape=True)
                               | Item.vendor_key.contains(key, autoescape=True)
                               | func.lower(Item.category).contains(query_text.lower(),
                                                                   autoescape=True))
            .order_by(Item.name_key, Item.id).limit(PICKER_LIMIT + len(taken)))
            if item.id not in taken][:PICKER_LIMIT]
    return render_page_or_block(TEMPLATE, "picker_results", gift=found, items=items,
                                q=query_text, form=gift_form(found))


@bp.route("/gifts/<int:gift_id>/lines", methods=["POST"])
def gift_line_add(gift_id: int):
    """Add an item (at today's price) or, when it is already there, one more of it."""
    found = gift_or_404(gift_id)
    try:
        item = db.session.get(Item, int(request.form.get("item_id", "")))
    except ValueError:
        item = None
    if item is None or item.status == "rejected":
        abort(422, "That item cannot be added: it is not in the catalogue.")
    line = next((line for line in found.lines if line.item_id == item.id), None)
    if line is None:
        found.lines.append(GiftLine(item_id=item.id, item_name=item.name,
                                    unit_price=item.unit_price, quantity=1,
                                    position=len(found.lines)))
    else:
        line.quantity = min(line.quantity + 1, 999)
    found.updated_at = utcnow()  # lines changed: the gift changed (catalogue revision)
    db.session.commit()
    return after_line_change(found)


@bp.route("/gifts/<int:gift_id>/lines/<int:line_id>", methods=["POST"])
def gift_line_update(gift_id: int, line_id: int):
    """Change a line's quantity; a bad one comes back in the row (422)."""
    found = gift_or_404(gift_id)
    line = line_or_404(found, line_id)
    form = QuantityForm()
    if not form.validate_on_submit():
        return lines_block(found, status=422, line_errors={line.id: form.quantity.errors})
    line.quantity = form.quantity.data
    db.session.commit()
    return after_line_change(found)


@bp.route("/gifts/<int:gift_id>/lines/<int:line_id>/delete", methods=["POST"])
def gift_line_delete(gift_id: int, line_id: int):
    """Remove a line."""
    found = gift_or_404(gift_id)
    db.session.delete(line_or_404(found, line_id))
    db.session.commit()
    db.session.refresh(found)
    return after_line_change(found)


def after_line_change(found: Gift):
    """The updated lines and total, or the page again without JavaScript."""
    service.catalogue_cache().clear()
    if not wants_fragment():
        return redirect(url_for("gifts.gift", gift_id=found.id), code=303)
    return lines_block(found)

