"""Pizzeria journeys: edit nights inline with the keyboard, delete with undo, exclusions."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.support import add_nights
from webapp.extensions import db


def load_week(live_app):
    from webapp.demo.pizzeria import reference_week

    with live_app.app_context():
        add_nights(reference_week())
        db.session.remove()


def test_host_edits_a_night_inline_with_the_keyboard(page, live_app, screenshot_dir):
    load_week(live_app)
    log_in(page, "host")
    page.goto("/pizzeria/nights")
    page.evaluate("window.__sameDocument = true")
    row = page.locator('tr[data-date="2022-12-19"]')
    row.get_by_text("Mon 2022-12-19").click()  # click a cell: the row turns into inputs
    editing = page.locator("tr.editing")
    expect(editing).to_have_count(1)
    date = editing.get_by_label("Date")
    date.fill("2022-12-20")
    date.press("Enter")  # Enter saves; the server refuses with 422, shown in the row
    expect(editing.get_by_text("There is already a night on 2022-12-20.")).to_be_visible()
    editing = page.locator("tr.editing")
    # The app moves focus to the invalid field when the row has settled (20 ms after the
    # swap); typing before that would race with it (keys would land in the date).
    expect(page.locator("tr.editing.htmx-settling, tr.editing .htmx-added")).to_have_count(0)
    expect(editing.get_by_label("Date")).to_be_focused()
    editing.get_by_label("Date").fill("2022-12-19")
    doughs = editing.get_by_label("Doughs used")
    doughs.fill("41")
    doughs.press("Enter")
    expect(page.locator("tr.editing")).to_have_count(0)
    expect(row.locator("td").nth(2)).to_have_text("41")
    page.screenshot(path=str(screenshot_dir / "pizzeria-nights.png"), full_page=True)

    row.get_by_text("Mon 2022-12-19").click()  # Escape cancels without saving
    page.locator("tr.editing").get_by_label("Reservations").fill("99")
    page.locator("tr.editing").get_by_label("Reservations").press("Escape")
    expect(page.locator("tr.editing")).to_have_count(0)
    expect(row.locator("td").nth(1)).to_have_text("12")
    assert page.evaluate("window.__sameDocument") is True


def test_staff_deletes_a_night_and_undoes_it(page, live_app):
    load_week(live_app)
    log_in(page, "staff")
    page.goto("/pizzeria/nights")
    expect(page.locator(".used-count")).to_have_text("5")
    page.locator('tr[data-date="2022-12-25"]').get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Deleted the night of 2022-12-25.")).to_be_visible()
    expect(page.locator(".used-count")).to_have_text("4")  # the summary refreshes itself
    page.get_by_role("button", name="Undo").click()
    expect(page.locator('tr[data-date="2022-12-25"]')).to_contain_text("Sun 2022-12-25")
    expect(page.locator(".used-count")).to_have_text("5")


def test_host_changes_which_weekdays_train(page, live_app):
    load_week(live_app)
    log_in(page, "host")
    page.goto("/pizzeria/nights")
    summary = page.locator("#training-summary")
    summary.get_by_label("Friday").uncheck()
    summary.get_by_role("button", name="Save weekdays").click()
    expect(summary.get_by_text("Saved. Retrain to apply.")).to_be_visible()
    expect(page.locator(".used-count")).to_have_text("6")
    # The rows' statuses follow without a reload: Friday now trains the model.
    expect(page.locator('tr[data-date="2022-12-23"] td').nth(6)).to_have_text("in")
    expect(summary.get_by_text("Saved. Retrain to apply.")).to_be_visible()


def test_owner_opens_the_evaluation_page_with_its_chart(page, live_app, screenshot_dir):
    from tests.support import demo_year_nights

    with live_app.app_context():
        add_nights(demo_year_nights())
        db.session.remove()
    log_in(page, "staff")
    page.goto("/pizzeria/")
    page.locator("nav.subnav").get_by_role("link", name="Evaluation").click()
    expect(page.locator(".winner")).to_contain_text("less error than linear")
    expect(page.locator('tr[data-model="baseline"]')).to_be_visible()
    chart = page.get_by_role("img", name="Doughs against reservations")
    expect(chart).to_be_visible()
    page.wait_for_function("() => document.querySelector('.chart img').naturalWidth > 0")
    page.get_by_label("Polynomial degree").select_option("3")
    expect(page).to_have_url("/pizzeria/evaluation?degree=3")  # shareable, without a reload
    expect(page.locator('tr[data-model="polynomial"] td').first).to_contain_text("polynomial")
    expect(page.locator(".chart img")).to_have_attribute("src", "/pizzeria/evaluation.svg?degree=3")
    page.wait_for_function("() => document.querySelector('.chart img').complete && "
                           "document.querySelector('.chart img').naturalWidth > 0")
    page.screenshot(path=str(screenshot_dir / "pizzeria-evaluation.png"), full_page=True)


def test_import_exports_fix_a_night_inline_and_retrain(page, live_app, screenshot_dir):
    from tests.support import demo_year_nights
    from webapp import PROJECT_ROOT

    data = PROJECT_ROOT / "webapp" / "demo" / "data"
    with live_app.app_context():
        add_nights(demo_year_nights())
        db.session.remove()
    log_in(page, "admin")
    page.goto("/pizzeria/")
    page.locator("nav.subnav").get_by_role("link", name="Import").click()
    exports = page.locator("#exports-form")
    exports.get_by_label("Reservations export").set_input_files(
        str(data / "pizzeria_reservations_export.csv"))
    exports.get_by_label("Point-of-sale export").set_input_files(
        str(data / "pizzeria_pos_export.csv"))
    exports.get_by_role("button", name="Upload and preview").click()
    batch = page.locator("#import-batch")
    expect(batch).to_have_attribute("data-status", "previewed", timeout=30_000)
    expect(batch.locator('[data-count="rejects"]')).to_have_text("4")
    expect(batch).to_contain_text("line 17")  # each bad row named by its line
    page.screenshot(path=str(screenshot_dir / "pizzeria-import.png"), full_page=True)
    batch.get_by_role("button", name="Apply").first.click()
    expect(batch).to_have_attribute("data-status", "applied")
    new_nights = int(batch.locator('[data-count="new"]').inner_text())
    assert new_nights > 0

    # Fix a night inline: one of its reservations was a bad row, so the host corrects the count.
    page.locator("nav.subnav").get_by_role("link", name="Nights").click()
    page.get_by_label("Month").select_option("2024-06")
    rows = page.locator("tr.night-row")
    expect(rows).to_have_count(new_nights)
    first = rows.first
    date = first.get_attribute("data-date")
    first.locator("td").first.click()
    reservations = page.locator("tr.editing").get_by_label("Reservations")
    reservations.fill("31")
    reservations.press("Enter")
    expect(page.locator(f'tr[data-date="{date}"] td').nth(1)).to_have_text("31")

    page.locator("nav.nav").get_by_role("link", name="Models").click()
    card = page.locator("#model-dough")
    card.get_by_role("button", name="Retrain").click()
    expect(card.locator(".job-result")).to_contain_text("activated", timeout=60_000)
