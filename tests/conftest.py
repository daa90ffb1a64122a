"""Test fixtures: the throwaway embedded PostgreSQL and Redis come from config.test_settings.

Tests run against the real servers in autocommit, like production, so provisioning (CREATE
DATABASE), other processes (workers, the web server) and RLS all behave as they do for users.
`pg` gives a test database access and removes every tenant (with its schema or database) after.
"""

from __future__ import annotations

import itertools

import pytest
from django.core.management import call_command


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    with django_db_blocker.unblock():
        call_command("migrate", verbosity=0, interactive=False)


@pytest.fixture
def pg(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        yield
        _clean()


def _clean() -> None:
    from django.contrib.auth import get_user_model

    from tenants.models import Tenant
    from tenants.services.provisioning import tenant_delete

    for tenant in Tenant.objects.all():
        tenant_delete(tenant=tenant)
    get_user_model().objects.all().delete()


_counter = itertools.count(1)


@pytest.fixture
def make_tenant(pg):
    """make_tenant(mode) -> an active tenant with a unique slug."""
    from tenants.services.provisioning import tenant_create

    def make(mode: str, slug: str | None = None, **kwargs):
        return tenant_create(slug=slug or f"{mode}-t{next(_counter)}", mode=mode, **kwargs)

    return make


MODES = ["pool", "bridge", "silo"]


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def make_key():
    """make_key(tenant, scopes=...) -> the plaintext key."""
    from tenants.services.apikeys import apikey_create

    def make(tenant, scopes=("ingest", "query", "admin"), **kwargs):
        return apikey_create(tenant=tenant, scopes=list(scopes), **kwargs)[1]

    return make


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}
