"""Journeys: log in as each role, see that role's navigation, log out; admin creates a user."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

# The navigation each role must see, in order (sections appear as their features land).
EXPECTED_NAV = {
    "admin": ["Home", "Pizzeria", "Tavern", "Gifts", "Models", "Users", "Audit"],
    "staff": ["Home", "Pizzeria", "Tavern", "Gifts"],
    "host": ["Home", "Pizzeria", "Tavern"],
}


def nav_labels(page) -> list[str]:
    return [label.strip() for label in page.locator("nav.nav a").all_inner_texts()]


@pytest.mark.parametrize("role", ["admin", "staff", "host"])
def test_role_logs_in_sees_its_navigation_and_logs_out(page, role, screenshot_dir):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    if role == "admin":
        page.screenshot(path=str(screenshot_dir / "login.png"))
    log_in(page, role)
    expect(page.get_by_role("heading", name=f"Hello, {role}")).to_be_visible()
    assert nav_labels(page) == EXPECTED_NAV[role]
    expect(page.locator(".who .badge")).to_have_text(role)
    page.screenshot(path=str(screenshot_dir / f"home-{role}.png"), full_page=True)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))


def test_wrong_password_shows_a_clear_error(page):
    log_in(page, "staff", "not-the-password")
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")


def test_host_is_refused_the_admin_pages(page):
    log_in(page, "host")
    response = page.goto("/admin/users")
    assert response.status == 403
    expect(page.get_by_role("heading", name="403 · Not allowed")).to_be_visible()


def test_unknown_url_shows_the_not_found_page(page):
    log_in(page, "staff")
    response = page.goto("/no/such/page")
    assert response.status == 404
    expect(page.get_by_role("heading", name="404 · Not found")).to_be_visible()


def test_admin_creates_a_user_inline(page, screenshot_dir):
    log_in(page, "admin")
    page.locator("nav.nav").get_by_role("link", name="Users").click()
    form = page.locator("#user-form")
    form.get_by_label("Username").fill("bad name!")
    form.get_by_role("button", name="Create user").click()
    expect(form.get_by_text("Use letters, digits")).to_be_visible()  # 422 swapped in place
    expect(page.locator("#user-form input[name=username]")).to_be_focused()
    form.get_by_label("Username").fill("newhost")
    form.get_by_label("Role").select_option("host")
    form.get_by_role("button", name="Create user").click()
    expect(form.get_by_text("Password, shown once")).to_be_visible()
    password = form.locator("code.secret").inner_text()
    # The table refreshes itself on the users-changed event, without a reload.
    expect(page.locator("#user-table")).to_contain_text("newhost")
    page.screenshot(path=str(screenshot_dir / "admin-users.png"), full_page=True)
    page.get_by_role("button", name="Log out").click()
    log_in(page, "newhost", password)
    expect(page.get_by_role("heading", name="Hello, newhost")).to_be_visible()
