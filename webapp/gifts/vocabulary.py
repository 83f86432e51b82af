"""The label vocabulary page: label groups (single- or multi-label) and their labels, with how
often each is used, each group's live source (rules or model) and the workbench's settings.

A label that items or rules use cannot be deleted (422 with the counts): deleting it would
silently drop people's work. Names are trimmed, unique whatever their case within their
group, and may not contain ":" (labels are named ``group:label`` everywhere else).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import abort, flash, redirect, url_for
from flask_wtf import FlaskForm
from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, FloatField, StringField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    StopValidation,
    ValidationError,
)

from webapp.extensions import db
from webapp.fields import IntegerField
from webapp.gifts import bp
from webapp.gifts.models import (
    LABEL_MAX,
    ItemLabel,
    Label,
    LabelGroup,
    gifts_settings,
    name_key,
    rule_label,
)
from webapp.gifts.sources import live_sources
from webapp.htmx import render_page_or_block, trigger, wants_fragment

TEMPLATE = "gifts/vocabulary.html"
#: A group was added, removed or the settings changed: the list (and live sources) refresh.
CHANGED = "vocabulary-changed"
MIN_LABELS_MAX = 100_000


class DuplicateName(ValueError):
    """Another group (or label of the same group) has this name, whatever its case."""


class InUse(ValueError):
    """A label (or group) that items or rules use cannot be deleted; the message counts them."""


# --- Forms -------------------------------------------------------------------------------------

def clean_name(value: str | None) -> str | None:
    """A name as stored: trimmed, runs of spaces collapsed."""
    return " ".join(value.split()) if value is not None else None


def usable_name(form, field) -> None:
    """Refuse names that cannot be written as ``group:label`` or found again by their key."""
    if ":" in (field.data or ""):
        raise ValidationError("A name cannot contain “:” (labels are written group:label).")
    if field.data and not name_key(field.data):
        raise ValidationError("A name needs at least one letter or digit.")


def finite(form, field) -> None:
    """Refuse NaN, which passes every range check and then breaks the database's."""
    if field.data is not None and not math.isfinite(field.data):
        raise StopValidation("Give a number from 0 to 1.")


def name_field(label: str, message: str) -> StringField:
    """A trimmed, required, checked vocabulary name."""
    return StringField(label, filters=[clean_name], validators=[
        DataRequired(message=message), Length(max=LABEL_MAX), usable_name])


class GroupForm(FlaskForm):
    """A label group: its name and whether an item may have several of its labels."""

    name = name_field("Group name", "Give the group a name.")
    multi = BooleanField("Several labels per item", default=True)


class LabelForm(FlaskForm):
    """One label's name."""

    name = name_field("Label", "Give the label a name.")


class SettingsForm(FlaskForm):
    """The workbench's labelling settings (the queue order is set on the queue page)."""

    min_labels_per_label = IntegerField(
        "Human labels per label before the model takes over a group",
        validators=[InputRequired(message="Give a whole number, at least 1."),
                    NumberRange(1, MIN_LABELS_MAX, message=f"Give a whole number from 1 to "
                                                           f"{MIN_LABELS_MAX}.")])
    random_share = FloatField(
        "Random share of the “least certain first” queue",
        description="0 to 1: 0.1 mixes in 10% random items so the queue does not loop on "
                    "near-duplicates.",
        validators=[InputRequired(message="Give a number from 0 to 1."), finite,
                    NumberRange(0, 1, message="Give a number from 0 to 1.")])


# --- Service -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Usage:
    """How much a label is used: items carrying it (by any source), by people, and by rules."""

    items: int = 0
    human: int = 0
    rules: int = 0

    @property
    def in_use(self) -> bool:
        """True when deleting the label would lose work."""
        return bool(self.items or self.rules)

    def describe(self) -> str:
        """Why it cannot be deleted, in words."""
        parts = []
        if self.items:
            parts.append(f"{self.items} item{'' if self.items == 1 else 's'}"
                         f" ({self.human} by people)")
        if self.rules:
            parts.append(f"{self.rules} rule{'' if self.rules == 1 else 's'}")
        return " and ".join(parts)


def label_usage() -> dict[int, Usage]:
    """Every used label's usage, by label id (two grouped queries)."""
    items = select(ItemLabel.label_id, func.count(),
                   func.sum(case((ItemLabel.source == "human", 1), else_=0))
                   ).group_by(ItemLabel.label_id)
    rules = select(rule_label.c.label_id, func.count()).group_by(rule_label.c.label_id)
    counts = {label_id: Usage(total, int(human or 0))
              for label_id, total, human in db.session.execute(items)}
    for label_id, count in db.session.execute(rules):
        found = counts.get(label_id, Usage())
        counts[label_id] = Usage(found.items, found.human, count)
    return counts


def groups() -> list[LabelGroup]:
    """Every group with its labels, in display order."""
    query = (select(LabelGroup).options(selectinload(LabelGroup.labels))
             .order_by(LabelGroup.position, LabelGroup.name_key))
    return list(db.session.scalars(query))


def _commit_or_duplicate(message: str) -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise DuplicateName(message) from None


def save_group(group: LabelGroup, name: str, multi: bool) -> LabelGroup:
    """Add or change a group; DuplicateName when another group has the name (any case)."""
    message = f"There is already a group called “{name}”."
    taken = db.session.scalar(select(LabelGroup.id).where(
        LabelGroup.name_key == name_key(name), LabelGroup.id != (group.id or 0)))
    if taken is not None:
        raise DuplicateName(message)
    if group.id is None:
        group.position = (db.session.scalar(select(func.max(LabelGroup.position))) or 0) + 1
    group.name, group.name_key, group.multi = name, name_key(name), multi
    db.session.add(group)
    _commit_or_duplicate(message)
    return group


def save_label(label: Label, group: LabelGroup, name: str) -> Label:
    """Add or rename a label of ``group``; DuplicateName when the group has it (any case)."""
    message = f"“{group.name}” already has a label called “{name}”."
    taken = db.session.scalar(select(Label.id).where(
        Label.group_id == group.id, Label.name_key == name_key(name), Label.id != (label.id or 0)))
    if taken is not None:
        raise DuplicateName(message)
    if label.id is None:
        label.position = max((other.position for other in group.labels), default=0) + 1
        db.session.add(label)  # before it joins group.labels, so no autoflush sees it half-made
        label.group = group
    label.name, label.name_key = name, name_key(name)
    _commit_or_duplicate(message)
    return label


def delete_label(label: Label) -> None:
    """Delete an unused label; InUse (saying by what) when items or rules use it."""
    usage = label_usage().get(label.id, Usage())
    if usage.in_use:
        raise InUse(f"“{label.name}” is used by {usage.describe()}, so it cannot be deleted.")
    db.session.delete(label)
    db.session.commit()


def delete_group(group: LabelGroup) -> None:
    """Delete a group whose labels are all unused; InUse otherwise."""
    usage = label_usage()
    used = [label.name for label in group.labels if usage.get(label.id, Usage()).in_use]
    if used:
        raise InUse(f"“{group.name}” has labels in use ({', '.join(used)}); delete or "
                    "free them first.")
    db.session.delete(group)
    db.session.commit()


# --- Views -------------------------------------------------------------------------------------

def card_context(group: LabelGroup, errors: dict | None = None, values: dict | None = None,
                 usage: dict | None = None, sources: dict | None = None, **extra) -> dict:
    """One group's card: its labels with their usage, its live source, errors and typed values."""
    usage = label_usage() if usage is None else usage
    sources = live_sources() if sources is None else sources
    return {"group": group, "usage": usage, "source": sources.get(group.name),
            "errors": errors or {}, "values": values or {}, **extra}


def list_context() -> dict:
    """Every group's card."""
    usage, sources = label_usage(), live_sources()
    return {"cards": [card_context(group, usage=usage, sources=sources) for group in groups()]}


def settings_context(form: SettingsForm | None = None, **extra) -> dict:
    """The settings card."""
    return {"settings_form": form or SettingsForm(formdata=None, obj=gifts_settings()), **extra}


def page_context(**extra) -> dict:
    """Everything the whole page shows; ``extra`` overrides."""
    return {**list_context(), **settings_context(), "group_form": GroupForm(formdata=None),
            **extra}


def group_or_404(group_id: int) -> LabelGroup:
    """The group, or 404."""
    group = db.session.get(LabelGroup, group_id)
    if group is None:
        abort(404, "There is no such label group: it may have been deleted.")
    return group


def label_or_404(label_id: int) -> Label:
    """The label, or 404."""
    label = db.session.get(Label, label_id)
    if label is None:
        abort(404, "There is no such label: it may have been deleted.")
    return label


def back_to_page(message: str, category: str = "success"):
    """The no-JS answer to a form that worked."""
    flash(message, category)
    return redirect(url_for("gifts.vocabulary"), code=303)


def render_card(group: LabelGroup, status: int = 200, **extra):
    """A group's card for htmx; the whole page (with the card's errors) without JS."""
    card = card_context(group, **extra)
    if wants_fragment():
        return render_page_or_block(TEMPLATE, "group_card", status=status, card=card)
    context = page_context()
    context["cards"] = [card if other["group"].id == group.id else other
                        for other in context["cards"]]
    return render_page_or_block(TEMPLATE, "group_list", status=status, **context)


def first_error(form: FlaskForm) -> str:
    """The form's first error message."""
    return next(error for errors in form.errors.values() for error in errors)


@bp.route("/labels", endpoint="vocabulary")
def vocabulary_page():
    """The label groups and their labels, usage, live sources and settings."""
    context = list_context() if wants_fragment() else page_context()
    return render_page_or_block(TEMPLATE, "group_list", **context)


@bp.route("/labels/groups", methods=["POST"])
def group_create():
    """Add a label group (422 with the form when invalid or taken)."""
    form = GroupForm()
    if form.validate_on_submit():
        try:
            group = save_group(LabelGroup(), form.name.data, form.multi.data)
        except DuplicateName as error:
            form.name.errors.append(str(error))
        else:
            if not wants_fragment():
                return back_to_page(f"Group “{group.name}” added.")
            return trigger(render_page_or_block(TEMPLATE, "group_form", status=201,
                                                group_form=GroupForm(formdata=None),
                                                saved_group=group), CHANGED)
    context = {"group_form": form} if wants_fragment() else page_context(group_form=form)
    return render_page_or_block(TEMPLATE, "group_form", status=422, **context)


@bp.route("/labels/groups/<int:group_id>", methods=["POST"])
def group_update(group_id: int):
    """Rename a group or switch it between single- and multi-label."""
    group = group_or_404(group_id)
    form = GroupForm()
    if form.validate_on_submit():
        try:
            save_group(group, form.name.data, form.multi.data)
        except DuplicateName as error:
            form.name.errors.append(str(error))
        else:
            if not wants_fragment():
                return back_to_page(f"Group “{group.name}” saved.")
            return render_card(group, notice="Saved.")
    db.session.rollback()
    return render_card(group, 422, errors={"group": first_error(form)},
                       values={"group": form.name.data or ""})


@bp.route("/labels/groups/<int:group_id>/delete", methods=["POST"])
def group_delete(group_id: int):
    """Delete a group whose labels nothing uses (422 saying which are used otherwise)."""
    group = group_or_404(group_id)
    name = group.name
    try:
        delete_group(group)
    except InUse as error:
        return render_card(group, 422, errors={"group_delete": str(error)})
    if not wants_fragment():
        return back_to_page(f"Group “{name}” deleted.", "info")
    return trigger(render_page_or_block(TEMPLATE, "deleted_group", group_id=group_id,
                                        name=name), CHANGED)


@bp.route("/labels/groups/<int:group_id>/labels", methods=["POST"])
def label_create(group_id: int):
    """Add a label to a group (422 in the group's card when invalid or taken)."""
    group = group_or_404(group_id)
    form = LabelForm()
    if form.validate_on_submit():
        try:
            label = save_label(Label(), group, form.name.data)
        except DuplicateName as error:
            form.name.errors.append(str(error))
        else:
            if not wants_fragment():
                return back_to_page(f"Label “{label.name}” added to “{group.name}”.")
            return render_card(group, notice=f"Added “{label.name}”.")
    return render_card(group, 422, errors={"new_label": first_error(form)},
                       values={"new_label": form.name.data or ""})


@bp.route("/labels/<int:label_id>", methods=["POST"])
def label_update(label_id: int):
    """Rename a label (its items and rules keep it: they refer to it by id)."""
    label = label_or_404(label_id)
    form = LabelForm()
    if form.validate_on_submit():
        try:
            save_label(label, label.group, form.name.data)
        except DuplicateName as error:
            form.name.errors.append(str(error))
        else:
            if not wants_fragment():
                return back_to_page(f"Label renamed to “{label.name}”.")
            return render_card(label.group, notice=f"Renamed to “{label.name}”.")
    db.session.rollback()
    return render_card(label.group, 422, errors={label.id: first_error(form)},
                       values={label.id: form.name.data or ""})


@bp.route("/labels/<int:label_id>/delete", methods=["POST"])
def label_delete(label_id: int):
    """Delete an unused label; a used one stays, with who uses it (422)."""
    label = label_or_404(label_id)
    group, name = label.group, label.name
    try:
        delete_label(label)
    except InUse as error:
        return render_card(group, 422, errors={label.id: str(error)})
    if not wants_fragment():
        return back_to_page(f"Label “{name}” deleted.", "info")
    db.session.refresh(group)
    return render_card(group, notice=f"Deleted “{name}”.")


@bp.route("/labels/settings", methods=["POST"])
def vocabulary_settings():
    """Save the model hand-over threshold and the queue's random share."""
    form = SettingsForm()
    if not form.validate_on_submit():
        context = (settings_context(form) if wants_fragment()
                   else page_context(**settings_context(form)))
        return render_page_or_block(TEMPLATE, "settings_card", status=422, **context)
    settings = gifts_settings()
    settings.min_labels_per_label = form.min_labels_per_label.data
    settings.random_share = form.random_share.data
    db.session.commit()
    if not wants_fragment():
        return back_to_page("Settings saved.")
    return trigger(render_page_or_block(TEMPLATE, "settings_card",
                                        **settings_context(saved=True)), CHANGED)
