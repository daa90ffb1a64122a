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
    """Database access for one test; tenants and users it created are removed afterwards
    (those of module- or session-scoped fixtures are left to their fixture)."""
    from django.contrib.auth import get_user_model

    from tenants.models import Tenant

    with django_db_blocker.unblock():
        tenants_before = set(Tenant.objects.values_list("pk", flat=True))
        users_before = set(get_user_model().objects.values_list("pk", flat=True))
        yield
        _clean(tenants_before, users_before)


def _clean(tenants_before: set, users_before: set) -> None:
    from django.contrib.auth import get_user_model

    from tenants.models import Tenant
    from tenants.services.provisioning import tenant_delete

    for tenant in Tenant.objects.exclude(pk__in=tenants_before):
        tenant_delete(tenant=tenant)
    get_user_model().objects.exclude(pk__in=users_before).delete()


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


@pytest.fixture(scope="session")
def worker(django_db_setup, tmp_path_factory):
    """One real Celery worker (with beat) for the session; tests may kill and restart it."""
    from tests.workers import Worker

    w = Worker(tmp_path_factory.mktemp("worker"))
    w.start()
    yield w
    w.stop()


@pytest.fixture(scope="session")
def web_server(django_db_setup, tmp_path_factory):
    """One real gunicorn for the session (the app as users reach it, over loopback HTTP)."""
    from tests.server import WebServer

    server = WebServer(tmp_path_factory.mktemp("web"))
    server.start()
    yield server
    server.stop()
