"""Journey: an admin retrains the label model, and its suggestions appear in the label queue."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.support import wait_for_job
from tests.web.test_gifts_model import seed_workbench
from webapp import jobs
from webapp.extensions import db


@pytest.fixture
def workbench(live_app):
    """Accepted items with human labels and pending items with rule suggestions."""
    with live_app.app_context():
        seeded = seed_workbench()
        db.session.remove()
    return seeded


def test_retrain_and_see_model_suggestions_appear(page, live_app, workbench, screenshot_dir):
    log_in(page, "admin")
    page.goto("/admin/models")
    card = page.locator("#model-labels")
    expect(card.get_by_text("Not trained yet.")).to_be_visible()
    card.get_by_label("Algorithm").select_option("logreg")
    card.get_by_role("button", name="Retrain").click()
    expect(card.locator(".job-result")).to_contain_text("activated (first model)",
                                                        timeout=60_000)
    version = card.locator(".job-result code").inner_text()
    card.get_by_text("Per label on the hold-out").click()
    expect(card.locator('tr[data-label="theme:coffee"]')).to_be_visible()

    with live_app.app_context():  # the batch runs right after the retrain, in the background
        batch = wait_for_job(jobs.latest_job("gifts-suggest", "labels").id, timeout=60)
        assert batch.status == "succeeded", batch.error
        db.session.remove()

    page.goto("/gifts/queue")
    suggested = page.locator(".queue-label.source-model")
    expect(suggested.first).to_be_visible()
    expect(suggested.first.locator(".provenance")).to_contain_text(f"model {version[-8:]}")
    expect(page.locator(".queue-sources")).to_contain_text(f"theme: model {version[-8:]}")
    # "mood" has no human labels yet, so the rules still suggest it.
    expect(page.locator(".queue-sources")).to_contain_text("mood: rules")
    page.screenshot(path=str(screenshot_dir / "gifts-model.png"), full_page=True)
