"""Gift journeys: fill a brief and watch proposals update live, swap and lock items, save a
bundle as a gift, edit its items and see the total; an infeasible brief says why."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.gift_fixtures import seed_brief_catalogue


def test_staff_builds_a_gift_from_a_brief(page, live_app, screenshot_dir):
    with live_app.app_context():
        seed_brief_catalogue()
    log_in(page, "staff")
    page.goto("/gifts/brief")
    page.evaluate("window.__sameDocument = true")
    proposals = page.locator("#proposals")
    expect(proposals).to_contain_text("No brief yet.")

    page.get_by_label("Client", exact=True).select_option(label="Acme Labs")
    page.get_by_label("Occasion", exact=True).select_option("onboarding")
    page.get_by_label("Budget per recipient, from").fill("30")
    page.get_by_label("to", exact=True).fill("60")
    page.get_by_label("coffee", exact=True).check()
    expect(proposals.locator("article.bundle")).to_have_count(3)
    expect(proposals).to_contain_text("theme: coffee")

    # Too small a budget: no bundle, and the reason in plain words.
    page.get_by_label("to", exact=True).fill("4")
    page.get_by_label("Budget per recipient, from").fill("1")
    expect(proposals).to_contain_text("No item under 4.00 matches 'coffee'.")
    page.get_by_label("Budget per recipient, from").fill("30")
    page.get_by_label("to", exact=True).fill("60")
    expect(proposals.locator("article.bundle")).to_have_count(3)

    first = proposals.locator("article.bundle").first
    swapped = first.locator(".bundle-line").first.get_attribute("data-item-id")
    first.locator(".bundle-line").first.get_by_role("button", name="Swap").click()
    expect(page.locator("#brief-state")).to_contain_text("1 item swapped out.")
    expect(proposals.locator(f'[data-item-id="{swapped}"]')).to_have_count(0)

    keep = proposals.locator("article.bundle").first.locator(".bundle-line").nth(1)
    kept_id = keep.get_attribute("data-item-id")
    keep.get_by_role("button", name=re.compile("^Lock")).click()
    kept = proposals.locator(f'article.bundle >> nth=0 >> [data-item-id="{kept_id}"]')
    expect(kept).to_have_class(re.compile("locked"))
    page.get_by_label("tea", exact=True).check()  # a new tick keeps the lock
    expect(proposals.locator("article.bundle").first.locator(
        f'[data-item-id="{kept_id}"]')).to_have_count(1)
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(screenshot_dir / "gifts-brief.png"), full_page=True)

    bundle = proposals.locator("article.bundle").first
    bundle.get_by_label("Gift name").fill("Acme welcome box")
    bundle.get_by_role("button", name="Save as gift").click()
    expect(page.get_by_role("heading", name="Acme welcome box")).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # the gift's page: edits stay on it

    total = page.locator(".gift-total strong")
    before = float(total.get_attribute("data-total"))
    quantity = page.locator("#gift-lines input[name=quantity]").first
    quantity.fill("3")
    quantity.dispatch_event("change")
    expect(total).not_to_have_attribute("data-total", f"{before:.2f}")
    after = float(total.get_attribute("data-total"))
    assert after > before

    page.get_by_label("Search items by name, vendor or category").fill("candle")
    add = page.locator("#picker-results").get_by_role("button", name=re.compile("^Add Candle")) \
        .first
    added = add.get_attribute("aria-label").removeprefix("Add ")
    add.click()
    expect(page.locator("#gift-lines")).to_contain_text(added)
    expect(page.locator(".gift-total")).not_to_contain_text("for 7")
    page.get_by_label("Budget per recipient (max)").fill("10")
    page.get_by_label("Recipients", exact=True).fill("7")
    page.locator("#gift-details").get_by_role("button", name="Save").click()
    expect(page.locator("#gift-details")).to_contain_text("Saved.")
    # No reload: the lines refresh themselves after the save (the gift-changed event).
    expect(page.locator(".over-budget")).to_contain_text("Over budget by")
    expect(page.locator(".over-budget")).to_contain_text("(max 10.00)")
    expect(page.locator(".gift-total")).to_contain_text("for 7")
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(screenshot_dir / "gifts-gift-editor.png"), full_page=True)

    page.locator("#gift-lines").get_by_role("button", name=f"Remove {added}").click()
    expect(page.locator("#gift-lines")).not_to_contain_text(added)
