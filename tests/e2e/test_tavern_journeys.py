"""Tavern journeys: ticking styles (with the mouse, or the keyboard alone) updates the top 5
live; the host records a suggested pick, or a game that was not suggested (also before any
model is trained)."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from tests.e2e.conftest import log_in
from webapp.extensions import db


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


def load_tavern_demo(live_app) -> None:
    """The reference catalogue, its synthetic picks and a games model (not the whole demo)."""
    from webapp.demo import train_if_untrained
    from webapp.demo.tavern import load_demo_picks
    from webapp.tavern.demo import load_demo_games

    with live_app.app_context():
        load_demo_games()
        load_demo_picks()
        train_if_untrained("games")
        db.session.remove()


def focused(page) -> dict:
    """The focused element's type and value."""
    return page.evaluate("({type: document.activeElement.type, name: document.activeElement.name,"
                         " value: document.activeElement.value})")


def tab_to_first(page, name: str, limit: int = 60) -> dict:
    """Press Tab until an input called ``name`` has the focus; its type and value."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if now["name"] == name:
            return now
    raise AssertionError(f"Tab never reached an input called {name!r}")


def test_host_ticks_styles_with_the_keyboard_only(page, live_app):
    load_tavern_demo(live_app)
    log_in(page, "host")
    page.goto("/tavern/")
    page.evaluate("window.__sameDocument = true")
    suggestions = page.locator("#suggestions")
    first = tab_to_first(page, "gameplay")
    assert first["type"] == "checkbox"
    page.keyboard.press("Space")
    expect(suggestions).to_contain_text(f"for a standard budget · {first['value']}")
    page.keyboard.press("Tab")
    second = focused(page)
    assert second["name"] == "gameplay" and second["value"] != first["value"]
    page.keyboard.press("Space")
    expect(suggestions).to_contain_text(
        f"for a standard budget · {first['value']}, {second['value']}")
    expect(suggestions.locator(".suggestion")).to_have_count(5)
    assert focused(page) == second  # the list changed beside the box, the focus stayed
    page.keyboard.press("Space")  # and unticking works the same way
    expect(suggestions.locator("h2")).to_have_text(f"Top 5 for a standard budget · {first['value']}")
    assert page.get_by_label(first["value"], exact=True).is_checked()
    assert page.evaluate("window.__sameDocument") is True


def record_something_else(page, game: str) -> None:
    """Record a pick with "They picked something else" and wait for the confirmation."""
    page.get_by_label("They picked something else").select_option(label=game)
    page.locator("#picks").get_by_role("button", name="Record").click()
    expect(page.locator("#picks")).to_contain_text(f"Recorded: they picked {game}.")


def ask_as_host(page, budget: str, style: str):
    """Log in as a host and tick a budget and one style; returns the suggestions' section."""
    log_in(page, "host")
    page.goto("/tavern/")
    page.get_by_label(budget).check()
    page.get_by_label(style, exact=True).check()
    return page.locator("#suggestions")


def the_real_pick():
    """The one pick a person recorded (the demo's synthetic ones aside)."""
    from webapp.tavern.models import GamePick

    return db.session.scalar(select(GamePick).where(GamePick.synthetic.is_(False)))


def test_host_records_a_game_that_was_not_suggested(page, live_app):
    load_tavern_demo(live_app)
    suggestions = ask_as_host(page, "Cheap", "Puzzle")
    expect(suggestions).to_contain_text("for a cheap budget · Puzzle")
    shown = suggestions.locator(".suggestion").evaluate_all(
        "items => items.map(item => item.dataset.game)")
    assert len(shown) == 5 and "Elden Ring" not in shown
    record_something_else(page, "Elden Ring")
    expect(page.locator("#picks li").first).to_contain_text("Elden Ring cheap · Puzzle")
    with live_app.app_context():
        pick = the_real_pick()
        assert (pick.game_name, pick.budget, pick.gameplay, pick.suggested, pick.created_by) == (
            "Elden Ring", "cheap", ["Puzzle"], shown, "host")
        assert pick.model_version
        db.session.remove()


def test_host_records_a_pick_before_any_model_is_trained(page, live_app):
    """No list yet, but the party's choice is still worth keeping (it trains the first model)."""
    from webapp.tavern.demo import load_demo_games

    with live_app.app_context():
        load_demo_games()
        db.session.remove()
    suggestions = ask_as_host(page, "Premium", "Puzzle")
    expect(suggestions).to_contain_text("No suggestions yet")
    expect(suggestions.locator('#suggest-query input[name="gameplay"]')).to_have_value("Puzzle")
    record_something_else(page, "Elden Ring")
    with live_app.app_context():
        pick = the_real_pick()
        assert (pick.game_name, pick.budget, pick.gameplay, pick.suggested, pick.model_version) == (
            "Elden Ring", "premium", ["Puzzle"], [], None)
        db.session.remove()
