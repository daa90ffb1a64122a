"""In a real browser: create a tenant in each mode, create a key and see it once, revoke it and
see the API refuse it."""

import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import shot
from tests.helpers import MODES


def api_status(base_url: str, key: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        base_url + "/api/v1/tenant", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("mode", MODES)
def test_create_a_tenant_in_each_mode(mode, logged_in, pg):
    from tenants.models import Tenant

    page = logged_in
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tenants").click()
    page.get_by_role("link", name="New tenant").first.click()
    page.get_by_label(mode.capitalize(), exact=False).first.check()
    page.get_by_label("Slug").fill(f"browser-{mode}")
    page.get_by_label("Name", exact=True).fill(f"Browser {mode}")
    if mode == "pool":
        shot(page, "tenant-new")
    page.get_by_role("button", name="Create tenant").click()
    page.wait_for_url(f"**/console/tenants/browser-{mode}/")
    assert page.get_by_role("heading", level=1).inner_text().startswith(f"Browser {mode}")
    tenant = Tenant.objects.get(slug=f"browser-{mode}")
    assert tenant.isolation_mode == mode and tenant.status == "active"
    if mode == "silo":
        shot(page, "tenant-settings")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Tenants").click()
        shot(page, "tenants")
        shot(page, "tenants-390px", width=390)


def test_a_key_is_shown_once_and_revoking_it_locks_the_api_out(logged_in, make_tenant, web_server):
    tenant = make_tenant("pool")
    page = logged_in
    page.goto(f"/console/tenants/{tenant.slug}/keys/")
    page.get_by_label("Name", exact=True).fill("browser key")
    page.get_by_role("button", name="Create key").click()
    page.get_by_text("Choose at least one scope.").wait_for()  # a clear error, nothing issued
    page.get_by_label("Search and ask").check()
    page.get_by_label("Ingest documents").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key")
    secret.wait_for()
    key = secret.inner_text().strip()
    assert key.startswith("tnt_")
    shot(page, "tenant-key-created")
    assert api_status(web_server.url, key) == 200

    page.reload()  # shown once: a new page load has only the prefix
    assert page.locator("#new-key").count() == 0
    assert key not in page.content() and key[:16] in page.content()
    shot(page, "tenant-keys")

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke key {key[:16]}").click()
    page.get_by_text("revoked", exact=True).first.wait_for()
    assert api_status(web_server.url, key) == 401
