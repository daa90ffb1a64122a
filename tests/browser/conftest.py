"""Browser tests: Playwright for Python driving Debian's Chromium against a real gunicorn.

`make test` installs Chromium with apt when it is missing; where it cannot (no apt, no root),
only these tests are skipped, with the reason. Screenshots of every main page are saved to
var/test-artifacts/ for a reviewer, and a failing test leaves one of the page as it failed.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# Chromium's background services try to reach Google; this machine's network refuses them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-test-password"  # a throwaway user of the test database


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists():
        return
    reason = (
        f"Chromium not found at {CHROMIUM}: `make test` installs it with apt-get when apt is "
        "available (as root); set CHROMIUM_PATH to use another build"
    )
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, and Django then refuses the
    # tests' own (synchronous) database calls. They are safe here: nothing else runs on that
    # loop. Django documents this switch for exactly such environments.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # this run's screenshots only
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def staff(pg):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    user = get_user_model().objects.create_user(username=f"operator{os.getpid()}", is_staff=True)
    # The web server runs the production settings, whose hashers the tests' fast MD5 is not
    # among: store a hash it can check.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt())
    user.save(update_fields=["password"])
    return user


@pytest.fixture
def page(request, browser, web_server):
    context = browser.new_context(base_url=web_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid.split("::")[-1])
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{name}.png"), full_page=True)
    context.close()


@pytest.fixture
def logged_in(page, staff):
    page.goto("/console/login/")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/")
    return page


def shot(page, name: str, *, width: int | None = None) -> Path:
    """Save a full-page screenshot for reviewers (optionally at another viewport width)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if width:
        page.set_viewport_size({"width": width, "height": 844})
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if width:
        page.set_viewport_size({"width": 1280, "height": 900})
    return path


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
