"""The labelling queue: next item by each order, decisions, undo, sidebar edit, access."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.gifts import labelling
from webapp.gifts.models import (
    Item,
    ItemLabel,
    Label,
    LabelDecision,
    LabelGroup,
    gifts_settings,
    name_key,
)
from webapp.gifts.queue import next_item

BASE_TIME = datetime(2026, 1, 1, 12, 0)


# --- a small factory --------------------------------------------------------------------------

def make_groups() -> dict[str, Label]:
    """theme (multi: coffee, tea, sweets) and audience (single: everyone, executives)."""
    labels = {}
    for position, (group_name, multi, names) in enumerate([
            ("theme", True, ("coffee", "tea", "sweets")),
            ("audience", False, ("everyone", "executives"))]):
        group = LabelGroup(name=group_name, name_key=name_key(group_name), multi=multi,
                           position=position)
        db.session.add(group)
        for index, name in enumerate(names):
            label = Label(name=name, name_key=name_key(name), position=index)
            group.labels.append(label)
            labels[f"{group_name}:{name}"] = label
    db.session.commit()
    return labels


def make_item(name: str, **fields) -> Item:
    """A pending item (added, not committed)."""
    values = {"name": name, "name_key": name_key(name), "vendor": "Roastery",
              "unit_price": Decimal("9.50"), "source": "test.csv", "source_row": 2, **fields}
    values.setdefault("vendor_key", name_key(values["vendor"]))
    item = Item(**values)
    db.session.add(item)
    return item


def suggest(item: Item, label: Label, source: str = "rule", **provenance) -> ItemLabel:
    """A suggestion on an item (rule by default)."""
    defaults = ({"rule_name": "coffee words"} if source == "rule" else
                {"model_version": "20260101-abcdef12", "confidence": 0.83}
                if source == "model" else {"created_by": "someone"})
    row = ItemLabel(label_id=label.id, source=source, **{**defaults, **provenance})
    item.labels.append(row)
    return row


@pytest.fixture
def labels(app):
    """The vocabulary, inside an app context."""
    with app.app_context():
        yield make_groups()


def label_state(item_id: int) -> dict:
    """The item's snapshot, freshly read."""
    db.session.expire_all()
    return labelling.snapshot(db.session.get(Item, item_id))


def decide_url(item_id: int) -> str:
    return f"/gifts/queue/items/{item_id}/decide"


# --- next item --------------------------------------------------------------------------------

def test_least_certain_first_and_skipped_last(labels):
    sure = make_item("Sure thing", uncertainty=0.1)
    unsure = make_item("Unsure thing", uncertainty=0.9)
    tie_later = make_item("Also unsure", uncertainty=0.9)
    skipped = make_item("Skipped", uncertainty=1.0, skipped=True)
    db.session.commit()
    assert next_item("uncertain").id == unsure.id  # ties go to the lower id
    unsure.status = "accepted"
    db.session.commit()
    assert next_item("uncertain").id == tie_later.id
    tie_later.status = sure.status = "rejected"
    db.session.commit()
    assert next_item("uncertain").id == skipped.id  # skipped only once nothing else is left
    skipped.status = "accepted"
    db.session.commit()
    assert next_item("uncertain") is None


def test_newest_and_vendor_orders(labels):
    old = make_item("Old", vendor="Zeta", created_at=BASE_TIME)
    new = make_item("New", vendor="Beta", created_at=BASE_TIME + timedelta(days=1))
    newest_skipped = make_item("Newest but skipped", vendor="Alpha", skipped=True,
                               created_at=BASE_TIME + timedelta(days=2))
    db.session.commit()
    assert next_item("newest").id == new.id
    assert next_item("vendor").id == new.id  # Beta before Zeta; Alpha was skipped
    new.status = "accepted"
    db.session.commit()
    assert next_item("newest").id == old.id
    assert next_item("vendor").id == old.id
    old.status = "accepted"
    db.session.commit()
    assert next_item("vendor").id == newest_skipped.id


def test_random_share_picks_any_pending_item(labels):
    items = [make_item(f"Item {n}", uncertainty=n / 10) for n in range(10)]
    items[3].status = "accepted"
    db.session.commit()
    rng = random.Random(3)
    picked = {next_item("uncertain", random_share=1.0, rng=rng).id for _ in range(60)}
    assert items[3].id not in picked  # only pending items
    assert len(picked) >= 5  # not always the least certain one
    assert {next_item("uncertain", random_share=0.0).id} == {items[9].id}


def test_the_queue_shows_the_next_item_with_its_suggestions(client, auth, app, labels):
    auth.login("staff")
    item = make_item("Fresh <b>Roast</b> Coffee", uncertainty=0.7, image_url="https://img.example/c.jpg",
                     description="Whole beans", category="Coffee", local=True)
    db.session.flush()
    suggest(item, labels["theme:coffee"])
    suggest(item, labels["audience:everyone"], source="model")
    db.session.commit()
    page = client.get("/gifts/queue").get_data(as_text=True)
    assert "Fresh &lt;b&gt;Roast&lt;/b&gt; Coffee" in page
    assert 'referrerpolicy="no-referrer"' in page and 'loading="lazy"' in page
    assert "rule: coffee words" in page and "model abcdef12 · 83%" in page
    coffee = re.search(rf'<input[^>]*value="{labels["theme:coffee"].id}"[^>]*>', page)[0]
    tea = re.search(rf'<input[^>]*value="{labels["theme:tea"].id}"[^>]*>', page)[0]
    assert "checked" in coffee and 'data-key="1"' in coffee
    assert "checked" not in tea and 'data-key="2"' in tea
    assert "queue.js" in page and "<script>" not in page  # hotkeys come from a file, no inline JS
    assert "test.csv, row 2" in page


def test_script_tags_in_an_item_are_escaped(client, auth, labels):
    auth.login("staff")
    make_item("<script>alert(1)</script>", description="<img src=x onerror=alert(2)>")
    db.session.commit()
    page = client.get("/gifts/queue").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page


def test_empty_states(client, auth, app):
    auth.login("staff")
    with app.app_context():
        page = client.get("/gifts/queue").get_data(as_text=True)
        assert "No label groups yet." in page
        make_groups()
        page = client.get("/gifts/queue").get_data(as_text=True)
        assert "Nothing to label." in page and "import a catalogue" in page


# --- decisions --------------------------------------------------------------------------------

def test_accept_makes_chosen_labels_human_and_swaps_oob(htmx_client, auth, labels):
    auth.login("staff")
    first = make_item("First", uncertainty=0.9)
    second = make_item("Second", uncertainty=0.5)
    db.session.flush()
    suggest(first, labels["theme:coffee"])
    suggest(first, labels["theme:tea"])
    db.session.commit()
    response = htmx_client.post(decide_url(first.id), data={
        "action": "accept", "label_ids": [labels["theme:coffee"].id, labels["audience:everyone"].id]})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body and "HX-Request" in response.headers["Vary"]
    assert 'id="queue-item"' in body and "Second" in body
    assert re.search(r'id="queue-progress"[^>]*hx-swap-oob="true"', body)
    assert re.search(r'id="queue-sidebar"[^>]*hx-swap-oob="true"', body)
    assert re.search(r'id="flash"[^>]*hx-swap-oob="true"', body)
    assert "Accepted “First”." in body and "1</strong> of" in body
    state = label_state(first.id)
    assert state["status"] == "accepted" and state["reviewed_by"] == "test-staff"
    assert [(e["label_id"], e["source"], e["created_by"]) for e in state["labels"]] == [
        (labels["theme:coffee"].id, "human", "test-staff"),
        (labels["audience:everyone"].id, "human", "test-staff")]
    decision = db.session.scalars(select(LabelDecision)).one()
    assert decision.action == "accept" and decision.after == state
    assert {e["source"] for e in decision.before["labels"]} == {"rule"}
    assert second.id  # still the next one


def test_reject_and_skip_write_decisions(htmx_client, auth, labels):
    auth.login("staff")
    item = make_item("Maybe", uncertainty=0.9)
    other = make_item("Other", uncertainty=0.5)
    db.session.commit()
    body = htmx_client.post(decide_url(item.id), data={"action": "skip"}).get_data(as_text=True)
    assert "Skipped “Maybe”." in body and f'data-item-id="{other.id}"' in body
    assert label_state(item.id)["skipped"] is True
    assert label_state(item.id)["status"] == "pending"
    body = htmx_client.post(decide_url(other.id), data={"action": "reject"}).get_data(as_text=True)
    assert "Rejected “Other”." in body and f'data-item-id="{item.id}"' in body  # skipped last
    assert label_state(other.id)["status"] == "rejected"
    actions = db.session.scalars(select(LabelDecision.action).order_by(LabelDecision.id)).all()
    assert actions == ["skip", "reject"]


def test_two_labels_of_a_single_group_are_refused_in_place(htmx_client, auth, labels):
    auth.login("staff")
    item = make_item("Pen")
    db.session.commit()
    response = htmx_client.post(decide_url(item.id), data={
        "action": "accept",
        "label_ids": [labels["audience:everyone"].id, labels["audience:executives"].id,
                      labels["theme:tea"].id]})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "“audience” takes one label only" in body and f'data-item-id="{item.id}"' in body
    tea = re.search(rf'<input[^>]*value="{labels["theme:tea"].id}"[^>]*>', body)[0]
    assert "checked" in tea  # the ticks survive
    assert label_state(item.id)["status"] == "pending"
    assert db.session.scalar(select(LabelDecision.id)) is None


def test_a_decision_on_an_item_reviewed_meanwhile_is_refused(htmx_client, auth, labels):
    auth.login("staff")
    item = make_item("Taken", status="accepted", reviewed_by="colleague")
    db.session.commit()
    response = htmx_client.post(decide_url(item.id), data={"action": "reject"})
    assert response.status_code == 409
    assert "already accepted by colleague" in response.get_data(as_text=True)
    assert label_state(item.id)["status"] == "accepted"


def test_no_js_posts_redirect(client, auth, labels):
    auth.login("staff")
    item = make_item("Plain")
    db.session.commit()
    response = client.post(decide_url(item.id), data={"action": "accept",
                                                      "label_ids": [labels["theme:tea"].id]})
    assert response.status_code == 303 and response.headers["Location"].endswith("/gifts/queue")
    page = client.get("/gifts/queue").get_data(as_text=True)
    assert "Accepted “Plain”." in page
    response = client.post("/gifts/queue/undo")
    assert response.status_code == 303 and f"item_id={item.id}" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'data-item-id="{item.id}"' in page and "Undone: accept of “Plain”." in page
    response = client.post("/gifts/queue/order", data={"order": "vendor"})
    assert response.status_code == 303
    assert gifts_settings().queue_order == "vendor"


# --- undo -------------------------------------------------------------------------------------

def test_undo_restores_labels_with_their_provenance(htmx_client, auth, labels):
    auth.login("staff")
    item = make_item("Mug", uncertainty=0.9)
    make_item("Next one", uncertainty=0.1)
    db.session.flush()
    suggest(item, labels["theme:coffee"])
    suggest(item, labels["audience:everyone"], source="model")
    suggest(item, labels["theme:sweets"], source="human", created_by="ann",
            created_at=BASE_TIME)
    db.session.commit()
    before = label_state(item.id)
    htmx_client.post(decide_url(item.id), data={
        "action": "accept", "label_ids": [labels["theme:tea"].id, labels["theme:sweets"].id]})
    after = label_state(item.id)
    assert after != before
    sweets = next(e for e in after["labels"] if e["label_id"] == labels["theme:sweets"].id)
    assert sweets["created_by"] == "ann"  # a human label keeps its author
    response = htmx_client.post("/gifts/queue/undo")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Undone: accept of “Mug”." in body
    assert f'data-item-id="{item.id}"' in body  # the item is back in front
    assert label_state(item.id) == before
    model_row = next(e for e in before["labels"] if e["source"] == "model")
    assert model_row["model_version"] == "20260101-abcdef12" and model_row["confidence"] == 0.83
    assert db.session.scalars(select(LabelDecision)).one().undone_at is not None
    assert htmx_client.post("/gifts/queue/undo").status_code == 409  # nothing left to undo


def test_undo_is_refused_when_the_item_changed_since(htmx_client, auth, labels):
    auth.login("staff")
    item = make_item("Tea box")
    db.session.commit()
    htmx_client.post(decide_url(item.id), data={"action": "accept",
                                                "label_ids": [labels["theme:tea"].id]})
    decision = db.session.scalars(select(LabelDecision)).one()
    # A colleague adds a label afterwards.
    changed = db.session.get(Item, item.id)
    changed.labels.append(ItemLabel(label_id=labels["theme:sweets"].id, source="human",
                                    created_by="colleague"))
    db.session.commit()
    kept = label_state(item.id)
    response = htmx_client.post(f"/gifts/queue/decisions/{decision.id}/undo")
    assert response.status_code == 409
    assert "changed after this decision" in response.get_data(as_text=True)
    assert label_state(item.id) == kept
    assert db.session.get(LabelDecision, decision.id).undone_at is None


def test_undo_of_someone_elses_decision_is_404(client, auth, labels):
    item = make_item("Theirs")
    db.session.commit()
    decision = labelling.decide(item, "reject", [], "another")
    auth.login("staff")
    assert client.post(f"/gifts/queue/decisions/{decision.id}/undo").status_code == 404
    assert client.get(f"/gifts/queue/decisions/{decision.id}/edit").status_code == 404


def test_undo_chain_goes_back_step_by_step(auth, labels):
    item = make_item("Chain")
    db.session.commit()
    original = label_state(item.id)
    labelling.decide(item, "skip", [], "ann")
    skipped = label_state(item.id)
    labelling.decide(db.session.get(Item, item.id), "accept", [labels["theme:tea"].id], "ann")
    labelling.undo_last("ann")
    assert label_state(item.id) == skipped
    labelling.undo_last("ann")
    assert label_state(item.id) == original


# --- sidebar edit -----------------------------------------------------------------------------

def test_edit_from_the_sidebar(htmx_client, auth, labels):
    auth.login("staff")
    item = make_item("Notebook")
    db.session.commit()
    htmx_client.post(decide_url(item.id), data={"action": "accept",
                                                "label_ids": [labels["theme:tea"].id]})
    decision = db.session.scalars(select(LabelDecision)).one()
    form = htmx_client.get(f"/gifts/queue/decisions/{decision.id}/edit").get_data(as_text=True)
    assert 'id="queue-sidebar"' in form and "Save labels" in form and "<html" not in form
    response = htmx_client.post(decide_url(item.id), data={
        "action": "edit", "decision_id": decision.id,
        "label_ids": [labels["theme:coffee"].id, labels["audience:executives"].id]})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith('<aside id="queue-sidebar"')
    assert "Saved the labels of “Notebook”." in body
    state = label_state(item.id)
    assert state["status"] == "accepted"
    assert {e["label_id"] for e in state["labels"]} == {labels["theme:coffee"].id,
                                                        labels["audience:executives"].id}
    edit = db.session.scalars(select(LabelDecision).where(LabelDecision.action == "edit")).one()
    assert edit.before == decision.after
    # The first decision can no longer be undone (the edit came after); the edit can.
    assert htmx_client.post(f"/gifts/queue/decisions/{decision.id}/undo").status_code == 409
    assert htmx_client.post("/gifts/queue/undo").status_code == 200
    assert label_state(item.id) == decision.after


def test_sidebar_edit_without_javascript(client, htmx_client, auth, labels):
    auth.login("staff")
    item = make_item("Scarf")
    db.session.commit()
    decision = labelling.decide(item, "reject", [], "test-staff")
    page = client.get(f"/gifts/queue/decisions/{decision.id}/edit").get_data(as_text=True)
    assert "<html" in page and "Save labels" in page
    response = client.post(decide_url(item.id), data={
        "action": "edit", "decision_id": decision.id, "label_ids": [labels["theme:tea"].id]})
    assert response.status_code == 303
    state = label_state(item.id)
    assert state["status"] == "rejected"  # editing labels keeps the verdict
    assert [e["label_id"] for e in state["labels"]] == [labels["theme:tea"].id]
    cancel = htmx_client.get("/gifts/queue/sidebar").get_data(as_text=True)
    assert cancel.lstrip().startswith('<aside id="queue-sidebar"') and "Save labels" not in cancel


def test_a_bad_sidebar_edit_stays_open_with_the_reason(htmx_client, auth, labels):
    auth.login("staff")
    item = make_item("Bottle")
    db.session.commit()
    decision = labelling.decide(item, "accept", [], "test-staff")
    response = htmx_client.post(decide_url(item.id), data={
        "action": "edit", "decision_id": decision.id,
        "label_ids": [labels["audience:everyone"].id, labels["audience:executives"].id]})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "“audience” takes one label only" in body and "Save labels" in body


# --- access -----------------------------------------------------------------------------------

def test_hosts_cannot_use_the_queue(client, auth, labels):
    item = make_item("Secret")
    db.session.commit()
    decision = labelling.decide(item, "skip", [], "test-host")
    auth.login("host")
    for method, url in [("get", "/gifts/queue"), ("post", decide_url(item.id)),
                        ("post", "/gifts/queue/undo"), ("post", "/gifts/queue/order"),
                        ("post", f"/gifts/queue/decisions/{decision.id}/undo"),
                        ("get", f"/gifts/queue/decisions/{decision.id}/edit"),
                        ("get", "/gifts/queue/sidebar")]:
        assert getattr(client, method)(url, data={"action": "accept"}).status_code == 403, url
    assert label_state(item.id)["skipped"] is True


def test_the_order_select_saves_the_order(htmx_client, auth, labels):
    auth.login("staff")
    make_item("A", vendor="Zeta", uncertainty=0.9)
    by_vendor = make_item("B", vendor="Alpha", uncertainty=0.1)
    db.session.commit()
    response = htmx_client.post("/gifts/queue/order", data={"order": "vendor"})
    body = response.get_data(as_text=True)
    assert f'data-item-id="{by_vendor.id}"' in body and "Queue order: by vendor." in body
    assert htmx_client.post("/gifts/queue/order", data={"order": "random"}).status_code == 422


def test_the_sidebar_keeps_the_last_10(htmx_client, auth, labels):
    """Twelve decisions: the sidebar (in the decision's own answer and on its own) lists the
    last ten, newest first, each with its Edit link and Undo."""
    auth.login("staff")
    items = [make_item(f"Item {n:02d}", uncertainty=1 - n / 100) for n in range(1, 13)]
    db.session.commit()
    for item in items:
        response = htmx_client.post(decide_url(item.id), data={
            "action": "accept", "label_ids": [labels["theme:tea"].id]})
        assert response.status_code == 200
    expected = [f"Item {n:02d}" for n in range(12, 2, -1)]
    for body in (response.get_data(as_text=True),
                 htmx_client.get("/gifts/queue/sidebar").get_data(as_text=True)):
        sidebar = body[body.index('<aside id="queue-sidebar"'):]
        sidebar = sidebar[:sidebar.index("</aside>")]
        assert re.findall(r'<span class="decision-item">([^<]+)</span>', sidebar) == expected
        assert sidebar.count(">Edit</a>") == sidebar.count(">Undo</button>") == 10
    assert len(db.session.scalars(select(LabelDecision)).all()) == 12
