"""The items table: search and filters, labels with provenance, and bulk apply with undo.

One page (``gifts/items.html``). Filters are a GET form (htmx filters live as one types); the
bulk form carries the same filters, so "apply to all matching" means every item the filters
match, not just the page shown. Bulk apply asks for confirmation with the count first, then
answers with an Undo button for the whole batch. Without JavaScript every form posts and
redirects (303) back to the table.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import selectinload
from wtforms.fields import DecimalField, HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from webapp.extensions import MAX_ID, db
from webapp.fields import finite
from webapp.gifts import bp, labelling
from webapp.gifts.models import (
    NAME_MAX,
    SOURCES,
    STATUSES,
    Item,
    ItemLabel,
    LabelDecision,
    name_key,
)
from webapp.gifts.prices import MAX_PRICE
from webapp.gifts.queue import label_groups
from webapp.htmx import render_page_or_block, trigger, wants_fragment

TEMPLATE = "gifts/items.html"
#: The filters' query-string arguments (kept on links and in the bulk form).
FILTER_ARGS = ("q", "vendor", "category", "status", "has_label", "lacks_label", "source",
               "price_min", "price_max")
#: Items changed in bulk: the table refreshes.
CHANGED = "items-changed"
#: Choices lists stay short enough for a select; beyond this the rest are not offered.
MAX_CHOICES = 500


#: A price filter's checks. Bounded above too: PostgreSQL cannot compare a price column with
#: 1E+999999999 (a 500), and NaN cannot be compared at all.
PRICE_CHECKS = (finite("40"), NumberRange(min=0, message="A price cannot be negative."),
                NumberRange(max=MAX_PRICE, message=f"Give a price up to {MAX_PRICE}."))


class ItemFilterForm(FlaskForm):
    """The table's search and filters (GET, so no CSRF token). Unknown choices are ignored."""

    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=NAME_MAX)],
                    description="Words in the name or description")
    vendor = SelectField("Vendor", choices=[], validate_choice=False)
    category = SelectField("Category", choices=[], validate_choice=False)
    status = SelectField("Status", validate_choice=False, choices=[
        SelectChoice("", "Any status"), *(SelectChoice(status) for status in STATUSES),
        SelectChoice("skipped", "pending, skipped")])
    has_label = SelectField("Has label", choices=[], validate_choice=False)
    lacks_label = SelectField("Lacks label", choices=[], validate_choice=False)
    source = SelectField("Labelled by", validate_choice=False, choices=[
        SelectChoice("", "Any source"), *(SelectChoice(source) for source in SOURCES)])
    price_min = DecimalField("Price from", places=2, validators=[Optional(), *PRICE_CHECKS])
    price_max = DecimalField("Price up to", places=2, validators=[Optional(), *PRICE_CHECKS])


class BulkForm(FlaskForm):
    """Bulk apply: which label, and whether the count was confirmed."""

    label_id = SelectField("Label to add", coerce=int, choices=[],
                           validators=[InputRequired("Choose the label to add.")])
    confirm = HiddenField()


def label_choices(blank: str | None = None) -> list[SelectChoice]:
    """Every label as a choice, "group: label", grouped in order (optionally a blank first)."""
    choices = [SelectChoice("", blank)] if blank else []
    for group, labels in label_groups():
        choices += [SelectChoice(keyed.label.id, f"{group.name}: {keyed.label.name}")
                    for keyed in labels]
    return choices


def distinct_choices(column, blank: str) -> list[SelectChoice]:
    """The distinct non-empty values of a column as choices (at most MAX_CHOICES)."""
    values = db.session.scalars(select(column).where(column != "").distinct().order_by(column)
                                .limit(MAX_CHOICES))
    return [SelectChoice("", blank)] + [SelectChoice(value) for value in values]


def filter_form(formdata, choices: bool = True) -> ItemFilterForm:
    """The filter form over ``formdata`` (query string, or a bulk form's copy of it).

    ``choices=False`` skips the vendor and category lists (two scans of the table): the
    filters work without them, and only the whole page shows them.
    """
    form = ItemFilterForm(formdata=formdata)
    if not choices:
        return form
    form.vendor.choices = distinct_choices(Item.vendor, "Any vendor")
    form.category.choices = distinct_choices(Item.category, "Any category")
    form.has_label.choices = label_choices("Any label")
    form.lacks_label.choices = label_choices("—")
    return form


def _has_label(label_id: int):
    """Items carrying the label (any source)."""
    return exists().where(ItemLabel.item_id == Item.id, ItemLabel.label_id == label_id)


def conditions(form: ItemFilterForm) -> list:
    """The WHERE conditions the (validated) filters ask for; invalid filters are ignored."""
    found = []
    # A search over its length limit is ignored like any invalid filter (SQLite refuses huge
    # LIKE patterns), and % or _ typed by staff match themselves.
    if (text := (form.q.data or "").strip()) and not form.q.errors:
        found.append(or_(Item.name.icontains(text, autoescape=True),
                         Item.description.icontains(text, autoescape=True)))
    if form.vendor.data:
        found.append(Item.vendor_key == name_key(form.vendor.data))
    if form.category.data:
        found.append(Item.category == form.category.data)
    if form.status.data in STATUSES:
        found.append(Item.status == form.status.data)
    elif form.status.data == "skipped":
        found += [Item.status == "pending", Item.skipped.is_(True)]
    if (has := _int(form.has_label.data)) is not None:
        found.append(_has_label(has))
    if (lacks := _int(form.lacks_label.data)) is not None:
        found.append(~_has_label(lacks))
    if form.source.data in SOURCES:
        found.append(exists().where(ItemLabel.item_id == Item.id,
                                    ItemLabel.source == form.source.data))
    if form.price_min.data is not None and not form.price_min.errors:
        found.append(Item.unit_price >= form.price_min.data)
    if form.price_max.data is not None and not form.price_max.errors:
        found.append(Item.unit_price <= form.price_max.data)
    return found


def _int(value) -> int | None:
    """A label id from a select, or None for "any" / garbage / a number no id can be (a
    hand-edited ``?has_label=`` past ``MAX_ID`` was a 500)."""
    try:
        number = int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and 0 < number <= MAX_ID else None


def active_filters(form: ItemFilterForm) -> dict[str, str]:
    """The filters in use, as query-string arguments (for links, hidden fields and redirects)."""
    return {name: str(form[name].raw_data[0]).strip() for name in FILTER_ARGS
            if form[name].raw_data and str(form[name].raw_data[0]).strip()}


def matching_count(where: list) -> int:
    """How many items the filters match."""
    return db.session.scalar(select(func.count()).select_from(Item).where(*where))


def results_context(form: ItemFilterForm | None = None) -> dict:
    """The filtered page of items, and what their rows need."""
    form = form or filter_form(request.args, choices=not wants_fragment())
    form.validate()  # fills the errors shown beside a bad price; bad filters are then ignored
    where = conditions(form)
    query = (select(Item).where(*where).options(selectinload(Item.labels))
             .order_by(Item.name_key, Item.id))
    groups = label_groups()
    return {
        "items": db.paginate(query, page=request.args.get("page", 1, type=int),
                             per_page=current_app.config["PAGE_SIZE"], error_out=False),
        "filters": form, "filter_args": active_filters(form),
        "labels_by_id": {keyed.label.id: keyed for _, labels in groups for keyed in labels},
        "bulk_form": bulk_form(), "has_labels": bool(groups and any(ls for _, ls in groups)),
    }


def bulk_form(**data) -> BulkForm:
    """The bulk form with every label as a choice."""
    form = BulkForm(formdata=None, data=data) if data else BulkForm(formdata=None)
    form.label_id.choices = label_choices()
    return form


def page_context(**extra) -> dict:
    """Everything the whole page shows; ``extra`` overrides (a confirmation, an undo panel)."""
    context = {**results_context(), "confirm": None, "applied": None, "bulk_error": None}
    if batch_id := request.args.get("batch_id", ""):
        context["applied"] = batch_summary(batch_id)
    context.update(extra)
    return context


def batch_summary(batch_id: str) -> dict | None:
    """A batch's label and item count, for its Undo panel (None if unknown or undone)."""
    count = db.session.scalar(select(func.count()).select_from(LabelDecision).where(
        LabelDecision.batch_id == batch_id, LabelDecision.undone_at.is_(None)))
    if not count:
        return None
    return {"batch_id": batch_id, "count": count, "label": labelling.batch_label(batch_id)}


@bp.route("/items")
def index():
    """The items table: searched, filtered, paginated, with bulk apply."""
    context = results_context() if wants_fragment() else page_context()
    return render_page_or_block(TEMPLATE, "item_results", **context)


@bp.route("/items/bulk", methods=["POST"])
def bulk_apply():
    """Bulk apply a label to every item the filters match: confirm the count, then apply."""
    filters = filter_form(request.form, choices=False)
    filters.validate()
    where = conditions(filters)
    args = active_filters(filters)
    form = BulkForm()
    form.label_id.choices = label_choices()
    if not form.validate_on_submit():
        error = "; ".join(error for errors in form.errors.values() for error in errors)
        return bulk_panel(422, bulk_error=error, filter_args=args)
    count = matching_count(where)
    label = dict((choice.value, choice.label) for choice in form.label_id.choices)[
        form.label_id.data]
    if form.confirm.data != "1" or not count:
        return bulk_panel(200, confirm={"count": count, "label": label,
                                        "label_id": form.label_id.data}, filter_args=args)
    ids = list(db.session.scalars(select(Item.id).where(*where)))  # fixed before any write
    batch_id, changed = labelling.bulk_apply(ids, form.label_id.data, current_user.username)
    if not wants_fragment():
        if not changed:
            flash(f"Every matching item already had “{label}”: nothing changed.", "info")
        return redirect(url_for("gifts.index", **args, **({"batch_id": batch_id}
                                                          if changed else {})), code=303)
    applied = ({"batch_id": batch_id, "count": changed, "label": label} if changed else None)
    note = None if changed else f"Every matching item already had “{label}”: nothing changed."
    return trigger(bulk_panel(200, applied=applied, note=note, filter_args=args), CHANGED)


def bulk_panel(status: int, **extra):
    """The bulk panel (htmx) or the whole page with it (no JavaScript)."""
    context = {"confirm": None, "applied": None, "bulk_error": None, "note": None, **extra}
    if not wants_fragment():
        context = page_context(**context)
    return render_page_or_block(TEMPLATE, "bulk_panel", status=status, **context)


@bp.route("/items/batches/<batch_id>/undo", methods=["POST"])
def undo_batch(batch_id: str):
    """Undo a bulk apply: every item the batch changed, unless changed again since."""
    if len(batch_id) != 32:
        abort(404, "There is no such bulk action.")
    try:
        restored, refused = labelling.undo_batch(batch_id)
    except labelling.LabellingError as error:
        db.session.rollback()
        if not wants_fragment():
            flash(str(error), "error")
            return redirect(url_for("gifts.index"), code=303)
        return bulk_panel(409, bulk_error=str(error), filter_args={})
    note = f"Undone: {restored} item{'' if restored == 1 else 's'} restored."
    if refused:
        note += (f" {refused} item{' was' if refused == 1 else 's were'} changed since and "
                 "left as they are.")
    if not wants_fragment():
        flash(note, "info")
        return redirect(url_for("gifts.index", **{name: request.args[name] for name in FILTER_ARGS
                                                  if request.args.get(name)}), code=303)
    return trigger(bulk_panel(200, note=note, filter_args={}), CHANGED)
