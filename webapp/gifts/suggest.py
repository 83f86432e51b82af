"""Batch model suggestions (job ``gifts-suggest``), run after a label model becomes active.

For every PENDING item, in batches of :data:`BATCH`, and only in the label groups whose live
source is the model (``webapp.gifts.sources.live_sources``):

- the item's rule and model suggestions in those groups are replaced by the active model's
  (source "model", with the model version and the confidence);
- a group in which a person already labelled the item is left alone (never beside or over a
  human label), and accepted or rejected items are never written;
- ``Item.uncertainty`` becomes ``1 - mean certainty`` over the item's live groups that no
  person labelled: the model's margin (``ml.label_model.LabelModel.uncertainty``) in model
  groups, and ``RULE_CONFIDENCE`` per covered group in rule groups (the same formula as
  ``ml.labels.rule_uncertainty``), so the "least certain first" queue compares like with like.

Nothing is predicted one item at a time: each batch is encoded and scored in one go. Batches
are windows of the item table read by primary key (id > last id) rather than one long cursor,
because every batch commits, and a commit ends a server-side cursor on PostgreSQL. If another
version is activated while the batch runs, the job starts over with the newer one before
finishing, so the last activation always wins even though a second job is deduplicated into
the running one.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import click
from sqlalchemy import bindparam, delete, exists, func, select, update
from sqlalchemy.orm import selectinload

from webapp import jobs, registry
from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.gifts.cli import gifts_cli
from webapp.gifts.models import Item, ItemLabel, LabelGroup
from webapp.gifts.rules import ITEM_COLUMNS, item_data
from webapp.gifts.sources import KIND, live_sources
from webapp.singletons import insert_skipping_conflicts

log = logging.getLogger(__name__)

JOB_KIND = "gifts-suggest"
#: One batch-suggestion run at a time for the whole workbench.
DEDUPE_KEY = "gifts-suggest"
JOB_SUBJECT = "labels"
#: Items per batch: one SELECT, two small lookups, one DELETE, one INSERT, one UPDATE each.
BATCH = 2000
#: How often a run starts over because a newer version was activated meanwhile.
MAX_ROUNDS = 3
#: Certainty a rule's label gives its group (``ml.labels.RULE_CONFIDENCE``'s meaning).
RULE_CERTAINTY = 0.5
#: One executemany per batch sets every item's uncertainty.
#: ``label_id + 0`` in per-batch filters: it keeps the planner on the item_id index (2000 items)
#: instead of the (label_id, source) index, which on SQLite meant reading every suggestion of
#: those labels in the whole table once per batch: quadratic at 100k items.
UNINDEXED_LABEL = ItemLabel.label_id + 0
ITEM_UNCERTAINTY = (update(Item.__table__).where(Item.__table__.c.id == bindparam("item"))
                    .values(uncertainty=bindparam("value")))


def _insert_labels():
    """A Core INSERT (executemany), not the ORM's bulk insert, whose per-row bookkeeping took a
    third of a batch on SQLite (bench/gifts_suggest.py).

    It skips an (item, label) pair that is already there: a person may label the item between
    the batch's read and its write (their label wins), and a second run may overlap this one
    (``flask demo load`` runs the suggestions while the activation's job does the same).
    """
    return insert_skipping_conflicts(ItemLabel.__table__, ["item_id", "label_id"])


def enqueue_suggestions(version: str | None = None, by: str | None = None):
    """Queue the batch (or return the run already queued); returns the job, or None when the
    queue is down — the activation stands, and the log says to run ``flask gifts suggest``."""
    try:
        job, _ = jobs.enqueue(JOB_KIND, {"version": version, "started_by": by},
                              dedupe_key=DEDUPE_KEY, created_by=by, subject=JOB_SUBJECT)
    except jobs.QueueUnavailable as error:
        log.error("Label model %s is active but its suggestions were not queued: %s. "
                  "Run `flask gifts suggest` once the queue is back.", version, error)
        return None
    return job


@dataclass(frozen=True)
class SuggestPlan:
    """What one run writes: the model, its live groups, and the vocabulary's ids."""

    version: str | None
    model: object | None
    model_groups: tuple[str, ...]
    rule_groups: frozenset[str]
    #: ``group:label`` -> label id, for every label.
    label_ids: dict[str, int]
    #: label id -> group name, for every label.
    group_of: dict[int, str]

    def label_ids_in(self, groups) -> list[int]:
        """The ids of every label of ``groups``."""
        return [label_id for label_id, group in self.group_of.items() if group in groups]


def make_plan() -> SuggestPlan:
    """Read the live sources, the vocabulary and the active model once, at the start of a run."""
    from webapp.ml_bridge import model_dir
    from webapp.ml_bridge.labels import load_version

    sources = live_sources()
    model_groups = tuple(name for name, source in sources.items() if source.source == "model")
    rule_groups = frozenset(name for name, source in sources.items() if source.source == "rules")
    label_ids, group_of = {}, {}
    for group in db.session.scalars(select(LabelGroup).options(selectinload(LabelGroup.labels))):
        for label in group.labels:
            label_ids[f"{group.name}:{label.name}"] = label.id
            group_of[label.id] = group.name
    active = registry.active_version(KIND)
    model = None
    if active is not None and model_groups:
        model = load_version(model_dir(), active.version, active.sha256)
        # live_sources reads the groups from the version's params; the model itself decides.
        model_groups = tuple(name for name in model_groups if name in model.groups)
    return SuggestPlan(active.version if active else None, model, model_groups, rule_groups,
                       label_ids, group_of)


@dataclass
class SuggestCounts:
    """A run's running totals (the job's result)."""

    items: int = 0
    suggested: int = 0
    labels: int = 0
    removed: int = 0
    human_groups_kept: int = 0
    batches: list[float] = field(default_factory=list)

    def as_dict(self, plan: SuggestPlan, seconds: float, rules_requeued: bool) -> dict:
        """The job's result."""
        return {"version": plan.version, "groups": list(plan.model_groups), "items": self.items,
                "suggested": self.suggested, "labels": self.labels, "removed": self.removed,
                "human_groups_kept": self.human_groups_kept, "seconds": round(seconds, 3),
                "rules_requeued": rules_requeued}


def _next_window(after_id: int) -> tuple[list, int | None]:
    """The pending items among the next :data:`BATCH` items after ``after_id``, and the last id
    read (None at the end).

    The window is read by primary key and filtered here: asked for "pending and id > n, by id",
    SQLite picks the queue's status index and sorts every pending item again for each batch,
    which made the whole run quadratic. The rows are locked until the batch commits
    (PostgreSQL), so a person accepting one meanwhile waits instead of racing the job.
    """
    query = (select(*ITEM_COLUMNS, Item.status).where(Item.id > after_id).order_by(Item.id)
             .limit(BATCH).with_for_update(of=Item))
    rows = list(db.session.execute(query))
    if not rows:
        return [], None
    return [row for row in rows if row.status == "pending"], rows[-1].id


def _labelled_groups(item_ids: list[int], plan: SuggestPlan, source: str,
                     groups=None) -> dict[int, set[str]]:
    """item id -> the groups in which it has a label from ``source`` (within ``groups``)."""
    query = select(ItemLabel.item_id, ItemLabel.label_id).where(
        ItemLabel.item_id.in_(item_ids), ItemLabel.source == source)
    if groups is not None:
        query = query.where(UNINDEXED_LABEL.in_(plan.label_ids_in(groups)))
    found: dict[int, set[str]] = defaultdict(set)
    for item_id, label_id in db.session.execute(query):
        found[item_id].add(plan.group_of.get(label_id, ""))
    return found


def suggest_batch(plan: SuggestPlan, rows: list, counts: SuggestCounts) -> None:
    """Replace the model-group suggestions of one batch of pending items and commit."""
    started = time.perf_counter()
    item_ids = [row.id for row in rows]
    human = _labelled_groups(item_ids, plan, "human")
    ruled = _labelled_groups(item_ids, plan, "rule", plan.rule_groups)
    removed = db.session.execute(delete(ItemLabel).where(
        ItemLabel.item_id.in_(item_ids), ItemLabel.source.in_(("rule", "model")),
        UNINDEXED_LABEL.in_(plan.label_ids_in(plan.model_groups))))
    counts.removed += removed.rowcount or 0
    assessment = plan.model.assess([item_data(row) for row in rows], plan.model_groups)
    column = {group: g for g, group in enumerate(assessment.groups)}
    now, inserts, uncertainties = utcnow(), [], []
    for i, row in enumerate(rows):
        people = human.get(row.id, set())
        counts.human_groups_kept += len(people & set(plan.model_groups))
        mine = [{"item_id": row.id, "label_id": plan.label_ids[label], "source": "model",
                 "model_version": plan.version, "confidence": round(confidence, 4),
                 "created_at": now}
                for label, confidence in assessment.suggestions[i]
                if label in plan.label_ids and label.partition(":")[0] not in people]
        inserts.extend(mine)
        counts.suggested += bool(mine)
        certainties = [float(assessment.margins[i, column[group]])
                       for group in plan.model_groups if group not in people]
        certainties += [RULE_CERTAINTY if group in ruled.get(row.id, ()) else 0.0
                        for group in plan.rule_groups - people]
        uncertainty = 1.0 - sum(certainties) / len(certainties) if certainties else 1.0
        uncertainties.append({"item": row.id, "value": uncertainty})
    if inserts:
        db.session.execute(_insert_labels(), inserts)
    db.session.execute(ITEM_UNCERTAINTY, uncertainties)
    counts.items += len(rows)
    counts.labels += len(inserts)
    db.session.commit()
    counts.batches.append(time.perf_counter() - started)


def _stale_model_rows(plan: SuggestPlan) -> bool:
    """True when pending items still carry model suggestions in groups now live on the rules
    (after a rollback to a version that covers fewer groups, or a raised threshold)."""
    label_ids = plan.label_ids_in(plan.rule_groups)
    if not label_ids:
        return False
    query = select(exists().where(
        ItemLabel.item_id == Item.id, Item.status == "pending", ItemLabel.source == "model",
        ItemLabel.label_id.in_(label_ids)))
    return bool(db.session.scalar(query))


def _requeue_rules(by: str | None) -> bool:
    """Let the rules take their groups back (their job also clears stale model rows)."""
    from webapp.gifts.rules import DEDUPE_KEY as RULES_KEY
    from webapp.gifts.rules import JOB_KIND as RULES_KIND
    from webapp.gifts.rules import JOB_SUBJECT as RULES_SUBJECT

    try:
        jobs.enqueue(RULES_KIND, {"started_by": by or JOB_KIND}, dedupe_key=RULES_KEY,
                     created_by=by, subject=RULES_SUBJECT)
    except jobs.QueueUnavailable as error:
        log.error("Stale model suggestions remain in rule groups: %s", error)
        return False
    return True


def run_round(plan: SuggestPlan, progress: Callable[[int, str], None]) -> SuggestCounts:
    """One pass over every pending item with ``plan``."""
    counts, last_id = SuggestCounts(), 0
    if plan.model is None:
        return counts
    total = db.session.scalar(select(func.count(Item.id)).where(Item.status == "pending"))
    progress(2, f"Suggesting {', '.join(plan.model_groups)} for {total} pending items "
                f"with model {plan.version}")
    while True:
        rows, last_id = _next_window(last_id)
        if last_id is None:
            break
        if rows:
            suggest_batch(plan, rows, counts)  # commits
        else:
            db.session.commit()  # release the window's locks
        percent = min(99, 2 + counts.items * 97 // max(total or 0, 1))
        progress(percent, f"{counts.items} of {total} items · {counts.labels} suggestions")
    return counts


def suggest_task(progress: Callable[[int, str], None], **params) -> dict:
    """Job ``gifts-suggest``: rewrite the pending items' suggestions in the model's groups.

    ``params`` may carry ``version`` (the version whose activation queued the job; the run
    always uses the version active when it starts, and starts over if that changes) and
    ``started_by``. Returns the counts, the groups, the version used and the seconds taken.
    """
    started = time.perf_counter()
    progress(0, "Reading the live sources and the active label model")
    plan = make_plan()
    for _ in range(MAX_ROUNDS):
        counts = run_round(plan, progress)
        latest = registry.active_version(KIND)
        if (latest.version if latest else None) == plan.version:
            break
        log.info("The active label model changed during the batch; starting over")
        plan = make_plan()
    requeued = _stale_model_rows(plan) and _requeue_rules(params.get("started_by"))
    result = counts.as_dict(plan, time.perf_counter() - started, requeued)
    log.info("Batch suggestions: %s", result)
    return result


@gifts_cli.command("suggest")
def suggest_command() -> None:
    """Recompute the label model's suggestions for every pending item, now, in this process."""
    last = [None]

    def echo(percent: int, message: str) -> None:
        if message != last[0]:
            click.echo(f"  {percent:3d}% {message}")
            last[0] = message

    result = suggest_task(echo, started_by="cli")
    if result["groups"]:
        click.echo(f"{result['items']} items, {result['labels']} suggestions from model "
                   f"{result['version']} in {result['seconds']:.1f} s "
                   f"(groups: {', '.join(result['groups'])}).")
    else:
        click.echo("No label group is live on the model yet; nothing to suggest.")
    if result["rules_requeued"]:
        click.echo("Model suggestions were left in groups now live on the rules; the rules "
                   "were queued to take those groups back.")
