"""Tavern catalogue journey: search and filter as you type, edit a game inline with the
keyboard (a refused name, then a saved price), and import a file with bad rows."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from webapp.extensions import db

GAMES_WITH_BAD_ROWS = (
    "name,console,price,gameplay\n"
    "Celeste,Switch,4.99,Platform|Precision\n"     # Precision: a new style
    "Hades,Switch,not-a-price,Brawler\n"            # line 3: bad price
    "Into the Breach,PC,3.49,Turn Based Strategy;Tactical\n"
    ",PC,2.00,Puzzle\n"                              # line 5: no name
    "Tetris,Gameboy,18.99,\"Arcade|Puzzle\"\n"       # unchanged: already in the catalogue
)


def test_staff_searches_edits_inline_and_imports(page, live_app, screenshot_dir, tmp_path):
    from webapp.tavern.demo import load_demo_games

    with live_app.app_context():
        load_demo_games()
        db.session.remove()
    log_in(page, "staff")
    page.goto("/tavern/")
    page.locator("nav.subnav").get_by_role("link", name="Catalogue").click()
    expect(page).to_have_url(re.compile(r"/tavern/games$"))
    expect(page.locator(".match-count")).to_have_text("92")
    expect(page.locator('[data-bucket="premium"]')).to_have_text("17")
    page.evaluate("window.__sameDocument = true")

    # Search as you type, then narrow with the filters; the URL follows, the page stays.
    rows = page.locator("tr.game-row")
    filters = page.get_by_role("search")
    filters.get_by_label("Search by name").press_sequentially("zelda", delay=40)
    expect(rows).to_have_count(7)
    expect(page).to_have_url(re.compile(r"q=zelda"))
    filters.get_by_label("Budget").select_option("premium")
    expect(rows).to_have_count(3)
    expect(page).to_have_url(re.compile(r"budget=premium"))
    filters.get_by_label("Style").select_option("RPG")
    # The style leaves the same 3 rows, so wait for its answer by the URL it pushes (just before
    # the swap): a click on a row the swap then replaces would open its editor off the page.
    expect(page).to_have_url(re.compile(r"style=RPG"))
    expect(rows).to_have_count(3)
    expect(filters.get_by_label("Search by name")).to_have_value("zelda")  # the box stayed

    # Edit inline: Enter saves; a taken name is refused in the row (422), then fixed.
    row = page.locator('tr[data-name="The Legend of Zelda: Tears of the Kingdom"]')
    row.locator("td.name").click()
    editing = page.locator("tr.editing")
    expect(editing).to_have_count(1)
    name = editing.get_by_label("Name")
    name.fill("the legend of zelda: breath of the wild")
    name.press("Enter")
    expect(editing.get_by_text("There is already a game called")).to_be_visible()
    expect(page.locator("tr.editing").get_by_label("Name")).to_be_focused()
    page.locator("tr.editing").get_by_label("Name").fill(
        "The Legend of Zelda: Tears of the Kingdom")
    price = page.locator("tr.editing").get_by_label("Price per hour")
    price.fill("34.99")
    price.press("Enter")
    expect(page.locator("tr.editing")).to_have_count(0)
    expect(row.locator("td.price")).to_have_text("34.99")

    # Escape cancels without saving.
    row.locator("td.name").click()
    page.locator("tr.editing").get_by_label("Price per hour").fill("1.00")
    page.locator("tr.editing").get_by_label("Price per hour").press("Escape")
    expect(page.locator("tr.editing")).to_have_count(0)
    expect(row.locator("td.price")).to_have_text("34.99")
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(screenshot_dir / "tavern-catalogue.png"), full_page=True)

    # Import a plain file with two bad rows: the good ones go in, the bad ones are listed.
    path = tmp_path / "new-games.csv"
    path.write_text(GAMES_WITH_BAD_ROWS)
    page.locator("nav.subnav").get_by_role("link", name="Import").click()
    page.get_by_label("Games CSV").set_input_files(str(path))
    page.get_by_role("button", name="Import").click()
    result = page.locator("#import-result")
    expect(result.locator('[data-count="added"]')).to_have_text("2")
    expect(result.locator('[data-count="unchanged"]')).to_have_text("1")
    expect(result.locator('[data-count="rejects"]')).to_have_text("2")
    expect(result.locator('li[data-line="3"]')).to_contain_text("the price is not a number")
    expect(result.locator('li[data-line="5"]')).to_contain_text("the name is empty")
    expect(result.locator(".new-styles")).to_contain_text("Precision")
    expect(page).to_have_url(re.compile(r"/tavern/import/[0-9a-f]{32}$"))
    expect(page.locator("#import-history tbody tr")).to_have_count(1)
    page.screenshot(path=str(screenshot_dir / "tavern-import.png"), full_page=True)
    with page.expect_download() as download:
        result.get_by_role("link", name="Download the bad rows (CSV)").click()
    report = download.value.path().read_text(encoding="utf-8-sig")
    assert report.splitlines()[1].startswith("new-games.csv,3,")

    result.get_by_role("link", name="Open the catalogue").click()
    page.get_by_label("Search by name").press_sequentially("breach", delay=40)
    expect(page.locator('tr[data-name="Into the Breach"]')).to_contain_text("Tactical")
    expect(page.locator(".match-count")).to_have_text("1")


def test_a_slow_refusal_does_not_pull_focus_from_the_field_being_typed_in(page, live_app):
    # Regression: the "focus the first invalid field" step ran after a late 422 had settled,
    # while the user was already typing the price, so their keystrokes landed in the name.
    from webapp.tavern.demo import load_demo_games

    with live_app.app_context():
        load_demo_games()
        db.session.remove()
    log_in(page, "staff")
    page.goto("/tavern/games?q=zelda")

    def slow(route):
        if route.request.method == "POST":
            time.sleep(0.8)
        route.continue_()

    page.route(re.compile(r"/tavern/games/\d+$"), slow)
    page.locator('tr[data-name="The Legend of Zelda: Tears of the Kingdom"] td.name').click()
    name = page.locator("tr.editing").get_by_label("Name")
    name.fill("the legend of zelda: breath of the wild")
    name.press("Enter")  # refused (the name is taken), but only after 0.8 s
    page.locator("tr.editing").get_by_label("Price per hour").focus()  # the user moves on
    expect(page.locator("tr.editing").get_by_text("There is already a game called")) \
        .to_be_visible()
    page.wait_for_timeout(300)  # past htmx's settle, when focus would have been moved
    expect(page.locator("tr.editing").get_by_label("Price per hour")).to_be_focused()
