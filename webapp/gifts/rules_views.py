"""The rules page: list (priority order, readable condition, labels, on/off, items labelled now),
a structured rule builder with a live preview, delete with undo, and the "apply rules" job.

One page (``gifts/rules.html``). With htmx each action answers with the fragment it changes;
without JavaScript every form posts and redirects (303) back, or shows the whole page with
errors (422). The preview works without JavaScript too: the form's Preview button posts it.
"""

from __future__ import annotations

import json
import re

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm.exc import StaleDataError
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional

from ml import labels as engine
from webapp import jobs
from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.fields import IntegerField, posted_version  # WTForms IntegerField, bounded
from webapp.gifts import bp, rules
from webapp.gifts.models import Rule
from webapp.htmx import render_page_or_block, trigger, wants_fragment

TEMPLATE = "gifts/rules.html"
#: A rule was added, changed or removed, or rules were applied: the list refreshes.
CHANGED = "rules-changed"
#: Condition rows the builder offers at least (unused rows are ignored).
CONDITION_ROWS = 5
PRIORITY_RANGE = (-100_000, 100_000)
FIELD_LABELS = {"text": "Name or description", "name": "Name", "description": "Description",
                "vendor": "Vendor", "category": "Category", "sku": "SKU", "price": "Price",
                "local": "Local", "sustainable": "Sustainable", "brandable": "Brandable",
                "perishable": "Perishable"}
OP_LABELS = {"contains": "contains", "not_contains": "does not contain", "equals": "is exactly",
             "regex": "matches regex", "in": "is one of (comma-separated)",
             "not_in": "is none of (comma-separated)", "lt": "<", "le": "≤", "gt": ">",
             "ge": "≥", "eq": "=", "is_true": "is true", "is_false": "is false"}
KIND_LABELS = {"text": "Text", "number": "Price", "bool": "Yes / no"}
CONDITION_NUMBER = re.compile(r"^condition (\d+): ")


class ConditionForm(Form):
    """One row of the builder: field, operator, value (a plain Form: the parent has the CSRF)."""

    field = SelectField("Field", default="", choices=[SelectChoice("", "(unused)")] + [
        SelectChoice(name, FIELD_LABELS[name], optgroup=KIND_LABELS[kind])
        for name, kind in engine.FIELDS.items()])
    op = SelectField("Operator", default="contains", choices=[
        SelectChoice(op, OP_LABELS[op], optgroup=KIND_LABELS[kind])
        for kind, ops in engine.OPERATORS.items() for op in ops])
    value = StringField("Value", validators=[Optional(), Length(max=engine.VALUE_MAX_LENGTH * 4)])


class RuleForm(FlaskForm):
    """A rule: name, priority, all/any of up to ``CONDITION_ROWS`` conditions, labels, on/off."""

    name = StringField("Name", validators=[DataRequired(message="Give the rule a name."),
                                           Length(max=engine.RULE_NAME_MAX)])
    priority = IntegerField("Priority", default=100,
                            description="Lower runs first; in a single-label group the first "
                                        "matching rule wins.",
                            validators=[InputRequired(message="Give a whole number."),
                                        NumberRange(*PRIORITY_RANGE)])
    match = SelectField("Match", default="all", choices=[
        SelectChoice("all", "all of the conditions"), SelectChoice("any", "any of the conditions")])
    #: At least ``CONDITION_ROWS`` rows; a stored rule with more shows them all.
    conditions = FieldList(FormField(ConditionForm), min_entries=CONDITION_ROWS,
                           max_entries=engine.MAX_CONDITIONS)
    labels = SelectMultipleField("Labels it assigns", coerce=int)
    enabled = BooleanField("Enabled", default=True)


class RestoreRuleForm(FlaskForm):
    """A deleted rule's values, carried by its Undo button."""

    name = StringField(validators=[DataRequired()])
    priority = IntegerField(validators=[InputRequired()])
    enabled = BooleanField()
    condition = HiddenField(validators=[DataRequired()])
    labels = SelectMultipleField(coerce=int, validate_choice=False)


class ToggleForm(FlaskForm):
    """Switch a rule on or off."""

    enabled = HiddenField(validators=[AnyOf(("yes", "no"), message="Choose yes or no.")])


class MoveForm(FlaskForm):
    """Move a rule up or down the order."""

    direction = HiddenField(validators=[AnyOf(("up", "down"), message="Choose up or down.")])


def rule_form(row: Rule | None = None, from_request: bool = True) -> RuleForm:
    """The builder with the vocabulary as choices: filled from ``row``, or else from the
    request (``from_request``), or empty."""
    if row is None:
        form = RuleForm() if from_request else RuleForm(formdata=None)
    else:
        conditions = [{"field": c.get("field", ""), "op": c.get("op", ""),
                       "value": value_text(c.get("value"))}
                      for c in (row.condition or {}).get("conditions", [])]
        if CONDITION_ROWS <= len(conditions) < engine.MAX_CONDITIONS:
            conditions.append({"field": "", "op": "contains", "value": ""})  # room for one more
        form = RuleForm(formdata=None, data={
            "name": row.name, "priority": row.priority, "enabled": row.enabled,
            "match": (row.condition or {}).get("match", "all"), "conditions": conditions,
            "labels": [label.id for label in row.labels]})
    form.labels.choices = [SelectChoice(label.id, label.name, optgroup=group.name)
                           for group, labels in rules.label_choices() for label in labels]
    return form


def value_text(value) -> str:
    """A stored condition value as the builder's text box shows it."""
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def condition_from_form(form: RuleForm) -> tuple[dict, list[int]]:
    """The condition JSON the engine reads, and the form row index of each used condition."""
    used, rows = [], []
    for index, entry in enumerate(form.conditions.entries):
        name = entry.form.field.data
        if not name:
            continue
        kind, value = engine.FIELDS.get(name), (entry.form.value.data or "").strip()
        if kind == "bool":
            parsed = None
        elif entry.form.op.data in ("in", "not_in"):
            parsed = [part.strip() for part in value.split(",") if part.strip()]
        else:
            parsed = value
        used.append({"field": name, "op": entry.form.op.data, "value": parsed})
        rows.append(index)
    return {"match": form.match.data, "conditions": used}, rows


def attach_error(form: RuleForm, error: Exception, rows: list[int]) -> None:
    """Put an engine error next to the condition row it is about, or on the form."""
    message = str(error)
    found = CONDITION_NUMBER.match(message)
    if found and int(found.group(1)) <= len(rows):
        entry = form.conditions.entries[rows[int(found.group(1)) - 1]]
        entry.form.value.errors = [*entry.form.value.errors, message[found.end():]]
    elif message.startswith("the rule needs at least one label"):
        form.labels.errors = [*form.labels.errors, "Tick at least one label to assign."]
    else:
        form.form_errors.append(message[:1].upper() + message[1:] + ".")


def preview_of(form: RuleForm) -> dict:
    """What the builder's rule would label now, or why it cannot say yet."""
    condition, _ = condition_from_form(form)
    try:
        # Only the condition matters here: the name and labels are checked when saving.
        rule = engine.Rule.from_dict(0, "preview", 0, condition, ["preview:preview"])
    except engine.RuleError as error:
        return {"preview_error": str(error)}
    return {"preview": rules.preview(rule), "described": rule.describe()}


# --- Page parts -------------------------------------------------------------------------------

def list_context(**extra) -> dict:
    """The rule list: rows in run order, each with its readable condition and item count."""
    rows = list(db.session.scalars(rules.rules_query()))
    described = {row.id: describe(row) for row in rows}
    return {"rule_rows": rows, "described": described, "counts": rules.items_per_rule(),
            **extra}


def apply_context(**extra) -> dict:
    """The apply card: the latest job and whether it still runs."""
    return {"job": jobs.latest_job(rules.JOB_KIND, rules.JOB_SUBJECT), **extra}


def form_context(form: RuleForm | None = None, editing: Rule | None = None, **extra) -> dict:
    """The builder card."""
    form = form or rule_form(editing, from_request=False)
    return {"form": form, "editing": editing,
            "label_groups": rules.label_choices(), **extra}


def page_context(**extra) -> dict:
    """Everything the whole page shows; ``extra`` overrides (a form with errors, a preview)."""
    context = {**list_context(), **apply_context(), **form_context()}
    context.update(extra)
    return context


def rule_or_404(rule_id: int) -> Rule:
    """The rule, or 404."""
    row = db.session.get(Rule, rule_id)
    if row is None:
        abort(404, "There is no such rule: it may have been deleted.")
    return row


def back_to_list(message: str | None = None, category: str = "success"):
    """The no-JS answer to a form that worked."""
    if message:
        flash(message, category)
    return redirect(url_for("gifts.rules"), code=303)


def render_form(status: int, **context):
    """The builder card for htmx, or the whole page with it."""
    if not wants_fragment():
        context = page_context(**form_context(**context))
    else:
        context = form_context(**context)
    return render_page_or_block(TEMPLATE, "rule_form", status=status, **context)


def describe(row: Rule) -> str:
    """A stored rule's condition in words (or why it is not applied)."""
    try:
        return rules.to_engine(row).describe()
    except engine.RuleError as error:
        return f"(not applied: {error})"


def render_row(row: Rule, status: int = 200):
    """One rule's row for htmx (the whole page without JS)."""
    context = page_context() if not wants_fragment() else {"counts": rules.items_per_rule()}
    context.update(row=row, description=describe(row))
    return render_page_or_block(TEMPLATE, "rule_row", status=status, **context)


def save(form: RuleForm, row: Rule):
    """Validate the builder and save ``row``; the saved rule, or None with errors on ``form``.

    Raises StaleDataError when someone else saved ``row`` since it was read (optimistic lock).
    """
    if not form.validate_on_submit():
        return None
    condition, rows = condition_from_form(form)
    if row.id is not None:
        # Always an UPDATE of the rule's row, so a change of its labels alone (another table)
        # is checked against, and bumps, the version too.
        row.updated_at = utcnow()
    try:
        # One flush, at the commit: an autoflush by save_rule's queries would UPDATE (and bump
        # the version) twice.
        with db.session.no_autoflush:
            return rules.save_rule(row, form.name.data, form.priority.data, condition,
                                   form.labels.data or [], form.enabled.data,
                                   current_user.username)
    except rules.DuplicateRuleName as error:
        db.session.rollback()  # drop the pending updated_at: the 422 shows the stored version
        form.name.errors = [*form.name.errors, str(error)]
    except engine.RuleError as error:
        db.session.rollback()
        attach_error(form, error, rows)
    return None


# --- Routes -----------------------------------------------------------------------------------

@bp.route("/rules", endpoint="rules")
def rules_page():
    """The rules in run order, the builder and the apply card."""
    if wants_fragment():
        return render_page_or_block(TEMPLATE, "rule_list", **list_context())
    return render_page_or_block(TEMPLATE, "rule_list", **page_context())



@bp.route("/rules", methods=["POST"])
def rule_create():
    """Add a rule (422 with the errors next to the fields when it is invalid)."""
    form = rule_form()
    if request.form.get("action") == "preview":
        return render_form(200, form=form, **preview_of(form))
    saved = save(form, Rule())
    if saved is None:
        return render_form(422, form=form)
    if not wants_fragment():
        return back_to_list(f"Rule “{saved.name}” added. Apply rules to label items with it.")
    return trigger(render_page_or_block(TEMPLATE, "rule_form", status=201,
                                        **form_context(saved_rule=saved)), CHANGED)


@bp.route("/rules/preview", methods=["POST"])
def rule_preview():
    """How many items the builder's rule would label, with samples, before it is saved."""
    form = rule_form()
    context = preview_of(form)
    if not wants_fragment():
        return render_form(200, form=form, **context)
    return render_page_or_block(TEMPLATE, "rule_preview", **context)


@bp.route("/rules/<int:rule_id>/edit")
def rule_edit(rule_id: int):
    """The builder filled with a rule, to change it."""
    row = rule_or_404(rule_id)
    form = rule_form(row)
    return render_form(200, form=form, editing=row, **preview_of(form))


def render_conflict(row: Rule, form: RuleForm):
    """409: someone saved this rule meanwhile. The builder keeps what was typed here (nothing
    is lost) beside their version, and now carries their version number, so Save overwrites
    knowingly; Reload takes theirs."""
    theirs = {"name": row.name, "priority": row.priority, "enabled": row.enabled,
              "described": describe(row),
              "labels": [f"{label.group.name}: {label.name}" for label in row.labels]}
    return render_form(409, form=form, editing=row, theirs=theirs, **preview_of(form))


@bp.route("/rules/<int:rule_id>", methods=["POST"])
def rule_update(rule_id: int):
    """Save a changed rule (422 with the errors in place, 409 if someone saved it meanwhile).

    Optimistic locking: the builder carries the version it was loaded with. A missing or garbled
    version cannot prove the editor saw the latest rule, so it is treated as a conflict.
    """
    row = rule_or_404(rule_id)
    form = rule_form()
    if request.form.get("action") == "preview":
        return render_form(200, form=form, editing=row, **preview_of(form))
    if posted_version() != row.version:
        return render_conflict(row, form)
    try:
        saved = save(form, row)
    except StaleDataError:
        # Saved by someone else between our read and our UPDATE: version_id_col caught it.
        db.session.rollback()
        return render_conflict(rule_or_404(rule_id), form)
    if saved is None:
        return render_form(422, form=form, editing=row)
    if not wants_fragment():
        return back_to_list(f"Rule “{saved.name}” saved.")
    return trigger(render_page_or_block(TEMPLATE, "rule_form",
                                        **form_context(saved_rule=saved)), CHANGED)


@bp.route("/rules/<int:rule_id>/enabled", methods=["POST"])
def rule_enabled(rule_id: int):
    """Switch a rule on (enabled=yes) or off (enabled=no)."""
    row = rule_or_404(rule_id)
    form = ToggleForm()
    if not form.validate_on_submit():
        abort(422, "Say whether the rule is enabled: yes or no.")
    rules.set_enabled(row, form.enabled.data == "yes")
    if not wants_fragment():
        return back_to_list(f"Rule “{row.name}” is {'on' if row.enabled else 'off'}.")
    return render_row(row)


@bp.route("/rules/<int:rule_id>/move", methods=["POST"])
def rule_move(rule_id: int):
    """Move a rule one place up or down the run order."""
    row = rule_or_404(rule_id)
    form = MoveForm()
    if not form.validate_on_submit():
        abort(422, "Say which way to move the rule: up or down.")
    rules.move(row, form.direction.data)
    if not wants_fragment():
        return back_to_list()
    return render_page_or_block(TEMPLATE, "rule_list", **list_context())


@bp.route("/rules/<int:rule_id>/delete", methods=["POST"])
def rule_delete(rule_id: int):
    """Delete a rule; its row turns into an Undo that brings it back."""
    values = rules.delete_rule(rule_or_404(rule_id))
    if not wants_fragment():
        return back_to_list(f"Rule “{values['name']}” deleted.", "info")
    return render_page_or_block(TEMPLATE, "deleted_rule_row", rule_id=rule_id, values=values)


@bp.route("/rules/<int:rule_id>/restore", methods=["POST"])
def rule_restore(rule_id: int):
    """Undo a delete: re-create the rule from the values its Undo form carries."""
    form = RestoreRuleForm()
    notice = None
    if form.validate_on_submit():
        try:
            values = {"name": form.name.data, "priority": form.priority.data,
                      "enabled": form.enabled.data, "condition": json.loads(form.condition.data),
                      "label_ids": form.labels.data or []}
            row = rules.restore_rule(values, current_user.username)
        except RecursionError:  # json.loads on a condition nested thousands deep
            db.session.rollback()
            notice = "The Undo's condition is nested too deeply. Nothing was restored."
        except (ValueError, engine.RuleError, rules.DuplicateRuleName) as error:
            db.session.rollback()
            notice = f"{error} Nothing was restored."
        else:
            if not wants_fragment():
                return back_to_list(f"Rule “{row.name}” restored.")
            return trigger(render_row(row), CHANGED)
    notice = notice or "The Undo's values are incomplete; nothing was restored."
    values = {"name": request.form.get("name", ""), "priority": request.form.get("priority", ""),
              "enabled": bool(request.form.get("enabled")),
              "condition": request.form.get("condition", ""),
              "label_ids": request.form.getlist("labels")}
    context = {} if wants_fragment() else page_context()
    return render_page_or_block(TEMPLATE, "deleted_rule_row", status=422, rule_id=rule_id,
                                values=values, notice=notice, **context)


@bp.route("/rules/apply")
def rules_apply_status():
    """The apply card (polled every second while the job runs)."""
    response = render_page_or_block(TEMPLATE, "apply_card", **(
        apply_context() if wants_fragment() else page_context()))
    job = apply_context()["job"]
    if request.args.get("polling") and job is not None and job.done:
        trigger(response, CHANGED)  # the job just finished: the counts in the list change
    return response


@bp.route("/rules/apply", methods=["POST"])
def rules_apply():
    """Start applying the enabled rules to every pending item, or show the run in progress."""
    try:
        _, created = jobs.enqueue(rules.JOB_KIND, {"started_by": current_user.username},
                                  dedupe_key=rules.DEDUPE_KEY, created_by=current_user.username,
                                  subject=rules.JOB_SUBJECT)
    except jobs.QueueUnavailable as error:
        if not wants_fragment():
            return back_to_list(str(error), "error")
        return render_page_or_block(TEMPLATE, "apply_card", status=503,
                                    **apply_context(notice=str(error)))
    notice = None if created else "Rules are already being applied; showing that run."
    if not wants_fragment():
        return back_to_list(notice or "Applying rules in the background.", "info")
    return render_page_or_block(TEMPLATE, "apply_card", status=202 if created else 200,
                                **apply_context(notice=notice))
