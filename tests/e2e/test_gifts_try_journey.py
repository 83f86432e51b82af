"""Gifts journey: try the labeller. Staff type an item and watch the rules' and the label
model's suggestions follow each pause in typing, without a page load."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.web.test_gifts_try_labels import activate_label_model, add_rule, seed_vocabulary
from webapp.extensions import db


def seed(app) -> None:
    """The demo vocabulary, its two rules, and a rule on the "local" attribute."""
    with app.app_context():
        labels = seed_vocabulary()
        rule = add_rule("Local makers", "x", [labels["theme:local"]], priority=2)
        rule.condition = {"match": "all", "conditions": [{"field": "local", "op": "is_true"}]}
        db.session.commit()
        db.session.remove()


def test_type_a_title_and_watch_the_suggestions(page, live_app, screenshot_dir):
    seed(live_app)
    log_in(page, "staff")
    page.goto("/gifts/labels")
    page.get_by_role("link", name="Try the labeller").click()
    expect(page.get_by_role("heading", name="Try the labeller")).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    suggestions = page.locator("#try-suggestions")
    expect(suggestions).to_contain_text("Type a title")

    title = page.get_by_label("Title")
    title.press_sequentially("Coffee beans")
    theme = suggestions.locator('[data-group="theme"]')
    expect(theme.locator(".rule-suggestions .chip")).to_have_text(["coffee rule “Coffee things”"])
    expect(suggestions).to_contain_text("No label model yet — rules only")
    occasion = suggestions.locator('[data-group="occasion"]')
    expect(occasion.locator(".rule-suggestions")).to_contain_text("no rule matches")

    title.press_sequentially(", a welcome gift")  # each pause in typing asks again
    expect(occasion.locator(".rule-suggestions .chip")).to_have_count(1)
    expect(occasion.locator(".rule-suggestions")).to_contain_text("onboarding")
    audience = suggestions.locator('[data-group="audience"]')
    expect(audience.locator(".rule-suggestions")).to_contain_text("new hires")

    page.get_by_label("Local").check()  # a tick changes no value: it asks on change
    expect(theme.locator(".rule-suggestions .chip")).to_have_count(2)
    expect(theme.locator(".rule-suggestions")).to_contain_text("rule “Local makers”")

    _, version = activate_label_model(live_app)  # an admin trains a model meanwhile
    page.get_by_label("Vendor").press_sequentially("Northside Roasters")
    expect(suggestions.locator(".model-state")).to_contain_text(version)
    expect(suggestions).not_to_contain_text("rules only")
    model_theme = theme.locator(".model-suggestions .chip")
    expect(model_theme.first).to_be_visible()
    expect(model_theme.first).to_contain_text("%")
    expect(audience.locator(".model-suggestions .chip")).to_have_count(1)  # one label per item

    title.fill("")
    expect(suggestions).to_contain_text("Type a title")
    title.press_sequentially("Green tea tin")
    expect(theme.locator(".rule-suggestions")).not_to_contain_text("coffee")
    page.screenshot(path=str(screenshot_dir / "gifts-try-labels.png"), full_page=True)
    assert page.evaluate("window.__sameDocument") is True  # no full page load on the way
