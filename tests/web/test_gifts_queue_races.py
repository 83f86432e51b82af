"""Queue decisions that race: found by the soak (bench/soak.py), where staff shown the same
item decided on it at once and both got 200 (the first one's labels silently lost) or a 500.

Each test makes the other party's write land, on its own connection, between the moment the
item was read and the moment the decision writes: the interleaving the soak hit by chance.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, select, update

from tests.web.test_gifts_queue import decide_url, label_state, labels, make_item, suggest
from webapp.extensions import db
from webapp.gifts import labelling, queue
from webapp.gifts.models import Item, ItemLabel, LabelDecision

__all__ = ["labels"]  # the fixture, imported for pytest


def colleague_accepts(item_id: int, label_id: int) -> None:
    """Another member of staff accepts the item, committed on another connection."""
    with db.engine.begin() as conn:
        conn.execute(update(Item).where(Item.id == item_id)
                     .values(status="accepted", reviewed_by="colleague"))
        conn.execute(delete(ItemLabel).where(ItemLabel.item_id == item_id))
        conn.execute(insert(ItemLabel), [{"item_id": item_id, "label_id": label_id,
                                          "source": "human", "created_by": "colleague"}])


def test_a_decision_racing_a_colleagues_accept_is_refused_not_written_over(labels):
    item = make_item("Contested")
    db.session.commit()
    item = db.session.get(Item, item.id)
    assert item.status == "pending" and item.labels == []  # read, as the view reads it
    colleague_accepts(item.id, labels["theme:tea"].id)
    with pytest.raises(labelling.AlreadyReviewed, match="already accepted by colleague"):
        labelling.decide(item, "accept", [labels["theme:coffee"].id], "me")
    db.session.rollback()
    state = label_state(item.id)
    assert state["reviewed_by"] == "colleague"
    assert [(e["label_id"], e["created_by"]) for e in state["labels"]] == [
        (labels["theme:tea"].id, "colleague")]
    assert db.session.scalar(select(LabelDecision.id)) is None


def test_an_accept_after_the_suggestion_batch_replaced_the_labels_keeps_only_the_chosen(labels):
    item = make_item("Retagged")
    db.session.flush()
    suggest(item, labels["theme:coffee"])
    db.session.commit()
    item = db.session.get(Item, item.id)
    assert [row.source for row in item.labels] == ["rule"]  # read, as the queue shows it
    with db.engine.begin() as conn:  # the batch swaps the rule's label for the model's
        conn.execute(delete(ItemLabel).where(ItemLabel.item_id == item.id))
        conn.execute(insert(ItemLabel), [{"item_id": item.id, "label_id": labels["theme:tea"].id,
                                          "source": "model", "model_version": "v2",
                                          "confidence": 0.9}])
    labelling.decide(item, "accept", [labels["theme:coffee"].id], "me")
    state = label_state(item.id)
    assert state["status"] == "accepted"
    assert [(e["label_id"], e["source"]) for e in state["labels"]] == [
        (labels["theme:coffee"].id, "human")]


def test_two_staff_deciding_on_one_item_get_200_then_409(htmx_client, auth, labels,
                                                         monkeypatch):
    auth.login("staff")
    item = make_item("Shown to both")
    db.session.commit()
    item_id, tea = item.id, labels["theme:tea"].id
    read = queue.item_or_404

    def read_then_colleague_decides(wanted: int) -> Item:
        found = read(wanted)  # this request has read the item as pending...
        colleague_accepts(wanted, tea)  # ...and the colleague's accept commits now
        return found

    monkeypatch.setattr(queue, "item_or_404", read_then_colleague_decides)
    response = htmx_client.post(decide_url(item_id), data={
        "action": "accept", "label_ids": [labels["theme:coffee"].id]})
    assert response.status_code == 409
    assert "already accepted by colleague" in response.get_data(as_text=True)
    state = label_state(item_id)
    assert state["reviewed_by"] == "colleague"
    assert [e["label_id"] for e in state["labels"]] == [tea]
    assert db.session.scalar(select(LabelDecision.id)) is None
