"""Logging in to the console in a real browser."""

from tests.browser.conftest import shot


def test_login_page_then_overview(page, staff):
    page.goto("/console/")
    page.wait_for_url("**/console/login/**")
    shot(page, "login")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()
    page.get_by_label("Password").fill("browser-test-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/")
    assert page.get_by_role("navigation", name="Main").is_visible()
    shot(page, "overview")
    shot(page, "overview-390px", width=390)
