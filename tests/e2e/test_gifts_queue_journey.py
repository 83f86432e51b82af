"""Gifts journeys: label 10 items with the keyboard alone, then undo; bulk apply, then undo."""

from __future__ import annotations

from decimal import Decimal

from playwright.sync_api import expect
from sqlalchemy import select

from tests.e2e.conftest import log_in
from tests.web.test_gifts_queue import make_groups, make_item, suggest
from webapp.extensions import db
from webapp.gifts import labelling
from webapp.gifts.models import Item, LabelDecision, gifts_settings


def seed_queue(app) -> tuple[list[int], dict[str, int]]:
    """12 pending items, least certain first in name order, each with a rule suggestion."""
    with app.app_context():
        labels = make_groups()
        settings = gifts_settings()
        settings.random_share = 0.0  # a deterministic order for the journey
        items = [make_item(f"Item {n:02d}", uncertainty=1 - n / 100, category="Coffee",
                           unit_price=Decimal("7.50")) for n in range(12)]
        db.session.flush()
        for item in items:
            suggest(item, labels["theme:coffee"])
        db.session.commit()
        ids = [item.id for item in items]
        label_ids = {name: label.id for name, label in labels.items()}
        db.session.remove()
    return ids, label_ids


def snapshot(app, item_id: int) -> dict:
    """The item's state, read from the database."""
    with app.app_context():
        state = labelling.snapshot(db.session.get(Item, item_id))
        db.session.remove()
    return state


def test_label_ten_items_with_the_keyboard_then_undo(page, live_app, screenshot_dir):
    ids, labels = seed_queue(live_app)
    log_in(page, "staff")
    page.goto("/gifts/queue")
    page.evaluate("window.__sameDocument = true")
    form = page.locator("#queue-form")
    flash = page.locator("#flash")
    expect(form).to_have_attribute("data-item-id", str(ids[0]))

    page.keyboard.press("?")  # the key help opens, and Escape closes it
    expect(page.locator("#queue-help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#queue-help")).to_be_hidden()

    # Keys: 1 coffee, 2 tea, 3 sweets (theme); 4 everyone, 5 executives (audience, one label).
    for n in range(10):
        expect(form).to_have_attribute("data-item-id", str(ids[n]))
        if n == 3:
            page.keyboard.press("x")
            expect(flash).to_contain_text(f"Rejected “Item {n:02d}”.")
        elif n == 6:
            page.keyboard.press(" ")
            expect(flash).to_contain_text(f"Skipped “Item {n:02d}”.")
        else:
            page.keyboard.press("2")  # tick tea, keep the suggested coffee
            page.keyboard.press("4")
            page.keyboard.press("5")  # executives replaces everyone (one-label group)
            if n == 0:
                page.screenshot(path=str(screenshot_dir / "gifts-queue.png"), full_page=True)
            page.keyboard.press("Enter")
            expect(flash).to_contain_text(f"Accepted “Item {n:02d}”.")
    expect(page.locator("#queue-progress [data-done]")).to_have_text("9")  # 8 accepted, 1 rejected
    expect(page.locator("#queue-sidebar li")).to_have_count(10)
    accepted = snapshot(live_app, ids[9])
    assert {(e["label_id"], e["source"]) for e in accepted["labels"]} == {
        (labels["theme:coffee"], "human"), (labels["theme:tea"], "human"),
        (labels["audience:executives"], "human")}

    page.keyboard.press("Backspace")  # the last accept is undone: item 09 is back as it was
    expect(flash).to_contain_text("Undone: accept of “Item 09”.")
    expect(form).to_have_attribute("data-item-id", str(ids[9]))
    expect(form.locator(f"input[value='{labels['theme:coffee']}']")).to_be_checked()
    expect(form.locator(f"input[value='{labels['theme:tea']}']")).not_to_be_checked()
    restored = snapshot(live_app, ids[9])
    assert restored["status"] == "pending"
    assert [(e["label_id"], e["source"], e["rule_name"]) for e in restored["labels"]] == [
        (labels["theme:coffee"], "rule", "coffee words")]

    page.keyboard.press("Control+z")  # and the one before
    expect(flash).to_contain_text("Undone: accept of “Item 08”.")
    expect(form).to_have_attribute("data-item-id", str(ids[8]))
    expect(page.locator("#queue-progress [data-done]")).to_have_text("7")
    assert page.evaluate("window.__sameDocument") is True  # no full reload at any point
    with live_app.app_context():
        undone = db.session.scalars(select(LabelDecision.item_id).where(
            LabelDecision.undone_at.is_not(None))).all()
        db.session.remove()
    assert sorted(undone) == [ids[8], ids[9]]


def test_keys_do_nothing_while_typing(page, live_app):
    ids, _ = seed_queue(live_app)
    log_in(page, "staff")
    page.goto("/gifts/queue")
    page.get_by_label("Queue order").focus()
    page.keyboard.press("x")
    page.keyboard.press("Enter")
    expect(page.locator("#queue-form")).to_have_attribute("data-item-id", str(ids[0]))
    assert snapshot(live_app, ids[0])["status"] == "pending"


def test_bulk_apply_to_a_filtered_selection_then_undo(page, live_app, screenshot_dir):
    with live_app.app_context():
        labels = make_groups()
        for n in range(30):
            make_item(f"Coffee {n:02d}", category="Coffee")
        for n in range(8):
            make_item(f"Tea {n:02d}", category="Tea")
        db.session.commit()
        db.session.remove()
    log_in(page, "staff")
    page.goto("/gifts/items")
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Category").select_option("Coffee")
    expect(page.locator(".match-count")).to_have_text("30")
    page.get_by_label("Label to add").select_option(label="theme: coffee")
    page.get_by_role("button", name="Add to all 30 matching…").click()
    expect(page.locator(".bulk-count")).to_have_text("30")
    page.get_by_role("button", name="Yes, add to 30 items").click()
    expect(page.locator("#bulk-panel")).to_contain_text("Added theme: coffee to 30 items.")
    expect(page.locator("#item-results .chip").first).to_contain_text("theme: coffee")
    page.screenshot(path=str(screenshot_dir / "gifts-items-bulk.png"), full_page=True)
    page.get_by_role("button", name="Undo").click()
    expect(page.locator("#bulk-panel")).to_contain_text("Undone: 30 items restored.")
    expect(page.locator("#item-results .chip")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True
    with live_app.app_context():
        assert db.session.scalar(select(LabelDecision.id).where(
            LabelDecision.undone_at.is_(None))) is None
        db.session.remove()
    assert labels  # the vocabulary existed for the bulk select
