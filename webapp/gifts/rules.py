"""The rules service: stored rules as ``ml.labels.Rule``, saving, toggling, ordering, deleting
with undo, a fast preview, and the "apply rules" background job.

Applying rules (job ``gifts-apply-rules``) touches PENDING items only, and only label groups
whose live source is "rules" (``webapp.gifts.sources.live_sources``). For each such item it
replaces the rule (and stale model) suggestions in those groups with what the rules give now,
and leaves alone every group in which a person has labelled the item: a human label is never
overwritten or added to by a rule. Accepted and rejected items are never touched.

The preview narrows the items down in SQL first (price and attribute conditions exactly; a text
condition by a case-insensitive LIKE on ASCII text, a superset of the real test), counts them
grouped by the values of the columns the rule reads, and runs the real rule in Python once per
distinct combination, so its counts are exactly what applying would match. (One caveat: a few
characters fold to ASCII only in Python, such as the long s "ſ" or the Kelvin sign; an item
spelled with them can be missing from a preview's count for a ``contains`` condition, never
from what the job labels.) See ``bench/gifts_rules.py`` for its timing at 100k items.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import click
from sqlalchemy import (
    Float,
    and_,
    bindparam,
    cast,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from ml import labels as engine
from ml.items import ItemData
from webapp import audit
from webapp.auth.models import utcnow
from webapp.extensions import MAX_ID, db
from webapp.gifts.cli import gifts_cli
from webapp.gifts.models import Item, ItemLabel, Label, LabelGroup, Rule
from webapp.gifts.sources import live_sources

log = logging.getLogger(__name__)

JOB_KIND = "gifts-apply-rules"
#: The job's subject and dedupe key: one "apply rules" at a time for the whole workbench.
JOB_SUBJECT = "rules"
DEDUPE_KEY = "gifts-apply-rules"
#: Items per batch in the job: one SELECT, one DELETE, one INSERT and one UPDATE per batch.
BATCH = 1000
#: Samples a preview shows.
PREVIEW_SAMPLES = 10
#: Rows fetched per round trip while a preview streams groups.
STREAM_ROWS = 2000
#: Fields nearly unique per item: grouping by them saves nothing, so such previews stream.
UNIQUE_FIELDS = frozenset({"name", "description", "sku"})
#: Up to this many matching value combinations, samples are picked in SQL by those values.
MAX_SAMPLE_KEYS = 200

#: Columns an ``ItemData`` is built from (Core rows: no ORM objects in the hot loops).
#: The price comes as a float from SQL: the engine compares floats, and skipping Decimal
#: saves a third of the time spent fetching.
PRICE = cast(Item.unit_price, Float)
ITEM_COLUMNS = (Item.id, Item.name, Item.description, Item.vendor, Item.category, Item.sku,
                PRICE.label("price"), Item.local, Item.sustainable, Item.brandable,
                Item.perishable)
TEXT_COLUMNS = {"name": Item.name, "description": Item.description, "vendor": Item.vendor,
                "category": Item.category, "sku": Item.sku}
#: ``price eq`` matches within half a cent, as ``ml.labels`` does.
CENT_TOLERANCE = 0.005


class DuplicateRuleName(ValueError):
    """Another rule already has this name."""


def item_data(row) -> ItemData:
    """A row starting with ``ITEM_COLUMNS`` as the plain item the rules engine reads.

    Unpacked by position: this runs once per item in previews and the job, and a Row's
    named access costs several times more.
    """
    (item_id, name, description, vendor, category, sku, price, local, sustainable, brandable,
     perishable) = row[:11]
    return ItemData(item_id, name or "", description or "", vendor or "", category or "", sku,
                    float(price), bool(local), bool(sustainable), bool(brandable),
                    bool(perishable))


# --- Reading rules ---------------------------------------------------------------------------

def rules_query(enabled_only: bool = False):
    """Rule rows in the order they run (priority, then id), with their labels' groups loaded."""
    query = (select(Rule).options(selectinload(Rule.labels).joinedload(Label.group))
             .order_by(Rule.priority, Rule.id))
    return query.where(Rule.enabled.is_(true())) if enabled_only else query


def to_engine(row: Rule) -> engine.Rule:
    """A stored rule as ``ml.labels.Rule`` (RuleError if it no longer validates)."""
    labels = [label.qualified_name for label in sorted(row.labels, key=_label_order)]
    return engine.Rule.from_dict(row.id, row.name, row.priority, row.condition, labels,
                                 row.enabled)


def _label_order(label: Label) -> tuple:
    return (label.group.position, label.group.name_key, label.position, label.name_key)


def load_rules(enabled_only: bool = True) -> list[engine.Rule]:
    """The stored rules as ``ml.labels.Rule``, in the order they run.

    A stored rule that no longer validates (or lost every label to vocabulary deletes) is left
    out with a warning in the log, never applied half-understood.
    """
    rules = []
    for row in db.session.scalars(rules_query(enabled_only)):
        try:
            rules.append(to_engine(row))
        except engine.RuleError as error:
            log.warning("Rule %s (%s) is not applied: %s", row.id, row.name, error)
    return rules


def items_per_rule() -> dict[int, int]:
    """How many items carry a label from each rule now (rules with none are absent)."""
    query = (select(ItemLabel.rule_id, func.count(func.distinct(ItemLabel.item_id)))
             .where(ItemLabel.source == "rule", ItemLabel.rule_id.is_not(None))
             .group_by(ItemLabel.rule_id))
    return dict(db.session.execute(query).all())


def label_choices() -> list[tuple[LabelGroup, list[Label]]]:
    """Every group with its labels, in display order (the rule form's checkboxes)."""
    groups = db.session.scalars(select(LabelGroup).options(selectinload(LabelGroup.labels))
                                .order_by(LabelGroup.position, LabelGroup.name_key))
    return [(group, list(group.labels)) for group in groups]


def labels_by_id(label_ids: Iterable[int]) -> list[Label]:
    """The labels with these ids (unknown ids are dropped), with their groups.

    An id past ``MAX_ID`` names no row and the database cannot even bind it, so it is dropped
    before the query like any other unknown id.
    """
    ids = {label_id for label_id in label_ids if 0 < label_id <= MAX_ID}
    if not ids:
        return []
    query = select(Label).options(joinedload(Label.group)).where(Label.id.in_(ids))
    return sorted(db.session.scalars(query), key=_label_order)


# --- Changing rules --------------------------------------------------------------------------

def validate(name: str, priority: int, condition: dict, labels: list[Label],
             enabled: bool = True, rule_id: int = 0) -> engine.Rule:
    """The rule as the engine sees it; RuleError naming the first problem."""
    return engine.Rule.from_dict(rule_id, name, priority, condition,
                                 [label.qualified_name for label in labels], enabled)


def _name_taken(name: str, rule_id: int | None) -> bool:
    query = select(Rule.id).where(func.lower(Rule.name) == name.lower())
    if rule_id is not None:
        query = query.where(Rule.id != rule_id)
    return db.session.scalar(query.limit(1)) is not None


def save_rule(row: Rule, name: str, priority: int, condition: dict, label_ids: Iterable[int],
              enabled: bool = True, user: str | None = None, *, restored: bool = False) -> Rule:
    """Create or update ``row``; validated by the engine, stored normalised, audited.

    ``restored`` marks the creation as the undo of a delete, in the audit log.
    Raises RuleError (invalid) or DuplicateRuleName (another rule has the name, any case).
    """
    labels = labels_by_id(label_ids)
    checked = validate(name, priority, condition, labels, enabled, row.id or 0)
    if _name_taken(checked.name, row.id):
        raise DuplicateRuleName(f"There is already a rule called “{checked.name}”.")
    before = rule_values(row) if row.id is not None else None
    row.name, row.priority, row.enabled = checked.name, checked.priority, checked.enabled
    row.condition = checked.condition_dict()
    row.labels = labels
    if row.id is None:
        row.created_by = user
    db.session.add(row)
    try:
        if before is None:
            db.session.flush()  # the new rule's id, for the audit event
        _audit_saved(row, before, restored)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise DuplicateRuleName(f"There is already a rule called “{checked.name}”.") from None
    return row


def _audit_saved(row: Rule, before: dict | None, restored: bool) -> None:
    """``rule.create`` for a new rule, or ``rule.update`` naming the fields that changed."""
    if before is None:
        audit.record("rule.create", "rule", row.id, {"name": row.name, "priority": row.priority,
                                                     "enabled": row.enabled,
                                                     **({"restored": True} if restored else {})})
        return
    after = rule_values(row)
    changed = [key for key in after if after[key] != before[key]]
    audit.record("rule.update", "rule", row.id, {"name": row.name, "changed": changed})


def set_enabled(row: Rule, enabled: bool) -> Rule:
    """Switch a rule on or off (its labels on items stay until rules are applied again)."""
    if row.enabled != enabled:
        audit.record("rule.enable" if enabled else "rule.disable", "rule", row.id,
                     {"name": row.name})
    row.enabled = enabled
    db.session.commit()
    return row


def move(row: Rule, direction: str) -> Rule:
    """Move a rule one place up (runs earlier) or down, by swapping priorities with its
    neighbour; when both have the same priority the moved rule's becomes one lower/higher."""
    ordered = list(db.session.scalars(select(Rule).order_by(Rule.priority, Rule.id)))
    index = ordered.index(row)
    other_index = index - 1 if direction == "up" else index + 1
    if not 0 <= other_index < len(ordered):
        return row
    other = ordered[other_index]
    if other.priority == row.priority:
        row.priority += -1 if direction == "up" else 1
    else:
        row.priority, other.priority = other.priority, row.priority
    audit.record("rule.move", "rule", row.id, {"name": row.name, "direction": direction,
                                               "priority": row.priority})
    db.session.commit()
    return row


def rule_values(row: Rule) -> dict:
    """Everything needed to re-create a rule (what its Undo button carries)."""
    return {"name": row.name, "priority": row.priority, "enabled": row.enabled,
            "condition": row.condition, "label_ids": [label.id for label in row.labels]}


def delete_rule(row: Rule) -> dict:
    """Delete a rule and return its values for an undo.

    Labels it gave items stay (with the rule's name as provenance, ``rule_id`` becomes NULL)
    until rules are applied again.
    """
    values = rule_values(row)
    audit.record("rule.delete", "rule", row.id, {"name": row.name})
    db.session.delete(row)
    db.session.commit()
    return values


def restore_rule(values: dict, user: str | None = None) -> Rule:
    """Undo a delete: a new rule with the old values (DuplicateRuleName if the name was taken
    meanwhile, RuleError if its labels are gone)."""
    return save_rule(Rule(), values["name"], values["priority"], values["condition"],
                     values["label_ids"], values["enabled"], user, restored=True)


# --- Preview ---------------------------------------------------------------------------------

@dataclass
class Preview:
    """What a rule would match now: counts and a few samples."""

    pending: int = 0
    total: int = 0
    samples: list[ItemData] = field(default_factory=list)
    #: How many rows (items, or distinct value combinations) SQL handed to the engine.
    examined: int = 0


def _like_any(columns, needles: Iterable[str]):
    """SQL that is true when a column contains any needle (case-insensitive for ASCII)."""
    return or_(*(func.lower(func.coalesce(column, "")).contains(needle.lower(), autoescape=True)
                 for column in columns for needle in needles))


def sql_prefilter(condition: engine.Condition, text: bool = True):
    """A SQL clause true for every item ``condition`` matches (maybe more), or None.

    Exact for price and attributes. For ``contains``/``equals``/``in`` with ASCII text, a LIKE
    on the lowered column (an item that equals or contains the text also contains it, whatever
    the case). Non-ASCII text and the negative and regex operators are left to Python: SQL's
    case folding differs between databases (SQLite lowers ASCII only).
    """
    kind = engine.FIELDS[condition.field]
    if kind == "bool":
        column = getattr(Item, condition.field)
        return column.is_(true()) if condition.op == "is_true" else column.is_(false())
    if kind == "number":
        return _price_clause(condition.op, condition.value)
    if not text or condition.op not in ("contains", "equals", "in"):
        return None
    needles = condition.value if isinstance(condition.value, tuple) else (condition.value,)
    if not all(needle.isascii() for needle in needles):
        return None
    columns = ((Item.name, Item.description) if condition.field == "text"
               else (TEXT_COLUMNS[condition.field],))
    return _like_any(columns, needles)


def _price_clause(op: str, value: float):
    """Exactly the engine's test: the same float comparison, the cent tolerance for "eq"."""
    if op == "lt":
        return PRICE < value
    if op == "le":
        return PRICE <= value
    if op == "gt":
        return PRICE > value
    if op == "ge":
        return PRICE >= value
    return func.abs(PRICE - value) <= CENT_TOLERANCE


def rule_prefilter(rule: engine.Rule, text: bool = True):
    """A SQL clause true for every item ``rule`` matches (maybe more), or None for "all".

    ``text=False`` leaves text conditions out (when grouping by the text anyway, a LIKE on
    every row costs more than it saves).
    """
    clauses = [sql_prefilter(condition, text) for condition in rule.conditions]
    if rule.match == "all":
        known = [clause for clause in clauses if clause is not None]
        return and_(*known) if known else None
    if any(clause is None for clause in clauses):
        return None  # one condition Python alone can judge may match any item
    return or_(*clauses)


def grouping_columns(rule: engine.Rule) -> dict[str, object]:
    """The columns ``rule`` reads, by ``ItemData`` field (text as name + description)."""
    columns: dict[str, object] = {}
    for condition in rule.conditions:
        for name in (("name", "description") if condition.field == "text"
                     else (condition.field,)):
            if name == "price":
                columns["price"] = PRICE
            else:
                column = getattr(Item, name)
                # NULL and "" read the same to the engine, and NULL never equals in SQL.
                columns[name] = (func.coalesce(column, "") if name in TEXT_COLUMNS
                                 else column)
    return columns


def _group_item(fields: tuple[str, ...], values) -> ItemData:
    """An item with only the fields a rule reads (the others at their defaults)."""
    data = dict(zip(fields, values, strict=True))
    data.setdefault("name", "")
    return ItemData(id=0, **data)


def preview(rule: engine.Rule) -> Preview:
    """How many items ``rule`` matches (pending and all) and the first ``PREVIEW_SAMPLES``
    (pending ones first), evaluated exactly as applying it would.

    A rule that reads only vendors, categories, prices and attributes is counted in SQL,
    grouped by the values it reads, and the engine judges each distinct combination once (a
    few hundred groups however many items there are). A rule on names, descriptions or SKUs,
    nearly unique per item, streams the narrowed-down items through the engine instead.
    """
    columns = grouping_columns(rule)
    if UNIQUE_FIELDS & set(columns):
        return _preview_streamed(rule, rule_prefilter(rule))
    where = rule_prefilter(rule, text=False)
    fields, exprs = tuple(columns), tuple(columns.values())
    query = select(*exprs, Item.status, func.count()).group_by(*exprs, Item.status)
    if where is not None:
        query = query.where(where)
    result, matched = Preview(), set()
    for row in db.session.execute(query.execution_options(yield_per=STREAM_ROWS)):
        *values, status, count = row
        result.examined += 1
        if not rule.matches(_group_item(fields, values)):
            continue
        matched.add(tuple(values))
        result.total += count
        result.pending += count if status == "pending" else 0
    if result.total:
        result.samples = _samples(rule, where, exprs, matched)
    return result


def _preview_streamed(rule: engine.Rule, where) -> Preview:
    """``preview`` by streaming every narrowed-down item through the engine, by id."""
    result, others = Preview(), []
    query = select(*ITEM_COLUMNS, Item.status).order_by(Item.id)
    if where is not None:
        query = query.where(where)
    for row in db.session.execute(query.execution_options(yield_per=STREAM_ROWS)):
        result.examined += 1
        item = item_data(row)
        if not rule.matches(item):
            continue
        result.total += 1
        if row.status == "pending":
            result.pending += 1
            if len(result.samples) < PREVIEW_SAMPLES:
                result.samples.append(item)
        elif len(others) < PREVIEW_SAMPLES:
            others.append(item)
    result.samples.extend(others[:PREVIEW_SAMPLES - len(result.samples)])
    return result


def _samples(rule: engine.Rule, where, exprs: tuple, matched: set[tuple]) -> list[ItemData]:
    """Up to ``PREVIEW_SAMPLES`` matching items, pending ones first, then by id."""
    pending_first = (Item.status != "pending", Item.id)
    query = select(*ITEM_COLUMNS).order_by(*pending_first)
    if where is not None:
        query = query.where(where)
    if len(matched) <= MAX_SAMPLE_KEYS:
        # The matching value combinations are few: SQL can pick exactly those items.
        query = query.where(tuple_(*exprs).in_(sorted(matched, key=repr)))
        return [item_data(row) for row in db.session.execute(query.limit(PREVIEW_SAMPLES))]
    samples = []  # many combinations match, so matching items come early in the scan
    for row in db.session.execute(query.execution_options(yield_per=PREVIEW_SAMPLES * 10)):
        item = item_data(row)
        if rule.matches(item):
            samples.append(item)
            if len(samples) == PREVIEW_SAMPLES:
                break
    return samples


# --- Applying (the job) ----------------------------------------------------------------------

@dataclass(frozen=True)
class ApplyPlan:
    """What a run applies: the rules, and the groups and labels they may write."""

    rules: list[engine.Rule]
    rule_groups: frozenset[str]
    single_groups: frozenset[str]
    #: ``group:label`` -> label id, for the labels of ``rule_groups``.
    label_ids: dict[str, int]
    #: label id -> group name, for every label (to find the groups a person labelled).
    group_of: dict[int, str]
    #: True when some group is live on the model: its uncertainty is the model's to set.
    model_live: bool


def make_plan() -> ApplyPlan:
    """The enabled rules and the label vocabulary, read once at the start of a run."""
    sources = live_sources()
    rule_groups = frozenset(name for name, source in sources.items() if source.source == "rules")
    label_ids, group_of, single = {}, {}, set()
    query = select(LabelGroup).options(selectinload(LabelGroup.labels))
    for group in db.session.scalars(query):
        if not group.multi:
            single.add(group.name)
        for label in group.labels:
            group_of[label.id] = group.name
            if group.name in rule_groups:
                label_ids[f"{group.name}:{label.name}"] = label.id
    return ApplyPlan(engine.ordered(load_rules()), rule_groups, frozenset(single), label_ids,
                     group_of, any(s.source == "model" for s in sources.values()))


def _pending_batch(after_id: int) -> list:
    """The next ``BATCH`` pending items after ``after_id``, locked until the batch commits
    (PostgreSQL), so a person accepting one meanwhile waits instead of racing the job."""
    query = (select(*ITEM_COLUMNS).where(Item.status == "pending", Item.id > after_id)
             .order_by(Item.id).limit(BATCH).with_for_update(of=Item))
    return list(db.session.execute(query))


def _human_groups(item_ids: list[int], group_of: dict[int, str]) -> dict[int, set[str]]:
    """item id -> the groups in which a person labelled it."""
    query = select(ItemLabel.item_id, ItemLabel.label_id).where(
        ItemLabel.item_id.in_(item_ids), ItemLabel.source == "human")
    groups: dict[int, set[str]] = defaultdict(set)
    for item_id, label_id in db.session.execute(query):
        groups[item_id].add(group_of.get(label_id, ""))
    return groups


@dataclass
class ApplyCounts:
    """A run's running totals (the job's result)."""

    items: int = 0
    labelled: int = 0
    labels: int = 0
    removed: int = 0

    def as_dict(self, plan: ApplyPlan) -> dict:
        """The job's result: counts, and what was applied where."""
        return {"items": self.items, "labelled": self.labelled, "labels": self.labels,
                "removed": self.removed, "rules": len(plan.rules),
                "groups": sorted(plan.rule_groups), "uncertainty_set": not plan.model_live}


def apply_batch(plan: ApplyPlan, rows: list, counts: ApplyCounts) -> None:
    """Replace the rule suggestions of one batch of pending items and commit."""
    item_ids = [row.id for row in rows]
    human = _human_groups(item_ids, plan.group_of)
    rule_label_ids = list(plan.label_ids.values())
    if rule_label_ids:
        removed = db.session.execute(delete(ItemLabel).where(
            ItemLabel.item_id.in_(item_ids), ItemLabel.source.in_(("rule", "model")),
            ItemLabel.label_id.in_(rule_label_ids)))
        counts.removed += removed.rowcount or 0
    now, inserts, uncertainties = utcnow(), [], []
    not_rules = frozenset(plan.group_of.values()) - plan.rule_groups
    for row in rows:
        # Never beside a person's label: a group they labelled is theirs, like the model's.
        people = frozenset(human.get(row.id, ()))
        given = engine.apply_rules(plan.rules, item_data(row), plan.single_groups,
                                   people | not_rules)
        inserts.extend({"item_id": row.id, "label_id": plan.label_ids[label.label],
                        "source": "rule", "rule_id": label.rule_id, "rule_name": label.rule_name,
                        "created_at": now} for label in given if label.label in plan.label_ids)
        counts.labelled += bool(given)
        uncertainties.append({"item_id": row.id, "value": engine.rule_uncertainty(
            given, plan.rule_groups - people)})
    # Core statements on the tables: the ORM's bulk helpers cost twice as much per row here.
    if inserts:
        db.session.execute(insert(ItemLabel.__table__), inserts)
    if not plan.model_live:
        items = Item.__table__
        db.session.execute(update(items).where(items.c.id == bindparam("item_id"))
                           .values(uncertainty=bindparam("value")), uncertainties)
    counts.items += len(rows)
    counts.labels += len(inserts)
    db.session.commit()


def apply_rules_task(progress: Callable[[int, str], None], **params) -> dict:
    """Job ``gifts-apply-rules``: apply the enabled rules to every pending item, in batches.

    ``params`` may carry ``started_by`` (shown in logs only). Returns the counts: items seen,
    items that got at least one rule label, labels written and removed, rules applied, the
    groups live on the rules, and whether uncertainties were set (not when a group is live on
    the model, whose batch suggestions own the queue's order then).
    """
    plan = make_plan()
    total = db.session.scalar(select(func.count(Item.id)).where(Item.status == "pending")) or 0
    log.info("Applying %d rules to %d pending items (started by %s)", len(plan.rules), total,
             params.get("started_by"))
    counts, last_id = ApplyCounts(), 0
    progress(0, f"Applying {len(plan.rules)} rules to {total} pending items")
    while rows := _pending_batch(last_id):
        apply_batch(plan, rows, counts)
        last_id = rows[-1].id
        percent = min(99, counts.items * 100 // max(total, 1))
        progress(percent, f"{counts.items} of {total} items · {counts.labels} labels")
    return counts.as_dict(plan)


@gifts_cli.command("apply-rules")
def apply_rules_command() -> None:
    """Apply the enabled rules to every pending item now, in this process (what the page's
    "Apply rules" button runs as a background job); prints progress and the counts."""
    def progress(percent: int, message: str) -> None:
        click.echo(f"{percent:3d}% {message}", err=True)

    # The page's button is audited as its job is queued; here there is no job, so say it now.
    audit.record("rules.apply", "rule", detail={"job": None})
    db.session.commit()
    result = apply_rules_task(progress)
    groups = ", ".join(result["groups"]) or "none"
    rules_applied = f"{result['rules']} rule{'' if result['rules'] == 1 else 's'}"
    click.echo(f"{result['labelled']} of {result['items']} pending items labelled by "
               f"{rules_applied}: {result['labels']} labels written, {result['removed']} old "
               f"suggestions replaced (groups on the rules: {groups}).")
