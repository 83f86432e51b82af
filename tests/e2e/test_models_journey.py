"""Journeys: an admin retrains the dough model and rolls back; a host gets a live prediction."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from webapp.extensions import db
from webapp.pizzeria.models import Night


@pytest.fixture
def many_nights(live_app):
    """About 50,000 nights (137 generated years), so a retrain takes long enough to watch."""
    from ml.synthetic import generate_year

    rows = [{"date": n.date, "reservations": n.reservations, "doughs": n.doughs}
            for year in range(1880, 2017) for n in generate_year(seed=year, year=year)]
    with live_app.app_context():
        db.session.execute(Night.__table__.insert(), rows)
        db.session.commit()
        db.session.remove()


def model_card(page):
    return page.locator("#model-dough")


def retrain(page, model_type: str) -> str:
    """Press Retrain, watch the progress bar, and wait for the outcome; return the version."""
    card = model_card(page)
    card.get_by_label("Model").select_option(model_type)
    card.get_by_role("button", name="Retrain").click()
    expect(card.get_by_role("progressbar")).to_be_visible()
    expect(card.locator(".job-result")).to_contain_text("Last retrain: version", timeout=60_000)
    expect(card.get_by_role("progressbar")).to_have_count(0)  # polling stopped
    return card.locator(".job-result code").inner_text()


def test_admin_retrains_sees_activation_live_and_rolls_back(page, many_nights, screenshot_dir):
    log_in(page, "admin")
    page.locator("nav.nav").get_by_role("link", name="Models").click()
    card = model_card(page)
    expect(card.get_by_text("Not trained yet.")).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # proves no page reload happens below

    first = retrain(page, "polynomial")
    expect(card.locator(".active-version")).to_have_text(first)
    expect(card.locator(".job-result")).to_contain_text("activated (first model)")

    second = retrain(page, "polynomial")
    assert second != first
    expect(card.locator(".active-version")).to_have_text(second)  # passed the gate
    expect(card.locator(f'tr[data-version="{first}"]')).to_have_attribute("data-status", "retired")
    page.screenshot(path=str(screenshot_dir / "admin-models.png"), full_page=True)

    card.get_by_role("button", name="Roll back").click()
    expect(card.get_by_text(f"Rolled back to {first}.")).to_be_visible()
    expect(card.locator(".active-version")).to_have_text(first)
    card.get_by_text("Activation history").click()
    expect(card.locator(".history li").first).to_contain_text("(rollback)")
    assert page.evaluate("window.__sameDocument") is True


def test_worse_candidate_waits_for_the_admin(page, many_nights):
    log_in(page, "admin")
    page.goto("/admin/models")
    first = retrain(page, "polynomial")
    candidate = retrain(page, "linear")
    card = model_card(page)
    expect(card.locator(".job-result")).to_contain_text("kept as a candidate")
    expect(card.locator(".active-version")).to_have_text(first)
    row = card.locator(f'tr[data-version="{candidate}"]')
    row.get_by_role("button", name="Activate").click()
    expect(card.locator(".active-version")).to_have_text(candidate)


def test_host_types_reservations_and_sees_doughs_live(page, many_nights, screenshot_dir):
    log_in(page, "admin")
    page.goto("/admin/models")
    version = retrain(page, "polynomial")
    page.get_by_role("button", name="Log out").click()

    log_in(page, "host")
    page.locator("nav.nav").get_by_role("link", name="Pizzeria").click()
    field = page.get_by_label("Tonight's reservations")
    field.press_sequentially("15", delay=50)  # typed, not submitted: the preview is live
    prediction = page.locator("#prediction")
    expect(prediction).to_contain_text("doughs for 15 reservations")
    expect(prediction).to_contain_text(version)
    doughs = int(prediction.locator("[data-doughs]").get_attribute("data-doughs"))
    assert 30 < doughs < 80
    page.evaluate("window.__sameDocument = true")
    field.press("Backspace")
    field.press("Backspace")
    field.press_sequentially("45", delay=50)  # the prediction follows the typing
    expect(prediction).to_contain_text("doughs for 45 reservations")
    busier = int(prediction.locator("[data-doughs]").get_attribute("data-doughs"))
    assert busier > doughs
    expect(prediction.locator(".range")).to_contain_text("usually within ±")
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(screenshot_dir / "pizzeria-tonight.png"), full_page=True)
    field.fill("-4")
    expect(prediction.locator(".errors")).to_contain_text("between 0 and 10000")
    expect(page).to_have_url(re.compile(r"/pizzeria/$"))


def test_host_sees_an_empty_state_before_any_model(page):
    log_in(page, "host")
    page.goto("/pizzeria/")
    page.get_by_label("Tonight's reservations").fill("12")
    expect(page.locator("#prediction")).to_contain_text("dough model not trained yet")
