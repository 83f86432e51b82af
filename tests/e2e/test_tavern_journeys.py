"""Tavern journeys: ticking styles updates the top 5 live; the host records a pick."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import log_in


def test_host_ticks_styles_and_records_a_pick(page, live_app, screenshot_dir):
    result = live_app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    log_in(page, "host")
    page.locator("nav.nav").get_by_role("link", name="Tavern").click()
    page.locator("nav.subnav").get_by_role("link", name="Suggestions").click()
    page.evaluate("window.__sameDocument = true")
    suggestions = page.locator("#suggestions")
    page.get_by_label("Premium").check()
    page.get_by_label("Adventure", exact=True).check()
    expect(suggestions).to_contain_text("for a premium budget · Adventure")
    first_before = suggestions.locator(".suggestion").first.get_attribute("data-game")
    page.get_by_label("Sport", exact=True).check()  # every tick updates the list at once
    expect(suggestions).to_contain_text("for a premium budget · Adventure, Sport")
    expect(suggestions.locator(".suggestion")).to_have_count(5)
    expect(suggestions.locator(".reason").first).to_contain_text("budget")
    page.screenshot(path=str(screenshot_dir / "tavern-suggestions.png"), full_page=True)

    picked = suggestions.locator(".suggestion").nth(1)
    name = picked.get_attribute("data-game")
    picked.get_by_role("button", name="They picked this").click()
    expect(page.locator("#picks")).to_contain_text(f"Recorded: they picked {name}.")
    expect(page.locator("#picks li").first).to_contain_text("premium · Adventure, Sport")
    assert page.evaluate("window.__sameDocument") is True
    assert first_before  # the first list really rendered before the second tick
