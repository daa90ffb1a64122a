"""A tenant's settings page: quotas, suspend and resume, and delete with typed confirmation."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tenants.models import Tenant
from tenants.services.quotas import QUOTA_FIELDS, quota_defaults, quota_get
from tests.helpers import MODES, bearer

from .test_tenant_create import _placement_exists


def test_the_settings_page_shows_the_tenant_its_quotas_and_actions(staff_client, make_tenant):
    tenant = make_tenant("bridge", name="Bridge Corp")
    response = staff_client.get(reverse("console:tenant", args=[tenant.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Bridge Corp" in html and f"Schema {tenant.schema_name}" in html
    assert 'aria-current="page">Settings' in html
    for name in QUOTA_FIELDS:
        assert f'<label for="id_{name}">' in html
    assert f'value="{quota_defaults()["search_per_hour"]}"' in html
    assert reverse("console:tenant-suspend", args=[tenant.slug]) in html
    assert reverse("console:tenant-resume", args=[tenant.slug]) not in html
    assert '<label for="id_confirm">' in html


def test_silo_dsn_credentials_are_not_shown(staff_client, make_tenant):
    tenant = make_tenant("pool")
    # Only the displayed placement matters here: make the row look like a remote silo.
    Tenant.objects.filter(pk=tenant.pk).update(
        isolation_mode="silo",
        silo_database="tenant_x",
        silo_dsn="postgresql://tenantry_owner:hunter2@db2.internal:6432/postgres",
    )
    try:
        html = staff_client.get(reverse("console:tenant", args=[tenant.slug])).content.decode()
    finally:
        Tenant.objects.filter(pk=tenant.pk).update(
            isolation_mode="pool", silo_dsn="", silo_database=""
        )
    assert "Database tenant_x on db2.internal:6432" in html
    assert "hunter2" not in html


def test_quotas_are_saved_through_quota_set(staff_client, make_tenant):
    tenant = make_tenant("pool")
    values = {**quota_defaults(), "search_per_hour": 20, "max_storage_bytes": 5 * 1024**3}
    response = staff_client.post(reverse("console:tenant-quotas", args=[tenant.slug]), values)
    assert response.status_code == 302
    quota = quota_get(tenant=tenant)
    assert (quota.search_per_hour, quota.max_storage_bytes) == (20, 5 * 1024**3)
    page = staff_client.get(response["Location"]).content.decode()
    assert "Quotas saved." in page and 'value="20"' in page


def test_invalid_quotas_are_errors_and_nothing_is_saved(staff_client, make_tenant):
    tenant = make_tenant("pool")
    values = {**quota_defaults(), "search_per_hour": 0, "answer_per_hour": "lots"}
    response = staff_client.post(reverse("console:tenant-quotas", args=[tenant.slug]), values)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_search_per_hour_error"' in html and 'id="id_answer_per_hour_error"' in html
    assert quota_get(tenant=tenant).search_per_hour == quota_defaults()["search_per_hour"]


def test_suspend_and_resume_flip_the_status_and_the_api_follows(
    staff_client, make_tenant, make_key, api
):
    tenant = make_tenant("pool")
    key = make_key(tenant)
    assert api.get("/api/v1/tenant", **bearer(key)).status_code == 200

    response = staff_client.post(reverse("console:tenant-suspend", args=[tenant.slug]))
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.status == "suspended"
    refused = api.get("/api/v1/tenant", **bearer(key))
    assert refused.status_code == 403 and refused.json()["code"] == "tenant_suspended"
    page = staff_client.get(response["Location"]).content.decode()
    assert "Suspended" in page and reverse("console:tenant-resume", args=[tenant.slug]) in page
    assert reverse("console:tenant-suspend", args=[tenant.slug]) not in page

    staff_client.post(reverse("console:tenant-resume", args=[tenant.slug]))
    tenant.refresh_from_db()
    assert tenant.status == "active"
    assert api.get("/api/v1/tenant", **bearer(key)).status_code == 200


@pytest.mark.parametrize("mode", MODES)
def test_delete_needs_the_slug_typed(staff_client, make_tenant, mode):
    tenant = make_tenant(mode)
    url = reverse("console:tenant-delete", args=[tenant.slug])

    wrong = staff_client.post(url, {"confirm": "someone-else"})
    assert wrong.status_code == 200
    assert 'id="id_confirm_error"' in wrong.content.decode()
    assert Tenant.objects.filter(pk=tenant.pk).exists() and _placement_exists(tenant)
    assert staff_client.post(url, {"confirm": ""}).status_code == 200
    assert Tenant.objects.filter(pk=tenant.pk).exists()

    right = staff_client.post(url, {"confirm": tenant.slug})
    assert right.status_code == 302 and right["Location"] == reverse("console:tenants")
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert not _placement_exists(tenant) or mode == "pool"
    assert f"Deleted {tenant.slug}" in staff_client.get(right["Location"]).content.decode()
