"""Test fixtures: the throwaway embedded PostgreSQL and Redis come from config.test_settings.

Tests run against the real servers in autocommit, like production, so provisioning (CREATE
DATABASE), other processes (workers, the web server) and RLS all behave as they do for users.
`pg` gives a test database access and removes every tenant (with its schema or database) after.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from django.core.management import call_command

# Fixtures that reach PostgreSQL (directly or through `pg`) and those that start processes.
# A test's tier follows from the fixtures it uses, so no test has to be marked by hand.
DB_FIXTURES = {
    "pg",
    "db",
    "transactional_db",
    "django_db_setup",
    "make_tenant",
    "make_key",
    "second_server",
}
WORKER_FIXTURES = {"worker", "web_server", "stack"}
TIERS = ("unit", "db", "worker", "browser")
BROWSER_TESTS = Path(__file__).resolve().parent / "browser"


def pytest_collection_modifyitems(config, items):
    """Mark every test with its tier: `db` if it uses a database fixture, `worker` if it uses
    a real worker or web server, `browser` if it is in tests/browser/, `unit` otherwise.

    A test that reaches the servers without these fixtures (raw connections, subprocesses) is
    marked by hand; a "unit" test that touches the database anyway fails, because pytest-django
    blocks database access in tests without the database fixtures."""
    for item in items:
        names = set(item.fixturenames)
        if names & DB_FIXTURES:
            item.add_marker(pytest.mark.db)
        if names & WORKER_FIXTURES:
            item.add_marker(pytest.mark.worker)
        if item.path.is_relative_to(BROWSER_TESTS):
            item.add_marker(pytest.mark.browser)
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    with django_db_blocker.unblock():
        call_command("migrate", verbosity=0, interactive=False)
    # As `make run` does before it starts any process: the worker and web server the tests
    # start then load the default embedding backend at once (built once per checkout).
    call_command("embedding_export", verbosity=0, stdout=io.StringIO())


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
