"""Console control-plane pages: staff-only access, CSRF, 404s, the overview and the tenants list."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from rag.models import Chunk, Document
from tenants.context import tenant_context
from tenants.models import ApiKey, Tenant
from tenants.services.apikeys import apikey_create
from tenants.services.usage import usage_record
from tests.helpers import MODES

# (url name, needs a tenant slug, needs a key id)
PAGES = [
    ("console:home", False, False),
    ("console:tenants", False, False),
    ("console:tenant-new", False, False),
    ("console:tenant", True, False),
    ("console:tenant-keys", True, False),
]
ACTIONS = [
    ("console:tenant-new", False, False),
    ("console:tenant-quotas", True, False),
    ("console:tenant-suspend", True, False),
    ("console:tenant-resume", True, False),
    ("console:tenant-delete", True, False),
    ("console:tenant-keys", True, False),
    ("console:tenant-key-revoke", True, True),
]


def _url(name: str, with_slug: bool, with_key: bool, tenant: Tenant, key: ApiKey) -> str:
    kwargs = {}
    if with_slug:
        kwargs["slug"] = tenant.slug
    if with_key:
        kwargs["key_id"] = key.id
    return reverse(name, kwargs=kwargs)


def _action_data(name: str, tenant: Tenant) -> dict:
    """A valid body for each action, so only the access check can stop it."""
    return {
        "console:tenant-new": {"mode": "pool", "slug": "sneaky-new"},
        "console:tenant-quotas": {"answer_per_hour": "7"},
        "console:tenant-delete": {"confirm": tenant.slug},
        "console:tenant-keys": {"scopes": ["query"]},
    }.get(name, {})


@pytest.fixture
def tenant_and_key(make_tenant):
    tenant = make_tenant("pool")
    key, _ = apikey_create(tenant=tenant, scopes=["query"])
    return tenant, key


def _unchanged(tenant: Tenant, key: ApiKey) -> None:
    tenant.refresh_from_db()
    key.refresh_from_db()
    assert tenant.status == "active"
    assert key.revoked_at is None
    assert ApiKey.objects.filter(tenant=tenant).count() == 1
    assert not Tenant.objects.filter(slug="sneaky-new").exists()


# --- Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "not staff"])
def test_pages_redirect_anonymous_and_non_staff_users_to_login(who, tenant_and_key, user_client):
    client = Client() if who == "anonymous" else user_client
    tenant, key = tenant_and_key
    for name, with_slug, with_key in PAGES:
        url = _url(name, with_slug, with_key, tenant, key)
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/console/login/?next="), url


@pytest.mark.parametrize("who", ["anonymous", "not staff"])
def test_actions_by_anonymous_and_non_staff_users_change_nothing(who, tenant_and_key, user_client):
    client = Client() if who == "anonymous" else user_client
    tenant, key = tenant_and_key
    for name, with_slug, with_key in ACTIONS:
        url = _url(name, with_slug, with_key, tenant, key)
        response = client.post(url, _action_data(name, tenant))
        assert response.status_code == 302, url
        assert response["Location"].startswith("/console/login/"), url
    _unchanged(tenant, key)


def test_every_page_answers_staff(staff_client, tenant_and_key):
    tenant, key = tenant_and_key
    for name, with_slug, with_key in PAGES:
        response = staff_client.get(_url(name, with_slug, with_key, tenant, key))
        assert response.status_code == 200, name
        html = response.content.decode()
        assert "<html" in html and 'name="csrfmiddlewaretoken"' in html, name


def test_state_changes_refuse_get(staff_client, tenant_and_key):
    tenant, key = tenant_and_key
    for name, with_slug, with_key in ACTIONS:
        if name in ("console:tenant-new", "console:tenant-keys"):
            continue  # a GET shows their form
        assert staff_client.get(_url(name, with_slug, with_key, tenant, key)).status_code == 405
    _unchanged(tenant, key)


def test_a_post_without_the_csrf_token_is_forbidden(csrf_staff_client, tenant_and_key):
    tenant, key = tenant_and_key
    csrf_staff_client.get(reverse("console:tenant", args=[tenant.slug]))  # sets the CSRF cookie
    for name, with_slug, with_key in ACTIONS:
        url = _url(name, with_slug, with_key, tenant, key)
        assert csrf_staff_client.post(url, _action_data(name, tenant)).status_code == 403, url
    _unchanged(tenant, key)


def test_a_post_with_the_pages_csrf_token_is_accepted(csrf_staff_client, tenant_and_key):
    """The token in the form, and the one base.html gives htmx in hx-headers, both work."""
    tenant, key = tenant_and_key
    page = csrf_staff_client.get(reverse("console:tenant", args=[tenant.slug])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = csrf_staff_client.post(
        reverse("console:tenant-suspend", args=[tenant.slug]), {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.status == "suspended"

    header_token = json.loads(re.search(r"hx-headers='([^']+)'", page).group(1))["X-CSRFToken"]
    response = csrf_staff_client.post(
        reverse("console:tenant-key-revoke", args=[tenant.slug, key.id]),
        HTTP_HX_REQUEST="true",
        HTTP_X_CSRFTOKEN=header_token,
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_an_unknown_tenant_is_a_404_everywhere(staff_client, tenant_and_key):
    _, key = tenant_and_key
    ghost = Tenant(slug="no-such-tenant")
    for routes, method in ((PAGES, staff_client.get), (ACTIONS, staff_client.post)):
        for name, with_slug, with_key in routes:
            if with_slug:
                url = _url(name, with_slug, with_key, ghost, key)
                assert method(url, _action_data(name, ghost)).status_code == 404, url


# --- Overview --------------------------------------------------------------------------------


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _add_documents(tenant: Tenant, *, ready: int = 0, failed: int = 0, chunks: int = 0) -> None:
    with tenant_context(tenant):
        for i in range(ready):
            doc = Document.objects.create(
                title=f"ready {i}",
                content_hash=_hash(f"{tenant.slug}-r{i}"),
                status="ready",
            )
            for n in range(chunks):
                Chunk.objects.create(document=doc, ordinal=n, text="hay", embedding=[0.1] * 384)
        for i in range(failed):
            Document.objects.create(
                title=f"{tenant.slug} broken {i}",
                content_hash=_hash(f"{tenant.slug}-f{i}"),
                status="failed",
                error=f"pdf_malformed in {tenant.slug}",
            )


def test_overview_counts_tenants_documents_chunks_and_usage(staff_client, make_tenant):
    tenants = {mode: make_tenant(mode) for mode in MODES}
    from tenants.services.provisioning import tenant_suspend

    tenant_suspend(tenant=tenants["bridge"])
    for tenant in tenants.values():
        _add_documents(tenant, ready=2, failed=1, chunks=3)
    usage_record(tenant=tenants["pool"], kind="answer", prompt_tokens=100, completion_tokens=20)
    usage_record(tenant=tenants["silo"], kind="embeddings", embedding_tokens=7)

    response = staff_client.get(reverse("console:home"))
    assert response.status_code == 200
    html = response.content.decode()
    counts = response.context["counts"]
    by_mode = {row["mode"]: row for row in counts["rows"]}
    assert counts["total"] == 3
    assert by_mode["bridge"]["cells"] == [0, 0, 1]  # provisioning, active, suspended
    assert by_mode["pool"]["cells"] == [0, 1, 0]
    dataplane = response.context["dataplane"]
    # Read in each tenant's own context: pool rows, the bridge schema and the silo database.
    assert (dataplane["documents"], dataplane["chunks"]) == (9, 18)
    assert {row["tenant"].slug for row in dataplane["failed"]} == {t.slug for t in tenants.values()}
    for tenant in tenants.values():
        assert f"pdf_malformed in {tenant.slug}" in html

    chart = json.loads(re.search(r'id="usage-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert len(chart["labels"]) == len(chart["requests"]) == len(chart["tokens"]) == 24
    assert chart["requests"][-1] == 2 and chart["tokens"][-1] == 127
    assert sum(chart["requests"][:-1]) == 0
    # The same numbers are readable without the chart.
    assert "<td>2</td><td>127</td>" in html
    assert 'aria-current="page">Overview' in html


def test_overview_lists_only_the_ten_most_recent_failures(staff_client, make_tenant):
    _add_documents(make_tenant("pool"), failed=12)
    response = staff_client.get(reverse("console:home"))
    assert len(response.context["dataplane"]["failed"]) == 10


def test_overview_empty_states(staff_client):
    html = staff_client.get(reverse("console:home")).content.decode()
    assert "No tenants yet." in html
    assert "No failed ingestions." in html
    assert "No requests in the last 24 hours." in html


# --- Tenants list ----------------------------------------------------------------------------


def test_tenants_list_shows_mode_status_documents_and_usage_bars(staff_client, make_tenant):
    pool = make_tenant("pool", slug="alpha-shop", name="Alpha Shop")
    make_tenant("bridge", slug="beta-labs", name="Beta Labs")
    _add_documents(pool, ready=2)
    usage_record(tenant=pool, kind="answer")  # the ledger is not the hourly counter...
    from tenants.services.quotas import quota_admit, quota_set

    quota_set(tenant=pool, search_per_hour=4)
    quota_admit(tenant=pool, kind="search")  # ...the counter is what the bars show

    response = staff_client.get(reverse("console:tenants"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'hx-get="/console/tenants/"' in html
    assert 'hx-trigger="input changed delay:300ms' in html
    assert f'href="{reverse("console:tenant", args=["alpha-shop"])}"' in html
    row = re.search(r"<tr>\s*<th scope=\"row\"><a[^>]*>alpha-shop</a>.*?</tr>", html, re.S).group(0)
    assert "Alpha Shop" in row and ">pool<" in row and ">active<" in row
    assert '2 <span class="muted">of 10000</span>' in row
    assert "Searches this hour: 1 of 4" in row
    assert 'data-percent="25"' in row
    assert "beta-labs" in html


def test_tenants_search_returns_the_partial_to_htmx(staff_client, make_tenant):
    make_tenant("pool", slug="alpha-shop")
    make_tenant("pool", slug="beta-labs", name="Alpha's sister")

    response = staff_client.get(reverse("console:tenants"), {"q": "ALPHA-"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<table" in html
    assert "alpha-shop" in html and "beta-labs" not in html
    assert "1 tenant matching" in html
    assert "HX-Request" in response["Vary"]

    by_name = staff_client.get(reverse("console:tenants"), {"q": "sister"}).content.decode()
    assert "<html" in by_name and "beta-labs" in by_name and "alpha-shop" not in by_name

    # htmx restoring a pushed URL missing from its history cache needs the whole page.
    restore = staff_client.get(
        reverse("console:tenants"),
        {"q": "alpha"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )
    assert "<html" in restore.content.decode()

    none = staff_client.get(reverse("console:tenants"), {"q": "zzz"}, HTTP_HX_REQUEST="true")
    assert "No tenant matches “zzz”" in none.content.decode()


def test_tenants_list_empty_state(staff_client):
    html = staff_client.get(reverse("console:tenants")).content.decode()
    assert "No tenants yet." in html
    assert reverse("console:tenant-new") in html
