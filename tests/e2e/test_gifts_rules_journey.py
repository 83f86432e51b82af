"""Gifts journey: write a rule with its live preview, save it, apply rules, see what it labelled."""

from __future__ import annotations

from decimal import Decimal

from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from webapp.extensions import db
from webapp.gifts.models import Item, Label, LabelGroup

#: (name, price, status): five coffee items, three under 20 and pending, one under 20 but
#: already accepted (never touched by rules), and two items that are not coffee.
CATALOGUE = [
    ("House blend coffee", "12.00", "pending"),
    ("Decaf coffee beans", "15.50", "pending"),
    ("Coffee grinder", "45.00", "pending"),
    ("Coffee filter papers", "4.00", "pending"),
    ("Single origin coffee", "18.00", "accepted"),
    ("Green tea tin", "12.00", "pending"),
    ("Branded notebook", "8.00", "pending"),
]


def seed(app) -> None:
    """A theme group with coffee and tea, and the catalogue above."""
    with app.app_context():
        theme = LabelGroup(name="theme", name_key="theme", multi=True, position=1)
        db.session.add(theme)
        for position, name in enumerate(("coffee", "tea")):
            db.session.add(Label(group=theme, name=name, name_key=name, position=position))
        for name, price, status in CATALOGUE:
            db.session.add(Item(name=name, name_key=name.lower(), vendor="Roastery",
                                vendor_key="roastery", unit_price=Decimal(price), status=status))
        db.session.commit()
        db.session.remove()


def test_write_a_rule_with_its_preview(page, live_app, screenshot_dir):
    seed(live_app)
    log_in(page, "staff")
    page.goto("/gifts/rules")
    page.evaluate("window.__sameDocument = true")
    preview = page.locator("#rule-preview")
    expect(preview).to_contain_text("Choose a field and a value")

    page.get_by_label("Name", exact=True).fill("Cheap coffee")
    page.get_by_label("Condition 1 field").select_option("text")
    page.get_by_label("Condition 1 operator").select_option("contains")
    page.get_by_label("Condition 1 value").press_sequentially("coffee")
    expect(preview.locator(".preview-pending")).to_have_text("4")
    expect(preview.locator(".preview-total")).to_have_text("5")
    expect(preview).to_contain_text("Coffee grinder")

    page.get_by_label("Condition 2 field").select_option("price")
    page.get_by_label("Condition 2 operator").select_option("lt")
    page.get_by_label("Condition 2 value").fill("20")
    expect(preview.locator(".preview-pending")).to_have_text("3")
    expect(preview).to_contain_text('name/description contains "coffee" and price < 20')
    expect(preview).not_to_contain_text("Coffee grinder")
    page.get_by_label("coffee", exact=True).check()
    page.screenshot(path=str(screenshot_dir / "gifts-rules.png"), full_page=True)
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("#rule-form")).to_contain_text("Saved “Cheap coffee”")
    expect(page.get_by_label("Name", exact=True)).to_have_value("")  # ready for the next rule
    row = page.locator("tr.rule-row", has_text="Cheap coffee")
    expect(row).to_contain_text('name/description contains "coffee" and price < 20')
    expect(row.locator(".items-labelled")).to_have_text("0")

    page.get_by_role("button", name="Apply rules").click()
    expect(page.locator("#apply-card")).to_contain_text("3 of 6 pending items labelled by 1 rule",
                                                        timeout=20_000)
    expect(row.locator(".items-labelled")).to_have_text("3")
    assert page.evaluate("window.__sameDocument") is True  # no full page load on the way


def test_the_vocabulary_shows_live_sources_and_refuses_to_delete_a_used_label(page, live_app,
                                                                               screenshot_dir):
    seed(live_app)
    log_in(page, "staff")
    page.goto("/gifts/labels")
    theme = page.locator("section.label-group", has_text="theme")
    expect(theme.locator(".live-source")).to_contain_text("rules: a label has only 0 human labels")
    page.get_by_label("New label in theme").fill("sweets")
    page.get_by_role("button", name="Add label").click()
    expect(theme).to_contain_text("Added “sweets”.")
    expect(theme.locator("tr[data-label='sweets']")).to_have_count(1)
    page.get_by_label("Human labels per label before the model takes over a group").fill("5")
    page.get_by_role("button", name="Save settings").click()
    expect(theme.locator(".live-source")).to_contain_text("the model takes over at 5")
    page.screenshot(path=str(screenshot_dir / "gifts-labels.png"), full_page=True)
