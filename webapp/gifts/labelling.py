"""Labelling decisions and their undo: accept, reject, skip, edit, bulk apply.

Every decision writes a ``LabelDecision`` with the item's state before and after (a *snapshot*:
status, skipped, who reviewed it and when, and every label with its full provenance). Undo puts
``before`` back exactly, provenance included, but only when the item still looks like ``after``:
if anyone (a colleague, a later bulk action, a rule job) changed it since, undo refuses with a
message instead of clobbering their work.

Bulk actions work on thousands of items at once, so they read and write in chunks with Core
statements (one SELECT and a couple of bulk INSERT/DELETEs per chunk), and give every item's
decision the same ``batch_id`` so the whole batch can be undone together.

Every change is audited (``webapp.audit``) in its own commit: one event per decision or undo,
and one per bulk action or batch undo with its count, never one per item.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from webapp import audit
from webapp.auth.models import utcnow
from webapp.extensions import MAX_ID, db
from webapp.gifts.models import Item, ItemLabel, Label, LabelDecision, LabelGroup

#: The decisions a person makes in the queue (bulk ones come from the items table).
ACTIONS = ("accept", "reject", "skip", "edit")
#: Items per chunk in bulk actions: big enough to amortise round trips, small enough to keep
#: SQLite's bound-parameter limit and memory in check.
CHUNK = 500
#: The ItemLabel columns a snapshot keeps (everything but the row id and the item id).
LABEL_FIELDS = ("label_id", "source", "rule_id", "rule_name", "model_version", "confidence",
                "created_by", "created_at")


class LabellingError(ValueError):
    """A decision that cannot be made as asked; the message says why, for the page."""


class AlreadyReviewed(LabellingError):
    """A queue decision on an item that someone reviewed meanwhile."""


class UndoRefused(LabellingError):
    """An undo that would overwrite a change made after the decision."""


# --- snapshots --------------------------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    """A datetime as JSON-friendly text (None stays None)."""
    return value.isoformat() if value is not None else None


def _label_dict(row) -> dict:
    """One ItemLabel (ORM object or Core row) as a snapshot entry."""
    entry = {name: getattr(row, name) for name in LABEL_FIELDS}
    entry["created_at"] = _iso(entry["created_at"])
    return entry


def _state(status: str, skipped: bool, reviewed_by: str | None, reviewed_at: datetime | None,
           labels: Iterable) -> dict:
    """A snapshot from an item's fields and its label rows; labels sorted so equal states compare
    equal."""
    return {"status": status, "skipped": bool(skipped), "reviewed_by": reviewed_by,
            "reviewed_at": _iso(reviewed_at),
            "labels": sorted((_label_dict(row) for row in labels), key=lambda e: e["label_id"])}


def snapshot(item: Item) -> dict:
    """The item's reviewable state: status, skipped, reviewer, and labels with provenance."""
    return _state(item.status, item.skipped, item.reviewed_by, item.reviewed_at, item.labels)


def _snapshots(item_ids: list[int]) -> dict[int, dict]:
    """Snapshots of many items in two queries (bulk actions and batch undo)."""
    if not item_ids:
        return {}
    labels = defaultdict(list)
    label_query = select(ItemLabel.item_id, *(getattr(ItemLabel, f) for f in LABEL_FIELDS)).where(
        ItemLabel.item_id.in_(item_ids))
    for row in db.session.execute(label_query):
        labels[row.item_id].append(row)
    item_query = select(Item.id, Item.status, Item.skipped, Item.reviewed_by,
                        Item.reviewed_at).where(Item.id.in_(item_ids))
    return {row.id: _state(row.status, row.skipped, row.reviewed_by, row.reviewed_at,
                           labels[row.id]) for row in db.session.execute(item_query)}


def _label_row(item_id: int, entry: dict) -> dict:
    """A snapshot entry back as insertable ItemLabel values."""
    created_at = entry.get("created_at")
    return {"item_id": item_id, **{name: entry.get(name) for name in LABEL_FIELDS},
            "created_at": datetime.fromisoformat(created_at) if created_at else utcnow()}


def _restore(item_ids_states: dict[int, dict]) -> None:
    """Put every item back in the given state: fields, and labels with their provenance."""
    ids = list(item_ids_states)
    db.session.execute(delete(ItemLabel).where(ItemLabel.item_id.in_(ids)))
    rows = [_label_row(item_id, entry) for item_id, state in item_ids_states.items()
            for entry in state["labels"]]
    if rows:
        db.session.execute(insert(ItemLabel.__table__), rows)
    # One executemany ("bulk UPDATE by primary key"), not a statement per item.
    db.session.execute(update(Item), [
        {"id": item_id, "status": state["status"], "skipped": state["skipped"],
         "reviewed_by": state["reviewed_by"],
         "reviewed_at": (datetime.fromisoformat(state["reviewed_at"])
                         if state["reviewed_at"] else None)}
        for item_id, state in item_ids_states.items()])


# --- audit ------------------------------------------------------------------------------------

def _label_names(label_ids: Iterable[int]) -> list[str]:
    """"group: label" for each id, sorted (one query; none for no ids)."""
    ids = set(label_ids)
    if not ids:
        return []
    query = (select(LabelGroup.name, Label.name).join(Label.group).where(Label.id.in_(ids)))
    return sorted(f"{group}: {label}" for group, label in db.session.execute(query))


def _audit_decision(action: str, item: Item, before: dict, after: dict, **extra) -> None:
    """Record a decision or its undo: the labels that became human and the labels that went."""
    human_before = {e["label_id"] for e in before["labels"] if e["source"] == "human"}
    added = {e["label_id"] for e in after["labels"]
             if e["source"] == "human" and e["label_id"] not in human_before}
    removed = ({e["label_id"] for e in before["labels"]}
               - {e["label_id"] for e in after["labels"]})
    with db.session.no_autoflush:  # the names are read before the change is written
        added_names, removed_names = _label_names(added), _label_names(removed)
    detail = {"item": item.name, "status": after["status"], **extra}
    if added_names:
        detail["added"] = added_names
    if removed_names:
        detail["removed"] = removed_names
    audit.record(action, "item", item.id, detail)


# --- single decisions -------------------------------------------------------------------------

def _chosen_labels(label_ids: Iterable[int]) -> list[Label]:
    """The labels asked for, checked: every id exists, one label at most per single group."""
    wanted = {int(label_id) for label_id in label_ids}
    if any(not 0 < label_id <= MAX_ID for label_id in wanted):  # no row; SQL cannot bind it
        raise LabellingError("A chosen label no longer exists: reload the page and try again.")
    labels = list(db.session.scalars(select(Label).where(Label.id.in_(wanted)))) if wanted else []
    if len(labels) != len(wanted):
        raise LabellingError("A chosen label no longer exists: reload the page and try again.")
    per_group = defaultdict(list)
    for label in labels:
        per_group[label.group].append(label)
    for group, chosen in per_group.items():
        if not group.multi and len(chosen) > 1:
            names = " and ".join(sorted(label.name for label in chosen))
            raise LabellingError(f"“{group.name}” takes one label only; you chose {names}.")
    return labels


def _set_human_labels(item: Item, labels: list[Label], user: str, now: datetime) -> None:
    """Make ``labels`` the item's labels, as human ones. A label that was already human keeps its
    author and date; chosen suggestions become human now; labels not chosen go."""
    chosen = {label.id for label in labels}
    for row in list(item.labels):
        if row.label_id not in chosen:
            item.labels.remove(row)
        elif row.source != "human":
            row.source, row.rule_id, row.rule_name = "human", None, None
            row.model_version, row.confidence = None, None
            row.created_by, row.created_at = user, now
    present = {row.label_id for row in item.labels}
    for label in labels:
        if label.id not in present:
            item.labels.append(ItemLabel(label_id=label.id, source="human", created_by=user,
                                         created_at=now))


def _lock(item: Item) -> None:
    """Take the item's row lock, then read it afresh, so that decisions on one item run one after
    the other and each sees what the one before wrote.

    Two staff shown the same queue item decide on it at the same moment: without the lock both
    read "pending" and both write, the later silently overwriting the first (or failing on label
    rows the first removed). The suggestion batch locks its rows the same way. The UPDATE is the
    lock (SELECT ... FOR UPDATE does nothing on SQLite, where a write is what serialises).
    """
    db.session.execute(update(Item).where(Item.id == item.id).values(updated_at=utcnow()),
                       execution_options={"synchronize_session": False})
    db.session.expire(item)  # status, reviewer and labels reload, as committed before the lock


def decide(item: Item, action: str, label_ids: Iterable[int], user: str) -> LabelDecision:
    """Record one decision on ``item`` and return its ``LabelDecision`` (committed).

    accept: the chosen labels become the item's human labels (suggestions not chosen go) and the
    item is accepted; reject: the item is not for gifts; skip: it stays pending, at the back of
    the queue; edit: change a reviewed item's labels (a pending item edited is thereby accepted).
    Raises ``LabellingError`` for an unknown action, bad labels, or a queue decision on an item
    somebody already reviewed.
    """
    if action not in ACTIONS:
        raise LabellingError(f"Unknown action “{action}”: use one of {', '.join(ACTIONS)}.")
    _lock(item)
    if action != "edit" and item.status != "pending":
        raise AlreadyReviewed(f"“{item.name}” was already {item.status} by "
                             f"{item.reviewed_by or 'someone'}; it left the queue.")
    labels = _chosen_labels(label_ids) if action in ("accept", "edit") else []
    before = snapshot(item)
    now = utcnow()
    if action == "skip":
        item.skipped = True
    else:
        if action in ("accept", "edit"):
            _set_human_labels(item, labels, user, now)
        if action == "reject":
            item.status = "rejected"
        elif item.status == "pending":
            item.status = "accepted"
        item.skipped, item.reviewed_by, item.reviewed_at = False, user, now
    # After the flush the in-memory labels are what the database holds (defaults included),
    # so the snapshot needs no second read.
    db.session.flush()
    decision = LabelDecision(item_id=item.id, action=action, before=before, after=snapshot(item),
                             created_by=user, created_at=now)
    db.session.add(decision)
    _audit_decision(f"label.{action}", item, before, decision.after)
    db.session.commit()
    return decision


# --- undo -------------------------------------------------------------------------------------

def undo(decision_id: int) -> LabelDecision:
    """Undo one decision (or, for a bulk one, its whole batch) and return it.

    Raises ``LabellingError`` when there is no such decision or it was undone already, and
    ``UndoRefused`` when the item changed since the decision.
    """
    decision = db.session.get(LabelDecision, decision_id)
    if decision is None:
        raise LabellingError("There is no such decision: it may have been undone and removed.")
    if decision.batch_id:
        undo_batch(decision.batch_id)
        return decision
    if decision.undone_at is not None:
        raise LabellingError("That decision was already undone.")
    item = db.session.get(Item, decision.item_id)
    if snapshot(item) != decision.after:
        raise UndoRefused(f"“{item.name}” changed after this decision (someone edited it or a "
                          "later action touched it), so undo would overwrite that change. "
                          "Edit the item instead.")
    _restore({item.id: decision.before})
    decision.undone_at = utcnow()
    _audit_decision("label.undo", item, decision.after, decision.before,
                    undid=decision.action, decision=decision.id)
    db.session.commit()
    db.session.expire_all()  # the restore ran as Core statements behind the ORM's back
    return decision


def _queue_decisions(user: str):
    """Conditions for the user's queue decisions still in force (bulk ones have their own
    Undo, on the items table)."""
    return (LabelDecision.created_by == user, LabelDecision.undone_at.is_(None),
            LabelDecision.batch_id.is_(None))


def last_decision(user: str) -> LabelDecision | None:
    """The user's most recent queue decision that is not undone yet."""
    return db.session.scalars(
        select(LabelDecision).where(*_queue_decisions(user))
        .order_by(LabelDecision.id.desc()).limit(1)).first()


def undo_last(user: str) -> LabelDecision:
    """Undo the user's most recent queue decision still in force (see ``undo``)."""
    decision = last_decision(user)
    if decision is None:
        raise LabellingError("Nothing to undo: you have no decisions left to take back.")
    return undo(decision.id)


def recent_decisions(user: str, limit: int = 10) -> list[tuple[LabelDecision, Item]]:
    """The user's last ``limit`` queue decisions still in force, newest first, with their items."""
    query = (select(LabelDecision, Item).join(Item, Item.id == LabelDecision.item_id)
             .where(*_queue_decisions(user))
             .order_by(LabelDecision.id.desc()).limit(limit))
    return [(decision, item) for decision, item in db.session.execute(query)]


# --- bulk -------------------------------------------------------------------------------------

def _chunks(ids: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    """``ids`` in lists of at most ``size``."""
    chunk = []
    for item_id in ids:
        chunk.append(item_id)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bulk_after(state: dict, label: Label, siblings: set[int], user: str, now: datetime) -> dict:
    """The state after adding ``label`` as human; ``siblings`` are the labels it replaces (the
    other labels of a single-label group)."""
    kept = [entry for entry in state["labels"]
            if entry["label_id"] not in siblings and entry["label_id"] != label.id]
    kept.append({"label_id": label.id, "source": "human", "rule_id": None, "rule_name": None,
                 "model_version": None, "confidence": None, "created_by": user,
                 "created_at": _iso(now)})
    return {**state, "labels": sorted(kept, key=lambda e: e["label_id"])}


def _already_has(state: dict, label_id: int, siblings: set[int]) -> bool:
    """True when adding the label changes nothing (already human, nothing to replace)."""
    ids = {entry["label_id"]: entry["source"] for entry in state["labels"]}
    return ids.get(label_id) == "human" and not (siblings & ids.keys())


def bulk_apply(item_ids: Iterable[int], label_id: int, user: str) -> tuple[str, int]:
    """Add a label, as human, to every item in ``item_ids`` (an iterable, e.g. a query's ids).

    In a single-label group the label replaces the group's other label. Items that already carry
    it as a human label are left alone. Returns ``(batch_id, changed items)``; one commit.
    """
    label = db.session.get(Label, label_id)
    if label is None:
        raise LabellingError("That label no longer exists: reload the page and try again.")
    group = db.session.get(LabelGroup, label.group_id)
    siblings = set() if group.multi else {other.id for other in group.labels} - {label.id}
    batch_id, now, changed = uuid.uuid4().hex, utcnow(), 0
    for chunk in _chunks(item_ids):
        states = _snapshots(chunk)
        todo = {item_id: state for item_id, state in states.items()
                if not _already_has(state, label.id, siblings)}
        if not todo:
            continue
        ids = list(todo)
        db.session.execute(delete(ItemLabel).where(
            ItemLabel.item_id.in_(ids), ItemLabel.label_id.in_(siblings | {label.id})))
        db.session.execute(insert(ItemLabel.__table__), [
            {"item_id": item_id, "label_id": label.id, "source": "human", "created_by": user,
             "created_at": now} for item_id in ids])
        db.session.execute(insert(LabelDecision.__table__), [
            {"item_id": item_id, "action": "bulk", "batch_id": batch_id, "before": state,
             "after": _bulk_after(state, label, siblings, user, now), "created_by": user,
             "created_at": now} for item_id, state in todo.items()])
        changed += len(ids)
    if changed:
        audit.record("label.bulk_apply", "batch", batch_id,
                     {"label": f"{group.name}: {label.name}", "count": changed})
    db.session.commit()
    return batch_id, changed


def undo_batch(batch_id: str) -> tuple[int, int]:
    """Undo a bulk action: every item still as the batch left it goes back to its ``before``.

    Items changed since are left as they are (never clobbered). Returns ``(restored, refused)``.
    Raises ``LabellingError`` when the batch does not exist or was undone already.
    """
    base = select(LabelDecision.id, LabelDecision.item_id, LabelDecision.before,
                  LabelDecision.after).where(LabelDecision.batch_id == batch_id,
                                             LabelDecision.undone_at.is_(None))
    restored = refused = 0
    last_id = 0
    now = utcnow()
    while True:
        # Keyset pages over the batch, so a 100k-item batch never sits in memory at once.
        rows = db.session.execute(base.where(LabelDecision.id > last_id)
                                  .order_by(LabelDecision.id).limit(CHUNK)).all()
        if not rows:
            break
        last_id = rows[-1].id
        current = _snapshots([row.item_id for row in rows])
        ok = [row for row in rows if current.get(row.item_id) == row.after]
        refused += len(rows) - len(ok)
        if ok:
            _restore({row.item_id: row.before for row in ok})
            db.session.execute(update(LabelDecision).where(
                LabelDecision.id.in_([row.id for row in ok])).values(undone_at=now))
            restored += len(ok)
    if not restored and not refused:
        exists = db.session.scalar(select(LabelDecision.id).where(
            LabelDecision.batch_id == batch_id).limit(1))
        raise LabellingError("That bulk action was already undone." if exists else
                             "There is no such bulk action.")
    if restored:
        audit.record("label.bulk_undo", "batch", batch_id,
                     {"label": batch_label(batch_id), "count": restored, "refused": refused})
    db.session.commit()
    db.session.expire_all()
    return restored, refused


def batch_label(batch_id: str) -> str | None:
    """The label a batch added as "group: label" (for its messages), or None."""
    after = db.session.scalar(select(LabelDecision.after).where(
        LabelDecision.batch_id == batch_id).limit(1))
    if not after:
        return None
    human = [entry for entry in after["labels"] if entry["source"] == "human"]
    newest = max(human, key=lambda e: e["created_at"] or "", default=None)
    label = db.session.get(Label, newest["label_id"]) if newest else None
    return f"{label.group.name}: {label.name}" if label else None
