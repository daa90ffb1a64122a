"""Creating tenants from the console, in every isolation mode, through tenant_create."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from rag.models import Document
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.helpers import MODES, superuser

NEW = "/console/new-tenant/"


def _placement_exists(tenant: Tenant) -> bool:
    if tenant.isolation_mode == "bridge":
        with superuser("tenantry") as conn:
            query = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
            return conn.execute(query, [tenant.schema_name]).fetchone() is not None
    if tenant.isolation_mode == "silo":
        with superuser() as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            return conn.execute(query, [tenant.silo_database]).fetchone() is not None
    return True


def test_the_create_form_explains_the_modes_and_labels_every_input(staff_client):
    assert reverse("console:tenant-new") == NEW
    response = staff_client.get(NEW)
    assert response.status_code == 200
    html = response.content.decode()
    for mode in MODES:
        assert f'<label for="id_mode_{mode}">' in html
        assert f'aria-describedby="id_mode_{mode}_help"' in html
    assert "row-level security" in html and "schema of its own" in html
    assert "database of its own" in html
    for name in ("slug", "name", "silo_dsn"):
        assert f'<label for="id_{name}">' in html
    assert 'aria-current="page">Tenants' in html


@pytest.mark.parametrize("mode", MODES)
def test_a_tenant_is_created_in_each_mode_with_its_placement(staff_client, pg, mode):
    slug = f"console-{mode}"
    response = staff_client.post(NEW, {"mode": mode, "slug": slug, "name": f"Console {mode}"})
    assert response.status_code == 302
    assert response["Location"] == reverse("console:tenant", args=[slug])

    tenant = Tenant.objects.get(slug=slug)
    assert (tenant.isolation_mode, tenant.status, tenant.name) == (
        mode,
        "active",
        f"Console {mode}",
    )
    assert _placement_exists(tenant)
    with tenant_context(tenant):  # its data plane is migrated and usable
        Document.objects.create(title="x", content_hash="c" * 64)
        assert Document.objects.count() == 1

    page = staff_client.get(response["Location"]).content.decode()
    assert f"Created the {mode} tenant {slug}." in page


def test_an_invalid_slug_is_an_error_on_its_input(staff_client, pg):
    response = staff_client.post(NEW, {"mode": "pool", "slug": "Not A Slug!"})
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<input[^>]*aria-invalid="true"[^>]*id="id_slug"', html) or re.search(
        r'<input[^>]*id="id_slug"[^>]*aria-invalid="true"', html
    )
    assert 'aria-describedby="id_slug_helptext id_slug_error"' in html
    assert '<p class="error" id="id_slug_error" role="alert">' in html
    assert "lowercase letters, digits and hyphens" in html
    assert not Tenant.objects.filter(name="Not A Slug!").exists()


def test_a_taken_slug_and_a_dsn_for_a_pool_tenant_are_refused(staff_client, make_tenant):
    make_tenant("pool", slug="taken")
    html = staff_client.post(NEW, {"mode": "bridge", "slug": "taken"}).content.decode()
    assert "already exists" in html
    assert Tenant.objects.get(slug="taken").isolation_mode == "pool"

    response = staff_client.post(
        NEW, {"mode": "pool", "slug": "dsn-pool", "silo_dsn": "postgresql://x@db2/postgres"}
    )
    assert response.status_code == 200
    assert "A DSN only applies to silo tenants." in response.content.decode()
    assert 'id="id_silo_dsn_error"' in response.content.decode()
    assert not Tenant.objects.filter(slug="dsn-pool").exists()


def test_a_silo_that_cannot_be_provisioned_is_an_error_and_leaves_nothing(staff_client, pg):
    dsn = "postgresql://tenantry_owner:secret@127.0.0.1:1/postgres"
    response = staff_client.post(NEW, {"mode": "silo", "slug": "silo-unreachable", "silo_dsn": dsn})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Could not provision silo tenant" in html and 'role="alert"' in html
    assert not Tenant.objects.filter(slug="silo-unreachable").exists()


def test_a_missing_mode_is_an_error(staff_client, pg):
    response = staff_client.post(NEW, {"slug": "no-mode"})
    assert response.status_code == 200
    assert 'id="id_mode_error"' in response.content.decode()
    assert not Tenant.objects.filter(slug="no-mode").exists()
